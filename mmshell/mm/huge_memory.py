"""PMD-level THP operations (mm/huge_memory.c), mainline and the series.

THP fault (do_huge_pmd_anonymous_page), huge zero page, PMD write faults
(do_huge_pmd_wp_page), PMD split (__split_huge_pmd_locked, with the series'
swap branch, patch 6), zap (zap_huge_pmd, with patch 9's swap branch), folio
split (__folio_split) and, with the series, the PMD swap-in fault
(do_huge_pmd_swap_page, patch 11).
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING

from .config import FaultPoint, ThpMode
from .constants import HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SHIFT, PMD_MASK, PMD_SHIFT, PMD_SIZE
from .folio import PG
from .memory import Fault, alloc_anon_folio, free_folio, folio_put_if_unused, lru_add
from .mm_types import MmStruct
from .pgtable import (F_DIRTY, F_SOFT_DIRTY, F_SPECIAL, F_SWP_EXCLUSIVE, F_UFFD_WP, F_WRITE, F_YOUNG,
                      FLAGS_MASK, KIND_PRESENT, PFN_SHIFT, Pmd, PmdKind, PteTable, mk_huge_pmd, mk_pte,
                      pmd_pgtable, swp_entry_to_pte)
from .rmap import (folio_add_anon_rmap_pmd, folio_add_new_anon_rmap, folio_remove_rmap_pmd, folio_remove_rmap_ptes,
                   rmap_walk_anon)
from .swapops import SwpEntry
from .vma import VM, VmArea

if TYPE_CHECKING:
    from .kernel import Kernel


def thp_vma_allowable(k: "Kernel", vma: VmArea, addr: int) -> bool:
    """thp_vma_allowable_orders(PMD) + thp_vma_suitable_order(): may a fault here be a THP?"""
    if vma.flags & VM.NOHUGEPAGE:
        return False
    mode = k.config.thp
    if mode is ThpMode.NEVER or (mode is ThpMode.MADVISE and not vma.flags & VM.HUGEPAGE):
        return False
    haddr = addr & PMD_MASK
    return vma.start <= haddr and haddr + PMD_SIZE <= vma.end


def vma_thp_eligible(k: "Kernel", vma: VmArea) -> bool:
    """smaps THPeligible: some 2 MiB-aligned block of the VMA could hold a THP."""
    first = (vma.start + PMD_SIZE - 1) & PMD_MASK
    return first + PMD_SIZE <= vma.end and thp_vma_allowable(k, vma, first)


def _thp_defrag_reclaim(vma: VmArea) -> bool:
    """defrag=madvise: direct reclaim/compaction only for VM_HUGEPAGE VMAs."""
    return bool(vma.flags & VM.HUGEPAGE)


def vma_alloc_anon_folio_pmd(k: "Kernel", vma: VmArea) -> int | None:
    """A zeroed PMD-order folio, or None (thp_alloc fault point, or no free 2 MiB block)."""
    if k.config.should_fail(FaultPoint.THP_ALLOC):
        k.trace("vma_alloc_folio(order=9) failed")
        return None
    return alloc_anon_folio(k, HPAGE_PMD_ORDER, reclaim=_thp_defrag_reclaim(vma))


def do_huge_pmd_anonymous_page(k: "Kernel", mm: MmStruct, vma: VmArea, addr: int, write: bool) -> Fault:
    """do_huge_pmd_anonymous_page(): huge zero page on a read, a new THP on a write."""
    haddr = addr & PMD_MASK
    if not write and k.config.use_zero_page:
        zero_pfn = get_huge_zero_folio(k)
        if zero_pfn is not None:
            k.trace("set_huge_zero_folio")
            mm.pmds[haddr >> PMD_SHIFT] = Pmd(PmdKind.ZERO, flags=F_YOUNG, pfn=zero_pfn, deposited=True)
            mm.nr_ptes += 1
            return Fault.DONE
        return Fault.FALLBACK
    if k.config.should_fail(FaultPoint.MEMCG_CHARGE):
        k.vmstat.count("thp_fault_fallback")
        k.vmstat.count("thp_fault_fallback_charge")
        k.vmstat.count_mthp("anon_fault_fallback")
        k.vmstat.count_mthp("anon_fault_fallback_charge")
        return Fault.FALLBACK
    pfn = vma_alloc_anon_folio_pmd(k, vma)
    if pfn is None:
        k.vmstat.count("thp_fault_fallback")
        k.vmstat.count_mthp("anon_fault_fallback")
        k.trace("do_huge_pmd_anonymous_page(fallback)")
        return Fault.FALLBACK
    k.trace("do_huge_pmd_anonymous_page")
    map_anon_folio_pmd(k, mm, vma, haddr, pfn)
    k.vmstat.count("thp_fault_alloc")
    k.vmstat.count_mthp("anon_fault_alloc")
    return Fault.DONE


def map_anon_folio_pmd(k: "Kernel", mm: MmStruct, vma: VmArea, haddr: int, pfn: int) -> None:
    """map_anon_folio_pmd(): map a new exclusive THP writable and dirty, with a deposit."""
    folio_add_new_anon_rmap(k, pfn, vma, haddr, pmd=True)
    lru_add(k, pfn)
    mm.rss_anon += HPAGE_PMD_NR
    mm.nr_ptes += 1
    mm.pmds[haddr >> PMD_SHIFT] = mk_huge_pmd(pfn, F_WRITE | F_DIRTY | F_YOUNG)


def get_huge_zero_folio(k: "Kernel") -> int | None:
    """mm_get_huge_zero_folio(): the huge zero folio's head pfn, or None if it cannot be had.

    It is allocated on first use (thp_zero_page_alloc) and then kept."""
    if k.huge_zero_pfn is not None:
        return k.huge_zero_pfn
    pfn = k.mem.folio_alloc(HPAGE_PMD_ORDER)
    if pfn is None:
        k.vmstat.count("thp_zero_page_alloc_failed")
        return None
    k.mem.set(pfn, PG.ZERO)
    k.huge_zero_pfn = pfn
    k.vmstat.count("thp_zero_page_alloc")
    return pfn


def do_huge_pmd_wp_page(k: "Kernel", mm: MmStruct, vma: VmArea, addr: int) -> Fault:
    """do_huge_pmd_wp_page(): reuse an exclusive THP; replace the huge zero page; else split."""
    from .swap_state import folio_free_swap

    haddr = addr & PMD_MASK
    pmd = mm.pmds[haddr >> PMD_SHIFT]
    mem = k.mem
    if pmd.kind is PmdKind.ZERO:
        pfn = vma_alloc_anon_folio_pmd(k, vma)
        if pfn is not None:
            k.trace("do_huge_zero_wp_pmd")
            mm.nr_ptes -= 1          # the zero PMD's deposit goes with it
            map_anon_folio_pmd(k, mm, vma, haddr, pfn)
            k.vmstat.count("thp_fault_alloc")
            k.vmstat.count_mthp("anon_fault_alloc")
            return Fault.DONE
        k.vmstat.count("thp_fault_fallback")
        k.vmstat.count_mthp("anon_fault_fallback")
        __split_huge_pmd(k, mm, vma, haddr)
        return Fault.FALLBACK
    pfn = pmd.pfn
    if not mem.test(pfn, PG.ANON_EXCLUSIVE) and mem.test(pfn, PG.SWAPCACHE):
        folio_free_swap(k, pfn)
    if mem.test(pfn, PG.ANON_EXCLUSIVE) or (mem.folio_mapcount(pfn) == 1 and not mem.test(pfn, PG.SWAPCACHE)):
        mem.set(pfn, PG.ANON_EXCLUSIVE)
        pmd.flags |= F_WRITE | F_DIRTY | F_YOUNG
        k.vmstat.count("pgreuse")
        k.trace("do_huge_pmd_wp_page(reuse)")
        return Fault.DONE
    k.trace("do_huge_pmd_wp_page(split)")
    __split_huge_pmd(k, mm, vma, haddr)
    return Fault.FALLBACK


# -- splitting ----------------------------------------------------------------------------------

def __split_huge_pmd(k: "Kernel", mm: MmStruct, vma: VmArea, addr: int) -> None:
    """__split_huge_pmd(): split whatever PMD-level entry maps addr into a PTE table."""
    pmd = mm.pmds.get(addr >> PMD_SHIFT)
    if pmd is not None and pmd.kind in (PmdKind.HUGE, PmdKind.ZERO, PmdKind.SWAP):
        split_huge_pmd_locked(k, mm, vma, addr)


def split_huge_pmd_locked(k: "Kernel", mm: MmStruct, vma: VmArea, addr: int) -> None:
    """__split_huge_pmd_locked(): withdraw the deposited table and fill it with 512 entries.

    Present THP: 512 PTEs of the same folio, PageAnonExclusive copied to every
    page, entire mapcount -> per-page mapcounts.  Huge zero page: 512 PTEs of
    the zero page.  patch 6/13 (series): a PMD swap entry becomes 512 swap PTEs
    (type, base+i) with its soft-dirty, uffd-wp and exclusive bits; no folio and
    no count changes.  Counted as thp_split_pmd in every case.
    """
    pmdi = addr >> PMD_SHIFT
    pmd = mm.pmds[pmdi]
    k.vmstat.count("thp_split_pmd")
    mem = k.mem
    table = PteTable()
    if pmd.kind is PmdKind.SWAP:
        k.trace("__split_huge_pmd_locked(swap)")
        flags = pmd.flags & (F_SOFT_DIRTY | F_UFFD_WP | F_SWP_EXCLUSIVE)
        first = swp_entry_to_pte(pmd.swp_type, pmd.swp_offset, flags)
        step = 1 << 17
        table.ptes = array("Q", range(first, first + HPAGE_PMD_NR * step, step))
    elif pmd.kind is PmdKind.ZERO:
        k.trace("__split_huge_zero_page_pmd")
        pte = (k.zero_pfn << PFN_SHIFT) | F_SPECIAL | (pmd.flags & (F_YOUNG | F_SOFT_DIRTY | F_UFFD_WP)) | KIND_PRESENT
        table.ptes = array("Q", [pte]) * HPAGE_PMD_NR
    else:
        k.trace("__split_huge_pmd_locked")
        pfn = pmd.pfn
        flags = pmd.flags & FLAGS_MASK
        first = (pfn << PFN_SHIFT) | flags | KIND_PRESENT
        step = 1 << PFN_SHIFT
        table.ptes = array("Q", range(first, first + HPAGE_PMD_NR * step, step))
        end = pfn + HPAGE_PMD_NR
        mem.mapcount[pfn:end] = array("i", [m + 1 for m in mem.mapcount[pfn:end]])
        if mem.test(pfn, PG.ANON_EXCLUSIVE):
            mem.flags[pfn:end] = array("I", [f | PG.ANON_EXCLUSIVE for f in mem.flags[pfn:end]])
        mem.entire_mapcount[pfn] -= 1
        if mem.entire_mapcount[pfn] == 0:
            k.vmstat.nr_anon_thps -= 1
    mm.pmds[pmdi] = Pmd(PmdKind.TABLE, table=table)


def split_folio(k: "Kernel", pfn: int, to_list: bool = False) -> list[int]:
    """split_folio_to_list(): turn a PMD-size folio into 512 order-0 folios.

    Its PMD mappings are split first (unmap_folio with TTU_SPLIT_HUGE_PMD), so
    every mapping ends as PTEs of the new small folios; swap-cache membership,
    flags and contents carry over page by page.  Returns the new folios, head first.
    A new folio nothing maps is freed, unless `to_list` (reclaim's split: the list
    holds a reference to each, lru_add_split_folio(), and reclaim frees them).
    """
    mem = k.mem
    k.trace("split_folio")
    # unmap_folio(): try_to_migrate() replaces PTE mappings one PTE at a time, so a folio
    # mapped by PTEs only is partly mapped for a moment and deferred_split_folio() queues
    # (and counts) it; the split then takes it off the queue.  PMD mappings are frozen whole,
    # swap-cache folios are never queued.  Measured on 6.18.44: UFFDIO_MOVE of one page of a
    # THP, tests/kernel/63_uffd_move_partial.mmsh (thp_deferred_split_page +1).
    if (not mem.entire_mapcount[pfn] and mem.test(pfn, PG.ANON)
            and not mem.flags[pfn] & (PG.SWAPCACHE | PG.PARTIALLY_MAPPED)
            and sum(mem.mapcount[pfn:pfn + HPAGE_PMD_NR]) >= 2):
        k.vmstat.count("thp_deferred_split_page")
        k.vmstat.count_mthp("split_deferred")
    for m in rmap_walk_anon(k, pfn):
        if m.pmd:
            split_huge_pmd_locked(k, m.mm, m.vma, m.addr)
    head_flags = mem.flags[pfn] & (PG.ANON | PG.SWAPBACKED | PG.SWAPCACHE | PG.DIRTY | PG.LRU
                                   | PG.ACTIVE | PG.UPTODATE | PG.REFERENCED)
    index = mem.index[pfn]
    av = mem.anon_vma[pfn]
    if mem.test(pfn, PG.PARTIALLY_MAPPED):
        k.vmstat.mthp["nr_anon_partially_mapped"] -= 1
    entry = k.folio_swap.get(pfn)
    new = list(range(pfn, pfn + HPAGE_PMD_NR))
    active = pfn in k.lru.active
    k.lru.delete(pfn)
    for i, p in enumerate(new):
        mem.flags[p] = PG.USED | head_flags | (mem.flags[p] & PG.ANON_EXCLUSIVE)
        mem.order[p] = 0
        mem.index[p] = index + i
        mem.anon_vma[p] = av
        (k.lru.active if active else k.lru.inactive)[p] = None
    if entry is not None:
        # A swap-cache folio: each new folio caches its own slot.
        cache = k.swp_info(entry.type).cache
        for i, p in enumerate(new):
            k.folio_swap[p] = SwpEntry(entry.type, entry.offset + i)
            cache[entry.offset + i] = p
    mem.entire_mapcount[pfn] = 0
    k.vmstat.count("thp_split_page")
    k.vmstat.count_mthp("split")
    k.vmstat.mthp["nr_anon"] -= 1
    _map_unused_to_zeropage(k, new)
    for p in new:
        if not to_list and not mem.mapcount[p] and p not in k.folio_swap:
            free_folio(k, p)
    return [p for p in new if mem.flags[p] & PG.USED]


def _map_unused_to_zeropage(k: "Kernel", pages: list[int]) -> None:
    """6.12+ __folio_split() remaps an anonymous folio's pages with RMP_USE_SHARED_ZEROPAGE:
    a page that reads all zero (never written) is mapped by the shared zero page instead
    (try_to_map_unused_to_zeropage(): a special, read-only PTE; the page loses that
    mapping and the process's RSS with it).  Measured on 6.18.44: MADV_PAGEOUT of part of a
    THP written in one page swaps out only the written pages of the range."""
    mem = k.mem
    for p in pages:
        if mem.data[p] or not mem.mapcount[p]:
            continue
        for m in rmap_walk_anon(k, p):
            table = pmd_pgtable(m.mm.pmds[m.addr >> PMD_SHIFT])
            i = (m.addr >> PAGE_SHIFT) & (HPAGE_PMD_NR - 1)
            soft = table.ptes[i] & (F_SOFT_DIRTY | F_UFFD_WP)
            table.ptes[i] = mk_pte(k.zero_pfn, F_SPECIAL | soft)
            folio_remove_rmap_ptes(k, p, 1)
            m.mm.rss_anon -= 1


# -- zap ------------------------------------------------------------------------------------------

def zap_huge_pmd(k: "Kernel", mm: MmStruct, addr: int) -> None:
    """zap_huge_pmd(): unmap a whole PMD-level entry and free its deposited table.

    patch 9/13: a PMD swap entry drops its 512 slot references without looking
    up a folio (free_swap_and_cache_nr reclaims a now-unused cached folio).
    """
    from .swapfile import free_swap_and_cache_nr
    from .swap_state import folio_free_swap

    pmdi = addr >> PMD_SHIFT
    pmd = mm.pmds.pop(pmdi)
    mm.nr_ptes -= 1
    if pmd.kind is PmdKind.HUGE:
        k.trace("zap_huge_pmd")
        pfn = pmd.pfn
        if pmd.flags & F_DIRTY:
            k.mem.set(pfn, PG.DIRTY)
        folio_remove_rmap_pmd(k, pfn)
        mm.rss_anon -= HPAGE_PMD_NR
        if not k.mem.folio_mapped(pfn) and k.mem.test(pfn, PG.SWAPCACHE):
            folio_free_swap(k, pfn)     # free_swap_cache() from the mmu_gather
        folio_put_if_unused(k, pfn)
    elif pmd.kind is PmdKind.SWAP:
        k.trace("zap_huge_pmd(swap)")
        free_swap_and_cache_nr(k, pmd.entry, HPAGE_PMD_NR)
        mm.rss_swapents -= HPAGE_PMD_NR
    else:
        k.trace("zap_huge_pmd(huge zero)")


# -- the series: PMD swap-in --------------------------------------------------------------------------

def do_huge_pmd_swap_page(k: "Kernel", mm: MmStruct, vma: VmArea, addr: int, write: bool) -> Fault:
    """patch 11/13: fault in a PMD swap entry as one PMD-mapped THP.

    The folio comes from the swap cache, or swapin_alloc_pmd_folio() allocates
    an order-9 folio and reads all 512 slots.  Any PMD-order resource missing
    (allocation or charge failure, a cached folio that is no longer PMD-size, a
    read the PMD path may not do: pmd_swapin_fallback()) splits the entry and
    falls back to the PTE path (decision 3: F3, F5, decisions 11-13).  Mapped
    writable only if the entry was exclusive, the VMA is writable and uffd-wp is
    not armed; a write fault on a non-exclusive entry continues into
    do_huge_pmd_wp_page.
    """
    from .swap_state import folio_free_swap, swap_cache_get_folio
    from .swapfile import vm_swap_full

    mem = k.mem
    haddr = addr & PMD_MASK
    pmd = mm.pmds[haddr >> PMD_SHIFT]
    entry = pmd.entry
    si = k.swp_info(entry.type)
    folio = swap_cache_get_folio(k, entry)
    major = False
    if folio is not None and mem.order[folio] == HPAGE_PMD_ORDER \
            and k.config.should_fail(FaultPoint.SPLIT_RACE):
        split_folio(k, folio)       # F5: deferred_split_scan / memory_failure got there first
    if folio is not None and mem.order[folio] != HPAGE_PMD_ORDER:
        return _swapin_fallback(k, mm, vma, haddr, "cached folio not PMD-size")     # F5
    if folio is None:
        why = pmd_swapin_fallback(k, vma, haddr, entry)
        if why is None and k.config.should_fail(FaultPoint.MEMCG_CHARGE):
            # decision 3 (revised): a charge failure counts swpin_fallback_charge and
            # swpin_fallback, as mainline's alloc_swap_folio() counts both
            k.vmstat.count_mthp("swpin_fallback_charge")
            why = "charge failed"
        if why is None:
            folio = swapin_alloc_pmd_folio(k, vma, entry)
        if folio is None:
            return _swapin_fallback(k, mm, vma, haddr, why or "no PMD-order folio")     # F3
        major = True
    else:
        k.trace("do_huge_pmd_swap_page(swapcache hit)")
    exclusive = pmd.pmd_swp_exclusive()
    flags = (pmd.flags & (F_SOFT_DIRTY | F_UFFD_WP)) | F_YOUNG
    if exclusive and vma.flags & VM.WRITE and not pmd.flags & F_UFFD_WP:
        flags |= F_WRITE
        if write:
            flags |= F_DIRTY
    map_swapped_pmd(k, mm, vma, haddr, entry, folio, flags, exclusive)
    # Decision 2: on a synchronous device the slots are released at once (as
    # mainline's bypass does); otherwise the do_swap_page rules apply.
    if mem.test(folio, PG.SWAPCACHE) and ((major and si.synchronous) or vm_swap_full(k) or (
            write and exclusive and mem.folio_mapcount(folio) == 1)):
        folio_free_swap(k, folio)
    if major:
        k.vmstat.count("pgmajfault")
    k.trace("do_huge_pmd_swap_page")
    if write and not flags & F_WRITE:
        if do_huge_pmd_wp_page(k, mm, vma, addr) is Fault.FALLBACK:
            return Fault.FALLBACK
    return Fault.MAJOR if major else Fault.DONE


def _swapin_fallback(k: "Kernel", mm: MmStruct, vma: VmArea, haddr: int, why: str) -> Fault:
    """Decision 3: split the PMD swap entry (thp_split_pmd +1), count mthp swpin_fallback;
    the PTE path then swaps in the faulting page."""
    k.trace(f"do_huge_pmd_swap_page({why}): split")
    k.vmstat.count_mthp("swpin_fallback")
    split_huge_pmd_locked(k, mm, vma, haddr)
    return Fault.FALLBACK


def pmd_swapin_fallback(k: "Kernel", vma: VmArea, haddr: int, entry: SwpEntry) -> str | None:
    """Why the PMD swap entry at haddr, not in the swap cache, may not be read into a new
    PMD-size folio (the fault, patch 11, and swapoff's unuse_pmd, patch 8, then take the PTE
    path), or None when it may.

    As mainline's alloc_swap_folio() checks before it allocates a large swap-in folio:
    - decision 11: the VMA's THP policy no longer allows a THP there (MADV_NOHUGEPAGE,
      `thp never`, set after the swap-out): thp_vma_allowable_orders();
    - decision 12: zswap has been enabled since boot (zswap_never_enabled() is false):
      zswap_load() cannot fill a large folio, and any slot may be in zswap;
    - decision 13: some of the entry's slots are cached as smaller folios (a split copy
      of the entry read them, with readahead): a second folio may not cache them
      (non_swapcache_batch() in mainline).
    A PMD-size folio already in the swap cache needs no read, and is mapped as it is.
    """
    if not thp_vma_allowable(k, vma, haddr):
        return "THP not allowed in the VMA"
    if k.zswap_ever_enabled:
        return "zswap was enabled"
    si = k.swp_info(entry.type)
    if si.cache and not si.cache.keys().isdisjoint(range(entry.offset, entry.offset + HPAGE_PMD_NR)):
        return "slots cached as smaller folios"
    return None


def swapin_alloc_pmd_folio(k: "Kernel", vma: VmArea, entry: SwpEntry) -> int | None:
    """patch 8/13 swapin_alloc_pmd_folio(): a new PMD-order folio in the swap cache over the
    entry's 512 slots, read from the device; None when the folio cannot be had."""
    from .page_io import swap_read_folio
    from .swap_state import add_to_swap_cache

    folio = vma_alloc_anon_folio_pmd(k, vma)
    if folio is None:
        k.trace("swapin_alloc_pmd_folio(failed)")
        return None
    k.trace("swapin_alloc_pmd_folio")
    k.mem.set(folio, PG.SWAPBACKED)
    add_to_swap_cache(k, folio, entry)
    swap_read_folio(k, folio, entry)
    lru_add(k, folio)
    return folio


def map_swapped_pmd(k: "Kernel", mm: MmStruct, vma: VmArea, haddr: int, entry: SwpEntry, folio: int,
                    flags: int, exclusive: bool) -> None:
    """Map a PMD swap entry's folio by a PMD and drop the entry's 512 slot references
    (the common tail of do_huge_pmd_swap_page and unuse_pmd)."""
    from .memory import anon_vma_prepare
    from .swapfile import free_swap_and_cache_nr

    if not k.mem.test(folio, PG.ANON):
        anon_vma_prepare(k, vma)
        folio_add_new_anon_rmap(k, folio, vma, haddr, pmd=True, exclusive=exclusive)
    else:
        folio_add_anon_rmap_pmd(k, folio, exclusive)
    mm.pmds[haddr >> PMD_SHIFT] = Pmd(PmdKind.HUGE, flags=flags, pfn=folio, deposited=True)
    mm.rss_anon += HPAGE_PMD_NR
    mm.rss_swapents -= HPAGE_PMD_NR
    free_swap_and_cache_nr(k, entry, HPAGE_PMD_NR)
