"""The reclaim call that fills the swap space goes on to one more batch (mm/vmscan.c).

A memory-cgroup reclaim (memory.force_empty, memory.reclaim) is a loop of
try_to_free_mem_cgroup_pages() calls, each asking SWAP_CLUSTER_MAX (32) pages; each call's
shrink_lruvec() scans the inactive list in batches of 32 until its targets, set when the
call began, are scanned or 32 pages are reclaimed.  A folio written to an asynchronous
device (a disk, a swap file) stays in the swap cache until its write ends;
folio_end_writeback() then rotates it to the oldest end of the inactive list
(folio_rotate_reclaimable()), where a later batch frees it without I/O.

The simulation frees such folios in the next pass (shrink_lruvec() in vmscan.py), which
gives the kernel's end state while swap space is left: the kernel's later calls free them
as their writes end.  Once the swap space is full, get_scan_count() scans no anon list
(can_reclaim_anon_pages()), so only the call that filled it is left to free any: its
targets were set while anon could still be scanned, so it goes on to one more batch, whose
32 folios from the oldest end are folios whose writes have ended, and it frees them, which
meets its 32 pages.  Measured on 6.18.44 (kernel fuzz seed 17171 script 1620: a 4M swap
file filled by 1,019 pages): nr_swapcached +983, 32 fewer than written, in every run;
the trace's last batch `nr_scanned=32 nr_reclaimed=32` after the THP that filled the file.

Which 32 the kernel frees depends on when each write ended (slots 221-252 in one run,
469-500 in two others): the simulation frees the first 32 the pass wrote.  Left out: a
pass that writes fewer than a batch's worth before the fill (some writes may not have
ended by the last batch), and reclaim of a given size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .folio import PG
from .swap import free_folio
from .swap_state import delete_from_swap_cache

if TYPE_CHECKING:
    from .kernel import Kernel

#: Pages one try_to_free_mem_cgroup_pages() call asks for, and one LRU batch's size.
SWAP_CLUSTER_MAX = 32


def free_written_after_fill(k: "Kernel", cached_before: set[int]) -> int:
    """After a pass that filled the swap space: free the first SWAP_CLUSTER_MAX pages of the
    folios it wrote to asynchronous devices that are still in the swap cache, clean and
    unmapped (not in `cached_before`, the swap cache when the pass began); the pages freed."""
    mem = k.mem
    freed = 0
    for pfn, entry in list(k.folio_swap.items()):
        if freed >= SWAP_CLUSTER_MAX:
            break
        if pfn in cached_before or k.swp_info(entry.type).synchronous:
            continue
        if mem.test(pfn, PG.DIRTY) or mem.folio_mapped(pfn) or not k.lru.is_inactive(pfn):
            continue
        nr = mem.nr_pages(pfn)
        delete_from_swap_cache(k, pfn)
        free_folio(k, pfn)
        freed += nr
    return freed
