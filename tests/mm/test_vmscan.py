"""Reclaim (mmshell/mm/vmscan.py; mm/vmscan.c shrink_folio_list and the series' patch 12).

kernel-semantics.md §3.2 and §4: a PMD-size folio gets one whole swap cluster
(folio_alloc_swap), is unmapped (a PMD swap entry with the series when it is
in the swap cache and zswap was never enabled; 512 PTE swap entries otherwise)
and written; failures fall back: F1 (zswap), F2 (no cluster:
THP_SWPOUT_FALLBACK, the folio split first), F6 (an rmap split).  Lazyfree
folios are dropped when clean.  A synchronous device frees the folio at once;
on a disk it stays in the swap cache until a later pass frees it without I/O.
"""

from __future__ import annotations

import pytest

from mm_unit import (RW, THP, Counters, assert_consistent, boot, mmap_thp, pageout, pmd_at, swapon)
from mmshell.mm.access import access_range
from mmshell.mm.config import FailMode, FaultPoint
from mmshell.mm.constants import HPAGE_PMD_NR, SWAP_HAS_CACHE
from mmshell.mm.fork import sys_fork
from mmshell.mm.madvise import sys_madvise
from mmshell.mm.memory import handle_mm_fault
from mmshell.mm.mman import Madv
from mmshell.mm.mmap import sys_mmap, sys_munmap
from mmshell.mm.mremap import sys_mremap
from mmshell.mm.pgtable import F_SWP_EXCLUSIVE, PmdKind, pmd_pgtable, pte_present, swp_entry_to_pte
from mmshell.mm.swap_info import SwapKind
from mmshell.mm.swapops import SwpEntry
from mmshell.mm.lru import ACTIVE, INACTIVE, Lru
from mmshell.mm.swap import lru_pages
from mmshell.mm.vmscan import shrink_folio_list, shrink_lruvec

#: THP_SWPOUT_FALLBACK (F2): the folio was split, then its 512 pages went out one by one.
F2 = {"thp_swpout_fallback": 1, "mthp.swpout_fallback": 1, "thp_split_page": 1, "mthp.split": 1,
      "thp_split_pmd": 1, "mthp.nr_anon": -1}


def pte_offsets(k, a: int) -> list[int]:
    """The swap offsets of the 512 swap PTEs under the PMD at a."""
    return [p >> 17 for p in pmd_pgtable(pmd_at(k, a)).ptes]


@pytest.mark.parametrize("pmd_swap", [True, False], ids=["series", "mainline"])
def test_shrink_folio_list_swaps_a_thp_out_whole_on_zram(pmd_swap: bool) -> None:
    """§3.2 end state on zram (verified for mainline): one cluster at 512, pswpout +512,
    thp_swpout +1, mthp swpout +1, the folio freed at once; mainline leaves 512 swap PTEs
    (thp_split_pmd +1), the series one PMD swap entry (thp_swpout_pmd +1)."""
    k = boot(pmd_swap)
    si = swapon(k)
    a = mmap_thp(k)
    pfn = pmd_at(k, a).pfn
    c = Counters(k)
    assert shrink_folio_list(k, [pfn]) == HPAGE_PMD_NR
    common = {"pswpout": 512, "thp_swpout": 1, "mthp.swpout": 1, "pgfree": 512, "mthp.nr_anon": -1}
    assert c.moved() == {**common, ("thp_swpout_pmd" if pmd_swap else "thp_split_pmd"): 1}
    if pmd_swap:
        assert (pmd_at(k, a).kind, pmd_at(k, a).entry) == (PmdKind.SWAP, SwpEntry(0, 512))
    else:
        assert pte_offsets(k, a) == list(range(512, 1024))
    assert (si.inuse_pages, set(si.swap_map[512:1024]), k.vmstat.nr_swapcached) == (512, {1}, 0)
    assert k.mm(1).nr_ptes == 1                 # VmPTE unchanged: deposit kept or consumed
    assert_consistent(k)


@pytest.mark.parametrize("pmd_swap", [True, False], ids=["series", "mainline"])
def test_on_a_disk_the_thp_stays_cached_until_a_later_pass_frees_it_without_io(pmd_swap: bool) -> None:
    """§3.2 step 8 (verified on loop): after writeback the clean THP stays in the swap cache
    (nr_swapcached +512, mthp nr_anon unchanged); the next reclaim pass frees it with no I/O."""
    k = boot(pmd_swap)
    si = swapon(k, "disk0", kind=SwapKind.DISK)
    a = mmap_thp(k)
    pfn = pmd_at(k, a).pfn
    assert shrink_folio_list(k, [pfn]) == 0
    assert (k.vmstat.nr_swapcached, k.vmstat.mthp["nr_anon"]) == (512, 1)
    assert set(si.swap_map[512:1024]) == {SWAP_HAS_CACHE | 1}
    assert_consistent(k)
    c = Counters(k)
    assert shrink_lruvec(k, None) == HPAGE_PMD_NR
    assert c.moved() == {"pgfree": 512, "mthp.nr_anon": -1}
    assert (k.vmstat.nr_swapcached, si.inuse_pages, set(si.swap_map[512:1024])) == (0, 512, {1})
    assert_consistent(k)


@pytest.mark.parametrize("how", ["swap_cluster fault point", "no free cluster", "swap file"])
def test_thp_swpout_fallback_splits_the_folio_and_swaps_512_small_pages(how: str) -> None:
    """F2: folio_alloc_swap() of the order-9 folio fails (`swap_cluster`; every cluster taken; a
    swap file that cannot allocate large entries): split_folio_to_list(), THP_SWPOUT_FALLBACK,
    then 512 order-0 slots and 512 PTE swap entries; no thp_swpout, no thp_swpout_pmd, even with
    the series.  The head takes the first slot, then the tails from the last page down
    (shrink_folio_list() takes the split's tails from its list's tail): §1.7 measured 1, 512,
    511, ... on a swap file, as the live kernel does (tests/kernel/29_reclaim_split_slot_order)."""
    k = boot(True)
    if how == "swap file":
        si = swapon(k, "file0", kind=SwapKind.FILE)
        a = mmap_thp(k)
    elif how == "no free cluster":
        si = swapon(k, size=(2 * 512 + 2) * 4096)      # clusters: header, one free, a 2-slot tail
        a = mmap_thp(k, 2 * THP)
        pageout(k, a)                                   # takes the only free cluster
        a += THP
    else:
        si = swapon(k)
        a = mmap_thp(k)
        k.config.fail[FaultPoint.SWAP_CLUSTER] = FailMode.ONCE
    c = Counters(k)
    pageout(k, a)
    moved = c.moved()
    # a file is asynchronous: cached, and rotated to the oldest end when the writes end
    freed = {"pgrotated": 512} if how == "swap file" else {"pgfree": 512}
    assert moved == {**F2, "pswpout": 512, **freed}
    offsets = pte_offsets(k, a)
    assert offsets[0] == 1 and offsets[2:] == list(range(511, 1, -1))     # cluster 0 fills first
    assert offsets[1] == {"no free cluster": 1024}.get(how, 512)
    assert pmd_at(k, a).kind is PmdKind.TABLE
    assert si.inuse_pages == (1024 if how == "no free cluster" else 512)
    assert_consistent(k)


@pytest.mark.parametrize("pmd_swap", [True, False], ids=["series", "mainline"])
def test_reclaim_of_a_thp_mapped_across_a_vma_edge_swaps_it_out_whole(pmd_swap: bool) -> None:
    """Issue 9, defect 6: global reclaim of a THP whose second half was mremapped away (one folio
    PTE-mapped in two VMAs, not partially mapped) gets one swap cluster and unmaps both parts:
    thp_swpout +1, pswpout +512, the folio freed (it stayed mapped and activated).  Young PTEs
    in two VMAs are two references (folio_referenced() counts VMAs): the first reclaim only
    activates it and clears them, the second swaps it out (measured on 6.18)."""
    k = boot(pmd_swap)
    swapon(k)
    a = mmap_thp(k)
    sys_mremap(k, k.mm(1), a + THP // 2, THP // 2, THP // 2, None)
    c = Counters(k)
    assert shrink_lruvec(k, None) == 0
    assert c.moved() == {"pgactivate": 512}
    c = Counters(k)
    assert shrink_lruvec(k, None) == HPAGE_PMD_NR
    assert c.moved() == {"pswpout": 512, "thp_swpout": 1, "mthp.swpout": 1, "pgfree": 512, "mthp.nr_anon": -1}
    assert pte_offsets(k, a)[:256] == list(range(512, 768))
    assert_consistent(k)


@pytest.mark.parametrize("pmd_swap", [True, False], ids=["series", "mainline"])
def test_reclaim_splits_a_partially_mapped_thp_first(pmd_swap: bool) -> None:
    """Issue 9, defect 6, 6.12+ shrink_folio_list(): "Split partially mapped folios right away.
    We can free the unmapped pages without IO."  Half a THP munmapped (queued as partially
    mapped): the split's folios go on reclaim's list, the last page first; the 256 unmapped
    ones take a slot each and leave the swap cache without I/O (folio_free_swap(), nothing
    references the slot), the 256 mapped ones go out as order-0 folios: 512 reclaimed.  The
    freed slots are not taken again while the per-CPU cursor moves on through the cluster
    (SwapInfo.alloc_slot_next()); once it passes the cluster's end, the slow path takes a free
    cluster before cluster 0, which the allocations left on the fragmented list: the head
    page has slot 1, the second page slot 512 (measured on 6.18.44, fuzz 16161:589)."""
    k = boot(pmd_swap)
    si = swapon(k)
    a = mmap_thp(k)
    sys_munmap(k, k.mm(1), a + THP // 2, THP // 2)
    c = Counters(k)
    assert shrink_lruvec(k, None) == 512
    assert c.moved() == {"thp_split_page": 1, "mthp.split": 1, "mthp.nr_anon": -1,
                         "mthp.nr_anon_partially_mapped": -1, "pswpout": 256, "pgfree": 512}
    offsets = pte_offsets(k, a)
    assert offsets[:2] == [1, 512] and offsets[2:256] == list(range(511, 257, -1)) and si.inuse_pages == 256
    assert_consistent(k)


def test_thp_pageout_without_any_swap_device_still_splits() -> None:
    """docs/semantics.md 'Differences' (measured on 6.18.44): with no swap at all the THP is split
    (F2 counters) and every page, failing to get a slot, is activated (pgactivate +512)."""
    k = boot()
    a = mmap_thp(k)
    c = Counters(k)
    pageout(k, a)
    assert c.moved() == {**F2, "pgactivate": 512}
    assert all(pte_present(p) for p in pmd_pgtable(pmd_at(k, a)).ptes)
    assert k.lru.nr_folios(ACTIVE) == HPAGE_PMD_NR and not k.lru.nr_folios(INACTIVE)
    assert_consistent(k)


def test_zswap_once_enabled_forces_the_mainline_split() -> None:
    """F1 (v1 gates on zswap_never_enabled()): with zswap on, the series takes the mainline
    path: PMD split, 512 PTE entries, pages stored in zswap (zswpout +512, mthp zswpout +1),
    no pswpout, no thp_swpout, no thp_swpout_pmd."""
    k = boot(True, zswap=True)
    swapon(k)
    a = mmap_thp(k)
    c = Counters(k)
    pageout(k, a)
    assert c.moved() == {"thp_split_pmd": 1, "zswpout": 512, "mthp.zswpout": 1, "pgfree": 512, "mthp.nr_anon": -1}
    assert pte_offsets(k, a) == list(range(512, 1024))
    assert_consistent(k)


@pytest.mark.parametrize("point", [FaultPoint.ZSWAP, FaultPoint.RMAP_SPLIT])
def test_series_falls_back_to_pte_swap_entries(point: FaultPoint) -> None:
    """F1 as zswap_never_enabled() sees it (zswap enabled once, its store rejected) and F6 (an
    rmap walker split the PMD mapping of the swap-cache folio): the whole THP still goes out
    (thp_swpout +1, one cluster), but as 512 PTE swap entries after a PMD split."""
    k = boot(True)
    swapon(k)
    a = mmap_thp(k)
    k.config.fail[point] = FailMode.ONCE
    c = Counters(k)
    pageout(k, a)
    assert c.moved() == {"thp_split_pmd": 1, "pswpout": 512, "thp_swpout": 1, "mthp.swpout": 1, "pgfree": 512,
                         "mthp.nr_anon": -1}
    assert pmd_pgtable(pmd_at(k, a)).ptes[3] == swp_entry_to_pte(0, 515, F_SWP_EXCLUSIVE)
    assert_consistent(k)


@pytest.mark.parametrize("pmd_swap", [True, False], ids=["series", "mainline"])
def test_zero_filled_thp_goes_to_the_zeromap_without_io(pmd_swap: bool) -> None:
    """§3.2 step 7: an all-zero THP sets the zeromap (swpout_zero +512), no pswpout, no
    thp_swpout; with the series the PMD swap entry is still installed (thp_swpout_pmd +1)."""
    k = boot(pmd_swap)
    si = swapon(k)
    mm = k.mm(1)
    a = sys_mmap(k, mm, THP, RW, Madv.MADV_HUGEPAGE, None)
    vma = mm.find_vma(a)
    assert vma is not None
    handle_mm_fault(k, mm, vma, a, True)                # a THP, never written: zeros
    c = Counters(k)
    pageout(k, a)
    assert c.moved() == {"swpout_zero": 512, "pgfree": 512, "mthp.nr_anon": -1,
                         ("thp_swpout_pmd" if pmd_swap else "thp_split_pmd"): 1}
    assert set(si.zeromap[512:1024]) == {1} and si.inuse_pages == 512
    assert_consistent(k)


def test_pageout_skips_a_thp_shared_with_a_child_but_global_reclaim_takes_it() -> None:
    """§3.2 (verified): MADV_PAGEOUT skips a folio that may be mapped by another process;
    global reclaim (shrink_lruvec) unmaps it everywhere: two PMD swap entries, counts 2."""
    k = boot(True)
    si = swapon(k)
    a = mmap_thp(k)
    sys_fork(k, k.mm(1))
    c = Counters(k)
    pageout(k, a)
    assert c.moved() == {} and pmd_at(k, a).kind is PmdKind.HUGE
    assert shrink_lruvec(k, None) == HPAGE_PMD_NR
    assert c.moved() == {"pswpout": 512, "thp_swpout": 1, "mthp.swpout": 1, "thp_swpout_pmd": 2, "pgfree": 512,
                         "mthp.nr_anon": -1}
    assert pmd_at(k, a, 1).kind is pmd_at(k, a, 2).kind is PmdKind.SWAP
    assert set(si.swap_map[512:1024]) == {2}
    assert_consistent(k)


def test_lazyfree_thp_is_freed_without_swap() -> None:
    """§3.10: reclaim of a clean lazyfree THP frees it (pglazyfreed +512) with no swap I/O and no
    slot used; the PMD was split on the way (measured, 46_lazyfree_thp_reclaim)."""
    k = boot()
    si = swapon(k)
    a = mmap_thp(k)
    sys_madvise(k, k.mm(1), a, THP, Madv.MADV_FREE)
    c = Counters(k)
    assert shrink_lruvec(k, None) == HPAGE_PMD_NR
    assert c.moved() == {"pglazyfreed": 512, "pgfree": 512, "thp_split_pmd": 1, "mthp.nr_anon": -1}
    assert si.inuse_pages == 0 and pmd_pgtable(pmd_at(k, a)).is_empty()
    assert_consistent(k)


def test_redirtied_lazyfree_thp_is_activated_not_freed() -> None:
    """A write after MADV_FREE: the folio is swap-backed again and activated (pgactivate +512)."""
    k = boot()
    swapon(k)
    a = mmap_thp(k)
    mm = k.mm(1)
    sys_madvise(k, mm, a, THP, Madv.MADV_FREE)
    access_range(k, mm, a, a + 4096, True)
    c = Counters(k)
    assert shrink_lruvec(k, None) == 0
    assert c.moved() == {"pgactivate": 512, "thp_split_pmd": 1}
    assert k.lru.active() == [0x200]
    assert_consistent(k)


def test_lru_keeps_folios_oldest_first_and_counts_pages_by_order() -> None:
    """New anon folios go on the inactive list (lru_cache_add_inactive_or_unevictable);
    NR_INACTIVE_ANON / NR_ACTIVE_ANON count pages: 512 for a THP, 1 for a small folio."""
    k = boot()
    a = mmap_thp(k)
    mm = k.mm(1)
    b = sys_mmap(k, mm, 4096, RW, None, None)
    access_range(k, mm, b, b + 4096, True)
    assert k.lru.oldest_first()[0] == pmd_at(k, a).pfn and k.lru.nr_folios(INACTIVE) == 2
    assert (lru_pages(k, INACTIVE), lru_pages(k, ACTIVE)) == (513, 0)
    k.lru.activate(0x200)
    assert (lru_pages(k, INACTIVE), lru_pages(k, ACTIVE)) == (1, 512)
    assert k.lru.deactivate(0x200) and not k.lru.deactivate(0x200)
    assert k.lru.oldest_first()[-1] == 0x200
    assert isinstance(k.lru, Lru)
    assert_consistent(k)
