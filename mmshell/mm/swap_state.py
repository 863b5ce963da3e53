"""The swap cache (mm/swap_state.c): folios that own swap slots while in memory.

A cached folio of nr pages covers the naturally aligned slots
[folio->swap.offset, +nr); each of them has SWAP_HAS_CACHE set in swap_map and
points back at the folio in the device's swap table (swap_table.py: the 6.18
swap table holds a folio pointer there), so adding or deleting a folio is one
slice of the table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import SWAP_HAS_CACHE
from .folio import PG
from .swapops import SwpEntry

if TYPE_CHECKING:
    from .kernel import Kernel

#: bytes.translate tables that set and clear SWAP_HAS_CACHE.
_SET_CACHE = bytes(b | SWAP_HAS_CACHE for b in range(256))
_CLEAR_CACHE = bytes(b & ~SWAP_HAS_CACHE for b in range(256))


def swap_cache_get_folio(k: "Kernel", entry: SwpEntry) -> int | None:
    """swap_cache_get_folio(): the head pfn of the folio caching entry, or None."""
    si = k.swap_info[entry.type]
    return si.cache.get(entry.offset) if si is not None else None


def add_to_swap_cache(k: "Kernel", pfn: int, entry: SwpEntry) -> None:
    """swap_cache_add_folio(): the folio takes the SWAP_HAS_CACHE bit of its slots."""
    si = k.swp_info(entry.type)
    nr = k.mem.nr_pages(pfn)
    sm = si.swap_map
    off = entry.offset
    sm[off:off + nr] = sm[off:off + nr].translate(_SET_CACHE)
    si.cache.add(off, nr, pfn)
    k.mem.set(pfn, PG.SWAPCACHE)
    k.folio_swap[pfn] = entry
    k.vmstat.nr_swapcached += nr


def delete_from_swap_cache(k: "Kernel", pfn: int) -> None:
    """swap_cache_del_folio() + put_swap_folio(): drop the cache bit; free slots left at count 0."""
    entry = k.folio_swap.pop(pfn)
    si = k.swp_info(entry.type)
    nr = k.mem.nr_pages(pfn)
    sm = si.swap_map
    off = entry.offset
    seg = sm[off:off + nr].translate(_CLEAR_CACHE)
    sm[off:off + nr] = seg
    si.cache.delete(off, nr)
    zeros = seg.count(0)
    if zeros == nr:
        si.free_slots(range(off, off + nr))
    elif zeros:
        si.free_slots([off + i for i, b in enumerate(seg) if b == 0])
    k.mem.clear(pfn, PG.SWAPCACHE)
    k.vmstat.nr_swapcached -= nr
    k.trace("delete_from_swap_cache")


def folio_free_swap(k: "Kernel", pfn: int) -> bool:
    """folio_free_swap(): leave the swap cache when no page table references a slot.

    The folio is marked dirty: its only copy of the data is now in memory.
    """
    entry = k.folio_swap.get(pfn)
    if entry is None:
        return False
    si = k.swp_info(entry.type)
    nr = k.mem.nr_pages(pfn)
    if si.any_count(entry.offset, nr):
        return False
    k.trace("folio_free_swap")
    delete_from_swap_cache(k, pfn)
    k.mem.set(pfn, PG.DIRTY)
    return True
