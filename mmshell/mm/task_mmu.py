"""/proc/PID/smaps, /proc/PID/pagemap and /proc/meminfo as fs/proc reports them.

smaps (smaps_pte_entry / smaps_pmd_entry / smaps_account): Rss and Pss of
present anonymous pages (the huge and the small zero page count nothing),
AnonHugePages for PMD-mapped THPs, Swap and SwapPss for swap entries (a PMD
swap entry counts 512 slots, each divided by its swap count), LazyFree for
MADV_FREE'd pages.  pagemap (pagemap_pte_range / pagemap_pmd_range): 64 bits a
page; a PMD swap entry reports page i at offset base+i, as 512 swap PTEs would.
CONFIG_MEM_SOFT_DIRTY is off on the reference machine, so bit 55 is always 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .constants import HPAGE_PMD_NR, PAGE_SHIFT, PAGE_SIZE, PMD_SHIFT, pte_index
from .folio import PG
from .mm_types import MmStruct
from .pagewalk import Walker, pte_range, walk_page_range, walk_pmd_range
from .pgtable import (F_DIRTY, F_SPECIAL, F_UFFD_WP, F_YOUNG, PmdKind, is_swap_pte, pte_pfn,
                      pte_present, pte_swp_offset, pte_swp_type)
from .lru import ACTIVE, INACTIVE
from .swap import lru_pages
from .vma import VmArea
from .vmstat import EVENTS

if TYPE_CHECKING:
    from .kernel import Kernel

PSS_SHIFT = 12

PM_PFRAME_BITS = 55
PM_SOFT_DIRTY = 1 << 55
PM_MMAP_EXCLUSIVE = 1 << 56
PM_UFFD_WP = 1 << 57
PM_FILE = 1 << 61
PM_SWAP = 1 << 62
PM_PRESENT = 1 << 63
PM_SWAP_TYPE_BITS = 5

#: The smaps fields reported, in /proc/PID/smaps order (kB).  (Pss_Anon is only in
#: smaps_rollup: a VMA's entry in /proc/PID/smaps has no such line on 6.18.44.)
SMAPS_FIELDS = ("Size", "KernelPageSize", "MMUPageSize", "Rss", "Pss", "Pss_Dirty",
                "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty", "Referenced",
                "Anonymous", "LazyFree", "AnonHugePages", "Swap", "SwapPss", "Locked", "THPeligible")


@dataclass(slots=True)
class _Mss:
    """struct mem_size_stats, in bytes (pss values shifted by PSS_SHIFT)."""

    resident: int = 0
    pss: int = 0
    pss_dirty: int = 0
    pss_anon: int = 0
    shared_clean: int = 0
    shared_dirty: int = 0
    private_clean: int = 0
    private_dirty: int = 0
    referenced: int = 0
    anonymous: int = 0
    lazyfree: int = 0
    anonymous_thp: int = 0
    swap: int = 0
    swap_pss: int = 0

    def account(self, k: "Kernel", page: int, size: int, young: bool, dirty: bool) -> None:
        """smaps_account() for one page of `size` bytes."""
        mem = k.mem
        head = mem.folio_of(page)
        self.resident += size
        self.anonymous += size
        if not mem.test(head, PG.SWAPBACKED) and not dirty and not mem.test(head, PG.DIRTY):
            self.lazyfree += size
        if young or mem.test(head, PG.REFERENCED):
            self.referenced += size
        dirty = dirty or mem.test(head, PG.DIRTY)
        mapcount = mem.page_mapcount(page)
        if mapcount >= 2:
            pss = (size << PSS_SHIFT) // mapcount
            if dirty:
                self.shared_dirty += size
                self.pss_dirty += pss
            else:
                self.shared_clean += size
        else:
            pss = size << PSS_SHIFT
            if dirty:
                self.private_dirty += size
                self.pss_dirty += pss
            else:
                self.private_clean += size
        self.pss += pss
        self.pss_anon += pss

    def account_swap(self, count: int) -> None:
        self.swap += PAGE_SIZE
        self.swap_pss += (PAGE_SIZE << PSS_SHIFT) // count if count >= 2 else PAGE_SIZE << PSS_SHIFT


def smaps_vma(k: "Kernel", mm: MmStruct, vma: VmArea, lo: int | None = None,
              hi: int | None = None) -> dict[str, int]:
    """One VMA's smaps fields in kB (THPeligible 0/1), optionally only its part in [lo, hi).

    A PMD-level entry is counted where its first page lies.
    """
    mss = _Mss()
    lo = vma.start if lo is None else max(lo, vma.start)
    hi = vma.end if hi is None else min(hi, vma.end)
    for pmdi, pmd, addr, nxt in walk_pmd_range(k, mm, lo, hi, Walker.SMAPS):
        if pmd is None:
            continue
        base = pmdi << PMD_SHIFT
        if pmd.kind is PmdKind.HUGE:
            if lo <= base < hi:
                young = bool(pmd.flags & F_YOUNG)
                for i in range(HPAGE_PMD_NR):
                    mss.account(k, pmd.pfn + i, PAGE_SIZE, young, bool(pmd.flags & F_DIRTY))
                mss.anonymous_thp += HPAGE_PMD_NR * PAGE_SIZE
        elif pmd.kind is PmdKind.SWAP:
            if lo <= base < hi:
                si = k.swp_info(pmd.swp_type)
                for i in range(HPAGE_PMD_NR):
                    mss.account_swap(si.swap_count(pmd.swp_offset + i))
        elif pmd.kind is PmdKind.TABLE:
            ptes, idx = pte_range(k, Walker.SMAPS, pmd, addr, nxt)
            for i in idx:
                pte = ptes[i]
                if pte_present(pte):
                    if not pte & F_SPECIAL:
                        mss.account(k, pte_pfn(pte), PAGE_SIZE, bool(pte & F_YOUNG), bool(pte & F_DIRTY))
                elif is_swap_pte(pte):
                    mss.account_swap(k.swp_info(pte_swp_type(pte)).swap_count(pte_swp_offset(pte)))
    # huge_memory (and the fault and reclaim paths it imports) is loaded when smaps is first
    # read, not by every command that reaches this module (`show vmstat`, meminfo)
    from .huge_memory import vma_thp_eligible

    kb = 1024
    return {
        "Size": (hi - lo) // kb,
        "KernelPageSize": 4,
        "MMUPageSize": 4,
        "Rss": mss.resident // kb,
        "Pss": (mss.pss >> PSS_SHIFT) // kb,
        "Pss_Dirty": (mss.pss_dirty >> PSS_SHIFT) // kb,
        "Shared_Clean": mss.shared_clean // kb,
        "Shared_Dirty": mss.shared_dirty // kb,
        "Private_Clean": mss.private_clean // kb,
        "Private_Dirty": mss.private_dirty // kb,
        "Referenced": mss.referenced // kb,
        "Anonymous": mss.anonymous // kb,
        "LazyFree": mss.lazyfree // kb,
        "AnonHugePages": mss.anonymous_thp // kb,
        "Swap": mss.swap // kb,
        "SwapPss": (mss.swap_pss >> PSS_SHIFT) // kb,
        "Locked": 0,
        "THPeligible": int(vma_thp_eligible(k, vma)),
    }


def smaps_range(k: "Kernel", mm: MmStruct, start: int, end: int) -> dict[str, int]:
    """smaps of [start, end) (`smaps.NAME`): the VMAs inside it summed, and of a VMA
    that reaches beyond it (adjacent mappings merge into one VMA) only the part inside."""
    total = dict.fromkeys(SMAPS_FIELDS, 0)
    eligible = 0
    for vma in mm.vmas_in(start, end):
        one = smaps_vma(k, mm, vma, start, end)
        for f in SMAPS_FIELDS:
            total[f] += one[f]
        eligible |= one["THPeligible"]
    total["KernelPageSize"] = total["MMUPageSize"] = 4
    total["THPeligible"] = eligible
    return total


@dataclass(frozen=True, slots=True)
class PagemapEntry:
    """One decoded /proc/PID/pagemap word."""

    value: int

    @property
    def present(self) -> int:
        return int(bool(self.value & PM_PRESENT))

    @property
    def swapped(self) -> int:
        return int(bool(self.value & PM_SWAP))

    @property
    def file(self) -> int:
        return int(bool(self.value & PM_FILE))

    @property
    def exclusive(self) -> int:
        return int(bool(self.value & PM_MMAP_EXCLUSIVE))

    @property
    def uffd_wp(self) -> int:
        return int(bool(self.value & PM_UFFD_WP))

    @property
    def soft_dirty(self) -> int:
        return int(bool(self.value & PM_SOFT_DIRTY))

    @property
    def pfn(self) -> int:
        return self.value & ((1 << PM_PFRAME_BITS) - 1) if self.present else 0

    @property
    def swap_type(self) -> int:
        return self.value & ((1 << PM_SWAP_TYPE_BITS) - 1) if self.swapped else 0

    @property
    def swap_offset(self) -> int:
        return (self.value & ((1 << PM_PFRAME_BITS) - 1)) >> PM_SWAP_TYPE_BITS if self.swapped else 0


def _swap_word(type_: int, offset: int, uffd_wp: bool) -> int:
    return PM_SWAP | (type_ | (offset << PM_SWAP_TYPE_BITS)) | (PM_UFFD_WP if uffd_wp else 0)


def pagemap_read(k: "Kernel", mm: MmStruct, start: int, end: int) -> list[int]:
    """The pagemap words for the pages of [start, end), one per page (as root: PFNs and offsets
    visible): pagemap_pmd_range() over each VMA, pagemap_pte_hole() (0) elsewhere."""
    mem = k.mem
    first = start & ~(PAGE_SIZE - 1)
    end = first + (len(range(start, end, PAGE_SIZE)) << PAGE_SHIFT)
    out: list[int] = []
    done = first
    for _, _, pmd, addr, nxt in walk_page_range(k, mm, first, end, Walker.PAGEMAP):
        out += [0] * ((addr - done) >> PAGE_SHIFT)
        done = nxt
        i = pte_index(addr)
        nr = (nxt - addr) >> PAGE_SHIFT
        if pmd is None:
            out += [0] * nr
        elif pmd.kind in (PmdKind.HUGE, PmdKind.ZERO):
            # One answer for the whole PMD, from the page the PMD maps first (pmd_page()):
            # measured on 6.18, a child's COW (or munmap) of the THP's first page makes all
            # 512 entries of the parent's PMD exclusive, a COW of other pages none of them.
            flags = PM_PRESENT | (PM_UFFD_WP if pmd.flags & F_UFFD_WP else 0)
            if pmd.kind is PmdKind.ZERO:
                flags |= PM_FILE
            elif mem.page_mapcount(pmd.pfn) == 1:
                flags |= PM_MMAP_EXCLUSIVE
            out += [flags | page for page in range(pmd.pfn + i, pmd.pfn + i + nr)]
        elif pmd.kind is PmdKind.SWAP:
            uffd_wp = bool(pmd.flags & F_UFFD_WP)
            offs = range(pmd.swp_offset + i, pmd.swp_offset + i + nr)
            out += [_swap_word(pmd.swp_type, off, uffd_wp) for off in offs]
        elif pmd.kind is PmdKind.TABLE:
            ptes, idx = pte_range(k, Walker.PAGEMAP, pmd, addr, nxt)
            for i in idx:
                pte = ptes[i]
                if pte_present(pte):
                    page = pte_pfn(pte)
                    word = PM_PRESENT | page | (PM_UFFD_WP if pte & F_UFFD_WP else 0)
                    if not pte & F_SPECIAL and mem.page_mapcount(page) == 1:
                        word |= PM_MMAP_EXCLUSIVE
                    out.append(word)
                elif is_swap_pte(pte):
                    out.append(_swap_word(pte_swp_type(pte), pte_swp_offset(pte), bool(pte & F_UFFD_WP)))
                else:
                    out.append(0)
        else:
            out += [0] * nr
    out += [0] * ((end - done) >> PAGE_SHIFT)
    return out


def meminfo(k: "Kernel") -> dict[str, int]:
    """The /proc/meminfo lines the simulation models, in kB."""
    kb = 4
    anon_thp = k.vmstat.nr_anon_thps * HPAGE_PMD_NR
    swap_total = sum(si.pages - 1 for si in k.active_swap())
    swap_used = sum(si.inuse_pages for si in k.active_swap())
    return {
        "MemTotal": k.mem.nr_frames * kb,
        "MemFree": k.mem.alloc.nr_free * kb,
        "AnonPages": k.vmstat.nr_anon_pages * kb,
        "AnonHugePages": anon_thp * kb,
        "SwapCached": k.vmstat.nr_swapcached * kb,
        "SwapTotal": swap_total * kb,
        "SwapFree": (swap_total - swap_used) * kb,
        "PageTables": sum(mm.nr_ptes for mm in k.mms.peek_values()) * kb,
        "Active(anon)": lru_pages(k, ACTIVE) * kb,
        "Inactive(anon)": lru_pages(k, INACTIVE) * kb,
    }


def vmstat_snapshot(k: "Kernel") -> dict[str, int]:
    """/proc/vmstat as the simulation models it: gauges then events, kernel order."""
    inactive = lru_pages(k, INACTIVE)
    active = lru_pages(k, ACTIVE)
    out = {
        "nr_free_pages": k.mem.alloc.nr_free,
        "nr_zone_inactive_anon": inactive,
        "nr_zone_active_anon": active,
        "nr_inactive_anon": inactive,
        "nr_active_anon": active,
        "nr_anon_pages": k.vmstat.nr_anon_pages,
        "nr_anon_transparent_hugepages": k.vmstat.nr_anon_thps,
        "nr_page_table_pages": sum(mm.nr_ptes for mm in k.mms.peek_values()),
        "nr_swapcached": k.vmstat.nr_swapcached,
    }
    for name in EVENTS:
        if name == "thp_swpout_pmd" and not k.config.pmd_swap:
            continue
        out[name] = k.vmstat.events[name]
    return out
