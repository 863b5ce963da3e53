"""khugepaged and MADV_COLLAPSE (mm/khugepaged.c).

`hpage_collapse_scan_pmd` looks at one 2 MiB range: check_pmd_state() skips a
none PMD, a PMD-mapped THP and any non-present PMD (with the series that is a
PMD swap entry: decision 8, not a collapse candidate, no counter); a PTE
table is acceptable when its none/zero PTEs, swap PTEs and shared pages stay
within max_ptes_none / max_ptes_swap / max_ptes_shared (khugepaged only;
MADV_COLLAPSE ignores the limits), and for khugepaged at least one page was
referenced (6.18.44 has no SCAN_PAGE_RO: read-only pages collapse too, measured).
A VMA may collapse when it holds an aligned 2 MiB block and has an anon_vma
(thp_vma_allowable_order() outside a fault).  collapse_huge_page() allocates a
THP (thp_collapse_alloc), swaps the swap PTEs in (one major fault each), copies,
and installs the PMD over the old PTE table, which becomes the deposit.

__collapse_huge_page_swapin() faults with FAULT_FLAG_ALLOW_RETRY: a page that must be
read from an asynchronous device (a disk or a swap file) is still locked under its read
when do_swap_page() tries folio_lock_or_retry(), which gives up (VM_FAULT_RETRY); the
collapse fails with SCAN_PAGE_LOCK, which MADV_COLLAPSE returns as EAGAIN, after the THP
it allocated first (alloc_charge_folio() runs before the swapin) is freed.  What the
fault did stays: the pages swapped in before it (swap-cache hits, zram reads) and the
readahead window it started, now in the swap cache (measured on 6.18.44: `swapon d0 4M
kind disk; mmap b 2M; touch b; reclaim; madvise b collapse` is EAGAIN on every try, each
one bringing one more readahead window in).  The simulation's reads end with the step, so
a page a fault finds in the swap cache is never still under I/O.
"""

from __future__ import annotations

from enum import Enum
from array import array
from typing import TYPE_CHECKING

from .config import Deposit, FaultPoint, ThpMode
from .constants import HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SHIFT, PMD_MASK, PMD_SIZE, pmd_index
from .errors import MmError
from .folio import PG, MemMap
from .memory import alloc_anon_folio, do_swap_page, swapin_readahead
from .mm_types import MmStruct
from .pgtable_generic import pte_free
from .pud import pmd_table_present
from .pgtable import (F_DIRTY, F_SPECIAL, F_WRITE, F_YOUNG, Pmd, PmdKind, is_swap_pte, pmd_pgtable, pte_none,
                      pte_pfn, pte_present, pte_swp_offset, pte_swp_type)
from .rmap import folio_add_new_anon_rmap, folio_remove_rmap_ptes
from .swap import folio_put_if_unused, free_order0_folios, lru_add
from .swap_state import folio_free_swap
from .swapops import SwpEntry
from .vma import VM, VmArea

if TYPE_CHECKING:
    from .kernel import Kernel


class Scan(Enum):
    """enum scan_result (the ones the simulation can produce)."""

    SUCCEED = "succeed"
    PMD_NULL = "pmd_null"
    PMD_NONE = "pmd_none"
    PMD_MAPPED = "pmd_mapped"
    EXCEED_NONE_PTE = "exceed_none_pte"
    EXCEED_SWAP_PTE = "exceed_swap_pte"
    EXCEED_SHARED_PTE = "exceed_shared_pte"
    LACK_REFERENCED_PAGE = "lack_referenced_page"
    ALLOC_HUGE_PAGE_FAIL = "alloc_huge_page_fail"
    PTE_NON_PRESENT = "pte_non_present"
    VMA_CHECK = "vma_check"
    FAIL = "fail"
    PAGE_ANON = "page_not_anon"
    PAGE_LOCK = "page_lock"


#: madvise_collapse(): the results after which it goes on to the next block ("whitelisted set
#: of results where continuing OK", and a collapse); any other ends it, with its errno.
MADV_COLLAPSE_GOES_ON = frozenset({Scan.SUCCEED, Scan.PMD_MAPPED, Scan.PMD_NULL, Scan.PTE_NON_PRESENT,
                                   Scan.LACK_REFERENCED_PAGE, Scan.PAGE_LOCK})


def find_pmd_or_thp_or_none(mm: MmStruct, haddr: int) -> Scan | None:
    """find_pmd_or_thp_or_none() for a block with no PTE table or THP: SCAN_PMD_NULL when the
    PMD table page of its 1 GiB is not there (mm_find_pmd() finds no PUD entry), SCAN_PMD_NONE
    when it is and the block's entry is none; None when the block has an entry.

    The PUD level is pud.py's: a PMD table page is taken to be there while some block of the
    same 1 GiB has an entry."""
    if pmd_index(haddr) in mm.pmds:
        return None
    return Scan.PMD_NONE if pmd_table_present(mm, haddr) else Scan.PMD_NULL


def madvise_collapse_errno(r: Scan) -> str:
    """madvise_collapse_errno(): the errno MADV_COLLAPSE returns for a block's last failure."""
    if r is Scan.ALLOC_HUGE_PAGE_FAIL:
        return "ENOMEM"
    if r is Scan.EXCEED_NONE_PTE:
        return "EBUSY"
    if r is Scan.PAGE_LOCK:        # with SCAN_PAGE_COUNT/LRU/DEL_PAGE_LRU/PAGE_FILLED: "try again"
        return "EAGAIN"
    return "EINVAL"


def hugepage_vma_check(k: "Kernel", vma: VmArea, khugepaged: bool) -> bool:
    """thp_vma_allowable_order(TVA_KHUGEPAGED / TVA_FORCED_COLLAPSE) for PMD order."""
    if vma.flags & VM.NOHUGEPAGE:
        return False
    # thp_vma_suitable_order(vma, vm_end - HPAGE_PMD_SIZE): the VMA holds an aligned 2 MiB block.
    if (vma.end - PMD_SIZE) & PMD_MASK < vma.start:
        return False
    # "Allow page fault since anon_vma may be not initialized until the first page fault":
    # outside a fault, a VMA never written (no anon_vma; zero pages at most) may not collapse.
    if not vma.anon_vma:
        return False
    if not khugepaged:
        return True
    return k.config.thp is ThpMode.ALWAYS or (k.config.thp is ThpMode.MADVISE and bool(vma.flags & VM.HUGEPAGE))


def hpage_collapse_scan_pmd(k: "Kernel", mm: MmStruct, vma: VmArea, haddr: int, khugepaged: bool) -> Scan:
    pmd = mm.pmds.get(pmd_index(haddr))
    if pmd is None:
        return find_pmd_or_thp_or_none(mm, haddr) or Scan.PMD_NULL
    if pmd.kind in (PmdKind.SWAP, PmdKind.MIGRATION):      # !pmd_present()
        return Scan.PMD_NULL
    if pmd.kind in (PmdKind.HUGE, PmdKind.ZERO):
        return Scan.PMD_MAPPED
    cfg = k.config
    mem = k.mem
    none = swap = shared = referenced = 0
    # userfaultfd_armed(): a registered VMA takes no none or zero PTE, even in MADV_COLLAPSE
    # (its missing pages must still raise userfaults); EBUSY, measured on 6.18.
    uffd_armed = bool(vma.flags & (VM.UFFD_MISSING | VM.UFFD_WP))
    for pte in pmd_pgtable(pmd).ptes:
        if pte_none(pte) or (pte_present(pte) and pte & F_SPECIAL):
            none += 1
            if uffd_armed or (khugepaged and none > cfg.max_ptes_none):
                k.vmstat.count("thp_scan_exceed_none_pte")
                return Scan.EXCEED_NONE_PTE
        elif is_swap_pte(pte):
            swap += 1
            if khugepaged and swap > cfg.max_ptes_swap:
                k.vmstat.count("thp_scan_exceed_swap_pte")
                return Scan.EXCEED_SWAP_PTE
        else:
            page = pte_pfn(pte)
            if pte & F_YOUNG or mem.test(mem.folio_of(page), PG.REFERENCED):
                referenced += 1
            if mem.page_mapcount(page) > 1:
                shared += 1
                if khugepaged and shared > cfg.max_ptes_shared:
                    k.vmstat.count("thp_scan_exceed_share_pte")
                    return Scan.EXCEED_SHARED_PTE
    # Measured on 6.18.44: no SCAN_PAGE_RO (a range of read-only pages, a wholly swapped one
    # (semantics #22) and an empty table all collapse, by khugepaged and MADV_COLLAPSE alike).
    if khugepaged and (not referenced or (swap and referenced < HPAGE_PMD_NR // 2)):
        return Scan.LACK_REFERENCED_PAGE
    return collapse_huge_page(k, mm, vma, haddr, unmapped=swap)


def collapse_huge_page(k: "Kernel", mm: MmStruct, vma: VmArea, haddr: int, unmapped: int) -> Scan:
    """Allocate, swap in (when the scan found `unmapped` swap PTEs), copy, replace the PTE
    table by a PMD (the table becomes the deposit)."""
    mem = k.mem
    pmd = mm.pmds[pmd_index(haddr)]
    table = pmd_pgtable(pmd)
    k.trace("collapse_huge_page")          # traced before its callees, in call order
    # hugepage_vma_revalidate(expect_anon=true): an anonymous collapse needs the VMA's
    # anon_vma (the new folio's rmap, and fork's vma_needs_copy, go by it).  The kernel
    # checks it after allocating the folio; here no folio is allocated for a VMA without one.
    if not vma.anon_vma:
        return Scan.PAGE_ANON
    # alloc_charge_folio() comes first (the mmap lock dropped for a possibly long
    # allocation), then __collapse_huge_page_swapin(), then the isolation.
    new = None if k.config.should_fail(FaultPoint.THP_ALLOC) else alloc_anon_folio(k, HPAGE_PMD_ORDER)
    if new is None:
        k.vmstat.count("thp_collapse_alloc_failed")
        return Scan.ALLOC_HUGE_PAGE_FAIL
    k.vmstat.count("thp_collapse_alloc")
    # __collapse_huge_page_swapin(), when the scan found swap PTEs: a do_swap_page for each
    # swap PTE (one the allocation's direct reclaim has just written out included), until
    # one would wait for its read.
    for i in range(HPAGE_PMD_NR if unmapped else 0):
        pte = table.ptes[i]
        if not is_swap_pte(pte):
            continue
        if _swapin_waits_for_io(k, pte):
            # do_swap_page() -> swapin_readahead() starts the reads (a major fault), then
            # folio_lock_or_retry() finds the folio locked under I/O: VM_FAULT_RETRY, and
            # the new folio is freed.
            swapin_readahead(k, SwpEntry(pte_swp_type(pte), pte_swp_offset(pte)))
            k.vmstat.count("pgmajfault")
            k.trace("__collapse_huge_page_swapin(VM_FAULT_RETRY): page_lock")
            k.vmstat.count("pgfree", HPAGE_PMD_NR)
            mem.free_folio(new)
            return Scan.PAGE_LOCK
        do_swap_page(k, mm, vma, haddr + (i << PAGE_SHIFT), False)
    # __collapse_huge_page_isolate(): the allocation (with no swap PTE found by the scan)
    # or the swap-in's own allocations may have run direct reclaim, which may have swapped
    # out pages of this very table; a PTE that is not present (or a PMD that changed) fails
    # the collapse, and the new folio is freed.
    if mm.pmds.get(pmd_index(haddr)) is not pmd or any(map(is_swap_pte, table.ptes)):
        k.trace("collapse_huge_page(pte not present): fail")
        k.vmstat.count("pgfree", HPAGE_PMD_NR)
        mem.free_folio(new)
        return Scan.PTE_NON_PRESENT
    ptes = table.ptes
    small: list[int] = []
    large: list[int] = []
    present = 0
    i = 0
    while i < HPAGE_PMD_NR:
        pte = ptes[i]
        if not pte_present(pte) or pte & F_SPECIAL:
            ptes[i] = 0
            i += 1
            continue
        page = pte_pfn(pte)
        head = mem.folio_of(page)
        # __collapse_huge_page_copy_succeeded(): the PTEs that map a large folio's pages one
        # after the other (folio_pte_batch()) lose their rmap at once, so a folio they map
        # whole is never partially mapped on the way (no deferred split; measured on 6.18.44).
        nr = _pte_batch(mem, ptes, i, page, head) if mem.order[head] else 1
        for j in range(nr):
            mem.data[new + i + j] = mem.data[page + j]
            if ptes[i + j] & F_DIRTY:
                mem.set(head, PG.DIRTY)
            ptes[i + j] = 0
        folio_remove_rmap_ptes(k, page, nr)
        present += nr
        (large if mem.order[head] else small).append(head)
        i += nr
    mm.rss_anon -= present
    for head in small:
        if not mem.folio_mapped(head):
            free_order0_folios(k, [head])
    for head in dict.fromkeys(large):
        if mem.flags[head] & PG.USED and not mem.folio_mapped(head):
            if mem.test(head, PG.SWAPCACHE):
                folio_free_swap(k, head)
            folio_put_if_unused(k, head)
    folio_add_new_anon_rmap(k, new, vma, haddr, pmd=True)
    lru_add(k, new)
    mm.rss_anon += HPAGE_PMD_NR
    # pgtable_trans_huge_deposit() of the old table; with lazy deposit it is freed instead
    deposited = k.config.deposit is Deposit.EAGER
    if not deposited:
        pte_free(mm)
    mm.pmds[pmd_index(haddr)] = Pmd(PmdKind.HUGE, flags=F_WRITE | F_DIRTY | F_YOUNG, pfn=new, deposited=deposited)
    return Scan.SUCCEED


def _swapin_waits_for_io(k: "Kernel", pte: int) -> bool:
    """Whether do_swap_page() of this swap PTE would find its folio locked under a read:
    not in the swap cache, on a device without SWP_SYNCHRONOUS_IO, and neither a zeromap
    slot nor one zswap holds (those are read at once, swap_read_folio() unlocks them)."""
    si = k.swp_info(pte_swp_type(pte))
    off = pte_swp_offset(pte)
    return (not si.synchronous and si.cache.get(off) is None
            and not si.zeromap[off] and not si.zswap[off])


def _pte_batch(mem: MemMap, ptes: array, i: int, page: int, head: int) -> int:
    """folio_pte_batch(): how many PTEs from ptes[i] (which maps `page` of the large folio
    `head`) map its next pages in order, up to the table's and the folio's end."""
    last = head + mem.nr_pages(head)
    nr = 1
    while i + nr < len(ptes) and page + nr < last:
        pte = ptes[i + nr]
        if not pte_present(pte) or pte & F_SPECIAL or pte_pfn(pte) != page + nr:
            break
        nr += 1
    return nr


def madvise_collapse(k: "Kernel", mm: MmStruct, start: int, end: int) -> None:
    """MADV_COLLAPSE: collapse every aligned 2 MiB block of the range, ignoring the limits.

    VMA by VMA, as madvise_walk_vmas() calls madvise_collapse(): a VMA that may not hold
    a THP is EINVAL; a VMA with a block that failed returns its errno, and the VMAs after
    it are not visited.  A part of a VMA inside one 2 MiB block that does not start at the
    block's start is EINVAL too: the kernel's `thps == (hend - hstart) >> HPAGE_PMD_SHIFT`
    is false when hstart > hend (unsigned), and `last_fail` is still SCAN_FAIL.
    """
    collapsed = False
    for vma in mm.vmas_in(start, end):
        results = []
        lo, hi = max(start, vma.start), min(end, vma.end)
        if not hugepage_vma_check(k, vma, khugepaged=False):
            results.append(Scan.VMA_CHECK)
        elif (lo + PMD_SIZE - 1) & PMD_MASK > hi & PMD_MASK:
            results.append(Scan.FAIL)
        else:
            haddr = (lo + PMD_SIZE - 1) & PMD_MASK
            while haddr + PMD_SIZE <= hi:
                results.append(hpage_collapse_scan_pmd(k, mm, vma, haddr, khugepaged=False))
                collapsed = collapsed or results[-1] is Scan.SUCCEED
                if results[-1] not in MADV_COLLAPSE_GOES_ON:
                    break           # "Other error, exit": the blocks after it are not looked at
                haddr += PMD_SIZE
        bad = [r for r in results if r not in (Scan.SUCCEED, Scan.PMD_MAPPED)]
        if bad:
            errno = madvise_collapse_errno(bad[-1])       # the loop stops at ALLOC_HUGE_PAGE_FAIL
            done = []
            if collapsed:
                done.append("blocks before the failure were collapsed")
            if Scan.PAGE_LOCK in bad:
                done.append("the pages swapped in before the wait stay, and the readahead in the swap cache")
            raise MmError(errno, "madvise", f"MADV_COLLAPSE failed: {bad[-1].value}",
                          partial=", ".join(done) + ", as the kernel does" if done else None)


def khugepaged_scan(k: "Kernel") -> dict[str, int]:
    """One full khugepaged pass over every process; the scan results counted by kind."""
    tally: dict[str, int] = {}
    k.trace("khugepaged_scan_mm_slot")
    for pid in sorted(k.mms):
        mm = k.mms[pid]
        for vma in list(mm.vmas):
            if vma not in mm.vmas or not hugepage_vma_check(k, vma, khugepaged=True):
                continue
            haddr = (vma.start + PMD_SIZE - 1) & PMD_MASK
            while haddr + PMD_SIZE <= vma.end:
                r = hpage_collapse_scan_pmd(k, mm, vma, haddr, khugepaged=True)
                tally[r.value] = tally.get(r.value, 0) + 1
                haddr += PMD_SIZE
    return tally
