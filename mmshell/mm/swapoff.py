"""swapoff(2) (mm/swapfile.c try_to_unuse, unuse_mm ... unuse_pte_range).

Every process (in pid order: the mmlist) is walked.  A PTE swap entry on the
device is brought back from the swap cache, or read in with readahead, and
mapped as unuse_pte does: old, read-only, exclusive if the swap entry said so.
patch 8/13 (series): a PMD swap entry on the device goes to unuse_pmd(), which
takes the PMD-size folio from the swap cache or reads all 512 slots into a new
one, and maps the whole PMD; if the folio cannot be had (`thp_alloc`), the
cached folio is no longer PMD-size, or the entry may not be read whole
(pmd_swapin_fallback: THP no longer allowed in the VMA, zswap once enabled,
slots cached as smaller folios), the entry is split and unuse_pte_range
handles the 512 PTEs (F7).  Finally folios left in the swap cache leave it,
and the device is removed.  Running out of memory refuses the swapoff (the
kernel returns ENOMEM after a partial effect; the simulation undoes it).
The walk itself, try_to_unuse() and the unuse_* functions, is in swapfile.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import MmError
from .swap_info import SwapInfo
from .swapfile import try_to_unuse

if TYPE_CHECKING:
    from .kernel import Kernel


def sys_swapoff(k: "Kernel", name: str) -> None:
    """swapoff(2): take the device off the allocation list, bring every page back, remove it.

    As the kernel does before try_to_unuse(), the device leaves the avail list and loses
    SWP_WRITEOK (del_from_avail_list; total_swap_pages no longer counts it): no new slot is
    taken from it, so direct reclaim inside try_to_unuse (unuse_pmd's 2 MiB folio, a
    readahead page) swaps to the other devices or keeps the page, never to this one."""
    si = k.swap_device(name)
    swapoff_needs(k, si)
    k.swap_prio_order.remove(si.type)
    si.writeok = False
    try_to_unuse(k, si)
    k.swap_info[si.type] = None


def swapoff_needs(k: "Kernel", si: SwapInfo) -> None:
    """Refuse up front when the swapped-out pages cannot fit in free memory."""
    need = si.inuse_pages - len(si.cache)
    if need > k.mem.alloc.nr_free:
        free = k.mem.alloc.nr_free
        raise MmError("ENOMEM", "swapoff", f"{need} page{'s' if need != 1 else ''} to bring back but only "
                      f"{free} free frame{'s' if free != 1 else ''}")


