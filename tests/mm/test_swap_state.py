"""The swap cache (mmshell/mm/swap_state.py; mm/swap_state.c, mm/swapfile.c folio_free_swap).

kernel-semantics.md §1.5 and §1.8: a cached folio of nr pages owns the
naturally aligned slots [folio->swap, +nr), each with SWAP_HAS_CACHE and a
pointer back to the folio; folio_free_swap() takes it out of the cache only
when no page table references any of its slots, and marks it dirty (its only
copy is now in memory); slots left at count 0 are freed with it.
"""

from __future__ import annotations

from mm_unit import assert_consistent, boot, mmap_thp, pageout, swapon
from mmshell.mm.constants import SWAP_HAS_CACHE
from mmshell.mm.folio import PG
from mmshell.mm.memory import handle_mm_fault
from mmshell.mm.swap_info import SwapKind
from mmshell.mm.swap_state import folio_free_swap, swap_cache_get_folio
from mmshell.mm.swapops import SwpEntry


def cached_thp():
    """Mainline on a disk: the THP was written out and stays in the swap cache, unmapped."""
    k = boot(False)
    si = swapon(k, "disk0", kind=SwapKind.DISK)
    a = mmap_thp(k)
    pageout(k, a)
    return k, si, a, si.cache[512]


def test_swap_cache_get_folio_finds_the_head_from_any_of_its_slots() -> None:
    k, _, _, folio = cached_thp()
    assert k.folio_swap[folio] == SwpEntry(0, 512) and k.mem.test(folio, PG.SWAPCACHE)
    assert {swap_cache_get_folio(k, SwpEntry(0, s)) for s in range(512, 1024)} == {folio}
    assert swap_cache_get_folio(k, SwpEntry(0, 1024)) is None
    assert swap_cache_get_folio(k, SwpEntry(5, 512)) is None       # no such device


def test_folio_free_swap_refuses_while_a_page_table_references_a_slot() -> None:
    """The 512 swap PTEs still hold count 1 each: the folio must stay in the cache."""
    k, si, _, folio = cached_thp()
    assert not folio_free_swap(k, folio)
    assert k.mem.test(folio, PG.SWAPCACHE) and set(si.swap_map[512:1024]) == {SWAP_HAS_CACHE | 1}
    assert_consistent(k)


def test_folio_free_swap_frees_cache_only_slots_and_dirties_the_folio() -> None:
    """After the fault mapped all 512 PTEs from the cache the slots are cache only: the folio
    leaves the cache (nr_swapcached -512), the slots and their cluster are freed, the folio is
    dirty and stays mapped."""
    k, si, a, folio = cached_thp()
    mm = k.mm(1)
    vma = mm.find_vma(a)
    assert vma is not None
    handle_mm_fault(k, mm, vma, a, False)
    assert set(si.swap_map[512:1024]) == {SWAP_HAS_CACHE}
    assert not k.mem.test(folio, PG.DIRTY)                         # clean after writeback
    assert folio_free_swap(k, folio)
    assert (si.inuse_pages, si.cluster_used[1], k.vmstat.nr_swapcached, k.folio_swap) == (0, 0, 0, {})
    assert k.mem.test(folio, PG.DIRTY) and not k.mem.test(folio, PG.SWAPCACHE)
    assert k.mem.folio_mapcount(folio) == 512
    assert not folio_free_swap(k, folio)                            # not in the cache any more
    assert_consistent(k)
