"""Walking the page tables of a range (mm/pagewalk.c; pmd_addr_end() from include/linux/pgtable.h).

`walk_pmd_range` visits the PMD slots of [start, end) in address order and
yields each as (pmd index, pmd, addr, next): the slot's part of the range is
[addr, next), and pmd is None where the slot is empty (pmd_none).  The caller
handles a PMD-level entry itself (zap it, split it, move it ...) and reaches the
PTEs of a table through `pte_range`.  `walk_page_range` does the same for each
VMA of the range in turn, as the kernel's walk_page_range() does.  The slot is
read when the walk reaches it, so a caller may replace or remove the entry of
the slot it is given.

Every walk is tallied in `Kernel.walk_visits` under its `Walker` kind: the
page-table entries it visited.  A PMD-level entry (huge, huge zero, swap,
migration) counts 1 as the walk reaches it; a PTE table counts the PTEs the
caller looks at (`pte_range`, or `count_visits` for a caller that reads a table
its own way), or 1 when it is moved whole without them (mremap's
move_normal_pmd).  An empty slot counts nothing.  The tally is the simulation's own
(it is no /proc/vmstat counter): it shows how much page-table work each walker
did, e.g. 1 entry to zap a PMD swap entry against 512 for its PTE-mapped form.
"""

from __future__ import annotations

from array import array
from enum import Enum
from typing import TYPE_CHECKING, Iterator

from .constants import PAGE_SHIFT, PMD_MASK, PMD_SIZE, pmd_index, pte_index
from .mm_types import MmStruct
from .pgtable import Pmd, PmdKind, pmd_pgtable
from .progress import progress
from .vma import VmArea

if TYPE_CHECKING:
    from .kernel import Kernel


class Walker(Enum):
    """The page-table walkers the tally tells apart (`WALKER_FUNCTION` names the kernel
    function each models)."""

    ZAP = "zap"
    MPROTECT = "mprotect"
    SMAPS = "smaps"
    PAGEMAP = "pagemap"
    MREMAP = "mremap"
    FORK = "fork"
    SWAPOFF = "swapoff"
    MADVISE = "madvise"


#: The kernel function(s) each walker models, and what runs it (the legend of `show walks`).
WALKER_FUNCTION: dict[Walker, str] = {
    Walker.ZAP: "zap_pmd_range/zap_pte_range: munmap, MADV_DONTNEED, exit, mremap",
    Walker.MPROTECT: "change_protection/change_pmd_range: mprotect",
    Walker.SMAPS: "smaps_pte_range: /proc/PID/smaps",
    Walker.PAGEMAP: "pagemap_pmd_range: /proc/PID/pagemap",
    Walker.MREMAP: "move_page_tables: mremap",
    Walker.FORK: "copy_page_range/copy_pmd_range: fork",
    Walker.SWAPOFF: "unuse_vma/unuse_pmd_range: swapoff",
    Walker.MADVISE: "madvise_cold_or_pageout_pte_range, madvise_free_pte_range: MADV_PAGEOUT/COLD/FREE",
}


def pmd_addr_end(addr: int, end: int) -> int:
    """pmd_addr_end(): the end of addr's PMD, or end if that comes first."""
    boundary = (addr + PMD_SIZE) & PMD_MASK
    return boundary if boundary - 1 < end - 1 else end


def walk_pmd_range(k: "Kernel", mm: MmStruct, start: int, end: int,
                   walker: Walker) -> Iterator[tuple[int, Pmd | None, int, int]]:
    """(pmd index, pmd or None, addr, next) for each PMD slot of [start, end), in address order.

    A PMD-level entry is counted as one visit when it is yielded; a table's PTEs are
    counted by `pte_range` as the caller asks for them.
    """
    pmds = mm.pmds
    visits = k.walk_visits
    table = PmdKind.TABLE
    addr = start
    while addr < end:
        nxt = pmd_addr_end(addr, end)
        pmdi = pmd_index(addr)
        pmd = pmds.get(pmdi)
        if pmd is not None and pmd.kind is not table:
            visits[walker] += 1
        yield pmdi, pmd, addr, nxt
        addr = nxt


def walk_page_range(k: "Kernel", mm: MmStruct, start: int, end: int,
                    walker: Walker) -> Iterator[tuple[VmArea, int, Pmd | None, int, int]]:
    """walk_page_range(): `walk_pmd_range` over each VMA's part of [start, end), VMA by VMA,
    each slot with its VMA: (vma, pmd index, pmd or None, addr, next)."""
    total = (end - start) >> PAGE_SHIFT
    for vma in mm.vmas_in(start, end):
        for pmdi, pmd, addr, nxt in walk_pmd_range(k, mm, max(start, vma.start), min(end, vma.end), walker):
            progress(walker.value, (addr - start) >> PAGE_SHIFT, total)
            yield vma, pmdi, pmd, addr, nxt


def pte_range(k: "Kernel", walker: Walker, pmd: Pmd, addr: int, end: int) -> tuple[array, range]:
    """pte_offset_map(): a table PMD's PTEs and the indices in it of the pages of [addr, end)
    (within one PMD); counts them as visited."""
    first = pte_index(addr)
    idx = range(first, pte_index(end - 1) + 1)
    k.walk_visits[walker] += len(idx)
    return pmd_pgtable(pmd).ptes, idx


def count_visits(k: "Kernel", walker: Walker, nr: int = 1) -> None:
    """Count nr page-table entries a walker visited outside `walk_pmd_range`/`pte_range`
    (zap_pte_range's batch, mremap's move of a whole entry or table)."""
    k.walk_visits[walker] += nr
