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

from .constants import HPAGE_PMD_NR, pmd_index
from .folio import PG
from .mm_types import MmStruct
from .pgtable import (F_SOFT_DIRTY, F_SPECIAL, F_SWP_EXCLUSIVE, F_UFFD_WP, F_YOUNG, PFN_SHIFT, SWP_OFFSET_SHIFT, Pmd,
                      PmdKind, PteTable, mk_pte, swp_entry_to_pte)
from .pgtable_generic import pgtable_trans_huge_withdraw
from .rmap import rmap_walk_anon
from .swap import free_folio
from .swapops import SwpEntry
from .vma import VmArea

if TYPE_CHECKING:
    from .kernel import Kernel


def __split_huge_pmd(k: "Kernel", mm: MmStruct, vma: VmArea, addr: int) -> None:
    """__split_huge_pmd(): split whatever PMD-level entry maps addr into a PTE table."""
    pmd = mm.pmds.get(pmd_index(addr))
    if pmd is not None and pmd.kind in (PmdKind.HUGE, PmdKind.ZERO, PmdKind.SWAP):
        split_huge_pmd_locked(k, mm, vma, addr)


def split_huge_pmd_locked(k: "Kernel", mm: MmStruct, vma: VmArea, addr: int) -> None:
    """__split_huge_pmd_locked(): withdraw the deposited table and fill it with 512 entries.

    Present THP: 512 PTEs of the same folio, PageAnonExclusive copied to every
    page, entire mapcount -> per-page mapcounts.  Huge zero page: 512 PTEs of
    the zero page.  patch 6/13 (series): a PMD swap entry becomes 512 swap PTEs
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
        table.ptes = array("Q", range(first, first + HPAGE_PMD_NR * step, step))
    elif pmd.kind is PmdKind.ZERO:
        k.trace("__split_huge_zero_page_pmd")
        pte = mk_pte(k.zero_pfn, F_SPECIAL | (pmd.flags & (F_YOUNG | F_SOFT_DIRTY | F_UFFD_WP)))
        table.ptes = array("Q", [pte]) * HPAGE_PMD_NR
    else:
        k.trace("__split_huge_pmd_locked")
        pfn = pmd.pfn
        first = mk_pte(pfn, pmd.flags)
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


def split_folio(k: "Kernel", pfn: int) -> list[int]:
    """split_folio_to_list(): turn a PMD-size folio into 512 order-0 folios.

    Its PMD mappings are split first (unmap_folio with TTU_SPLIT_HUGE_PMD), so
    every mapping ends as PTEs of the new small folios; swap-cache membership,
    flags and contents carry over page by page.  Returns the new folios, head first.
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
    for p in new:
        if not mem.mapcount[p] and p not in k.folio_swap:
            free_folio(k, p)
    return [p for p in new if mem.flags[p] & PG.USED]
