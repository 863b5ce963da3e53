"""Reclaim (mm/vmscan.c): shrink_folio_list and its entry points.

The LRU (lru.py) holds folios by head pfn on linked lists, oldest first.
New anonymous folios go on the inactive list (lru_cache_add_inactive_or_unevictable).
`shrink_folio_list` follows 6.18 for anonymous folios: lazyfree folios are
dropped when clean; a partially mapped THP is split first (its unmapped pages
freed without I/O); others get swap space (folio_alloc_swap: one whole cluster
for a PMD-size folio, else split and THP_SWPOUT_FALLBACK), are unmapped
(try_to_unmap: a PMD swap entry with the series, 512 PTE swap entries in
mainline), written (pageout: zero-filled -> zeromap, zswap, or the device) and
freed at once on a synchronous device, or left clean in the swap cache on an
asynchronous one, rotated to the oldest end of the inactive list when its write
ends, until a later pass frees it without I/O.

`reclaim` without SIZE looks at a folio's references first (vmscan_refs.py): one
referenced by two VMAs is activated and left for the next pass.  Left out: the
references in `reclaim SIZE` and direct reclaim (they treat every folio as
unreferenced, as MADV_PAGEOUT does), the active/inactive balancing, kswapd,
writeback throttling, memcg.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from .config import FaultPoint
from .constants import HPAGE_PMD_NR
from .folio import PG
from .huge_split import deferred_split_scan, split_folio, split_huge_pmd_locked
from .lru import PFN_OFFSET
from .page_io import swap_writeout
from .progress import progress
from .rmap import rmap_walk_anon, try_to_unmap
from .swap import free_folio
from .swap_reclaim import swap_reclaim_work
from .swap_slots import folio_alloc_swap
from .swap_state import delete_from_swap_cache
from .vmscan_batch import shrink_order0_run
from .vmscan_fill import SWAP_CLUSTER_MAX, free_written_after_fill
from .vmscan_refs import folio_check_references, may_be_referenced_twice

if TYPE_CHECKING:
    from .kernel import Kernel


def shrink_folio_list(k: "Kernel", folios: list[int]) -> int:
    """Try to reclaim each folio of the list; return the number of pages freed."""
    mem = k.mem
    reclaimed = 0
    todo = deque(folios)
    k.trace("shrink_folio_list")
    events = k.vmstat.events
    while todo:
        progress("swap-out", events["pswpout"], 0)      # pages written so far: only a count
        if len(todo) > 1:
            done = shrink_order0_run(k, todo)     # a run of order-0 folios at once (same result)
            if done:
                reclaimed += done
                continue
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
                todo.extendleft(reversed(_split_order(pfn, split_folio(k, pfn, to_list=True))))
                continue
            if not folio_alloc_swap(k, pfn):
                if nr == 1:
                    _activate(k, pfn)
                    continue
                # Fallback to swap normal pages: split, then retry the head at order 0.
                # Measured on 6.18: this happens with no swap device at all, too.
                new = split_folio(k, pfn, to_list=True)
                k.vmstat.count("thp_swpout_fallback")
                k.vmstat.count_mthp("swpout_fallback")
                todo.extendleft(reversed(_split_order(pfn, new)[1:]))
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
            entry = k.folio_swap[pfn]
            if not k.swp_info(entry.type).any_count(entry.offset, nr):
                # swap_writeout(): folio_free_swap() first; nothing references the slots
                # (a page a split left unmapped), so it leaves the swap cache without I/O.
                delete_from_swap_cache(k, pfn)
                free_folio(k, pfn)
                reclaimed += nr
                continue
            written = swap_writeout(k, pfn)
            if written and not k.swp_info(k.folio_swap[pfn].type).synchronous:
                folio_rotate_reclaimable(k, pfn)
                continue  # under writeback: stays in the swap cache, clean, until a later pass
            # zero-filled or stored in zswap: no writeback, freed now even on a disk
        delete_from_swap_cache(k, pfn)
        free_folio(k, pfn)
        reclaimed += nr
    swap_reclaim_work(k)        # a device this pass filled: its reclaim work, run soon after
    return reclaimed


def folio_rotate_reclaimable(k: "Kernel", pfn: int) -> None:
    """The end of the write reclaim started on an asynchronous device (folio_end_writeback():
    PG_reclaim was set): the folio, clean, goes to the oldest end of the inactive list,
    active or not (lru_move_tail(), pgrotated), so that the next reclaim frees it before
    anything else.  The simulation ends the write at once, after the folio was put back on
    the LRU, so folios written one after the other end oldest first in the reverse order.

    Measured on 6.18.44 (kernel fuzz seed 20202 script 4095, a 4M loop disk): MADV_PAGEOUT
    of a THP and then of 256 pages, all read back by a write; `reclaim` then takes the 256
    pages last written first (their new slots run up from the cursor as the pages run down)
    and the THP last, which finds no free cluster left and is split (thp_swpout_fallback),
    in 11 runs of 12.  The kernel rotates a folio only if its write ends after reclaim put it
    back on the LRU (a folio still in a per-CPU batch is not on it), which depends on I/O
    timing: in the twelfth run part of the pages were not rotated.  Left out: that timing."""
    if k.lru.move_tail(pfn):
        k.trace("folio_rotate_reclaimable")
        k.vmstat.count("pgrotated", k.mem.nr_pages(pfn))


def _split_order(head: int, new: list[int]) -> list[int]:
    """The order shrink_folio_list() takes the folios of a split in: the head goes on (it is
    the folio in hand), the tails were added at the list's tail (lru_add_split_folio) and
    the list is taken from its tail (lru_to_folio), so the last tail comes next: a split
    THP's pages get their swap slots head first, then from its last page down."""
    tails = [p for p in new if p != head]
    return ([head] if head in new else []) + tails[::-1]


def _activate(k: "Kernel", pfn: int) -> None:
    """activate_locked: the folio goes back to the active list (pgactivate).  The putback
    (folio_putback_lru() after reclaim_folio_list(), move_folios_to_lru()) drops the
    isolation reference; a folio nothing maps and no swap cache holds had no other one and
    is freed there: a page a split left unmapped (mapped by the zero page instead) when no
    swap slot could be had for it."""
    k.vmstat.count("pgactivate", k.mem.nr_pages(pfn))
    if not k.mem.folio_mapped(pfn) and pfn not in k.folio_swap:
        free_folio(k, pfn)
        return
    k.lru.activate(pfn)


def reclaim_pages(k: "Kernel", folios: list[int]) -> int:
    """reclaim_pages(): MADV_PAGEOUT's isolated folios, references ignored."""
    return shrink_folio_list(k, folios)


def get_nr_swap_pages(k: "Kernel") -> int:
    """get_nr_swap_pages(): free slots on the devices that take new swap (SWP_WRITEOK)."""
    return sum(si.pages - 1 - si.inuse_pages for si in k.active_swap() if si.writeok)


def _scannable(k: "Kernel", pfn: int) -> bool:
    """Whether the LRU scan of global or direct reclaim looks at this folio: get_scan_count()
    scans only the file LRU when no swap space is free (can_reclaim_anon_pages()), and the
    file LRU is where MADV_FREE put the lazyfree folios (!PG_swapbacked)."""
    if not k.lru.on_lru(pfn):
        return False
    return not k.mem.test(pfn, PG.SWAPBACKED) or get_nr_swap_pages(k) > 0


def _scannable_run(k: "Kernel", lru: list[int], i: int, cap: int | None) -> int:
    """The end of the run of LRU folios from lru[i] (scannable) that one shrink_folio_list()
    call may take as the kernel's scan takes them one by one: order-0 swap-backed folios on
    the LRU, no more than the swap slots free nor than `cap` (the pages still to reclaim).
    Reclaiming one of them allocates at most one slot and changes no other folio of the run,
    so each would still be scannable, and the target not yet met, when its turn came.  A
    traced run takes them one by one (a shrink_folio_list line for each)."""
    j = i + 1
    if k.tracing:
        return j
    mem = k.mem
    if mem.order[lru[i]] or not mem.flags[lru[i]] & PG.SWAPBACKED:
        return j
    limit = min(len(lru), i + get_nr_swap_pages(k))
    if cap is not None:
        limit = min(limit, i + cap)
    flags, order = mem.flags, mem.order
    marks, off = k.lru.which, PFN_OFFSET        # nonzero: on an LRU list (Lru.on_lru inline)
    while j < limit:
        pfn = lru[j]
        if order[pfn] or not flags[pfn] & PG.SWAPBACKED or not marks[pfn + off]:
            break
        j += 1
    return j


def _check_references(k: "Kernel", lru: list[int]) -> list[int]:
    """folio_check_references() of every folio the pass will scan, before the pass: the
    folios it activates (FOLIOREF_ACTIVATE) are left out of this pass.  The same as looking
    at each in its turn: reclaiming one folio changes no other's young bits."""
    activated = set()
    for pfn in lru:
        if may_be_referenced_twice(k, pfn) and _scannable(k, pfn) and folio_check_references(k, pfn):
            _activate(k, pfn)
            activated.add(pfn)
    return [pfn for pfn in lru if pfn not in activated] if activated else lru


def shrink_lruvec(k: "Kernel", nr_to_reclaim: int | None) -> int:
    """Global pressure (`reclaim [SIZE]`, direct reclaim): oldest folios first.

    Without SIZE, pass after pass until a pass neither frees nor writes anything (as
    memory.force_empty and memory.reclaim retry): a folio left clean in the swap cache by
    the writeback of one pass (a disk) is freed by the next.  After each such pass the
    memory cgroup's shrinkers run (shrink_node() calls shrink_slab()): the deferred split
    one splits the partially mapped THPs (the LRU pass splits them too, while there is swap
    space), and while no swap space is free also the underused ones (`deferred_split_scan`);
    the next pass sees their small folios.  Not modelled: an underused THP with swap space
    free, which the kernel swaps out whole or splits first depending on how many passes and
    shrinker calls the rest of the cgroup's memory takes (measured: whole when it is alone);
    the simulation swaps it out whole.  Reclaim with SIZE and direct reclaim stop before the
    shrinkers get a low enough priority to scan a short queue: not modelled there.
    """
    reclaimed = 0
    while True:
        freed = 0
        written = k.vmstat.events["pswpout"]
        had_space = get_nr_swap_pages(k) > 0
        cached_before = set(k.folio_swap) if nr_to_reclaim is None and had_space else set()
        lru = k.lru.oldest_first()
        if nr_to_reclaim is None:
            lru = _check_references(k, lru)
        i = 0
        while i < len(lru):
            if nr_to_reclaim is not None and reclaimed + freed >= nr_to_reclaim:
                break
            if not _scannable(k, lru[i]):
                i += 1
                continue
            cap = None if nr_to_reclaim is None else nr_to_reclaim - reclaimed - freed
            j = _scannable_run(k, lru, i, cap)
            freed += shrink_folio_list(k, lru[i:j])
            i = j
        if nr_to_reclaim is None and had_space and not get_nr_swap_pages(k):
            freed += free_written_after_fill(k, cached_before)   # vmscan_fill.py
        reclaimed += freed
        if nr_to_reclaim is not None:
            return reclaimed
        split = deferred_split_scan(k, underused=get_nr_swap_pages(k) == 0)
        if not (freed or k.vmstat.events["pswpout"] != written or split):
            return reclaimed


def try_to_free_pages(k: "Kernel", order: int) -> int:
    """Direct reclaim: free folios oldest-first until an order-`order` block can be had.

    A folio written to an asynchronous device is not freed by the pass that writes it; its
    write ends and rotates it to the oldest end (folio_rotate_reclaimable()), and the next
    pass frees it first.  So a pass stops once it has written SWAP_CLUSTER_MAX pages (the
    kernel's do_try_to_free_pages() asks shrink_lruvec() for that many, and scans more at
    each lower priority) and the next pass begins from the oldest end; reclaim ends when a
    block can be had, or a pass neither frees nor writes anything."""
    k.trace("try_to_free_pages")
    can_alloc = k.mem.alloc.can_alloc
    events = k.vmstat.events
    reclaimed = 0
    while not can_alloc(order):
        written = events["pswpout"]
        freed = 0
        for pfn in k.lru.oldest_first():
            if can_alloc(order) or events["pswpout"] - written >= SWAP_CLUSTER_MAX:
                break
            if _scannable(k, pfn):
                freed += shrink_folio_list(k, [pfn])
        reclaimed += freed
        if not freed and events["pswpout"] == written:
            break
    k.vmstat.count("pgsteal_direct", reclaimed)
    return reclaimed
