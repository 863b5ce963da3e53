"""Batched shrink_folio_list for runs of order-0 folios (an optimisation, same result).

Reclaim of order-0 anonymous folios on a synchronous device (zram) takes the same
path for each folio: folio_alloc_swap gives it the next order-0 slot and puts it in
the swap cache, try_to_unmap turns its one PTE into a swap PTE, swap_writeout
stores it (the zeromap for a page of zeros, zswap when enabled, else the device),
and it leaves the swap cache and is freed at once.  When the folios at the head
of the list are mapped by consecutive PTEs of one table, each exactly once, this
does the whole run at once: the slots of the run in one allocation, the swap PTEs
in one slice, the counters moved by what the separate passes would move them by.
The swap cache entries the separate passes add and delete again leave nothing, so
the batch does not touch the cache.  Anything else (a lazyfree, shared, cached,
large or unmapped folio, an asynchronous device, devices of equal priority taking
turns, an armed fault point, tracing) is left to the per-folio path.
"""

from __future__ import annotations

from array import array
from collections import deque
from itertools import islice
from typing import TYPE_CHECKING

from .config import FailMode
from .constants import PAGE_SHIFT, PTRS_PER_PTE, SWAP_HAS_CACHE, pmd_index, pte_index
from .folio import PG
from .pgtable import (F_SWP_EXCLUSIVE, KIND_MASK, KIND_PRESENT, PFN_SHIFT, SWP_KEPT, SWP_OFFSET_SHIFT,
                      PmdKind, pmd_pgtable, swp_entry_to_pte)
from .rmap import rmap_walk_anon
from .swap_slots import swap_alloc_fast, swap_avail, swap_range_alloc, vm_swap_full

if TYPE_CHECKING:
    from .kernel import Kernel
    from .swap_info import SwapInfo

#: The flags that decide the path: an anonymous, swap-backed order-0 folio not in the swap cache.
_PATH_FLAGS = PG.USED | PG.ANON | PG.SWAPBACKED | PG.SWAPCACHE | PG.HEAD | PG.TAIL | PG.ZERO
_FAST = PG.USED | PG.ANON | PG.SWAPBACKED


def _swap_target(k: "Kernel") -> "SwapInfo | None":
    """The device folio_alloc_swap() gives every folio of a run to, when the batch applies:
    the first of the priority list, synchronous, taking new swap, and alone at its
    priority (equal-priority devices take turns: _plist_requeue), unless the per-CPU
    cluster of another device would be taken first (swap_alloc_fast)."""
    avail = swap_avail(k)
    if not avail:
        return None
    si = avail[0]
    if not si.writeok or not si.synchronous:
        return None
    if len(avail) > 1 and avail[1].prio >= si.prio:
        return None
    fast = swap_alloc_fast(k)
    if fast is not None and fast is not si:
        return None             # the per-CPU cluster of another device comes first
    return si


def shrink_order0_run(k: "Kernel", todo: deque[int]) -> int:
    """Reclaim the run of order-0 folios at the head of `todo` at once; how many it took off
    `todo` (all of them freed), 0 when the head folio is not one the batch handles."""
    if k.tracing:
        return 0
    fail = k.config.fail
    if fail and any(mode is not FailMode.OFF for mode in fail.values()):
        return 0
    mem = k.mem
    flags, mapcount = mem.flags, mem.mapcount
    pfn = todo[0]
    if flags[pfn] & _PATH_FLAGS != _FAST or mem.order[pfn] or mapcount[pfn] != 1:
        return 0
    si = _swap_target(k)
    if si is None:
        return 0
    if vm_swap_full(k) and si.swap_map.find(SWAP_HAS_CACHE) >= 0:
        return 0        # the scans take cached slots too (swap_slots._reclaim_cached): one by one
    maps = rmap_walk_anon(k, pfn)
    if len(maps) != 1 or maps[0].pmd:
        return 0
    mm, vma, addr = maps[0].mm, maps[0].vma, maps[0].addr
    pmd = mm.pmds.get(pmd_index(addr))
    if pmd is None or pmd.kind is not PmdKind.TABLE:
        return 0
    ptes = pmd_pgtable(pmd).ptes
    i0 = pte_index(addr)
    # The folios of a split THP come tails last first (_split_order): a run may go down too.
    step = -1 if i0 and ptes[i0 - 1] >> PFN_SHIFT == todo[1] else 1
    if step > 0:
        limit = min(len(todo), PTRS_PER_PTE - i0, (vma.end - addr) >> PAGE_SHIFT)
        words = ptes[i0:i0 + limit]
    else:
        limit = min(len(todo), i0 + 1, ((addr - vma.start) >> PAGE_SHIFT) + 1)
        words = ptes[i0 - limit + 1:i0 + 1]
        words.reverse()
    folios = list(islice(todo, 0, limit))
    n = _run_length(k, folios, words, step)
    offs = si.alloc_slots(n, fast=swap_alloc_fast(k) is si)
    n = len(offs)
    if not n:
        return 0
    swap_range_alloc(k, si)
    k.percpu_swap_si = si.type          # synchronous, so SWP_SOLIDSTATE (zram): the per-CPU cluster
    del folios[n:]
    swp = _unmap_and_write(k, si, folios, words, offs)
    if step > 0:
        ptes[i0:i0 + n] = swp
    else:
        swp.reverse()
        ptes[i0 - n + 1:i0 + 1] = swp
    mm.rss_anon -= n
    mm.rss_swapents += n
    mm.on_mmlist = True
    _free_run(k, folios)
    for _ in range(n):
        todo.popleft()
    return n


def _run_length(k: "Kernel", folios: list[int], words: array, step: int) -> int:
    """How many folios from the first are mapped, once each, by the PTEs `words` in order,
    with the index and anon_vma the rmap walk finds that PTE by (the first is): the
    index goes by `step` from folio to folio, as the PTEs do."""
    mem = k.mem
    flags, mapcount, order, index, anon_vma = mem.flags, mem.mapcount, mem.order, mem.index, mem.anon_vma
    head = folios[0]
    av, idx = anon_vma[head], index[head]
    kind_mask, present, pfn_shift, path, fast = KIND_MASK, KIND_PRESENT, PFN_SHIFT, _PATH_FLAGS, _FAST
    n = 0
    for pfn, w in zip(folios, words):
        if w & kind_mask != present or w >> pfn_shift != pfn or flags[pfn] & path != fast or order[pfn] \
                or mapcount[pfn] != 1 or anon_vma[pfn] != av or index[pfn] != idx:
            break
        n += 1
        idx += step
    return n


def _unmap_and_write(k: "Kernel", si: "SwapInfo", folios: list[int], words: array, offs: list[int]) -> array:
    """try_to_unmap_one() and swap_writeout() of every folio, and what folio_alloc_swap() then
    delete_from_swap_cache() leave in swap_map: one reference per slot, no cache bit.
    Returns the swap PTEs that replace `words`, in the same order."""
    mem = k.mem
    flags, mapcount, data = mem.flags, mem.mapcount, mem.data
    n = len(folios)
    type_bits = swp_entry_to_pte(si.type, 0)
    kept, swp_excl, anon_excl, shift = SWP_KEPT, F_SWP_EXCLUSIVE, PG.ANON_EXCLUSIVE, SWP_OFFSET_SHIFT
    swp = array("Q", [(off << shift) | type_bits | (w & kept) | (swp_excl if flags[pfn] & anon_excl else 0)
                       for off, w, pfn in zip(offs, words, folios)])
    values = [data[pfn] for pfn in folios]
    zswap = k.config.zswap
    sm, sdata, zeromap, zsw = si.swap_map, si.data, si.zeromap, si.zswap
    if offs[-1] - offs[0] == n - 1:
        o = offs[0]
        sm[o:o + n] = b"\x01" * n
        sdata[o:o + n] = array("Q", values)
        zeromap[o:o + n] = bytes(v == 0 for v in values)
        zsw[o:o + n] = bytes(bool(zswap and v) for v in values)
    else:
        for off, v in zip(offs, values):
            sm[off] = 1
            sdata[off] = v
            zeromap[off] = v == 0
            zsw[off] = bool(zswap and v)
    for pfn in folios:
        mapcount[pfn] = 0
    zeros = values.count(0)
    vm = k.vmstat
    vm.nr_anon_pages -= n
    vm.count("swpout_zero", zeros)
    vm.count("zswpout" if zswap else "pswpout", n - zeros)
    return swp


def _free_run(k: "Kernel", folios: list[int]) -> None:
    """free_folio() of each folio of the run: off the LRU, back to the allocator."""
    k.lru.delete_many(folios)
    k.vmstat.count("pgfree", len(folios))
    k.mem.free_order0_runs(sorted(folios))
