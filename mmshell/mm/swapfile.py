"""Swap areas (mm/swapfile.c): swapon, and swapoff's walk that brings every page back.

sys_swapon() adds a device in priority order.  try_to_unuse() walks every
process's page tables (the mmlist) for entries on a device being switched off:
unuse_pte_range() maps each swap PTE back as unuse_pte() does, and with the
series unuse_pmd() (patch 8/13) maps a PMD swap entry back as one THP, or
splits it and falls back to the PTEs (F7).  swapoff.py is the system call around
the walk.  Per-device slot state is `SwapInfo` (swap_info.py); the slot
references the fault, unmap, fork and reclaim paths take and drop
(folio_alloc_swap, swap_duplicate, free_swap_and_cache_nr) are in swap_slots.py,
below those paths, which this walk calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import FaultPoint
from .constants import HPAGE_PMD_ORDER, MAX_SWAP, MAX_SWAP_TOTAL, PAGE_SHIFT, PAGE_SIZE, PMD_SHIFT, PMD_SIZE
from .errors import MmError, VmBug
from .folio import PG
from .huge_memory import map_swapped_pmd, pmd_swapin_fallback, swapin_alloc_pmd_folio
from .huge_split import split_folio, split_huge_pmd_locked
from .memory import swapin_readahead
from .mm_types import MmStruct
from .pagewalk import Walker, pte_range, walk_pmd_range
from .pgtable import (F_SOFT_DIRTY, F_SWP_EXCLUSIVE, F_UFFD_WP, Pmd, PmdKind, is_swap_pte, mk_pte,
                      pte_swp_type, pte_to_swp_entry)
from .rmap import folio_add_anon_rmap_ptes, folio_add_new_anon_rmap
from .swap import free_folio
from .swap_info import SwapInfo, SwapKind
from .swap_slots import free_swap_and_cache_nr
from .swap_state import folio_free_swap, swap_cache_get_folio
from .vma import VmArea

if TYPE_CHECKING:
    from .kernel import Kernel


def sys_swapon(k: "Kernel", name: str, size: int, kind: SwapKind, prio: int | None) -> SwapInfo:
    """swapon(2) of a device or file of `size` bytes (mkswap done: slot 0 is the header)."""
    if any(si is not None and si.name == name for si in k.swap_info):
        raise MmError("EBUSY", "swapon", f"swap device {name!r} is already active")
    if size % PAGE_SIZE:
        raise MmError("EINVAL", "swapon", f"size {size} is not a multiple of the page size")
    pages = size >> PAGE_SHIFT
    if pages < 10:
        raise MmError("EINVAL", "swapon", "swap area needs at least 10 pages")
    if size > MAX_SWAP:
        raise MmError("EINVAL", "swapon", f"swap area larger than the simulation's limit of {MAX_SWAP >> 30}G")
    active = sum(si.pages for si in k.swap_info if si is not None) << PAGE_SHIFT
    if active + size > MAX_SWAP_TOTAL:
        raise MmError("EINVAL", "swapon", f"{(active + size) >> 20}M of swap in all: beyond the simulation's "
                      f"limit of {MAX_SWAP_TOTAL >> 30}G over every device")
    if prio is not None and not -1 <= prio <= 32767:
        raise MmError("EINVAL", "swapon", f"priority {prio} outside -1..32767")
    try:
        t = k.swap_info.index(None)
    except ValueError:
        raise MmError("EPERM", "swapon", "MAX_SWAPFILES devices are already active") from None
    if prio is None:
        k.least_priority -= 1
        prio = k.least_priority
    si = SwapInfo(type=t, name=name, kind=kind, prio=prio, pages=pages)
    k.swap_info[t] = si
    order = k.swap_prio_order
    i = 0
    while i < len(order) and k.swp_info(order[i]).prio >= prio:
        i += 1
    order.insert(i, t)
    k.trace("sys_swapon")
    return si


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
