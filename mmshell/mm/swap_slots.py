"""Swap slot references (mm/swapfile.c): allocation, duplication and freeing of slots.

Per-device slot state is `SwapInfo` (swap_info.py); this module holds what the
fault, unmap, fork and reclaim paths do to slots across the machine: choosing
a device by priority (folio_alloc_swap), swap_duplicate with count
continuation, and free_swap_and_cache_nr, which also reclaims a swap-cache
folio whose slots just lost their last reference.

The kernel keeps these in mm/swapfile.c beside swapon/swapoff; here they sit
below the fault, unmap and reclaim paths that call them, and swapoff's unuse
walk, which calls those paths, stays in swapfile.py above them (the simulation's
modules may not import each other in a circle).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .config import FaultPoint
from .constants import SWAP_HAS_CACHE, SWAPFILE_CLUSTER
from .errors import MmError
from .folio import PG
from .swap import free_folio
from .swap_info import SWP, SwapInfo
from .swap_state import add_to_swap_cache, delete_from_swap_cache
from .swapops import SwpEntry

if TYPE_CHECKING:
    from .kernel import Kernel


def folio_alloc_swap(k: "Kernel", pfn: int) -> bool:
    """folio_alloc_swap(): give the folio swap slots and put it in the swap cache.

    A PMD-size folio needs one wholly free cluster on the first device of the
    priority list that has a free slot (`swap_avail`), a block device (a swap file
    cannot allocate large entries); an order-0 folio tries the devices in priority order.
    """
    nr = k.mem.nr_pages(pfn)
    if k.config.should_fail(FaultPoint.MEMCG_CHARGE):
        k.trace("mem_cgroup_try_charge_swap failed")
        return False
    if nr > 1 and k.config.should_fail(FaultPoint.SWAP_CLUSTER):
        k.trace("folio_alloc_swap(order=9) failed")
        return False
    if nr == 1:
        si = swap_alloc_fast(k)
        if si is not None:
            off = si.alloc_slot_next(_reclaim_cached(k, si))
            if off is not None:
                swap_range_alloc(k, si)
                add_to_swap_cache(k, pfn, SwpEntry(si.type, off))
                if k.tracing:
                    k.trace("folio_alloc_swap(order=0) (per-CPU cluster)")
                return True
    for si in swap_avail(k):
        # swap_alloc_slow(): each device tried goes behind its equal-priority peers first
        _plist_requeue(k, si)
        if nr > 1:
            # a swap file cannot allocate large entries; and a large folio tries only the
            # first device ("if (order) return false"): it falls back rather than go lower
            off = si.alloc_cluster() if si.flags & SWP.BLKDEV else None
            if off is None:
                break
        else:
            off = si.alloc_slot(_reclaim_cached(k, si))
            if off is None:
                continue
            if si.flags & SWP.SOLIDSTATE:
                k.percpu_swap_si = si.type
        swap_range_alloc(k, si)
        add_to_swap_cache(k, pfn, SwpEntry(si.type, off))
        if k.tracing:
            k.trace(f"folio_alloc_swap(order={k.mem.order[pfn]})")
        return True
    if k.tracing:
        k.trace(f"folio_alloc_swap(order={k.mem.order[pfn]}) failed")
    return False


def _reclaim_cached(k: "Kernel", si: SwapInfo) -> Callable[[int], bool] | None:
    """What an order-0 scan of si does with a slot only the swap cache holds: while swap is
    full (vm_swap_full()), cluster_scan_range() asks for it and cluster_reclaim_range() frees
    it (__try_to_reclaim_swap(TTRS_ANYWAY): the folio leaves the swap cache, dirty), so the
    allocation takes it; otherwise the scan passes it over (None).  Measured on 6.18.44
    (kernel fuzz seed 18181 script 1559: a 64K swap file of 15 slots, 7 left cached by pages
    read back, 8 freed by the faults while swap was full): a pageout of 15 pages writes all
    15, the cached slots taken in turn once the first allocation made swap full again."""
    if not vm_swap_full(k):
        return None

    def reclaim(off: int) -> bool:
        try_to_reclaim_swap(k, si, off, anyway=True)
        return si.swap_map[off] == 0

    return reclaim


def swap_range_alloc(k: "Kernel", si: SwapInfo) -> None:
    """swap_range_alloc() after slots were taken on si: the allocation that takes a device's
    last free slot (swap_usage_add() returns true) while swap is full (vm_swap_full())
    schedules si->reclaim_work, which swap_reclaim.py runs when the reclaim pass ends."""
    if si.full and vm_swap_full(k):
        si.reclaim_work = True


def swap_avail(k: "Kernel") -> list[SwapInfo]:
    """swap_avail_head: the devices allocation tries, in priority order.  A device whose last
    free slot was taken leaves it (swap_range_alloc() -> del_from_avail_list()) until a slot
    is freed, so a large folio's "first device" is the first one with a free slot (measured
    on 6.18: a THP after a full 64K swap file goes whole to the zram device below it)."""
    return [si for si in k.active_swap() if si.inuse_pages < si.pages - 1]


def swap_alloc_fast(k: "Kernel") -> SwapInfo | None:
    """swap_alloc_fast(): the device whose per-CPU cluster (percpu_swap_cluster) an order-0
    folio tries first, or None: the device the last order-0 allocation on a non-rotational
    device (SWP_SOLIDSTATE: zram) was on, while it takes new swap and its cursor
    (percpu_swap_cluster.offset[0], `SwapInfo.next_order0`) is valid and its cluster not full;
    the caller scans on from the cursor (SwapInfo.alloc_slot_next()), and only if that finds
    nothing walks the priority list.  No device is requeued.  A rotational device (a disk, a
    swap file) does not take the cache over (its cursor is kept per device).  Measured on
    6.18.44: two zram devices of one priority take 513 and 511 of 1,024 pages (a cluster each
    in turn, not a page each), a disk and a zram device of one priority 2 and 1,022; slots
    freed behind the cursor are not taken by it (alloc_slot_next())."""
    t = k.percpu_swap_si
    si = k.swap_info[t] if t is not None else None
    if si is None or t not in k.swap_prio_order or not si.writeok or not si.next_order0:
        return None
    if si.cluster_used[si.next_order0 // SWAPFILE_CLUSTER] >= SWAPFILE_CLUSTER:
        return None
    return si


def _plist_requeue(k: "Kernel", si: SwapInfo) -> None:
    """Equal-priority devices take turns: the one just used goes last among its peers."""
    order = k.swap_prio_order
    order.remove(si.type)
    i = 0
    while i < len(order) and k.swp_info(order[i]).prio >= si.prio:
        i += 1
    order.insert(i, si.type)


def swap_dup_prepare(k: "Kernel", si: SwapInfo, off: int, nr: int) -> int:
    """Make room for one more reference on nr slots from off; how many of them got it.

    try_to_unmap_one()'s swap_duplicate() loop: a slot at SWAP_MAP_MAX needs a
    continuation page, allocated GFP_ATOMIC (add_swap_count_continuation); the
    `swap_cont` fault point makes that fail, and the unmap stops at that slot
    (nr when every slot can take its reference).
    """
    s = si.first_needing_continuation(off, nr)
    while s is not None:
        if k.config.should_fail(FaultPoint.SWAP_CONT):
            return s - off
        si.add_swap_count_continuation(s)
        s = si.first_needing_continuation(s + 1, off + nr - s - 1)
    return nr


def swap_duplicate(k: "Kernel", entry: SwpEntry, nr: int = 1) -> None:
    """swap_duplicate() / folio_dup_swap(): one more reference on nr slots.

    Past SWAP_MAP_MAX the count continues in a continuation page, allocated on
    first need (add_swap_count_continuation); the `swap_cont` fault point makes
    that allocation fail with ENOMEM, as the kernel's GFP_ATOMIC attempt can.
    """
    si = k.swp_info(entry.type)
    if swap_dup_prepare(k, si, entry.offset, nr) < nr:
        raise MmError("ENOMEM", "swap_duplicate", "no memory for a swap count continuation page")
    si.dup(entry.offset, nr)


def free_swap_and_cache_nr(k: "Kernel", entry: SwpEntry, nr: int) -> None:
    """free_swap_and_cache_nr(): drop nr references; reclaim a now-unused cached folio."""
    si = k.swp_info(entry.type)
    freed = si.put(entry.offset, nr)
    si.free_slots(freed)
    sm = si.swap_map
    s, end = entry.offset, entry.offset + nr
    while True:
        # the next slot held by the swap cache alone; a folio's slots are consecutive, so after
        # one is looked at the scan goes on past the last of them
        s = sm.find(SWAP_HAS_CACHE, s, end)
        if s < 0:
            return
        s = max(s + 1, try_to_reclaim_swap(k, si, s, anyway=False))


def try_to_reclaim_swap(k: "Kernel", si: SwapInfo, off: int, anyway: bool) -> int:
    """__try_to_reclaim_swap() at slot off, which the swap cache alone holds: the folio leaves
    the swap cache with TTRS_ANYWAY, else (TTRS_UNMAPPED | TTRS_FULL) when nothing maps it or
    swap is full, and only if the cache alone holds every slot of it (swap_only_has_cache());
    it is marked dirty (its only copy is in memory) and freed if nothing maps it.  Returns the
    slot after the folio's last."""
    pfn = si.cache[off]
    base = k.folio_swap[pfn].offset
    nr = k.mem.nr_pages(pfn)
    mapped = k.mem.folio_mapped(pfn)
    if (anyway or not mapped or vm_swap_full(k)) \
            and si.swap_map.count(SWAP_HAS_CACHE, base, base + nr) == nr:
        delete_from_swap_cache(k, pfn)
        k.mem.set(pfn, PG.DIRTY)
        if not mapped:
            free_folio(k, pfn)
    return base + nr


def vm_swap_full(k: "Kernel") -> bool:
    """vm_swap_full(): more than half of all swap space is in use."""
    total = sum(si.pages - 1 for si in k.active_swap())
    used = sum(si.inuse_pages for si in k.active_swap())
    return total > 0 and used * 2 > total
