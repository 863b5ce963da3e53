"""Batched do_swap_page for the common synchronous case (an optimisation, same result).

A read or write that walks a run of swap PTEs on a zram-like device takes one
do_swap_page fault per page, each allocating an order-0 folio, reading the slot,
mapping it and freeing the slot (the SWP_SYNCHRONOUS_IO bypass).  When every
PTE of the run takes exactly that path, this does the whole run at once and
moves every counter as the separate faults would (pgfault, pgmajfault, pswpin
once per page).  Anything else is left to the per-fault path.
"""

from __future__ import annotations

import sys
from array import array
from typing import TYPE_CHECKING

from .constants import PAGE_SHIFT, PTRS_PER_PTE, pmd_index, pte_index
from .folio import PG
from .lanes import progression, progression_int
from .mm_types import MmStruct
from .pgtable import (F_DIRTY, F_SWP_EXCLUSIVE, F_UFFD_WP, F_WRITE, F_YOUNG, KIND_MASK, KIND_PRESENT,
                      PFN_SHIFT, SWP_KEPT, SWP_OFFSET_SHIFT, SWP_TYPE_MASK, SWP_TYPE_SHIFT, PmdKind,
                      is_swap_pte, mk_pte, pmd_pgtable, pte_swp_offset, pte_swp_type)
from .swap_info import SwapInfo
from .vma import VM

if TYPE_CHECKING:
    from .kernel import Kernel


def swapin_sync_run(k: "Kernel", mm: MmStruct, start: int, end: int, write: bool) -> int:
    pmd = mm.pmds.get(pmd_index(start))
    if pmd is None or pmd.kind is not PmdKind.TABLE:
        return 0
    vma = mm.find_vma(start)
    if vma is None:
        return 0        # not mapped: the per-fault path refuses it
    end = min(end, vma.end)
    ptes = pmd_pgtable(pmd).ptes
    i0 = pte_index(start)
    first = ptes[i0]
    if not is_swap_pte(first) or not first & F_SWP_EXCLUSIVE or first & F_UFFD_WP:
        return 0
    type_ = pte_swp_type(first)
    si = k.swap_info[type_]
    if si is None or not si.synchronous or not vma.flags & VM.WRITE:
        return 0
    sm, zeromap, zswap = si.swap_map, si.zeromap, si.zswap
    bits = first & (SWP_KEPT | F_SWP_EXCLUSIVE | KIND_MASK)
    n_max = min((end - start) >> PAGE_SHIFT, PTRS_PER_PTE - i0, k.mem.alloc.nr_free)
    o0 = pte_swp_offset(first)
    offs: range | list[int]
    if n_max >= 2 and _contiguous_run(ptes, i0, n_max, first) and sm.count(1, o0, o0 + n_max) == n_max \
            and zeromap.count(0, o0, o0 + n_max) == n_max and zswap.count(0, o0, o0 + n_max) == n_max:
        offs = range(o0, o0 + n_max)
    else:
        offs = _matching_offsets(ptes, i0, n_max, bits, type_, sm, zeromap, zswap)
    n = len(offs)
    if n < 2:
        return 0
    mem = k.mem
    pfns = mem.folio_alloc_bulk(n)
    pte_flags = (first & SWP_KEPT) | F_WRITE | F_YOUNG | (F_DIRTY if write else 0)
    folio_flags = PG.USED | PG.UPTODATE | PG.ANON | PG.SWAPBACKED | PG.ANON_EXCLUSIVE | PG.LRU
    idx0 = vma.linear_page_index(start)
    if isinstance(offs, range) and pfns[-1] - pfns[0] == n - 1:
        _map_run_contiguous(k, si, ptes, i0, pfns[0], offs.start, n, folio_flags, pte_flags, idx0, vma.anon_vma)
    else:
        _map_run(k, si, ptes, i0, pfns, list(offs), folio_flags, pte_flags, idx0, vma.anon_vma)
    si.free_slots(offs)
    k.vmstat.nr_anon_pages += n
    mm.rss_anon += n
    mm.rss_swapents -= n
    ev = k.vmstat.events
    ev["pgfault"] += n
    ev["pgmajfault"] += n
    ev["pswpin"] += n
    if k.tracing:
        k.trace(f"do_swap_page(SWP_SYNCHRONOUS_IO) x{n}")
    return n


def _contiguous_run(ptes: array, i0: int, n: int, first: int) -> bool:
    """The n PTEs from i0 are `first` with consecutive offsets (same type and bits): their
    bytes against the progression, as one int each (lanes.progression_int)."""
    step = 1 << SWP_OFFSET_SHIFT
    if n > PTRS_PER_PTE:
        return ptes[i0:i0 + n].tolist() == list(range(first, first + n * step, step))
    return int.from_bytes(ptes[i0:i0 + n].tobytes(), sys.byteorder) == progression_int(first, step, n)


def _matching_offsets(ptes: array, i0: int, n_max: int, bits: int, type_: int, sm: bytearray, zeromap: bytearray,
                      zswap: bytearray) -> list[int]:
    offs = []
    for j in range(i0, i0 + n_max):
        pte = ptes[j]
        off = pte >> SWP_OFFSET_SHIFT
        if (pte & (SWP_KEPT | F_SWP_EXCLUSIVE | KIND_MASK | F_UFFD_WP)) != bits \
                or (pte >> SWP_TYPE_SHIFT) & SWP_TYPE_MASK != type_ \
                or sm[off] != 1 or zeromap[off] or zswap[off]:
            break
        offs.append(off)
    return offs


def _map_run(k: "Kernel", si: SwapInfo, ptes: array, i0: int, pfns: list[int], offs: list[int], folio_flags: int,
             pte_flags: int, idx0: int, av: int) -> None:
    mem = k.mem
    flags, mapcount, index, anon_vma, data = mem.flags, mem.mapcount, mem.index, mem.anon_vma, mem.data
    sdata, sm = si.data, si.swap_map
    pfn_shift, pte_bits = PFN_SHIFT, pte_flags | KIND_PRESENT      # mk_pte() inline: once per page
    for j, (pfn, off) in enumerate(zip(pfns, offs)):
        flags[pfn] = folio_flags
        mapcount[pfn] = 1
        index[pfn] = idx0 + j
        anon_vma[pfn] = av
        data[pfn] = sdata[off]
        ptes[i0 + j] = (pfn << pfn_shift) | pte_bits
        sm[off] = 0
    k.lru.add_many(pfns)


def _map_run_contiguous(k: "Kernel", si: SwapInfo, ptes: array, i0: int, p0: int, o0: int, n: int, folio_flags: int,
                        pte_flags: int, idx0: int, av: int) -> None:
    """_map_run() for consecutive frames and slots: slice assignments."""
    mem = k.mem
    mem.flags[p0:p0 + n] = array("I", [folio_flags]) * n
    mem.mapcount[p0:p0 + n] = array("i", [1]) * n
    mem.index[p0:p0 + n] = progression("q", idx0, 1, n)
    mem.anon_vma[p0:p0 + n] = array("i", [av]) * n
    mem.data[p0:p0 + n] = si.data[o0:o0 + n]
    k.lru.add_run(p0, n)
    first = mk_pte(p0, pte_flags)
    ptes[i0:i0 + n] = progression("Q", first, 1 << PFN_SHIFT, n)
    si.swap_map[o0:o0 + n] = bytes(n)
