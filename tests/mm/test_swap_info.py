"""struct swap_info_struct (mmshell/mm/swap_info.py; mm/swapfile.c, include/linux/swap.h).

kernel-semantics.md §1.6-1.7: per slot a 6.18 swap_map byte, the reference
count in its low bits (1..SWAP_MAP_MAX = 0x3e) with SWAP_HAS_CACHE (0x40) for
the swap cache, and past SWAP_MAP_MAX a count continued in continuation pages
(COUNT_CONTINUED 0x80).  Slots come in 512-slot clusters; cluster 0 holds the
header (slot 0, SWAP_MAP_BAD), so a PMD-size allocation on a fresh device
starts at slot 512.
"""

from __future__ import annotations

import pytest

from mmshell.mm.constants import (COUNT_CONTINUED, PAGE_SIZE, SWAP_HAS_CACHE, SWAP_MAP_BAD, SWAP_MAP_MAX,
                                  SWAPFILE_CLUSTER)
from mmshell.mm.swap_info import SWP, SwapInfo, SwapKind


def device(pages: int = 4 * SWAPFILE_CLUSTER, kind: SwapKind = SwapKind.ZRAM) -> SwapInfo:
    return SwapInfo(type=0, name="dev", kind=kind, prio=-2, pages=pages)


def order0(si: SwapInfo) -> int | None:
    """One order-0 folio_alloc_swap() on a device first of the priority list whose per-CPU
    cluster it has: the cursor (swap_alloc_fast()), else the slow path."""
    s = si.alloc_slot_next()
    return s if s is not None else si.alloc_slot()


def test_swap_map_byte_layout_constants() -> None:
    """include/linux/swap.h (6.18): the count bits, the cache bit, the bad marker, continuation."""
    assert (SWAP_MAP_MAX, SWAP_MAP_BAD, SWAP_HAS_CACHE, COUNT_CONTINUED) == (0x3E, 0x3F, 0x40, 0x80)
    assert SWAPFILE_CLUSTER == 512


def test_fresh_device_has_the_header_in_slot_0_of_cluster_0() -> None:
    """mkswap's header is slot 0: SWAP_MAP_BAD, never allocated, cluster 0 never wholly free."""
    si = device()
    assert si.swap_map[0] == SWAP_MAP_BAD
    assert si.swap_count(0) == 0 and not si.has_cache(0)
    assert list(si.cluster_used) == [1, 0, 0, 0]
    assert si.inuse_pages == 0


def test_partial_last_cluster_counts_its_missing_slots_as_used() -> None:
    """A device of 1026 slots has a third cluster of only 2 slots: it can never hold 2 MiB."""
    si = device(pages=2 * SWAPFILE_CLUSTER + 2)
    assert list(si.cluster_used) == [1, 0, SWAPFILE_CLUSTER - 2]
    assert si.alloc_cluster() == SWAPFILE_CLUSTER
    assert si.alloc_cluster() is None


@pytest.mark.parametrize("kind, flags, synchronous", [
    (SwapKind.ZRAM, SWP.BLKDEV | SWP.SOLIDSTATE | SWP.SYNCHRONOUS_IO | SWP.STABLE_WRITES, True),
    (SwapKind.DISK, SWP.BLKDEV, False),
    (SwapKind.FILE, SWP(0), False),
])
def test_device_kind_flags(kind: SwapKind, flags: SWP, synchronous: bool) -> None:
    """§1.6/1.8: zram is a synchronous, stable-writes block device; a disk is an asynchronous
    block device; a swap file is no block device (SWP_BLKDEV clear: no large allocations)."""
    si = device(kind=kind)
    assert si.flags == flags | SWP.USED | SWP.WRITEOK
    assert si.synchronous is synchronous


def test_alloc_cluster_takes_whole_free_clusters_in_order() -> None:
    """An order-9 allocation takes one entirely free cluster, naturally aligned: on a fresh
    device 512, 1024, 1536, then nothing (cluster 0 holds the header)."""
    si = device()
    assert [si.alloc_cluster() for _ in range(4)] == [512, 1024, 1536, None]
    assert list(si.cluster_used) == [1, 512, 512, 512]
    assert list(si.cluster_order) == [0, 9, 9, 9]
    assert si.inuse_pages == 3 * SWAPFILE_CLUSTER


def test_freed_cluster_is_allocated_again() -> None:
    """swap_entries_free(): a cluster whose last slot is freed goes back on the free list, at
    its tail (free_cluster()): the clusters that were free before it are taken first
    (measured on 6.18.44: a THP swapped out to a zram device and read back frees cluster 1,
    and the next two THPs take 1024 and 1536)."""
    si = device()
    assert si.alloc_cluster() == 512
    si.free_slots(list(range(512, 1024)))
    assert si.inuse_pages == 0 and si.cluster_used[1] == 0
    assert si.free_list() == [2, 3, 1]
    assert [si.alloc_cluster() for _ in range(4)] == [1024, 1536, 512, None]


def test_dup_and_put_keep_the_cache_bit() -> None:
    """A cached slot (SWAP_HAS_CACHE only) gains and loses references without losing the bit;
    at count 0 it is still allocated (cache only), so put() does not report it free."""
    si = device()
    si.swap_map[5] = SWAP_HAS_CACHE
    si.dup(5)
    assert si.swap_map[5] == SWAP_HAS_CACHE | 1 and si.swap_count(5) == 1 and si.has_cache(5)
    assert list(si.put(5)) == []
    assert si.swap_map[5] == SWAP_HAS_CACHE
    assert si.any_count(5, 1) is False


def test_put_reports_the_slots_that_became_free() -> None:
    """Dropping the last reference of an uncached slot frees it; a run reports each such slot."""
    si = device()
    si.swap_map[10:14] = bytes([1, 2, SWAP_HAS_CACHE | 1, 1])
    assert list(si.put(10, 4)) == [10, 13]
    assert list(si.swap_map[10:14]) == [0, 1, SWAP_HAS_CACHE, 0]


def test_dup_of_a_whole_cluster_raises_each_of_the_512_counts() -> None:
    """folio_dup_swap() of a PMD swap entry: +1 on each of its 512 slots (§1.6 'S')."""
    si = device()
    off = si.alloc_cluster()
    assert off is not None
    si.swap_map[off:off + 512] = bytes([SWAP_HAS_CACHE]) * 512
    si.dup(off, 512)
    si.dup(off, 512)
    assert set(si.swap_map[off:off + 512]) == {SWAP_HAS_CACHE | 2}
    assert {si.swap_count(s) for s in range(off, off + 512)} == {2}


def test_count_continues_past_swap_map_max() -> None:
    """__swap_duplicate(): 1..0x3e in the byte; the 63rd reference sets COUNT_CONTINUED with the
    byte's own count back at 0 and one unit (SWAP_MAP_MAX + 1) in the continuation page."""
    si = device()
    si.swap_map[1] = SWAP_HAS_CACHE
    si.add_swap_count_continuation(1)
    seen = {}
    for n in range(1, 127):
        si.dup(1)
        seen[n] = (si.swap_count(1), si.swap_map[1], si.cont.get(1, 0))
    assert seen[SWAP_MAP_MAX] == (62, SWAP_HAS_CACHE | 0x3E, 0)
    assert seen[63] == (63, SWAP_HAS_CACHE | COUNT_CONTINUED, 1)
    assert seen[64] == (64, SWAP_HAS_CACHE | COUNT_CONTINUED | 1, 1)
    assert seen[125] == (125, SWAP_HAS_CACHE | COUNT_CONTINUED | 0x3E, 1)
    assert seen[126] == (126, SWAP_HAS_CACHE | COUNT_CONTINUED, 2)
    assert all(count == n for n, (count, _, _) in seen.items())


def test_count_continuation_unwinds_to_a_plain_count() -> None:
    """swap_count_continued(SWAP_MAP_MAX... down): dropping back below 63 leaves a plain byte
    and no continuation; the last put frees the uncached slot."""
    si = device()
    si.add_swap_count_continuation(1)
    for _ in range(126):
        si.dup(1)
    counts = []
    for _ in range(126):
        freed = si.put(1)
        counts.append(si.swap_count(1))
    assert counts == list(range(125, -1, -1))
    assert list(freed) == [1]
    assert si.swap_map[1] == 0 and si.cont == {}


def test_need_continuation_only_at_swap_map_max_without_a_page() -> None:
    """add_swap_count_continuation() attaches one page per page of swap_map (4096 slots)."""
    si = device(pages=2 * PAGE_SIZE)
    si.swap_map[1] = 0x3D
    assert not si.need_continuation(1)
    si.swap_map[1] = SWAP_MAP_MAX
    si.swap_map[PAGE_SIZE + 1] = SWAP_MAP_MAX
    assert si.need_continuation(1) and si.need_continuation(PAGE_SIZE + 1)
    si.add_swap_count_continuation(1)
    si.swap_map[2] = SWAP_MAP_MAX
    assert not si.need_continuation(1) and not si.need_continuation(2)
    assert si.need_continuation(PAGE_SIZE + 1)


def test_free_slots_forgets_the_slot_contents() -> None:
    """A freed slot keeps no data, zeromap or zswap bit (the invariant checker demands it)."""
    si = device()
    slots = []
    for _ in range(3):
        s = order0(si)
        assert s is not None
        si.swap_map[s] = 1
        si.data[s], si.zeromap[s], si.zswap[s] = 0xABC, 1, 1
        slots.append(s)
    assert slots == [1, 2, 3] and si.inuse_pages == 3
    for s in slots:
        assert list(si.put(s)) == [s]
    si.free_slots(slots)
    assert [(si.data[s], si.zeromap[s], si.zswap[s]) for s in slots] == [(0, 0, 0)] * 3
    assert si.inuse_pages == 0 and si.cluster_used[0] == 1


def test_order0_slow_path_takes_a_nonfull_then_a_free_then_a_fragmented_cluster() -> None:
    """cluster_alloc_swap_entry() of order 0: after an allocation a partly used cluster is on
    the fragmented list (relocate_cluster()), after a free on the non-full one
    (partial_free_cluster()); the slow path tries non-full clusters, then a free one, then a
    fragmented one.  Cluster 0 starts on the non-full list (its header)."""
    si = device(pages=2 * SWAPFILE_CLUSTER)
    assert si.alloc_slot() == 1                     # cluster 0, non-full from swapon: now fragmented
    assert si.alloc_slot() == SWAPFILE_CLUSTER      # not slot 2: a free cluster comes first
    assert si.alloc_slot() == 2                     # no free cluster left: the fragmented ones
    si.swap_map[1] = 0
    si.free_slots([1])                              # cluster 0 is non-full again
    assert si.alloc_slot() == 1
    assert list(si.cluster_frag) == [1, 1]
    si2 = device(pages=2 * SWAPFILE_CLUSTER)
    assert si2.alloc_cluster() == SWAPFILE_CLUSTER
    si2.swap_map[SWAPFILE_CLUSTER + 3] = 0
    si2.free_slots([SWAPFILE_CLUSTER + 3])          # a THP's cluster, partly freed: nonfull_clusters[9]
    assert si2.alloc_slot() == 1                    # order-0 lists first, stealing last
    assert si2.cluster_order[1] == 9


def test_allocated_slots_are_taken_with_the_cache_bit_at_once() -> None:
    """cluster_alloc_range() writes `usage` (SWAP_HAS_CACHE) into swap_map as it allocates, so
    the next allocation cannot hand out the same slot before the folio enters the swap cache."""
    si = device()
    assert [order0(si), order0(si)] == [1, 2]
    assert si.swap_map[1:3] == bytes((SWAP_HAS_CACHE, SWAP_HAS_CACHE))
    off = si.alloc_cluster()
    assert off == SWAPFILE_CLUSTER and set(si.swap_map[off:off + SWAPFILE_CLUSTER]) == {SWAP_HAS_CACHE}
    assert si.inuse_pages == 2 + SWAPFILE_CLUSTER


@pytest.mark.parametrize("seed", range(12))
def test_alloc_slots_gives_what_alloc_slot_gives_one_at_a_time(seed: int) -> None:
    """alloc_slots(n) (batched order-0 reclaim) takes the slots, cluster state and order-0
    cursor that n folio_alloc_swap() calls take (the cursor, then alloc_slot()), from
    fragmented devices: partly used order-0 clusters, THP clusters partly freed (order-0
    stealing), a partial last cluster, and a
    device that runs out before n."""
    import random
    from copy import deepcopy

    rng = random.Random(seed)
    si = device(pages=5 * SWAPFILE_CLUSTER + rng.randrange(SWAPFILE_CLUSTER))
    for _ in range(rng.randrange(4)):
        if (off := si.alloc_cluster()) is not None:       # a THP's cluster, some of its slots freed
            si.swap_map[off:off + SWAPFILE_CLUSTER] = b"\x01" * SWAPFILE_CLUSTER
            gone = sorted(rng.sample(range(off, off + SWAPFILE_CLUSTER), rng.randrange(SWAPFILE_CLUSTER)))
            for s in gone:
                si.swap_map[s] = 0
            si.free_slots(gone)
    taken = [s for _ in range(rng.randrange(2 * SWAPFILE_CLUSTER)) if (s := order0(si)) is not None]
    freed = sorted(rng.sample(taken, len(taken) // 3))
    for s in freed:
        si.swap_map[s] = 0
    si.free_slots(freed)
    n = rng.choice([1, 7, 300, 700, 5 * SWAPFILE_CLUSTER])
    fast = rng.random() < 0.5
    batched, one_by_one = deepcopy(si), deepcopy(si)
    got = batched.alloc_slots(n, fast)

    def folio_alloc_swap(d: SwapInfo, i: int) -> int | None:
        # the per-CPU cluster (the cursor) first once it is this device's, then the slow path
        s = d.alloc_slot_next() if fast or i else None
        return s if s is not None else d.alloc_slot()
    want = [s for i in range(n) if (s := folio_alloc_swap(one_by_one, i)) is not None]
    assert got == want

    def slots(d: SwapInfo) -> tuple:
        return (bytes(d.swap_map), list(d.cluster_used), bytes(d.cluster_order), bytes(d.cluster_frag),
                d.next_order0, d.inuse_pages,
                d.free_list())
    assert slots(batched) == slots(one_by_one)
