"""`expect PATH` on the live kernel: each path of the contract, read from what the kernel exports.

| path | read from |
|---|---|
| `vmstat.NAME` | /proc/vmstat (after vm.stat_refresh), minus its value at the script's start |
| `mthp.NAME` | hugepages-2048kB/stats/NAME, minus its value at the start |
| `smaps.NAME.FIELD` | /proc/PID/smaps: the VMAs inside the region summed.  A VMA that reaches |
|   | beyond the region (adjacent mappings merged) contributes its part inside, computed |
|   | from PAGEMAP_SCAN and pagemap (Size, Rss, Anonymous, AnonHugePages, Swap, SwapPss); |
|   | the other fields of part of a VMA are not observable |
| `pmd.ADDR` | PAGEMAP_SCAN of the 2 MiB block: a PMD-level mapping reports PAGE_IS_HUGE; a PTE |
|   | table reports every entry (an empty one as written); no table reports nothing |
| `pte.ADDR` | pagemap bits 63/62 when the PMD is a table, else `none` |
| `pagemap.ADDR.FIELD` | /proc/PID/pagemap (as root: PFNs and swap offsets visible); over `ADDR:LEN`, the pages with a 0/1 FIELD set |
| `swap.NAME.used` | /proc/swaps Used / 4 kB |
| `swapmap.NAME.OFF` | PROXY: the number of page-table entries of the script's processes that hold |
|   | the slot (a pagemap scan of every region).  swap_map itself is not exported; the |
|   | proxy equals it when only this script's page tables reference the device |
| `swapcache.NAME.OFF` | mincore() in a process whose page table holds the slot (for a swap |
|   | entry mincore reports whether the swap cache has it); with no such entry: not observable |
| `meminfo.FIELD` | /proc/meminfo minus its value at the start (MemTotal: as is) |
| `pid` | the script's current pid |
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from ..lang.backend import NotObservable, Reading
from ..lang.expectation import PAGEMAP_FIELDS, PathError, pagemap_count, pagemap_span
from ..lang.parser import split_path
from ..lang.values import BadValue, parse_size
from ..mm.task_mmu import SMAPS_FIELDS
from . import procfs
from .procfs import PagemapEntry
from .syscalls import PAGE_IS_HUGE, PAGE_IS_PFNZERO, PAGE_IS_PRESENT, PAGE_IS_SWAPPED

if TYPE_CHECKING:
    from .session import LiveSession

PAGE = 4096
HPAGE = 2 << 20

#: Fields that can be computed for part of a VMA from pagemap.
PARTIAL_FIELDS = ("Size", "KernelPageSize", "MMUPageSize", "Rss", "Anonymous", "AnonHugePages",
                  "Swap", "SwapPss", "Locked", "THPeligible")
#: Values that depend on the machine, not on what the script did (never compared by `diff`).
MACHINE_SPECIFIC = ("meminfo.MemTotal", "meminfo.MemFree", "vmstat.nr_free_pages")


def evaluate(s: "LiveSession", path: str) -> Reading:
    try:
        parts = split_path(path)
    except ValueError as e:
        raise PathError(str(e)) from None
    head, rest = parts[0], parts[1:]
    base = s.machine.baseline
    assert base is not None
    if head == "pid" and not rest:
        return Reading(s.pid)
    if head == "vmstat" and len(rest) == 1:
        name = rest[0]
        now = procfs.vmstat()
        if name not in now:
            if name == "thp_swpout_pmd":
                raise PathError("vmstat counter 'thp_swpout_pmd' exists only with the PMD swap entry "
                                f"series: this kernel ({s.release}) does not have it")
            raise PathError(f"no vmstat counter {name!r} in this kernel's /proc/vmstat")
        if name == "nr_free_pages":
            return Reading(now[name])
        return Reading(now[name] - base.vmstat.get(name, 0))
    if head == "mthp" and len(rest) == 1:
        now = procfs.mthp_stats()
        if rest[0] not in now:
            raise PathError(f"no hugepages-2048kB stat {rest[0]!r} ({', '.join(now)})")
        return Reading(now[rest[0]] - base.mthp.get(rest[0], 0))
    if head == "smaps" and len(rest) == 2:
        name, fld = rest
        region = s.names().get(name)
        if region is None:
            raise PathError(f"no region named {name!r} in pid {s.pid}")
        if fld not in SMAPS_FIELDS:
            raise PathError(f"no smaps field {fld!r} ({', '.join(SMAPS_FIELDS)})")
        return smaps_field(s, s.kpid(), region[0], region[0] + region[1], name, fld)
    if head in ("pmd", "pte") and len(rest) == 1:
        addr = s.path_addr(rest[0])
        kind = pmd_kind(s.kpid(), addr)
        if head == "pmd":
            return Reading(kind)
        if kind != "table":
            return Reading("none")
        entry = PagemapEntry(procfs.pagemap(s.kpid(), addr))
        return Reading("present" if entry.present else "swap" if entry.swapped else "none")
    if head == "pagemap" and len(rest) == 2:
        if rest[1] not in PAGEMAP_FIELDS:
            raise PathError(f"no pagemap field {rest[1]!r} ({', '.join(PAGEMAP_FIELDS)})")
        span = pagemap_span(rest[0], rest[1])
        addr = s.path_addr(rest[0] if span is None else span[0])
        if span is not None:
            words = procfs.pagemap_words(s.kpid(), addr & ~(PAGE - 1), span[1])
            return Reading(pagemap_count([PagemapEntry(w) for w in words], rest[1]))
        entry = PagemapEntry(procfs.pagemap(s.kpid(), addr))
        return Reading(getattr(entry, rest[1]))
    if head in ("swap", "swapmap", "swapcache") and len(rest) == 2:
        devices = s.machine.devices
        dev = devices.get(rest[0]) if devices else None
        if devices is None or dev is None:
            raise PathError(f"no swap device {rest[0]!r}")
        if head == "swap":
            if rest[1] != "used":
                raise PathError(f"no swap field {rest[1]!r} (used)")
            return Reading(devices.used_pages(rest[0]))
        try:
            off = parse_size(rest[1])
        except BadValue as e:
            raise PathError(str(e)) from None
        pages = dev.size // PAGE
        if not 0 < off < pages:
            raise PathError(f"offset {off:#x} outside swap device {dev.name} (1..{pages - 1:#x})")
        holders = slot_holders(s, dev.type, off)
        if head == "swapmap":
            return Reading(len(holders), proxy=f"swap_map is not exported: counted the page-table entries "
                           f"of the script's processes that hold slot {dev.name}:{off:#x} (pagemap)")
        if not holders:
            raise NotObservable(f"swapcache.{dev.name}.{off:#x}: no page table of the script holds that "
                                "slot, and mincore() can only ask about a slot through a mapping of it")
        spid, addr = holders[0]
        vec = s.machine.procs.call(spid, "mincore", addr, PAGE)
        return Reading(vec[0] & 1, proxy=f"mincore() of pid {spid} page {s.describe(addr, spid)}, "
                       "whose swap entry holds the slot")
    if head == "meminfo" and len(rest) == 1:
        now = procfs.meminfo()
        if rest[0] not in now:
            raise PathError(f"no meminfo field {rest[0]!r} in /proc/meminfo")
        if rest[0] == "MemTotal":
            return Reading(now[rest[0]])
        return Reading(now[rest[0]] - base.meminfo.get(rest[0], 0))
    raise PathError(f"unknown path {path!r} (vmstat.NAME, mthp.NAME, smaps.NAME.FIELD, pmd.ADDR, "
                    "pte.ADDR, pagemap.ADDR.FIELD, swap.NAME.used, swapmap.NAME.OFF, "
                    "swapcache.NAME.OFF, meminfo.FIELD, pid)")


# -- page-table kinds -----------------------------------------------------------------------------------

def pmd_kind(kpid: int, addr: int) -> str:
    """none / table / huge for the PMD that maps addr, from PAGEMAP_SCAN of its 2 MiB block."""
    lo = addr & ~(HPAGE - 1)
    runs = procfs.pagemap_scan(kpid, lo, lo + HPAGE)
    if not runs:
        return "none"
    if any(c & PAGE_IS_HUGE for _, _, c in runs):
        return "huge"
    return "table"


# -- swap slots -------------------------------------------------------------------------------------------

def swap_words(s: "LiveSession") -> Iterator[tuple[int, int, int]]:
    """(script pid, address, pagemap word) of every swap entry in the script's processes' page
    tables (the runs PAGEMAP_SCAN finds swapped, read a chunk at a time)."""
    for spid, kpid in s.live_pids():
        for lo, hi in s.scan_ranges(spid):
            for a, b in procfs.page_runs(kpid, lo, hi, PAGE_IS_SWAPPED):
                for i, w in enumerate(procfs.pagemap_words(kpid, a, (b - a) // PAGE)):
                    if w >> 62 == 1:
                        yield spid, a + i * PAGE, w


def slot_holders(s: "LiveSession", swp_type: int, off: int) -> list[tuple[int, int]]:
    """(script pid, address) of every page-table entry of the script's processes holding the slot."""
    want = (1 << 62) | swp_type | (off << 5)
    mask = (1 << 63) | (1 << 62) | ((1 << 55) - 1)
    return [(spid, addr) for spid, addr, w in swap_words(s) if w & mask == want]


def slot_counts(s: "LiveSession") -> dict[tuple[int, int], int]:
    """(type, offset) -> number of swap PTEs of the script's processes holding it."""
    counts: dict[tuple[int, int], int] = {}
    for _spid, _addr, w in swap_words(s):
        key = (w & 0x1F, (w & ((1 << 55) - 1)) >> 5)
        counts[key] = counts.get(key, 0) + 1
    return counts


# -- smaps of a region ---------------------------------------------------------------------------------------

def smaps_field(s: "LiveSession", kpid: int, start: int, end: int, name: str, fld: str) -> Reading:
    vmas = [v for v in procfs.smaps(kpid) if v.start < end and v.end > start]
    whole = [v for v in vmas if start <= v.start and v.end <= end]
    parts = [v for v in vmas if v not in whole]
    if fld in ("KernelPageSize", "MMUPageSize"):
        return Reading(4)
    if fld == "THPeligible":
        return Reading(int(any(v.fields.get("THPeligible", 0) for v in vmas)))
    if parts and fld not in PARTIAL_FIELDS:
        v = parts[0]
        raise NotObservable(f"smaps.{name}.{fld}: region {name} shares the VMA {v.start:#x}-{v.end:#x} "
                            "with a neighbouring mapping (they merged); smaps reports whole VMAs and "
                            f"{fld} of part of one cannot be computed from pagemap")
    if fld not in ("Size",) and any(fld not in v.fields for v in whole):
        raise PathError(f"smaps field {fld!r} is not in this kernel's /proc/PID/smaps")
    total = sum(v.fields.get(fld, 0) for v in whole)
    proxy = None
    for v in parts:
        lo, hi = max(start, v.start), min(end, v.end)
        total += _partial(s, kpid, lo, hi, fld, v)
        proxy = (f"region {name} is part of the VMA {v.start:#x}-{v.end:#x}: {fld} of its part computed "
                 "from PAGEMAP_SCAN and pagemap" + (" (swap counts: page-table entries of the script "
                                                    "holding each slot)" if fld == "SwapPss" else ""))
    return Reading(total, proxy=proxy)


def _partial(s: "LiveSession", kpid: int, lo: int, hi: int, fld: str, vma: procfs.Vma) -> int:
    if fld == "Size":
        return (hi - lo) // 1024
    if fld == "Locked":
        return 0 if "lo" not in vma.flags else (hi - lo) // 1024
    # A PMD-level mapping counts where its first page lies (as the simulator's smaps_range does).
    rss = huge = swap = 0
    swapped_pages: list[tuple[int, int]] = []
    for a, b, cat in procfs.pagemap_scan(kpid, lo & ~(HPAGE - 1), hi):
        a, b = max(a, lo & ~(HPAGE - 1)), min(b, hi)
        if cat & PAGE_IS_PRESENT and not cat & PAGE_IS_PFNZERO:
            if cat & PAGE_IS_HUGE:
                for blk in range(a & ~(HPAGE - 1), b, HPAGE):
                    if lo <= blk < hi and blk >= a:
                        rss += 512
                        huge += 512
            else:
                a2 = max(a, lo)
                if b > a2:
                    rss += (b - a2) // PAGE
        elif cat & PAGE_IS_SWAPPED:
            a2 = max(a, lo)
            if b > a2:
                swap += (b - a2) // PAGE
                swapped_pages.append((a2, b))
    if fld in ("Rss", "Anonymous"):
        return rss * 4
    if fld == "AnonHugePages":
        return huge * 4
    if fld == "Swap":
        return swap * 4
    if fld == "SwapPss":
        counts = slot_counts(s)
        pss = 0
        for a, b in swapped_pages:
            for w in procfs.pagemap_words(kpid, a, (b - a) // PAGE):
                if w >> 62 == 1:
                    c = counts.get((w & 0x1F, (w & ((1 << 55) - 1)) >> 5), 1)
                    pss += (PAGE << 12) // c if c >= 2 else PAGE << 12
        return (pss >> 12) // 1024
    raise AssertionError(fld)
