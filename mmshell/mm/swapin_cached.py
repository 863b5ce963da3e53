"""Batched do_swap_page for swap-cache hits of order-0 folios (an optimisation, same result).

Reclaim writes order-0 folios to a disk or file device and leaves them in its swap
cache (the write is asynchronous; the folio goes when reclaim comes back to it).
Reading them back takes one do_swap_page fault per page, each a swap-cache hit:
the folio is mapped again by a PTE, its slot loses the PTE's reference and stays
cached.  When every PTE of a run takes exactly that path, this does the whole run at
once and moves every counter as the separate faults would (pgfault once per page;
a cache hit is no major fault).  Anything else is left to the per-fault path: a
write (which may free the swap cache), tracing (each fault is traced), readahead
pages (PG_readahead accounting), shared slots, a swap space more than half full
(vm_swap_full() frees cached slots), large folios.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING

from .constants import PAGE_SHIFT, PTRS_PER_PTE, SWAP_HAS_CACHE, pmd_index, pte_index
from .folio import PG
from .mm_types import MmStruct
from .pgtable import (F_SWP_EXCLUSIVE, F_UFFD_WP, F_WRITE, F_YOUNG, KIND_PRESENT, PFN_SHIFT, SWP_KEPT,
                      PmdKind, is_swap_pte, pmd_pgtable, pte_swp_offset, pte_swp_type)
from .swap_slots import free_swap_and_cache_nr, vm_swap_full
from .swapin_batch import _contiguous_run
from .swapops import SwpEntry
from .vma import VM

if TYPE_CHECKING:
    from .kernel import Kernel

__all__ = ["swapin_cached_run"]

#: A swap_map byte of a slot one PTE references and a folio in the swap cache holds.
_ONE_AND_CACHED = 1 | SWAP_HAS_CACHE


def swapin_cached_run(k: "Kernel", mm: MmStruct, start: int, end: int, write: bool) -> int:
    """Map back at once a run of swap PTEs from `start` whose slots the swap cache holds in
    order-0 folios, for a read; the pages done (0: the per-fault path does them)."""
    if write or k.tracing:
        return 0
    pmd = mm.pmds.get(pmd_index(start))
    if pmd is None or pmd.kind is not PmdKind.TABLE:
        return 0
    vma = mm.find_vma(start)
    if vma is None:
        return 0
    ptes = pmd_pgtable(pmd).ptes
    i0 = pte_index(start)
    first = ptes[i0]
    if not is_swap_pte(first):
        return 0
    si = k.swap_info[pte_swp_type(first)]
    n = min((min(end, vma.end) - start) >> PAGE_SHIFT, PTRS_PER_PTE - i0)
    o0 = pte_swp_offset(first)
    if si is None or n < 2 or o0 + n > si.pages or not _contiguous_run(ptes, i0, n, first) \
            or si.swap_map.count(_ONE_AND_CACHED, o0, o0 + n) != n:
        return 0
    mem = k.mem
    pfns = si.cache.table[o0:o0 + n].tolist()
    flags, mapcount = mem.flags, mem.mapcount
    folio_flags = list(map(flags.__getitem__, pfns))
    # each an anon order-0 folio nothing maps, not a readahead page (PG_readahead, kept as
    # PG.WORKINGSET: its first use counts swap_ra_hit)
    if any(map(mem.order.__getitem__, pfns)) or any(map(mapcount.__getitem__, pfns)) \
            or any((f & (PG.ANON | PG.WORKINGSET | PG.SWAPCACHE)) != (PG.ANON | PG.SWAPCACHE)
                   for f in folio_flags) or vm_swap_full(k):
        return 0
    exclusive = bool(first & F_SWP_EXCLUSIVE)
    # folio_add_anon_rmap_ptes() of each: its one page mapped once, PageAnonExclusive as the entry
    mapcount_set = mapcount.__setitem__
    for p in pfns:
        mapcount_set(p, 1)
    if exclusive:
        for p, f in zip(pfns, folio_flags):
            flags[p] = f | PG.ANON_EXCLUSIVE
    # _set_swapped_in_ptes() of each: young, writable only if exclusive (no COW needed)
    bits = (first & SWP_KEPT) | F_YOUNG | KIND_PRESENT
    if exclusive and vma.flags & VM.WRITE and not first & F_UFFD_WP:
        bits |= F_WRITE
    ptes[i0:i0 + n] = array("Q", [(p << PFN_SHIFT) | bits for p in pfns])
    k.vmstat.nr_anon_pages += n
    mm.rss_anon += n
    mm.rss_swapents -= n
    # each slot loses the PTE's reference and stays cached (its folio is mapped, swap not full)
    free_swap_and_cache_nr(k, SwpEntry(si.type, o0), n)
    k.vmstat.events["pgfault"] += n
    return n
