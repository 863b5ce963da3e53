"""PMD-level THP operations (mm/huge_memory.c), mainline and the series.

THP fault (do_huge_pmd_anonymous_page), huge zero page, PMD write faults
(do_huge_pmd_wp_page), fork's copy (copy_huge_pmd, with patch 7's
copy_huge_non_present_pmd), mprotect's and mremap's (change_huge_pmd,
move_huge_pmd), UFFDIO_MOVE's (move_pages_huge_pmd, with patch 10's
move_swap_pmd), zap (zap_huge_pmd, with patch 9's swap branch) and, with the
series, the PMD swap-in fault (do_huge_pmd_swap_page, patch 11).  Splitting (a
PMD into PTEs, with patch 6's swap branch, and a folio into small ones) is in
huge_split.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import FaultPoint, ThpMode
from .constants import HPAGE_PMD_NR, HPAGE_PMD_ORDER, PMD_MASK, PMD_SIZE, pmd_index
from .errors import MmError
from .folio import PG
from .huge_split import __split_huge_pmd, split_folio, split_huge_pmd_locked
from .memory import Fault, alloc_anon_folio, anon_vma_prepare
from .mm_types import MmStruct
from .page_io import swap_read_folio
from .pgtable_generic import pgtable_trans_huge_deposit, zap_deposited_table
from .pgtable import (F_DIRTY, F_SOFT_DIRTY, F_SWP_EXCLUSIVE, F_UFFD_WP, F_WRITE, F_YOUNG, Pmd, PmdKind,
                      mk_huge_pmd)
from .rmap import (folio_add_anon_rmap_pmd, folio_add_new_anon_rmap, folio_move_anon_rmap,
                   folio_remove_rmap_pmd)
from .swap import folio_put_if_unused, lru_add
from .swap_slots import free_swap_and_cache_nr, swap_duplicate, vm_swap_full
from .swap_state import add_to_swap_cache, folio_free_swap, swap_cache_get_folio
from .swapops import SwpEntry
from .vma import VM, VmArea

if TYPE_CHECKING:
    from .kernel import Kernel


def thp_vma_allowable(k: "Kernel", vma: VmArea, addr: int) -> bool:
    """thp_vma_allowable_orders(PMD) + thp_vma_suitable_order(): may a fault here be a THP?"""
    if vma.flags & VM.NOHUGEPAGE:
        return False
    mode = k.config.thp
    if mode is ThpMode.NEVER or (mode is ThpMode.MADVISE and not vma.flags & VM.HUGEPAGE):
        return False
    haddr = addr & PMD_MASK
    return vma.start <= haddr and haddr + PMD_SIZE <= vma.end


def vma_thp_eligible(k: "Kernel", vma: VmArea) -> bool:
    """smaps THPeligible: some 2 MiB-aligned block of the VMA could hold a THP."""
    first = (vma.start + PMD_SIZE - 1) & PMD_MASK
    return first + PMD_SIZE <= vma.end and thp_vma_allowable(k, vma, first)


def _thp_defrag_reclaim(vma: VmArea) -> bool:
    """defrag=madvise: direct reclaim/compaction only for VM_HUGEPAGE VMAs."""
    return bool(vma.flags & VM.HUGEPAGE)


def vma_alloc_anon_folio_pmd(k: "Kernel", vma: VmArea) -> int | None:
    """A zeroed PMD-order folio, or None (thp_alloc fault point, or no free 2 MiB block)."""
    if k.config.should_fail(FaultPoint.THP_ALLOC):
        k.trace("vma_alloc_folio(order=9) failed")
        return None
    return alloc_anon_folio(k, HPAGE_PMD_ORDER, reclaim=_thp_defrag_reclaim(vma))


def do_huge_pmd_anonymous_page(k: "Kernel", mm: MmStruct, vma: VmArea, addr: int, write: bool) -> Fault:
    """do_huge_pmd_anonymous_page(): huge zero page on a read, a new THP on a write."""
    haddr = addr & PMD_MASK
    if not write and k.config.use_zero_page:
        zero_pfn = get_huge_zero_folio(k)
        if zero_pfn is not None:
            k.trace("set_huge_zero_folio")
            deposited = pgtable_trans_huge_deposit(k, mm)
            mm.pmds[pmd_index(haddr)] = Pmd(PmdKind.ZERO, flags=F_YOUNG, pfn=zero_pfn, deposited=deposited)
            return Fault.DONE
        return Fault.FALLBACK
    if k.config.should_fail(FaultPoint.MEMCG_CHARGE):
        k.vmstat.count("thp_fault_fallback")
        k.vmstat.count("thp_fault_fallback_charge")
        k.vmstat.count_mthp("anon_fault_fallback")
        k.vmstat.count_mthp("anon_fault_fallback_charge")
        return Fault.FALLBACK
    k.trace("do_huge_pmd_anonymous_page")     # traced on entry: the allocation may reclaim
    pfn = vma_alloc_anon_folio_pmd(k, vma)
    if pfn is None:
        k.vmstat.count("thp_fault_fallback")
        k.vmstat.count_mthp("anon_fault_fallback")
        k.trace("do_huge_pmd_anonymous_page(fallback)")
        return Fault.FALLBACK
    map_anon_folio_pmd(k, mm, vma, haddr, pfn, pgtable_trans_huge_deposit(k, mm))
    k.vmstat.count("thp_fault_alloc")
    k.vmstat.count_mthp("anon_fault_alloc")
    return Fault.DONE


def map_anon_folio_pmd(k: "Kernel", mm: MmStruct, vma: VmArea, haddr: int, pfn: int, deposited: bool) -> None:
    """map_anon_folio_pmd(): map a new exclusive THP writable and dirty (the caller has
    deposited its table, or with lazy deposit not)."""
    folio_add_new_anon_rmap(k, pfn, vma, haddr, pmd=True)
    lru_add(k, pfn)
    mm.rss_anon += HPAGE_PMD_NR
    mm.pmds[pmd_index(haddr)] = mk_huge_pmd(pfn, F_WRITE | F_DIRTY | F_YOUNG, deposited)


def get_huge_zero_folio(k: "Kernel") -> int | None:
    """mm_get_huge_zero_folio(): the huge zero folio's head pfn, or None if it cannot be had.

    It is allocated on first use (thp_zero_page_alloc) and then kept."""
    if k.huge_zero_pfn is not None:
        return k.huge_zero_pfn
    pfn = k.mem.folio_alloc(HPAGE_PMD_ORDER)
    if pfn is None:
        k.vmstat.count("thp_zero_page_alloc_failed")
        return None
    k.mem.set(pfn, PG.ZERO)
    k.huge_zero_pfn = pfn
    k.vmstat.count("thp_zero_page_alloc")
    return pfn


def do_huge_pmd_wp_page(k: "Kernel", mm: MmStruct, vma: VmArea, addr: int) -> Fault:
    """do_huge_pmd_wp_page(): reuse an exclusive THP; replace the huge zero page; else split."""
    haddr = addr & PMD_MASK
    pmd = mm.pmds[pmd_index(haddr)]
    mem = k.mem
    if pmd.kind is PmdKind.ZERO:
        pfn = vma_alloc_anon_folio_pmd(k, vma)
        if pfn is not None:
            k.trace("do_huge_zero_wp_pmd")
            map_anon_folio_pmd(k, mm, vma, haddr, pfn, pmd.deposited)   # the zero PMD's deposit stays
            k.vmstat.count("thp_fault_alloc")
            k.vmstat.count_mthp("anon_fault_alloc")
            return Fault.DONE
        k.vmstat.count("thp_fault_fallback")
        k.vmstat.count_mthp("anon_fault_fallback")
        __split_huge_pmd(k, mm, vma, haddr)
        return Fault.FALLBACK
    pfn = pmd.pfn
    k.trace("do_huge_pmd_wp_page")          # traced before its callees, in call order
    if not mem.test(pfn, PG.ANON_EXCLUSIVE) and mem.test(pfn, PG.SWAPCACHE):
        folio_free_swap(k, pfn)
    if mem.test(pfn, PG.ANON_EXCLUSIVE) or (mem.folio_mapcount(pfn) == 1 and not mem.test(pfn, PG.SWAPCACHE)):
        mem.set(pfn, PG.ANON_EXCLUSIVE)
        pmd.flags |= F_WRITE | F_DIRTY | F_YOUNG
        k.vmstat.count("pgreuse")
        k.trace("do_huge_pmd_wp_page(reuse)")
        return Fault.DONE
    k.trace("do_huge_pmd_wp_page(split)")
    __split_huge_pmd(k, mm, vma, haddr)
    return Fault.FALLBACK


# -- fork ----------------------------------------------------------------------------------------

def copy_huge_pmd(k: "Kernel", dst: MmStruct, dvma: VmArea, pmd: Pmd, addr: int) -> bool:
    """copy_huge_pmd(): give the child a copy of the PMD-level entry at addr; False is -EAGAIN:
    the caller splits the parent's entry and copies its PTEs.

    A present THP is shared: entire mapcount +1, PageAnonExclusive cleared, both PMDs
    write-protected, a deposited table for the child.  The huge zero page is mapped by
    the child too, read-only.  The child's PMD is old (`pmd_mkold()`): its first
    access sets the young bit that reclaim and khugepaged count.  patch 7/13: a PMD
    swap entry is copied by copy_huge_non_present_pmd().
    """
    if pmd.kind is PmdKind.SWAP:
        return copy_huge_non_present_pmd(k, dst, dvma, pmd, addr)
    if pmd.kind is PmdKind.ZERO:
        dst.pmds[pmd_index(addr)] = Pmd(PmdKind.ZERO, flags=pmd.flags & ~(F_WRITE | F_YOUNG), pfn=pmd.pfn,
                                        deposited=pgtable_trans_huge_deposit(k, dst))
        return True
    mem = k.mem
    k.trace("copy_huge_pmd")
    mem.entire_mapcount[pmd.pfn] += 1
    mem.clear(pmd.pfn, PG.ANON_EXCLUSIVE)
    pmd.flags &= ~F_WRITE
    dst.pmds[pmd_index(addr)] = Pmd(PmdKind.HUGE, flags=pmd.flags & ~F_YOUNG, pfn=pmd.pfn,
                                    deposited=pgtable_trans_huge_deposit(k, dst))
    dst.rss_anon += HPAGE_PMD_NR
    return True


def copy_huge_non_present_pmd(k: "Kernel", dst: MmStruct, dvma: VmArea, pmd: Pmd, addr: int) -> bool:
    """patch 7/13: copy_huge_non_present_pmd() for a PMD swap entry; False means fall back (F4).

    One folio_dup_swap() over the 512 slots.  When a slot needs a count continuation page
    that the first (atomic) attempt cannot have, the locks are dropped, the page is
    allocated with GFP_KERNEL and the copy retried once, "mirroring copy_pte_range()"
    (decision 4): `set fail swap_cont once` keeps the PMD swap entry.  A failure that
    persists is what it is on the PTE path: fork fails with ENOMEM.  When the copy needs
    PMD-order memory that cannot be had (`thp_alloc`: decision 4, F4), False.
    """
    if k.config.should_fail(FaultPoint.THP_ALLOC):
        k.trace("copy_huge_non_present_pmd(no memory): split")
        return False
    try:
        swap_duplicate(k, pmd.entry, HPAGE_PMD_NR)
    except MmError:
        k.trace("copy_huge_non_present_pmd(no count continuation): GFP_KERNEL retry")
        swap_duplicate(k, pmd.entry, HPAGE_PMD_NR)
    k.trace("copy_huge_non_present_pmd")
    pmd.flags &= ~F_SWP_EXCLUSIVE
    flags = pmd.flags & ~(F_UFFD_WP if not dvma.flags & VM.UFFD_WP else 0)
    dst.pmds[pmd_index(addr)] = Pmd(PmdKind.SWAP, flags=flags, swp_type=pmd.swp_type,
                                    swp_offset=pmd.swp_offset, deposited=pgtable_trans_huge_deposit(k, dst))
    dst.rss_swapents += HPAGE_PMD_NR
    dst.on_mmlist = True
    return True


# -- mprotect and mremap -----------------------------------------------------------------------

def change_huge_pmd(k: "Kernel", vma: VmArea, pmd: Pmd) -> None:
    """change_huge_pmd(): a PMD-level entry takes the VMA's new protection.

    A present THP loses write permission, or when write is granted becomes writable at
    once if it is PageAnonExclusive (can_change_pmd_writable); the huge zero page stays
    read-only.  patch 9/13: change_non_present_huge_pmd() leaves a PMD swap entry as it
    is: its protection lives in the VMA, and the fault maps it accordingly.
    """
    if pmd.kind is PmdKind.HUGE:
        if vma.flags & VM.WRITE:
            if k.mem.test(pmd.pfn, PG.ANON_EXCLUSIVE):
                pmd.flags |= F_WRITE
        else:
            pmd.flags &= ~F_WRITE
    elif pmd.kind is PmdKind.ZERO:
        pmd.flags &= ~F_WRITE


def move_huge_pmd(k: "Kernel", mm: MmStruct, old_addr: int, new_addr: int) -> bool:
    """move_huge_pmd(): move the PMD-level entry at old_addr (a present THP, the huge zero
    page, and with the series a PMD swap entry) with its deposited table to new_addr, whose
    PMD must be empty; False when it is not (the caller splits and moves PTEs)."""
    if pmd_index(new_addr) in mm.pmds:
        return False
    k.trace("move_huge_pmd")
    mm.pmds[pmd_index(new_addr)] = mm.pmds.pop(pmd_index(old_addr))
    return True


# -- UFFDIO_MOVE ------------------------------------------------------------------------------------

def move_pages_huge_pmd(k: "Kernel", mm: MmStruct, dvma: VmArea, src: int, dst: int) -> None:
    """move_pages_huge_pmd(): UFFDIO_MOVE of the whole PMD-level entry at src to the empty,
    aligned PMD at dst (move_pages() checked both, and that a THP is exclusive).  The
    folio follows to the destination VMA (folio_move_anon_rmap); the huge zero page has
    no folio to follow (src_folio = NULL).  patch 10/13: a PMD swap entry goes to
    move_swap_pmd()."""
    pmd = mm.pmds[pmd_index(src)]
    if pmd.kind is PmdKind.SWAP:
        move_swap_pmd(k, mm, dvma, src, dst)
        return
    k.trace("move_pages_huge_pmd")
    if pmd.kind is PmdKind.HUGE:
        folio_move_anon_rmap(k, pmd.pfn, dvma, dst)
    mm.pmds[pmd_index(dst)] = mm.pmds.pop(pmd_index(src))


def move_swap_pmd(k: "Kernel", mm: MmStruct, dvma: VmArea, src: int, dst: int) -> None:
    """patch 10/13: move_swap_pmd(): an exclusive PMD swap entry moves whole, with its
    deposited table; a PMD-size folio still caching its slots moves with it (decision 5)."""
    pmd = mm.pmds[pmd_index(src)]
    k.trace("move_swap_pmd")
    cached = k.swp_info(pmd.swp_type).cache.get(pmd.swp_offset)
    if cached is not None:
        folio_move_anon_rmap(k, cached, dvma, dst)
    mm.pmds[pmd_index(dst)] = mm.pmds.pop(pmd_index(src))


# -- zap ------------------------------------------------------------------------------------------

def zap_huge_pmd(k: "Kernel", mm: MmStruct, addr: int) -> None:
    """zap_huge_pmd(): unmap a whole PMD-level entry and free its deposited table.

    patch 9/13: a PMD swap entry drops its 512 slot references without looking
    up a folio (free_swap_and_cache_nr reclaims a now-unused cached folio).
    """
    pmdi = pmd_index(addr)
    pmd = mm.pmds.pop(pmdi)
    zap_deposited_table(mm, pmd)
    if pmd.kind is PmdKind.HUGE:
        k.trace("zap_huge_pmd")
        pfn = pmd.pfn
        folio_remove_rmap_pmd(k, pfn)      # an anonymous folio does not take the PMD's dirty bit
        mm.rss_anon -= HPAGE_PMD_NR
        if not k.mem.folio_mapped(pfn) and k.mem.test(pfn, PG.SWAPCACHE):
            folio_free_swap(k, pfn)     # free_swap_cache() from the mmu_gather
        folio_put_if_unused(k, pfn)
    elif pmd.kind is PmdKind.SWAP:
        k.trace("zap_huge_pmd(swap)")
        free_swap_and_cache_nr(k, pmd.entry, HPAGE_PMD_NR)
        mm.rss_swapents -= HPAGE_PMD_NR
    else:
        k.trace("zap_huge_pmd(huge zero)")


# -- the series: PMD swap-in --------------------------------------------------------------------------

def do_huge_pmd_swap_page(k: "Kernel", mm: MmStruct, vma: VmArea, addr: int, write: bool) -> Fault:
    """patch 11/13: fault in a PMD swap entry as one PMD-mapped THP.

    The folio comes from the swap cache, or swapin_alloc_pmd_folio() allocates
    an order-9 folio and reads all 512 slots.  Any PMD-order resource missing
    (allocation or charge failure, a cached folio that is no longer PMD-size, a
    read the PMD path may not do: pmd_swapin_fallback()) splits the entry and
    falls back to the PTE path (decision 3: F3, F5, decisions 11-13).  Mapped
    writable only if the entry was exclusive, the VMA is writable and uffd-wp is
    not armed; a write fault on a non-exclusive entry continues into
    do_huge_pmd_wp_page.
    """
    mem = k.mem
    haddr = addr & PMD_MASK
    pmd = mm.pmds[pmd_index(haddr)]
    entry = pmd.entry
    si = k.swp_info(entry.type)
    folio = swap_cache_get_folio(k, entry)
    major = False
    if folio is not None and mem.order[folio] == HPAGE_PMD_ORDER \
            and k.config.should_fail(FaultPoint.SPLIT_RACE):
        split_folio(k, folio)       # F5: deferred_split_scan / memory_failure got there first
    if folio is not None and mem.order[folio] != HPAGE_PMD_ORDER:
        return _swapin_fallback(k, mm, vma, haddr, "cached folio not PMD-size")     # F5
    if folio is None:
        why = pmd_swapin_fallback(k, vma, haddr, entry)
        if why is None and k.config.should_fail(FaultPoint.MEMCG_CHARGE):
            # decision 3 (revised): a charge failure counts swpin_fallback_charge and
            # swpin_fallback, as mainline's alloc_swap_folio() counts both
            k.vmstat.count_mthp("swpin_fallback_charge")
            why = "charge failed"
        if why is None:
            k.trace("do_huge_pmd_swap_page")     # traced before its callees, in call order
            folio = swapin_alloc_pmd_folio(k, vma, entry)
        if folio is None:
            return _swapin_fallback(k, mm, vma, haddr, why or "no PMD-order folio")     # F3
        major = True
    else:
        k.trace("do_huge_pmd_swap_page(swapcache hit)")
    exclusive = pmd.pmd_swp_exclusive()
    flags = (pmd.flags & (F_SOFT_DIRTY | F_UFFD_WP)) | F_YOUNG
    if exclusive and vma.flags & VM.WRITE and not pmd.flags & F_UFFD_WP:
        flags |= F_WRITE
        if write:
            flags |= F_DIRTY
    map_swapped_pmd(k, mm, vma, haddr, entry, folio, flags, exclusive)
    # Decision 2: on a synchronous device the slots are released at once (as
    # mainline's bypass does); otherwise the do_swap_page rules apply.
    if mem.test(folio, PG.SWAPCACHE) and ((major and si.synchronous) or vm_swap_full(k) or (
            write and exclusive and mem.folio_mapcount(folio) == 1)):
        folio_free_swap(k, folio)
    if major:
        k.vmstat.count("pgmajfault")
    if write and not flags & F_WRITE:
        if do_huge_pmd_wp_page(k, mm, vma, addr) is Fault.FALLBACK:
            return Fault.FALLBACK
    return Fault.MAJOR if major else Fault.DONE


def _swapin_fallback(k: "Kernel", mm: MmStruct, vma: VmArea, haddr: int, why: str) -> Fault:
    """Decision 3: split the PMD swap entry (thp_split_pmd +1), count mthp swpin_fallback;
    the PTE path then swaps in the faulting page."""
    k.trace(f"do_huge_pmd_swap_page({why}): split")
    k.vmstat.count_mthp("swpin_fallback")
    split_huge_pmd_locked(k, mm, vma, haddr)
    return Fault.FALLBACK


def pmd_swapin_fallback(k: "Kernel", vma: VmArea, haddr: int, entry: SwpEntry) -> str | None:
    """Why the PMD swap entry at haddr, not in the swap cache, may not be read into a new
    PMD-size folio (the fault, patch 11, and swapoff's unuse_pmd, patch 8, then take the PTE
    path), or None when it may.

    As mainline's alloc_swap_folio() checks before it allocates a large swap-in folio:
    - decision 11: the VMA's THP policy no longer allows a THP there (MADV_NOHUGEPAGE,
      `thp never`, set after the swap-out): thp_vma_allowable_orders();
    - decision 12: zswap has been enabled since boot (zswap_never_enabled() is false):
      zswap_load() cannot fill a large folio, and any slot may be in zswap;
    - decision 13: some of the entry's slots are cached as smaller folios (a split copy
      of the entry read them, with readahead): a second folio may not cache them
      (non_swapcache_batch() in mainline).
    A PMD-size folio already in the swap cache needs no read, and is mapped as it is.
    """
    if not thp_vma_allowable(k, vma, haddr):
        return "THP not allowed in the VMA"
    if k.zswap_ever_enabled:
        return "zswap was enabled"
    si = k.swp_info(entry.type)
    if si.cache.any_in(entry.offset, HPAGE_PMD_NR):
        return "slots cached as smaller folios"
    return None


def swapin_alloc_pmd_folio(k: "Kernel", vma: VmArea, entry: SwpEntry) -> int | None:
    """patch 8/13 swapin_alloc_pmd_folio(): a new PMD-order folio in the swap cache over the
    entry's 512 slots, read from the device; None when the folio cannot be had."""
    folio = vma_alloc_anon_folio_pmd(k, vma)
    if folio is None:
        k.trace("swapin_alloc_pmd_folio(failed)")
        return None
    k.trace("swapin_alloc_pmd_folio")
    k.mem.set(folio, PG.SWAPBACKED)
    add_to_swap_cache(k, folio, entry)
    swap_read_folio(k, folio, entry)
    lru_add(k, folio)
    return folio


def map_swapped_pmd(k: "Kernel", mm: MmStruct, vma: VmArea, haddr: int, entry: SwpEntry, folio: int,
                    flags: int, exclusive: bool) -> None:
    """Map a PMD swap entry's folio by a PMD and drop the entry's 512 slot references
    (the common tail of do_huge_pmd_swap_page and unuse_pmd)."""
    if not k.mem.test(folio, PG.ANON):
        anon_vma_prepare(k, mm, vma)
        folio_add_new_anon_rmap(k, folio, vma, haddr, pmd=True, exclusive=exclusive)
    else:
        folio_add_anon_rmap_pmd(k, folio, exclusive)
    # the PMD swap entry's deposit (if any) stays with the PMD that replaces it
    deposited = mm.pmds[pmd_index(haddr)].deposited
    mm.pmds[pmd_index(haddr)] = Pmd(PmdKind.HUGE, flags=flags, pfn=folio, deposited=deposited)
    mm.rss_anon += HPAGE_PMD_NR
    mm.rss_swapents -= HPAGE_PMD_NR
    free_swap_and_cache_nr(k, entry, HPAGE_PMD_NR)
