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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import FaultPoint
from .constants import HPAGE_PMD_ORDER, PAGE_SHIFT, PMD_SHIFT, PMD_SIZE
from .errors import MmError, VmBug
from .folio import PG
from .huge_memory import (map_swapped_pmd, pmd_swapin_fallback, split_folio, split_huge_pmd_locked,
                          swapin_alloc_pmd_folio)
from .memory import swapin_readahead
from .mm_types import MmStruct
from .pagewalk import Walker, pte_range, walk_pmd_range
from .pgtable import (F_SOFT_DIRTY, F_SWP_EXCLUSIVE, F_UFFD_WP, Pmd, PmdKind, is_swap_pte, mk_pte,
                      pte_swp_type, pte_to_swp_entry)
from .rmap import folio_add_anon_rmap_ptes, folio_add_new_anon_rmap
from .swap import free_folio
from .swap_info import SwapInfo
from .swap_state import folio_free_swap, swap_cache_get_folio
from .swapfile import free_swap_and_cache_nr
from .vma import VmArea

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


def try_to_unuse(k: "Kernel", si: SwapInfo) -> None:
    """try_to_unuse(): walk the mmlist (every process, pid order), then release the folios left
    in the swap cache; again while slots are in use and the last pass freed some (a reclaim
    during the walk may have unmapped into this device's cached folios again)."""
    k.trace("try_to_unuse")
    while si.inuse_pages:
        before = si.inuse_pages
        for pid in sorted(k.mms):
            mm = k.mms[pid]
            for vma in list(mm.vmas):
                unuse_vma(k, mm, vma, si)
        # Whatever is left in the swap cache has no page-table reference now: folio_free_swap().
        for pfn in sorted(set(si.cache.values())):
            if folio_free_swap(k, pfn) and not k.mem.folio_mapped(pfn):
                free_folio(k, pfn)
        if si.inuse_pages >= before:
            raise VmBug(f"swapoff {si.name}: {si.inuse_pages} slots still in use")


def unuse_vma(k: "Kernel", mm: MmStruct, vma: VmArea, si: SwapInfo) -> None:
    """unuse_vma() / unuse_pmd_range(): every entry on si in the VMA, PMD by PMD."""
    for pmdi, pmd, _, _ in walk_pmd_range(k, mm, vma.start, vma.end, Walker.SWAPOFF):
        if pmd is None:
            continue
        addr = pmdi << PMD_SHIFT
        if pmd.kind is PmdKind.SWAP and pmd.swp_type == si.type:
            if unuse_pmd(k, mm, vma, addr, pmd, si):
                continue
            split_huge_pmd_locked(k, mm, vma, addr)
            pmd = mm.pmds[pmdi]
        if pmd.kind is PmdKind.TABLE:
            unuse_pte_range(k, mm, vma, pmd, addr, si)


def unuse_pmd(k: "Kernel", mm: MmStruct, vma: VmArea, addr: int, pmd: Pmd, si: SwapInfo) -> bool:
    """patch 8/13: map a PMD swap entry back as a whole THP; False means split and fall back."""
    entry = pmd.entry
    mem = k.mem
    folio = swap_cache_get_folio(k, entry)
    if folio is not None and mem.order[folio] == HPAGE_PMD_ORDER \
            and k.config.should_fail(FaultPoint.SPLIT_RACE):
        split_folio(k, folio)       # F5/F7: the cached folio was split under us
    if folio is not None and mem.order[folio] != HPAGE_PMD_ORDER:
        k.trace("unuse_pmd(cached folio not PMD-size): split")
        return False
    if folio is None:
        why = pmd_swapin_fallback(k, vma, addr, entry)      # decisions 11-13: F7
        if why is not None:
            k.trace(f"unuse_pmd({why}): split")
            return False
        folio = swapin_alloc_pmd_folio(k, vma, entry)
        if folio is None:
            return False
    k.trace("unuse_pmd")
    # unuse_pte's rules at PMD level: mapped old and read-only, exclusive as the entry says
    map_swapped_pmd(k, mm, vma, addr, entry, folio, pmd.flags & (F_SOFT_DIRTY | F_UFFD_WP),
                    pmd.pmd_swp_exclusive())
    return True


def unuse_pte_range(k: "Kernel", mm: MmStruct, vma: VmArea, pmd: Pmd, addr: int, si: SwapInfo) -> None:
    """unuse_pte_range(): every swap PTE of this device is mapped back (unuse_pte)."""
    mem = k.mem
    ptes, idx = pte_range(k, Walker.SWAPOFF, pmd, max(vma.start, addr), min(vma.end, addr + PMD_SIZE))
    for i in idx:
        pte = ptes[i]
        if not is_swap_pte(pte) or pte_swp_type(pte) != si.type:
            continue
        entry = pte_to_swp_entry(pte)
        folio = swap_cache_get_folio(k, entry)
        if folio is None:
            folio = swapin_readahead(k, entry)
        elif mem.test(folio, PG.WORKINGSET):
            # 6.18's unuse_pte_range() looks the cache up without swap_update_readahead():
            # a readahead page found here is no swap_ra_hit (measured: +0 over a swapoff)
            mem.clear(folio, PG.WORKINGSET)
        base = k.folio_swap[folio]
        page = folio + (entry.offset - base.offset)
        exclusive = bool(pte & F_SWP_EXCLUSIVE)
        if not mem.test(folio, PG.ANON):
            folio_add_new_anon_rmap(k, folio, vma, addr + (i << PAGE_SHIFT), pmd=False, exclusive=exclusive)
        else:
            folio_add_anon_rmap_ptes(k, page, 1, exclusive)
        ptes[i] = mk_pte(page, pte & (F_SOFT_DIRTY | F_UFFD_WP))
        mm.rss_anon += 1
        mm.rss_swapents -= 1
        free_swap_and_cache_nr(k, entry, 1)
        folio_free_swap(k, folio)       # 6.18 unuse_pte_range(): the folio leaves the cache at once
    k.trace("unuse_pte_range")


def swapoff_needs(k: "Kernel", si: SwapInfo) -> None:
    """Refuse up front when the swapped-out pages cannot fit in free memory."""
    need = si.inuse_pages - len(si.cache)
    if need > k.mem.alloc.nr_free:
        raise MmError("ENOMEM", "swapoff", f"{need} pages to bring back but only "
                      f"{k.mem.alloc.nr_free} free frames")


