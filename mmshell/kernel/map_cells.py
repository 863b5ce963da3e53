"""`show map` on the live kernel: the cells of each PMD read from /proc, drawn by views/map.py.

Per 2 MiB block of the script's regions: PAGEMAP_SCAN says whether a page
table or a PMD mapping is there (`PAGE_IS_HUGE`: mapped by a PMD,
`PAGE_IS_PFNZERO`: the zero page), /proc/PID/pagemap gives each page present
or swapped, and for a present page /proc/kpageflags says whether it belongs
to a large folio (KPF_COMPOUND_HEAD/TAIL) or is in the swap cache
(KPF_SWAPCACHE), and /proc/kpagecount how many mappings it has.  A page-table
swap entry is `s`; what the kernel does not export is left out: the swap
count and swap-cache state of a swap entry's slot (no overlay on `s`), a
migration entry (pagemap reports it as swapped), and a PMD swap entry of the
series (pagemap reports 512 swapped pages: drawn as `s`).
"""

from __future__ import annotations

import os
import struct

from ..mm.task_mmu import PagemapEntry
from ..views.cells import PTRS, PmdCells
from . import procfs, syscalls

PAGE = 4096
HPAGE = PAGE * PTRS
#: /proc/kpageflags bits (include/uapi/linux/kernel-page-flags.h).
KPF_SWAPCACHE = 1 << 13
KPF_COMPOUND_HEAD = 1 << 15
KPF_COMPOUND_TAIL = 1 << 16


def kpage_words(path: str, pfn: int, n: int) -> list[int]:
    """The 64-bit words of pfns pfn..pfn+n-1 in /proc/kpageflags or /proc/kpagecount, in one
    read ([] when unreadable)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        data = os.pread(fd, 8 * n, pfn * 8)
    except OSError:
        return []
    finally:
        os.close(fd)
    return list(struct.unpack(f"<{len(data) // 8}Q", data[:len(data) // 8 * 8]))


def per_pfn(path: str, pfns: list[int]) -> dict[int, int]:
    """The word of each pfn in /proc/kpageflags or /proc/kpagecount ({} when unreadable), a
    read per run of consecutive pfns."""
    out: dict[int, int] = {}
    i = 0
    while i < len(pfns):
        j = i + 1
        while j < len(pfns) and pfns[j] == pfns[j - 1] + 1:
            j += 1
        out.update(zip(pfns[i:j], kpage_words(path, pfns[i], j - i)))
        i = j
    return out


def block_cells(kpid: int, blk: int) -> PmdCells:
    """The cells of the 2 MiB block at blk in process kpid."""
    index = blk // HPAGE
    scan = procfs.pagemap_scan(kpid, blk, blk + HPAGE)
    if not scan:
        return PmdCells(index, "none", "." * PTRS)
    huge = bytearray(PTRS)
    zero = bytearray(PTRS)
    for a, b, cat in scan:
        lo, hi = max(a, blk), min(b, blk + HPAGE)
        for i in range((lo - blk) // PAGE, (hi - blk) // PAGE):
            huge[i] = 1 if cat & syscalls.PAGE_IS_HUGE else 0
            zero[i] = 1 if cat & syscalls.PAGE_IS_PFNZERO else 0
    words = list(procfs.pagemap_words(kpid, blk, PTRS))
    words += [0] * (PTRS - len(words))
    entries = [PagemapEntry(w) for w in words]
    pfns = sorted({e.pfn for e in entries if e.present and e.pfn})
    flags = per_pfn("/proc/kpageflags", pfns)
    counts = per_pfn("/proc/kpagecount", pfns)
    letters = []
    cached = bytearray(PTRS)
    shared = bytearray(PTRS)
    for i, e in enumerate(entries):
        if e.present:
            if huge[i]:
                letters.append("Z" if zero[i] else "H")
            elif zero[i]:
                letters.append("z")
            else:
                f = flags.get(e.pfn, 0)
                letters.append("t" if f & (KPF_COMPOUND_HEAD | KPF_COMPOUND_TAIL) else "p")
            if not zero[i]:
                cached[i] = 1 if flags.get(e.pfn, 0) & KPF_SWAPCACHE else 0
                shared[i] = 1 if counts.get(e.pfn, 0) > 1 else 0
        elif e.swapped:
            letters.append("s")
        else:
            letters.append(".")
    cells = "".join(letters)
    kind = "huge" if cells in ("H" * PTRS, "Z" * PTRS) else "table"
    return PmdCells(index, kind, cells, bytes(cached), bytes(shared))


def live_map_cells(kpid: int, ranges: list[tuple[int, int]]) -> list[PmdCells]:
    """The cells of every 2 MiB block the ranges (start, length) meet, in address order."""
    blocks = sorted({b for start, length in ranges if length > 0
                     for b in range(start & ~(HPAGE - 1), start + length, HPAGE)})
    return [block_cells(kpid, b) for b in blocks]
