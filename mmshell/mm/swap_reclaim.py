"""A full device's reclaim work (mm/swapfile.c): swap_reclaim_work().

When an allocation takes a device's last free slot while more than half of all swap
is in use (vm_swap_full()), swap_range_alloc() schedules si->reclaim_work
(swap_slots.py marks it).  The work runs swap_reclaim_full_clusters(si, force=true):
it takes clusters from the head of si->full_clusters (the order they became full),
swap_usage_in_pages(si) / SWAPFILE_CLUSTER of them, and in each frees every slot held
by the swap cache alone (swap_map == SWAP_HAS_CACHE): __try_to_reclaim_swap() with
TTRS_ANYWAY deletes the folio from the swap cache even while it is mapped (a page
read back by a fault that did not free its slot), marks it dirty, and the slots are
free again.  A cluster left full goes back to the list's tail.

The kernel runs the work on a kworker soon after; the simulation runs it when the
reclaim pass that scheduled it ends (shrink_folio_list()), after every folio of the
pass is unmapped, so the slots of the folios just written, which hold page-table
references, are never taken.  Measured on 6.18.44 (a 4M disk, 511 slots cached by
a's pages read back, 254 in cluster 0 and 257 in cluster 1, then a THP paged out
split into the 512 free slots, cluster 1 full first): 257 slots freed, cluster 1's.

The same reclaim of cached slots by an allocation's scan while swap is full
(cluster_scan_range() / cluster_reclaim_range()) is swap_slots.py's `_reclaim_cached`.
Left out: the unforced swap_reclaim_full_clusters() when no free or non-full cluster
is left; a folio
under writeback or locked is not freed by the kernel, and the simulation frees a
written folio's slots only after its page-table references are gone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import SWAP_HAS_CACHE, SWAPFILE_CLUSTER
from .swap_slots import try_to_reclaim_swap

if TYPE_CHECKING:
    from .kernel import Kernel
    from .swap_info import SwapInfo


def swap_reclaim_work(k: "Kernel") -> None:
    """Run the reclaim work of every device that has it scheduled."""
    for si in k.active_swap():
        if si.reclaim_work:
            si.reclaim_work = False
            swap_reclaim_full_clusters(k, si, force=True)


def swap_reclaim_full_clusters(k: "Kernel", si: "SwapInfo", force: bool) -> None:
    """swap_reclaim_full_clusters(): free the slots only the swap cache holds in the first
    full clusters (all its usage's worth of clusters when forced, else one)."""
    to_scan = si.inuse_pages // SWAPFILE_CLUSTER if force else 1
    k.trace("swap_reclaim_full_clusters")
    for c in si.full_clusters():
        to_scan -= 1
        _reclaim_cluster(k, si, c)
        if si.cluster_used[c] == SWAPFILE_CLUSTER:
            si.mark_full(c)         # relocate_cluster(): still full, to the list's tail
        if to_scan <= 0:
            break


def _reclaim_cluster(k: "Kernel", si: "SwapInfo", c: int) -> None:
    """The scan of one cluster: __try_to_reclaim_swap(TTRS_ANYWAY) at each cache-only slot
    (a folio of several slots is freed whole or not at all)."""
    sm = si.swap_map
    off = c * SWAPFILE_CLUSTER
    end = min(off + SWAPFILE_CLUSTER, si.pages)
    while off < end:
        if sm[off] != SWAP_HAS_CACHE:
            off += 1
            continue
        off = try_to_reclaim_swap(k, si, off, anyway=True)
