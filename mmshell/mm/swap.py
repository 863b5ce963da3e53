"""The LRU lists and the end of a folio's life (mm/swap.c, include/linux/mm_inline.h).

`Lru` (lru.py) holds the anon LRU lists of the one node; `lru_add` puts a new folio on
them (folio_add_lru_vma).  `free_folio` and `free_order0_folios` give folios
whose last reference is gone back to the allocator (__folio_put,
folios_put_refs), `folio_put_if_unused` drops a mapping's reference.  The
refcount itself is not modelled: a folio is referenced while it is mapped or in
the swap cache.

These sit below the fault, unmap and reclaim paths (memory, huge_memory, rmap,
vmscan), which all end folios' lives, as mm/swap.c sits below them in the kernel.
"""

from __future__ import annotations

import sys
from array import array
from typing import TYPE_CHECKING

from .constants import HPAGE_PMD_ORDER
from .folio import PG
from .lanes import is_run
from .swap_state import folio_free_swap

if TYPE_CHECKING:
    from .kernel import Kernel


def lru_pages(k: "Kernel", head: int) -> int:
    """The pages of the folios on LRU list `head` (INACTIVE or ACTIVE): NR_INACTIVE_ANON /
    NR_ACTIVE_ANON, counted when asked."""
    return k.lru.lru_pages(k.mem.order, head)


def lru_add(k: "Kernel", pfn: int) -> None:
    """folio_add_lru_vma(): new anonymous folios start on the inactive list."""
    k.mem.set(pfn, PG.LRU)
    k.lru.add(pfn)


def free_folio(k: "Kernel", pfn: int) -> None:
    """The last reference is gone: off the LRU, out of the deferred queue, back to the allocator."""
    mem = k.mem
    k.lru.delete(pfn)
    k.vmstat.count("pgfree", mem.nr_pages(pfn))
    if mem.order[pfn] == HPAGE_PMD_ORDER:
        k.vmstat.mthp["nr_anon"] -= 1
        if mem.test(pfn, PG.PARTIALLY_MAPPED):
            k.vmstat.mthp["nr_anon_partially_mapped"] -= 1
    mem.free_folio(pfn)


#: The byte of a page-flags word (array "I") that holds bits 0-7, and per value of it, 1 where
#: PG.SWAPCACHE is set.
_FLAGS_BYTE0 = 0 if sys.byteorder == "little" else 3
_SWAPCACHE = bytes(int(bool(b & PG.SWAPCACHE)) for b in range(256))


def _any_swapcache(flags: array, p0: int, n: int) -> bool:
    """Whether a page of the run of frames [p0, p0 + n) is in the swap cache: the flags'
    low bytes (PG.SWAPCACHE is bit 5) translated to 0/1 at once."""
    return 1 in flags[p0:p0 + n].tobytes()[_FLAGS_BYTE0::4].translate(_SWAPCACHE)


def free_order0_folios(k: "Kernel", pfns: list[int]) -> None:
    """Free order-0 folios that just lost their last mapping (a swap-cache one leaves the cache)."""
    mem = k.mem
    flags, swapcache = mem.flags, PG.SWAPCACHE
    kept = set()        # swap-cache folios whose slots a swap entry still references: they stay
    if not (pfns and is_run(pfns) and not _any_swapcache(flags, pfns[0], len(pfns))):
        for pfn in pfns:
            if flags[pfn] & swapcache and not folio_free_swap(k, pfn):
                kept.add(pfn)
    out = [pfn for pfn in pfns if pfn not in kept] if kept else list(pfns)
    k.lru.delete_many(out)
    k.vmstat.count("pgfree", len(out))
    mem.free_order0_runs(sorted(out))


def folio_put_if_unused(k: "Kernel", pfn: int) -> None:
    """Drop a mapping's reference: free the folio if nothing maps or caches it."""
    if not k.mem.folio_mapped(pfn) and not k.mem.test(pfn, PG.SWAPCACHE):
        free_folio(k, pfn)
