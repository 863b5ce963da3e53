"""Swap slot references (mmshell/mm/swap_slots.py; mm/swapfile.c).

kernel-semantics.md §1.6-1.8 and §3.2 step 3: folio_alloc_swap() gives a
PMD-size folio one wholly free 512-slot cluster on a block device (never on a
swap file), devices tried by priority with equal priorities taking turns;
swap_duplicate() raises counts, continuing them past SWAP_MAP_MAX;
free_swap_and_cache_nr() drops references and reclaims a swap-cache folio whose
slots are left with the cache bit only; vm_swap_full() is "more than half used".
"""

from __future__ import annotations

import pytest

from mm_unit import (M, THP, Counters, assert_consistent, boot, free_clusters, mmap_small, mmap_thp, pageout, pmd_at,
                     pte_at, swapon, swapped_thp)
from mmshell.mm.config import FailMode, FaultPoint
from mmshell.mm.constants import COUNT_CONTINUED, SWAP_HAS_CACHE, SWAP_MAP_MAX
from mmshell.mm.errors import MmError
from mmshell.mm.fork import sys_fork
from mmshell.mm.madvise import sys_madvise
from mmshell.mm.mman import Madv
from mmshell.mm.mmap import sys_munmap
from mmshell.mm.pgtable import pte_pfn, pte_to_swp_entry
from mmshell.mm.swap_info import SwapKind
from mmshell.mm.swap_slots import folio_alloc_swap, swap_duplicate, vm_swap_full
from mmshell.mm.swapops import SwpEntry


def test_folio_alloc_swap_gives_a_thp_a_whole_aligned_cluster() -> None:
    """§1.7 (verified on zram): the first 2 MiB allocation on a fresh device is slot 512, the
    next 1024; each folio enters the swap cache over its 512 slots (SWAP_HAS_CACHE, count 0)."""
    k = boot()
    si = swapon(k)
    a = mmap_thp(k, 2 * THP)
    first, second = pmd_at(k, a).pfn, pmd_at(k, a + THP).pfn
    assert folio_alloc_swap(k, first) and folio_alloc_swap(k, second)
    assert k.folio_swap == {first: SwpEntry(0, 512), second: SwpEntry(0, 1024)}
    assert set(si.swap_map[512:1536]) == {SWAP_HAS_CACHE}
    assert si.cache[512] == first and si.cache[1535] == second
    assert (si.inuse_pages, k.vmstat.nr_swapcached) == (1024, 1024)
    assert list(si.cluster_order[:3]) == [0, 9, 9]
    assert_consistent(k)


def test_folio_alloc_swap_gives_a_small_folio_the_lowest_free_slot() -> None:
    """An order-0 allocation fills cluster 0 from slot 1 (slot 0 is the header)."""
    k = boot()
    si = swapon(k)
    a = mmap_small(k, 2)
    pfns = [pte_pfn(pte_at(k, a + i * 4096)) for i in range(2)]
    assert all(folio_alloc_swap(k, p) for p in pfns)
    assert [k.folio_swap[p] for p in pfns] == [SwpEntry(0, 1), SwpEntry(0, 2)]
    assert si.swap_map[1:3] == bytes([SWAP_HAS_CACHE] * 2)
    assert_consistent(k)


def test_folio_alloc_swap_fails_a_thp_when_no_cluster_is_free() -> None:
    """No wholly free cluster left (1026 slots: cluster 1 taken, cluster 0 has the header, the
    2-slot tail cluster is never whole): the order-9 allocation fails and changes nothing."""
    k = boot()
    si = swapon(k, size=(2 * 512 + 2) * 4096)
    a = mmap_thp(k, 2 * THP)
    assert folio_alloc_swap(k, pmd_at(k, a).pfn)
    assert free_clusters(si) == 0
    before = (bytes(si.swap_map), si.inuse_pages, dict(k.folio_swap))
    assert not folio_alloc_swap(k, pmd_at(k, a + THP).pfn)
    assert (bytes(si.swap_map), si.inuse_pages, dict(k.folio_swap)) == before
    assert_consistent(k)


def test_small_folio_takes_a_free_slot_of_a_partly_freed_thp_cluster() -> None:
    """cluster_alloc_swap_entry(order 0): after the order-0 and free clusters, the nonfull and
    frag clusters of every higher order (SWAP_NR_ORDERS) are scanned, since any of their free
    slots can hold one page.  A 1026-slot device: a THP's cluster (512..1023) half freed by
    munmap, cluster 0 and the 2-slot tail then filled by 513 small pages: the 514th small page
    must get one of the 256 free slots of the THP's cluster."""
    k = boot()
    si = swapon(k, size=(2 * 512 + 2) * 4096)
    a = mmap_thp(k)
    pageout(k, a)
    sys_munmap(k, k.mm(1), a, M)
    assert (si.inuse_pages, list(si.cluster_used)) == (256, [1, 256, 510])
    b = mmap_small(k, 514)
    c = Counters(k)
    sys_madvise(k, k.mm(1), b, 514 * 4096, Madv.MADV_PAGEOUT)
    assert "pgactivate" not in c.moved()
    assert 512 <= pte_to_swp_entry(pte_at(k, b + 513 * 4096)).offset < 768
    assert si.inuse_pages == 256 + 514
    assert_consistent(k)


def test_swap_file_cannot_allocate_a_cluster_but_gives_small_slots() -> None:
    """swapfile.c: 'Swapfile is not block device so unable to allocate large entries' (§1.7)."""
    k = boot()
    si = swapon(k, "file0", kind=SwapKind.FILE)
    a = mmap_thp(k)
    pfn = pmd_at(k, a).pfn
    assert free_clusters(si) == si.nr_clusters - 1
    assert not folio_alloc_swap(k, pfn)
    assert si.inuse_pages == 0 and not k.folio_swap
    assert_consistent(k)


def test_thp_tries_only_the_first_device() -> None:
    """swap_alloc_slow(): a large folio tries the first device of the priority list only ("if
    (order) return false"); a swap file there (no large entries) makes it fall back, even with
    a block device behind it (measured on 6.18.44, tests/kernel/89_thp_first_device_only)."""
    k = boot()
    swapon(k, "file0", kind=SwapKind.FILE, prio=10)
    swapon(k, "zram0", prio=5)
    a = mmap_thp(k)
    assert not folio_alloc_swap(k, pmd_at(k, a).pfn)
    assert pmd_at(k, a).pfn not in k.folio_swap
    assert_consistent(k)


def test_equal_priority_devices_take_turns() -> None:
    """plist rotation (swap_avail_head): after each allocation the device used goes last among
    its equal-priority peers: a, b, a."""
    k = boot()
    swapon(k, "a", prio=5)
    swapon(k, "b", prio=5)
    a = mmap_thp(k, 3 * THP)
    pfns = [pmd_at(k, a + i * THP).pfn for i in range(3)]
    assert all(folio_alloc_swap(k, p) for p in pfns)
    assert [k.folio_swap[p] for p in pfns] == [SwpEntry(0, 512), SwpEntry(1, 512), SwpEntry(0, 1024)]
    assert_consistent(k)


@pytest.mark.parametrize("point, thp_fails, small_fails", [
    (FaultPoint.SWAP_CLUSTER, True, False),
    (FaultPoint.MEMCG_CHARGE, True, True),
])
def test_folio_alloc_swap_fault_points(point: FaultPoint, thp_fails: bool, small_fails: bool) -> None:
    """`swap_cluster` fails only the order-9 allocation; `memcg_charge`
    (mem_cgroup_try_charge_swap) fails any."""
    k = boot()
    si = swapon(k)
    a = mmap_thp(k)
    small = pte_pfn(pte_at(k, mmap_small(k, 1)))
    k.config.fail[point] = FailMode.ON
    assert folio_alloc_swap(k, pmd_at(k, a).pfn) is not thp_fails
    assert folio_alloc_swap(k, small) is not small_fails
    assert si.inuse_pages == (0 if small_fails else 1)
    assert_consistent(k)


def test_fail_once_fails_the_next_attempt_only() -> None:
    """FailMode.ONCE: the first order-9 allocation fails, the fault point turns itself off, the
    retry takes the cluster at 512."""
    k = boot()
    swapon(k)
    pfn = pmd_at(k, mmap_thp(k)).pfn
    k.config.fail[FaultPoint.SWAP_CLUSTER] = FailMode.ONCE
    assert not folio_alloc_swap(k, pfn)
    assert k.config.fail[FaultPoint.SWAP_CLUSTER] is FailMode.OFF
    assert folio_alloc_swap(k, pfn) and k.folio_swap[pfn] == SwpEntry(0, 512)
    assert_consistent(k)


def test_swap_duplicate_continues_the_count_past_swap_map_max() -> None:
    """swap_duplicate() from fork's copy_nonpresent_pte(): 62 references fit the swap_map byte
    (0x3e); the 63rd needs a continuation page, allocated on first need
    (add_swap_count_continuation), and the byte becomes COUNT_CONTINUED with count 63."""
    k = boot()
    si = swapon(k)
    a = mmap_small(k, 1)
    pageout(k, a, 4096)
    entry = pte_to_swp_entry(pte_at(k, a))
    assert entry == SwpEntry(0, 1) and si.swap_map[1] == 1
    for _ in range(SWAP_MAP_MAX - 1):
        sys_fork(k, k.mm(1))
    assert (si.swap_count(1), si.swap_map[1], si.cont_pages) == (62, 0x3E, set())
    sys_fork(k, k.mm(1))
    assert (si.swap_count(1), si.swap_map[1], si.cont, si.cont_pages) == (63, COUNT_CONTINUED, {1: 1}, {0})
    assert_consistent(k)


def test_swap_duplicate_without_a_continuation_page_is_enomem_and_changes_nothing() -> None:
    """`swap_cont` fault point: add_swap_count_continuation(GFP_ATOMIC) fails and
    swap_duplicate() returns -ENOMEM before raising any of the 512 counts of a PMD swap entry
    whose slots are at SWAP_MAP_MAX (62 processes share it)."""
    k, si, a = swapped_thp()
    entry = pmd_at(k, a).entry
    for _ in range(SWAP_MAP_MAX - 1):
        sys_fork(k, k.mm(1))
    assert set(si.swap_map[512:1024]) == {SWAP_MAP_MAX}
    before = bytes(si.swap_map)
    k.config.fail[FaultPoint.SWAP_CONT] = FailMode.ON
    with pytest.raises(MmError) as e:
        swap_duplicate(k, entry, 512)
    assert e.value.errno == "ENOMEM"
    assert bytes(si.swap_map) == before and si.cont == {} and si.cont_pages == set()
    assert_consistent(k)


def test_free_swap_and_cache_nr_frees_uncached_slots_and_their_cluster() -> None:
    """zap of a PMD swap entry on zram (§3.6 series): 512 references dropped, the slots and the
    cluster free again, Used back to 0."""
    k, si, a = swapped_thp()
    assert si.inuse_pages == 512 and si.cluster_used[1] == 512
    sys_madvise(k, k.mm(1), a, THP, Madv.MADV_DONTNEED)
    assert si.inuse_pages == 0 and si.cluster_used[1] == 0 and not any(si.swap_map[1:])
    assert free_clusters(si) == si.nr_clusters - 1
    assert_consistent(k)


def test_free_swap_and_cache_nr_reclaims_a_cached_folio_only_when_every_slot_is_cache_only() -> None:
    """§3.6 (verified on loop): after swap-out to a disk the THP stays in the swap cache; zapping
    half of its 512 swap PTEs leaves it (other slots still referenced); zapping the rest
    reclaims it (__try_to_reclaim_swap): nr_swapcached -512, mthp nr_anon -1, Used 0."""
    k = boot(pmd_swap=False)
    si = swapon(k, "disk0", kind=SwapKind.DISK)
    a = mmap_thp(k)
    pageout(k, a)
    assert k.vmstat.nr_swapcached == 512 and si.swap_map[512] == SWAP_HAS_CACHE | 1
    sys_madvise(k, k.mm(1), a, M, Madv.MADV_DONTNEED)
    assert k.vmstat.nr_swapcached == 512 and si.inuse_pages == 512
    assert (si.swap_map[512], si.swap_map[1023]) == (SWAP_HAS_CACHE, SWAP_HAS_CACHE | 1)
    c = Counters(k)
    sys_madvise(k, k.mm(1), a + M, M, Madv.MADV_DONTNEED)
    assert c.moved() == {"pgfree": 512, "mthp.nr_anon": -1}
    assert (k.vmstat.nr_swapcached, si.inuse_pages, k.folio_swap) == (0, 0, {})
    assert_consistent(k)


def test_vm_swap_full_is_more_than_half_of_all_swap_in_use() -> None:
    """vm_swap_full(): nr_swap_pages * 2 < total_swap_pages.  A 4 MiB device has 1023 usable
    slots: 511 used is not full, 512 is."""
    k = boot()
    assert not vm_swap_full(k)                 # no swap at all
    swapon(k, size=4 * M)
    mm = k.mm(1)
    a = mmap_small(k, 512)
    sys_madvise(k, mm, a, 511 * 4096, Madv.MADV_PAGEOUT)
    assert k.active_swap()[0].inuse_pages == 511 and not vm_swap_full(k)
    sys_madvise(k, mm, a + 511 * 4096, 4096, Madv.MADV_PAGEOUT)
    assert k.active_swap()[0].inuse_pages == 512 and vm_swap_full(k)
    assert_consistent(k)


def test_swap_dup_prepare_stops_at_the_slot_whose_continuation_cannot_be_had() -> None:
    """try_to_unmap_one()'s swap_duplicate() loop: a slot at SWAP_MAP_MAX needs a continuation
    page (GFP_ATOMIC); when that fails (`swap_cont`), the unmap stops at that slot (F8 for a
    PMD swap entry).  Room made for the slots before it is kept; with the page, all pass."""
    from mmshell.mm.swap_slots import swap_dup_prepare

    k = boot()
    si = swapon(k)
    si.swap_map[700] = SWAP_MAP_MAX                 # slot 700: one more reference needs the page
    assert swap_dup_prepare(k, si, 600, 10) == 10 and not si.cont_pages      # far below the max
    k.config.fail[FaultPoint.SWAP_CONT] = FailMode.ONCE
    assert swap_dup_prepare(k, si, 650, 100) == 50 and not si.cont_pages     # stops at 700
    assert swap_dup_prepare(k, si, 650, 100) == 100 and si.cont_pages == {0}  # "once" is spent
