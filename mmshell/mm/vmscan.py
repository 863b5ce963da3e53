"""Reclaim (mm/vmscan.c): shrink_folio_list and its entry points.

The LRU (swap.py) holds folios by head pfn, oldest first (dict insertion order).
New anonymous folios go on the inactive list (lru_cache_add_inactive_or_unevictable).
`shrink_folio_list` follows 6.18 for anonymous folios: lazyfree folios are
dropped when clean; a partially mapped THP is split first (its unmapped pages
freed without I/O); others get swap space (folio_alloc_swap: one whole cluster
for a PMD-size folio, else split and THP_SWPOUT_FALLBACK), are unmapped
(try_to_unmap: a PMD swap entry with the series, 512 PTE swap entries in
mainline), written (pageout: zero-filled -> zeromap, zswap, or the device) and
freed at once on a synchronous device, or left clean in the swap cache on an
asynchronous one until a later pass frees it without I/O.

Left out: references and the active/inactive balancing (every scan treats a folio
as unreferenced, as MADV_PAGEOUT does), kswapd, writeback throttling, memcg.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from .config import FaultPoint
from .constants import HPAGE_PMD_NR
from .folio import PG
from .huge_split import split_folio, split_huge_pmd_locked
from .page_io import swap_writeout
from .rmap import rmap_walk_anon, try_to_unmap
from .swap import free_folio
from .swap_slots import folio_alloc_swap
from .swap_state import delete_from_swap_cache

if TYPE_CHECKING:
    from .kernel import Kernel


def shrink_folio_list(k: "Kernel", folios: list[int]) -> int:
    """Try to reclaim each folio of the list; return the number of pages freed."""
    mem = k.mem
    reclaimed = 0
    todo = deque(folios)
    k.trace("shrink_folio_list")
    while todo:
        pfn = todo.popleft()
        nr = mem.nr_pages(pfn)
        if not mem.test(pfn, PG.SWAPBACKED):
            # Lazyfree (MADV_FREE): a clean folio is dropped without swap.
            if not mem.test(pfn, PG.DIRTY) and try_to_unmap(k, pfn, split_huge_pmd=True, discard=True):
                k.vmstat.count("pglazyfreed", nr)
                free_folio(k, pfn)
                reclaimed += nr
                continue
            mem.set(pfn, PG.SWAPBACKED)
            _activate(k, pfn)
            continue
        if not mem.test(pfn, PG.SWAPCACHE):
            if nr > 1 and mem.test(pfn, PG.PARTIALLY_MAPPED):
                # 6.12+: "Split partially mapped folios right away.  We can free the unmapped
                # pages without IO." (on the deferred split queue as partially mapped); the
                # mapped pages come round as order-0 folios, the head first if it is one.
                todo.extendleft(reversed(split_folio(k, pfn)))
                continue
            if not folio_alloc_swap(k, pfn):
                if nr == 1:
                    _activate(k, pfn)
                    continue
                # Fallback to swap normal pages: split, then retry the head at order 0.
                # Measured on 6.18: this happens with no swap device at all, too.
                new = split_folio(k, pfn)
                k.vmstat.count("thp_swpout_fallback")
                k.vmstat.count_mthp("swpout_fallback")
                if not mem.flags[pfn] & PG.USED:
                    # The split freed the head page: it was no longer mapped (the THP
                    # was partly unmapped), so there is nothing left to swap out for it.
                    todo.extendleft(reversed(new))
                    reclaimed += 1
                    continue
                todo.extendleft(reversed(new[1:]))
                nr = 1
                if not folio_alloc_swap(k, pfn):
                    _activate(k, pfn)
                    continue
            mem.set(pfn, PG.DIRTY)
        # patch 12/13: leave out TTU_SPLIT_HUGE_PMD when the whole PMD-size folio
        # is in the swap cache and zswap was never enabled.
        pmd_entry = k.config.pmd_swap and nr == HPAGE_PMD_NR and not k.zswap_ever_enabled
        if pmd_entry and k.config.should_fail(FaultPoint.ZSWAP):
            # F1 as zswap_never_enabled() sees it: zswap was enabled once (its store
            # was then rejected, so the pages still go to the device).
            pmd_entry = False
        if pmd_entry and k.config.should_fail(FaultPoint.RMAP_SPLIT):
            # F6: an rmap walker (migration, a folio split attempt) split the PMD
            # mapping of the swap-cache folio first; reclaim then sees PTEs.
            for m in rmap_walk_anon(k, pfn):
                if m.pmd:
                    split_huge_pmd_locked(k, m.mm, m.vma, m.addr)
        if not try_to_unmap(k, pfn, split_huge_pmd=not pmd_entry):
            _activate(k, pfn)
            continue
        if mem.test(pfn, PG.DIRTY):
            written = swap_writeout(k, pfn)
            if written and not k.swp_info(k.folio_swap[pfn].type).synchronous:
                continue  # under writeback: stays in the swap cache, clean, until a later pass
            # zero-filled or stored in zswap: no writeback, freed now even on a disk
        delete_from_swap_cache(k, pfn)
        free_folio(k, pfn)
        reclaimed += nr
    return reclaimed


def _activate(k: "Kernel", pfn: int) -> None:
    k.lru.activate(pfn)
    k.vmstat.count("pgactivate", k.mem.nr_pages(pfn))


def reclaim_pages(k: "Kernel", folios: list[int]) -> int:
    """reclaim_pages(): MADV_PAGEOUT's isolated folios, references ignored."""
    return shrink_folio_list(k, folios)


def shrink_lruvec(k: "Kernel", nr_to_reclaim: int | None) -> int:
    """Global pressure (`reclaim [SIZE]`, direct reclaim): oldest folios first."""
    reclaimed = 0
    for pfn in k.lru.oldest_first():
        if nr_to_reclaim is not None and reclaimed >= nr_to_reclaim:
            break
        if pfn not in k.lru.inactive and pfn not in k.lru.active:
            continue
        reclaimed += shrink_folio_list(k, [pfn])
    return reclaimed


def try_to_free_pages(k: "Kernel", order: int) -> int:
    """Direct reclaim: free folios oldest-first until an order-`order` block can be had."""
    k.trace("try_to_free_pages")
    reclaimed = 0
    for pfn in k.lru.oldest_first():
        if k.mem.alloc.can_alloc(order):
            break
        if pfn in k.lru.inactive or pfn in k.lru.active:
            reclaimed += shrink_folio_list(k, [pfn])
    k.vmstat.count("pgsteal_direct", reclaimed)
    return reclaimed
