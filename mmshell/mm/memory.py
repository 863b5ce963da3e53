"""Page faults and unmapping at PTE level (mm/memory.c).

`handle_mm_fault` dispatches as __handle_mm_fault does: a none PMD in a
THP-eligible VMA goes to do_huge_pmd_anonymous_page; a PMD swap entry (series)
to do_huge_pmd_swap_page; a write to a read-only huge PMD to
do_huge_pmd_wp_page; everything else to the PTE handlers: do_anonymous_page,
do_swap_page, do_wp_page.  A handler that returns VM_FAULT_FALLBACK leaves the
PMD split, and the PTE path runs.

Left out: mTHP orders other than PMD order (only hugepages-2048kB is enabled,
as on the measured machine), file and shared memory, NUMA, locks and retries.
"""

from __future__ import annotations

import sys
from enum import Enum
from typing import TYPE_CHECKING

from .anon_vma_merge import find_mergeable_anon_vma
from .anon_vma_order import anon_vma_interval_tree_insert
from .constants import HPAGE_PMD_NR, PAGE_SHIFT, pmd_index, pte_index
from .errors import MmError, VmBug
from .folio import PG
from .lanes import progression, progression_int
from .mm_types import MmStruct
from .page_io import swap_read_folio
from .pgtable_generic import pte_alloc_one
from .pgtable import (F_DIRTY, F_SPECIAL, F_SWP_EXCLUSIVE, F_UFFD_WP, F_WRITE, F_YOUNG, PFN_SHIFT, SWP_KEPT,
                      SWP_OFFSET_SHIFT, PmdKind, PteTable, is_swap_pte, mk_pte, mk_table_pmd, pmd_pgtable,
                      pte_flags, pte_pfn, pte_swp_offset, pte_swp_type, swp_entry_to_pte)
from .rmap import folio_add_anon_rmap_ptes, folio_add_new_anon_rmap, folio_remove_rmap_ptes
from .swap import folio_put_if_unused, free_folio, lru_add
from .swap_slots import free_swap_and_cache_nr, vm_swap_full
from .swap_state import add_to_swap_cache, folio_free_swap, swap_cache_get_folio
from .swapops import SwpEntry
from .vma import VM, VmArea
from .vmscan import try_to_free_pages
from .wp_reuse import wp_can_reuse_large_anon_folio

if TYPE_CHECKING:
    from .kernel import Kernel


class Fault(Enum):
    """vm_fault_t results that change what the caller does next."""

    DONE = 0
    MAJOR = 1       # VM_FAULT_MAJOR: I/O was needed
    FALLBACK = 2    # VM_FAULT_FALLBACK: retry at PTE level


# -- allocation ------------------------------------------------------------------------

def alloc_anon_folio(k: "Kernel", order: int, reclaim: bool = True) -> int | None:
    """vma_alloc_folio(): a zeroed folio; on failure run direct reclaim and try again."""
    pfn = k.mem.folio_alloc(order)
    if pfn is None and reclaim:
        try_to_free_pages(k, order)
        pfn = k.mem.folio_alloc(order)
    return pfn


def alloc_order0_or_oom(k: "Kernel", what: str) -> int:
    pfn = alloc_anon_folio(k, 0)
    if pfn is None:
        raise MmError("ENOMEM", what, "out of memory: no free frame and nothing left to reclaim "
                      "(the kernel would OOM-kill)")
    return pfn


# -- the fault dispatcher --------------------------------------------------------------------

def anon_vma_prepare(k: "Kernel", mm: MmStruct, vma: VmArea) -> None:
    """anon_vma_prepare(): give vma an anon_vma at its first anonymous fault, a compatible
    neighbour's (find_mergeable_anon_vma()) or else a new one."""
    if not vma.anon_vma:
        vma.link_anon_vma(find_mergeable_anon_vma(mm, vma) or k.alloc_anon_vma())
        anon_vma_interval_tree_insert(k, vma)


def handle_mm_fault(k: "Kernel", mm: MmStruct, vma: VmArea, addr: int, write: bool) -> Fault:
    """__handle_mm_fault(): one page fault at addr (the access already checked against vm_flags)."""
    # Back-edge: the PMD-level handlers are built on this module's (Fault, the PTE path they
    # fall back to, folio allocation), as huge_memory.c is on memory.c; imported when called.
    from .huge_memory import (do_huge_pmd_anonymous_page, do_huge_pmd_swap_page, do_huge_pmd_wp_page,
                              thp_vma_allowable)

    k.vmstat.count("pgfault")
    pmdi = pmd_index(addr)
    pmd = mm.pmds.get(pmdi)
    huge = pmd is None and thp_vma_allowable(k, vma, addr)
    if write or huge:
        # vmf_anon_prepare(): a write, and a THP fault (do_huge_pmd_anonymous_page(), also
        # for the huge zero page); a read that maps the zero page by a PTE gives the VMA no
        # anon_vma (so khugepaged and MADV_COLLAPSE leave it alone).
        anon_vma_prepare(k, mm, vma)
    if pmd is None:
        if huge:
            if do_huge_pmd_anonymous_page(k, mm, vma, addr, write) is not Fault.FALLBACK:
                return Fault.DONE
        pmd = mm.pmds.get(pmdi)
        if pmd is None:
            pmd = mm.pmds[pmdi] = mk_table_pmd()
            pte_alloc_one(k, mm)
    elif pmd.kind is PmdKind.SWAP:
        ret = do_huge_pmd_swap_page(k, mm, vma, addr, write)
        if ret is not Fault.FALLBACK:
            return ret
        pmd = mm.pmds[pmdi]
    elif pmd.kind in (PmdKind.HUGE, PmdKind.ZERO):
        if write and not pmd.pmd_write():
            if do_huge_pmd_wp_page(k, mm, vma, addr) is not Fault.FALLBACK:
                return Fault.DONE
            pmd = mm.pmds[pmdi]
        else:
            pmd.flags |= F_YOUNG
            return Fault.DONE
    return handle_pte_fault(k, mm, vma, addr, write)


def handle_pte_fault(k: "Kernel", mm: MmStruct, vma: VmArea, addr: int, write: bool) -> Fault:
    table = pmd_pgtable(mm.pmds[pmd_index(addr)])
    pte = table.ptes[pte_index(addr)]
    if pte == 0:
        return do_anonymous_page(k, mm, vma, addr, write)
    if is_swap_pte(pte):
        return do_swap_page(k, mm, vma, addr, write)
    if write and not pte & F_WRITE:
        return do_wp_page(k, mm, vma, addr)
    table.ptes[pte_index(addr)] = pte | F_YOUNG
    return Fault.DONE


def _set_pte(mm: MmStruct, addr: int, pte: int) -> None:
    pmd_pgtable(mm.pmds[pmd_index(addr)]).ptes[pte_index(addr)] = pte


def do_anonymous_page(k: "Kernel", mm: MmStruct, vma: VmArea, addr: int, write: bool) -> Fault:
    """do_anonymous_page(): the zero page on a read, a fresh exclusive page on a write."""
    if not write:
        k.trace("do_anonymous_page(zero page)")
        _set_pte(mm, addr, mk_pte(k.zero_pfn, F_SPECIAL | F_YOUNG))
        return Fault.DONE
    k.trace("do_anonymous_page")
    pfn = alloc_order0_or_oom(k, "fault")
    folio_add_new_anon_rmap(k, pfn, vma, addr, pmd=False)
    lru_add(k, pfn)
    mm.rss_anon += 1
    _set_pte(mm, addr, mk_pte(pfn, F_WRITE | F_DIRTY | F_YOUNG))
    return Fault.DONE


def do_wp_page(k: "Kernel", mm: MmStruct, vma: VmArea, addr: int) -> Fault:
    """do_wp_page(): reuse an exclusive anonymous page, otherwise copy it (wp_page_copy)."""
    mem = k.mem
    idx = pte_index(addr)
    table = pmd_pgtable(mm.pmds[pmd_index(addr)])
    pte = table.ptes[idx]
    page = pte_pfn(pte)
    if not pte & F_SPECIAL:
        head = mem.folio_of(page)
        if mem.flags[page] & PG.ANON_EXCLUSIVE or _wp_can_reuse_anon_folio(k, mm, head):
            mem.flags[page] |= PG.ANON_EXCLUSIVE
            table.ptes[idx] = pte | F_WRITE | F_DIRTY | F_YOUNG
            k.vmstat.count("pgreuse")
            k.trace("wp_page_reuse")
            return Fault.DONE
    k.trace("wp_page_copy")
    new = alloc_order0_or_oom(k, "fault")
    if mm.pmds.get(pmd_index(addr)) is None or mm.pmds[pmd_index(addr)].table is not table \
            or table.ptes[idx] != pte:
        free_folio(k, new)        # direct reclaim changed the PTE: !pte_same, retry the fault
        return Fault.DONE
    mem.data[new] = 0 if pte & F_SPECIAL else mem.data[pte_pfn(pte)]
    folio_add_new_anon_rmap(k, new, vma, addr, pmd=False)
    lru_add(k, new)
    if pte & F_SPECIAL:
        mm.rss_anon += 1
    else:
        old = pte_pfn(pte)
        folio_remove_rmap_ptes(k, old, 1)
        folio_put_if_unused(k, mem.folio_of(old))
    table.ptes[idx] = mk_pte(new, (pte_flags(pte) & ~F_SPECIAL) | F_WRITE | F_DIRTY | F_YOUNG)
    return Fault.DONE


def _wp_can_reuse_anon_folio(k: "Kernel", mm: MmStruct, head: int) -> bool:
    """wp_can_reuse_anon_folio(): a small folio mapped once, maybe after leaving the swap cache;
    a large one exclusive to mm (wp_reuse.py)."""
    mem = k.mem
    if mem.order[head]:
        return wp_can_reuse_large_anon_folio(k, mm, head)
    # The refcount checks come first (a reference per mapping, one for the swap cache): a
    # folio mapped twice is copied and stays in the swap cache (measured on 6.18.44:
    # tests/kernel/36_cow_after_shared_swapin.mmsh, Used and nr_swapcached unchanged).
    if mem.mapcount[head] != 1:
        return False
    if mem.test(head, PG.SWAPCACHE):
        folio_free_swap(k, head)
    return not mem.test(head, PG.SWAPCACHE)


# -- swap-in ------------------------------------------------------------------------------------

def do_swap_page(k: "Kernel", mm: MmStruct, vma: VmArea, addr: int, write: bool) -> Fault:
    """do_swap_page(): bring one PTE swap entry back (or the whole cached large folio)."""
    mem = k.mem
    idx = pte_index(addr)
    table = pmd_pgtable(mm.pmds[pmd_index(addr)])
    orig = table.ptes[idx]
    entry = SwpEntry(pte_swp_type(orig), pte_swp_offset(orig))
    si = k.swp_info(entry.type)
    major = False
    folio = swap_cache_get_folio(k, entry)
    if folio is not None:
        k.trace("do_swap_page(swapcache hit)")
        if mem.test(folio, PG.WORKINGSET):      # PG_readahead: a readahead page is used
            mem.clear(folio, PG.WORKINGSET)
            k.vmstat.count("swap_ra_hit")
    elif si.synchronous and si.swap_count(entry.offset) == 1:
        # SWP_SYNCHRONOUS_IO and not shared: read straight into a new folio, skip the swap cache.
        k.trace("do_swap_page(SWP_SYNCHRONOUS_IO)")
        folio = alloc_order0_or_oom(k, "fault")
        swap_read_folio(k, folio, entry)
        folio_add_new_anon_rmap(k, folio, vma, addr, pmd=False, exclusive=bool(orig & F_SWP_EXCLUSIVE))
        lru_add(k, folio)
        _set_swapped_in_ptes(mm, vma, table, idx, folio, 1, orig, write)
        free_swap_and_cache_nr(k, entry, 1)
        k.vmstat.count("pgmajfault")
        return _finish_write(k, mm, vma, addr, write, table.ptes[idx], Fault.MAJOR)
    else:
        k.trace("do_swap_page(swapin_readahead)")
        folio = swapin_readahead(k, entry)
        major = True
    # Map from the swap cache: the whole large folio when every PTE still holds its entries.
    nr = mem.nr_pages(folio)
    base = k.folio_swap[folio]
    first = addr - ((entry.offset - base.offset) << PAGE_SHIFT)
    if nr > 1 and _swap_pte_batch(mm, vma, first, base, nr, orig):
        page, n, at_idx, at_entry = folio, nr, pte_index(first), base
    else:
        page, n, at_idx, at_entry = folio + (entry.offset - base.offset), 1, idx, entry
    exclusive = bool(orig & F_SWP_EXCLUSIVE)
    if not mem.test(folio, PG.ANON):
        folio_add_new_anon_rmap(k, folio, vma, addr, pmd=False, exclusive=exclusive)
    else:
        folio_add_anon_rmap_ptes(k, page, n, exclusive)
    _set_swapped_in_ptes(mm, vma, table, at_idx, page, n, orig, write)
    free_swap_and_cache_nr(k, at_entry, n)
    # should_try_to_free_swap(): swap is full (vm_swap_full(), through mem_cgroup_swap_full()),
    # or a write fault on a folio nothing else holds: folio_ref_count(folio) == 1 +
    # folio_nr_pages(folio), the fault's reference and the swap cache's (another mapping or a
    # pin adds one).  A per-CPU folio batch adds one too: a write fault on a swap-cache folio
    # off the LRU first runs lru_add_drain(), which empties this CPU's batches only; the
    # lru_rotate batch of the CPU that completed the folio's writeback (folio_end_writeback()
    # -> folio_rotate_reclaimable()) keeps its reference, and the page stays cached.  The
    # simulation has no per-CPU batches (every folio is on the LRU at once); the live runner
    # flushes every CPU's at a step's end to match (kernel/percpu.py).  Left out: VM_LOCKED
    # and mlocked folios (always freed), KSM.
    if mem.test(folio, PG.SWAPCACHE) and (vm_swap_full(k) or (
            write and exclusive and mem.folio_mapcount(folio) == mem.nr_pages(folio))):
        folio_free_swap(k, folio)
    if major:
        k.vmstat.count("pgmajfault")
    return _finish_write(k, mm, vma, addr, write, table.ptes[idx], Fault.MAJOR if major else Fault.DONE)


def _swap_pte_batch(mm: MmStruct, vma: VmArea, first: int, base: SwpEntry, nr: int, orig: int) -> bool:
    """swap_pte_batch() == nr: the folio's whole range holds its consecutive entries, same bits."""
    last = first + (nr << PAGE_SHIFT) - 1
    if first < vma.start or last >= vma.end or pmd_index(first) != pmd_index(last):
        return False
    pmd = mm.pmds.get(pmd_index(first))
    if pmd is None or pmd.kind is not PmdKind.TABLE:
        return False
    i0 = pte_index(first)
    step = 1 << SWP_OFFSET_SHIFT         # swp_entry_to_pte() of offset + i is its word + i * step
    first_word = swp_entry_to_pte(base.type, base.offset, pte_flags(orig))
    ptes = pmd_pgtable(pmd).ptes[i0:i0 + nr]
    if nr > HPAGE_PMD_NR:
        return ptes.tolist() == list(range(first_word, first_word + nr * step, step))
    return int.from_bytes(ptes.tobytes(), sys.byteorder) == progression_int(first_word, step, nr)


def _set_swapped_in_ptes(mm: MmStruct, vma: VmArea, table: PteTable, idx: int, page: int, nr: int, orig: int,
                         write: bool) -> None:
    """Install nr present PTEs for pages from `page`; writable only if exclusive (no COW needed)."""
    flags = (orig & SWP_KEPT) | F_YOUNG
    if orig & F_SWP_EXCLUSIVE and vma.flags & VM.WRITE and not orig & F_UFFD_WP:
        flags |= F_WRITE
        if write:
            flags |= F_DIRTY
    table.ptes[idx:idx + nr] = progression("Q", mk_pte(page, flags), 1 << PFN_SHIFT, nr)
    mm.rss_anon += nr
    mm.rss_swapents -= nr


def _finish_write(k: "Kernel", mm: MmStruct, vma: VmArea, addr: int, write: bool, pte: int,
                  ret: Fault) -> Fault:
    """A write fault that mapped the page read-only goes on to do_wp_page (COW)."""
    if write and not pte & F_WRITE:
        do_wp_page(k, mm, vma, addr)
    return ret


def swapin_readahead(k: "Kernel", entry: SwpEntry) -> int:
    """swap_cluster_readahead(): read the aligned window of 2**page_cluster slots (8 by
    default; page_cluster 0: only the faulting slot) into the swap cache.

    Slots that are free, already cached or zero-referenced are skipped; every
    extra page read counts swap_ra.  Returns the folio for `entry`.
    """
    si = k.swp_info(entry.type)
    k.trace("swapin_readahead")         # traced before its callees, in call order
    window = 1 << k.config.page_cluster
    start = entry.offset & ~(window - 1)
    target = None
    read: list[int] = []
    for off in [entry.offset] + [o for o in range(start, min(start + window, si.pages))
                                 if o != entry.offset]:
        if off == 0 or si.swap_count(off) == 0 or si.has_cache(off):
            continue
        pfn = alloc_anon_folio(k, 0)
        if pfn is None:
            if off == entry.offset:
                raise MmError("ENOMEM", "fault", "out of memory: no frame for swap-in")
            break
        k.mem.set(pfn, PG.SWAPBACKED)
        add_to_swap_cache(k, pfn, SwpEntry(entry.type, off))
        swap_read_folio(k, pfn, SwpEntry(entry.type, off))
        read.append(pfn)
        if off == entry.offset:
            target = pfn
        else:
            k.mem.set(pfn, PG.WORKINGSET)
            k.vmstat.count("swap_ra")
    for pfn in read:            # on the LRU once the I/O is done (they were locked until then)
        lru_add(k, pfn)
    if target is None:
        # The caller found entry referenced and not cached, so its slot was read first.
        raise VmBug(f"swapin_readahead: {entry} was not read")
    return target
