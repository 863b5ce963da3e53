"""Splitting THPs (mm/huge_memory.c): a PMD-level entry into a PTE table, a PMD-size folio
into 512 small ones.

__split_huge_pmd_locked() withdraws the deposited table and fills it with the
512 entries the PMD stood for: the pages of a present THP, the small zero page
for the huge zero page, and with the series (patch 6/13) 512 swap PTEs for a
PMD swap entry.  split_folio() (__folio_split) splits every PMD mapping of a
THP first (unmap_folio) and turns the folio into 512 order-0 folios.

The kernel keeps these in mm/huge_memory.c; here they are a module of their
own, the one part of it that the rmap walk both uses and is used by (unmap_folio
walks the rmap; try_to_unmap splits PMDs), which keeps that circle to these two
modules.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING

from . import pte_masks as bm
from .constants import HPAGE_PMD_NR, HPAGE_PMD_ORDER, pmd_index, pte_index
from .folio import PG, MemMap
from .lanes import progression
from .lru import ACTIVE, INACTIVE
from .mm_types import MmStruct
from .pgtable import (F_DIRTY, F_SOFT_DIRTY, F_SPECIAL, F_SWP_EXCLUSIVE, F_UFFD_WP, F_YOUNG, PFN_SHIFT, SWP_OFFSET_SHIFT, Pmd,
                      PmdKind, PteTable, mk_pte, pmd_pgtable, swp_entry_to_pte)
from .pgtable_generic import pgtable_trans_huge_withdraw
from .rmap import folio_ptes, folio_remove_rmap_ptes, rmap_walk_anon
from .swap import free_folio
from .swapops import SwpEntry
from .unmap_folio import unmap_folio_partially_maps
from .vma import VmArea

if TYPE_CHECKING:
    from .kernel import Kernel


def __split_huge_pmd(k: "Kernel", mm: MmStruct, vma: VmArea, addr: int) -> None:
    """__split_huge_pmd(): split whatever PMD-level entry maps addr into a PTE table."""
    pmd = mm.pmds.get(pmd_index(addr))
    if pmd is not None and pmd.kind in (PmdKind.HUGE, PmdKind.ZERO, PmdKind.SWAP):
        split_huge_pmd_locked(k, mm, vma, addr)


def _map_pages(mem: MemMap, pfn: int) -> None:
    """The split's PTEs each map a page of the THP at pfn: every page's mapcount + 1, and
    PageAnonExclusive copied from the head to every page.  Whole-table: 512 mapcounts of 0 (no
    page PTE-mapped too, the common case) become 1 by one slice, the bit is set by translate
    over the flags' second bytes; otherwise _map_pages_per_page, which leaves the same."""
    end = pfn + HPAGE_PMD_NR
    if mem.mapcount[pfn:end].tobytes() != bm.NO_MAPS:
        _map_pages_per_page(mem, pfn)
        return
    mem.mapcount[pfn:end] = bm.ONE_MAP
    if mem.test(pfn, PG.ANON_EXCLUSIVE):
        bm.set_anon_exclusive(mem.flags, pfn, HPAGE_PMD_NR)


def _map_pages_per_page(mem: MemMap, pfn: int) -> None:
    end = pfn + HPAGE_PMD_NR
    mem.mapcount[pfn:end] = array("i", [m + 1 for m in mem.mapcount[pfn:end]])
    if mem.test(pfn, PG.ANON_EXCLUSIVE):
        mem.flags[pfn:end] = array("I", [f | PG.ANON_EXCLUSIVE for f in mem.flags[pfn:end]])


def split_huge_pmd_locked(k: "Kernel", mm: MmStruct, vma: VmArea, addr: int) -> None:
    """__split_huge_pmd_locked(): withdraw the deposited table and fill it with 512 entries.

    Present THP: 512 PTEs of the same folio, PageAnonExclusive copied to every
    page, entire mapcount -> per-page mapcounts, and a dirty PMD makes the folio
    dirty.  Huge zero page: 512 PTEs of the zero page.  patch 6/13 (series): a PMD swap entry becomes 512 swap PTEs
    (type, base+i) with its soft-dirty, uffd-wp and exclusive bits; no folio and
    no count changes.  Counted as thp_split_pmd in every case.  With lazy deposit
    (`set deposit lazy`) there is no deposit to withdraw: the table is allocated here.
    """
    pmdi = pmd_index(addr)
    pmd = mm.pmds[pmdi]
    k.vmstat.count("thp_split_pmd")
    pgtable_trans_huge_withdraw(k, mm, pmd)
    mem = k.mem
    table = PteTable()
    if pmd.kind is PmdKind.SWAP:
        k.trace("__split_huge_pmd_locked(swap)")
        flags = pmd.flags & (F_SOFT_DIRTY | F_UFFD_WP | F_SWP_EXCLUSIVE)
        first = swp_entry_to_pte(pmd.swp_type, pmd.swp_offset, flags)
        step = 1 << SWP_OFFSET_SHIFT
        table.ptes = progression("Q", first, step, HPAGE_PMD_NR)
    elif pmd.kind is PmdKind.ZERO:
        k.trace("__split_huge_zero_page_pmd")
        pte = mk_pte(k.zero_pfn, F_SPECIAL | (pmd.flags & (F_YOUNG | F_SOFT_DIRTY | F_UFFD_WP)))
        table.ptes = array("Q", [pte]) * HPAGE_PMD_NR
    else:
        k.trace("__split_huge_pmd_locked")
        pfn = pmd.pfn
        first = mk_pte(pfn, pmd.flags)
        step = 1 << PFN_SHIFT
        table.ptes = progression("Q", first, step, HPAGE_PMD_NR)
        if pmd.flags & F_DIRTY:
            # "if (pmd_dirty(old_pmd)) { dirty = true; folio_set_dirty(folio); }": the PMD's
            # dirty bit goes to the folio too, which a later folio split gives every page
            # (measured on 6.18: MADV_FREE then leaves such a page alone where another
            # process maps it too).
            mem.set(pfn, PG.DIRTY)
        _map_pages(mem, pfn)
        mem.entire_mapcount[pfn] -= 1
        if mem.entire_mapcount[pfn] == 0:
            k.vmstat.nr_anon_thps -= 1
    mm.pmds[pmdi] = Pmd(PmdKind.TABLE, table=table)


def split_folio(k: "Kernel", pfn: int, to_list: bool = False) -> list[int]:
    """split_folio_to_list(): turn a PMD-size folio into 512 order-0 folios.

    Its PMD mappings are split first (unmap_folio with TTU_SPLIT_HUGE_PMD), so
    every mapping ends as PTEs of the new small folios; swap-cache membership,
    flags and contents carry over page by page; a page never written is mapped by the
    shared zero page instead (`_map_unused_to_zeropage`).  Returns the new folios, head
    first.  A new folio nothing maps is freed, unless `to_list` (reclaim's split: the list
    holds a reference to each, lru_add_split_folio(), and reclaim frees them).
    """
    mem = k.mem
    k.trace("split_folio")
    # unmap_folio() may leave the folio partly mapped for a moment, and deferred_split_folio()
    # then queues (and counts) it; the split takes it off the queue again (unmap_folio.py).
    # Measured on 6.18.44: UFFDIO_MOVE of one page of a THP (tests/kernel/63_uffd_move_partial),
    # a THP mapped by a PMD in a parent and by PTEs in a child (136_split_after_partial_unmap).
    if unmap_folio_partially_maps(k, pfn):
        k.vmstat.count("thp_deferred_split_page")
        k.vmstat.count_mthp("split_deferred")
    for m in rmap_walk_anon(k, pfn):
        if m.pmd:
            split_huge_pmd_locked(k, m.mm, m.vma, m.addr)
    # unmap_folio() -> try_to_migrate_one(): "if (pte_dirty(pteval)) folio_mark_dirty(folio)",
    # so a PTE written since the folio was last clean makes the whole folio, and each folio
    # of the split, dirty: a lazyfree THP one of whose pages was written is swapped out
    # whole, not discarded (kernel fuzz seed 18181 script 219).
    if not mem.test(pfn, PG.DIRTY) and any(pte & F_DIRTY for m in rmap_walk_anon(k, pfn)
                                           for _, _, pte in folio_ptes(m, pfn, HPAGE_PMD_NR)):
        mem.set(pfn, PG.DIRTY)
    head_flags = mem.flags[pfn] & (PG.ANON | PG.SWAPBACKED | PG.SWAPCACHE | PG.DIRTY | PG.LRU
                                   | PG.ACTIVE | PG.UPTODATE | PG.REFERENCED)
    index = mem.index[pfn]
    av = mem.anon_vma[pfn]
    if mem.test(pfn, PG.PARTIALLY_MAPPED):
        k.vmstat.mthp["nr_anon_partially_mapped"] -= 1
    entry = k.folio_swap.get(pfn)
    new = list(range(pfn, pfn + HPAGE_PMD_NR))
    for i, p in enumerate(new):
        mem.flags[p] = PG.USED | head_flags | (mem.flags[p] & PG.ANON_EXCLUSIVE)
        mem.order[p] = 0
        mem.index[p] = index + i
        mem.anon_vma[p] = av
    # A folio split where it lies on the LRU keeps its age: its new folios take its place
    # (measured on 6.18.44: the small folios MADV_PAGEOUT of part of a THP leaves are
    # reclaimed before a THP faulted after it; kernel fuzz seed 17171 script 1620).
    # Reclaim's split (to_list) puts them after the others, as it puts back what it keeps.
    if to_list or not k.lru.add_split_in_place(pfn, HPAGE_PMD_NR):
        active = k.lru.is_active(pfn)
        k.lru.delete(pfn)
        k.lru.add_run(pfn, HPAGE_PMD_NR, ACTIVE if active else INACTIVE)
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
    THP written in one page swaps out only the written pages of the range.  Not modelled:
    mlocked VMAs (there is no mlock), which keep their pages."""
    mem = k.mem
    for p in pages:
        if mem.data[p] or not mem.mapcount[p]:
            continue
        for m in rmap_walk_anon(k, p):
            table = pmd_pgtable(m.mm.pmds[pmd_index(m.addr)])
            i = pte_index(m.addr)
            soft = table.ptes[i] & (F_SOFT_DIRTY | F_UFFD_WP)
            table.ptes[i] = mk_pte(k.zero_pfn, F_SPECIAL | soft)
            folio_remove_rmap_ptes(k, p, 1)
            m.mm.rss_anon -= 1


def thp_underused(k: "Kernel", pfn: int) -> bool:
    """thp_underused(): more than max_ptes_none of the THP's pages read all zero (never
    written); never while max_ptes_none is 511, its default."""
    limit = k.config.max_ptes_none
    if limit == HPAGE_PMD_NR - 1:
        return False
    data = k.mem.data[pfn:pfn + HPAGE_PMD_NR]
    return HPAGE_PMD_NR - sum(1 for v in data if v) > limit


def deferred_split_scan(k: "Kernel", underused: bool) -> int:
    """deferred_split_scan(), the deferred split shrinker: every THP a fault or a collapse
    made is on the queue (deferred_split_folio(folio, false), 6.12+).  A partially mapped
    one is split (its unmapped pages are freed); another one, when `underused` is asked for,
    only if it is underused (thp_underused(), counted as thp_underused_split_page), its
    unwritten pages then mapped by the zero page.  Returns the number of THPs split.  The
    simulation keeps no queue: every anonymous PMD-size folio on the LRU stands for its entry."""
    mem = k.mem
    split = 0
    for pfn in [p for p in k.lru.oldest_first() if mem.order[p] == HPAGE_PMD_ORDER and mem.test(p, PG.ANON)]:
        if mem.test(pfn, PG.PARTIALLY_MAPPED):
            split_folio(k, pfn)
        elif underused and thp_underused(k, pfn):
            split_folio(k, pfn)
            k.vmstat.count("thp_underused_split_page")
        else:
            continue
        split += 1
    return split
