"""What the live Observer (kernel/observer.py) derives from procfs: page-table kinds from
PAGEMAP_SCAN, the swap slots the script's page tables hold, smaps of part of a VMA.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from ..lang.backend import NotObservable, Reading
from ..lang.expect_values import PathError
from . import procfs
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
