"""madvise(2) (mm/madvise.c): hugepage, nohugepage, pageout, cold, dontneed.

Like the kernel, madvise walks the VMAs of the range and applies the advice to
each; a hole in the range gives ENOMEM after the mapped parts were advised
(the message says so).  MADV_COLD / MADV_PAGEOUT skip folios that may be
mapped by another process, split a THP the range covers only partly, and leave
non-present PMDs (migration, and with the series PMD swap entries) alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import HPAGE_PMD_NR, PAGE_SHIFT, PMD_MASK, PMD_SHIFT, PMD_SIZE
from .errors import MmError
from .folio import PG
from .huge_memory import split_folio
from .mm_types import MmStruct
from .mmap import page_aligned, unmap_page_range, vma_merge_around, vma_range
from .pgtable import F_DIRTY, F_SPECIAL, F_YOUNG, PmdKind, pmd_pgtable, pte_pfn, pte_present
from .vma import VM
from .vmscan import reclaim_pages

if TYPE_CHECKING:
    from .kernel import Kernel

ADVICES = ("hugepage", "nohugepage", "pageout", "cold", "free", "dontneed", "collapse")


def _holes(mm: MmStruct, start: int, end: int) -> list[tuple[int, int]]:
    holes = []
    addr = start
    for vma in mm.vmas_in(start, end):
        if vma.start > addr:
            holes.append((addr, vma.start))
        addr = vma.end
    if addr < end:
        holes.append((addr, end))
    return holes


def sys_madvise(k: "Kernel", mm: MmStruct, start: int, length: int, advice: str) -> None:
    page_aligned("madvise", start, length)
    if advice not in ADVICES:
        raise MmError("EINVAL", "madvise", f"unknown advice {advice!r}")
    end = start + length
    if not mm.vmas_in(start, end):
        raise MmError("ENOMEM", "madvise", f"no mapping in {start:#x}-{end:#x}")
    holes = _holes(mm, start, end)
    k.trace(f"madvise(MADV_{advice.upper()})")
    if advice in ("hugepage", "nohugepage"):
        madvise_thp_flags(k, mm, start, end, advice == "hugepage")
    elif advice in ("pageout", "cold"):
        madvise_cold_or_pageout(k, mm, start, end, advice == "pageout")
    elif advice == "dontneed":
        madvise_dontneed(k, mm, start, end)
    elif advice == "free":
        madvise_free(k, mm, start, end)
    elif advice == "collapse":
        from .khugepaged import madvise_collapse
        madvise_collapse(k, mm, start, end)
    if holes:
        lo, hi = holes[0]
        raise MmError("ENOMEM", "madvise", f"range has a hole at {lo:#x}-{hi:#x}",
                      partial="the mapped parts of the range were advised, as the kernel does")


def madvise_thp_flags(k: "Kernel", mm: MmStruct, start: int, end: int, huge: bool) -> None:
    """hugepage_madvise(): set VM_HUGEPAGE (clearing VM_NOHUGEPAGE) or the reverse."""
    def new_flags(flags: VM) -> VM:
        return (flags | VM.HUGEPAGE) & ~VM.NOHUGEPAGE if huge else (flags | VM.NOHUGEPAGE) & ~VM.HUGEPAGE

    # madvise_update_vma() leaves a VMA that already has the new flags alone (no VMA split,
    # no PMD split at the range's edges).
    parts = [(max(start, v.start), min(end, v.end)) for v in mm.vmas_in(start, end) if new_flags(v.flags) != v.flags]
    for lo, hi in parts:
        for vma in vma_range(k, mm, lo, hi):
            vma.flags = new_flags(vma.flags)
    for vma in list(mm.vmas_in(start - 1, end + 1)):
        if vma in mm.vmas:
            vma_merge_around(mm, vma)


def madvise_cold_or_pageout(k: "Kernel", mm: MmStruct, start: int, end: int, pageout: bool) -> None:
    """madvise_cold_or_pageout_pte_range() over every VMA, then reclaim_pages() for PAGEOUT."""
    mem = k.mem
    folios: dict[int, None] = {}
    for vma in mm.vmas_in(start, end):
        lo, hi = max(start, vma.start), min(end, vma.end)
        addr = lo
        while addr < hi:
            pmdi = addr >> PMD_SHIFT
            nxt = min(hi, (pmdi + 1) << PMD_SHIFT)
            pmd = mm.pmds.get(pmdi)
            if pmd is not None and pmd.kind is PmdKind.HUGE:
                pfn = pmd.pfn
                if mem.folio_maybe_mapped_shared(pfn):
                    addr = nxt
                    continue
                if addr & ~PMD_MASK == 0 and nxt - addr == PMD_SIZE:
                    pmd.flags &= ~F_YOUNG
                    mem.clear(pfn, PG.REFERENCED)
                    folios[pfn] = None
                    addr = nxt
                    continue
                # Only part of the THP is covered: split the folio, then go on per PTE.
                split_folio(k, pfn)
                pmd = mm.pmds.get(pmdi)
            if pmd is not None and pmd.kind is PmdKind.TABLE:
                ptes = pmd_pgtable(pmd).ptes
                for i in range((addr >> PAGE_SHIFT) & 511, ((nxt - 1) >> PAGE_SHIFT & 511) + 1):
                    pte = ptes[i]
                    if not pte_present(pte) or pte & F_SPECIAL:
                        continue
                    head = mem.folio_of(pte_pfn(pte))
                    if mem.folio_maybe_mapped_shared(head):
                        continue
                    if mem.order[head] and not _covers_folio(mm, vma, lo, hi, head, k):
                        split_folio(k, head)
                        head = pte_pfn(ptes[i])
                    ptes[i] = pte & ~F_YOUNG
                    mem.clear(head, PG.REFERENCED)
                    folios[head] = None
            addr = nxt
    if pageout:
        reclaim_pages(k, [p for p in folios if mem.flags[p] & PG.USED])
    else:
        for pfn in folios:
            if k.lru.deactivate(pfn):
                k.vmstat.count("pgdeactivate", mem.nr_pages(pfn))


def _covers_folio(mm: MmStruct, vma, lo: int, hi: int, head: int, k: "Kernel") -> bool:
    """Whether [lo, hi) covers every page of a PTE-mapped large folio in this VMA."""
    first = vma.address_of(k.mem.index[head])
    return lo <= first and first + (HPAGE_PMD_NR << PAGE_SHIFT) <= hi


def madvise_dontneed(k: "Kernel", mm: MmStruct, start: int, end: int) -> None:
    """madvise_dontneed_single_vma(): zap the range; the pages read zero afterwards.

    CONFIG_PT_RECLAIM: a PTE table that ends up empty is freed when the zap of this VMA
    covered its whole PMD (zap_pte_range() reclaims only if `end - start >= PMD_SIZE`,
    reclaim_pt_is_enabled()); a table the zap covered in part stays.
    """
    for vma in mm.vmas_in(start, end):
        lo, hi = max(start, vma.start), min(end, vma.end)
        unmap_page_range(k, mm, vma, lo, hi)
        for pmdi in range((lo + PMD_SIZE - 1) >> PMD_SHIFT, hi >> PMD_SHIFT):
            pmd = mm.pmds.get(pmdi)
            if pmd is not None and pmd.kind is PmdKind.TABLE and pmd_pgtable(pmd).is_empty():
                del mm.pmds[pmdi]
                mm.nr_ptes -= 1
    k.shadow.zero(mm.pid, start, end)


def madvise_free(k: "Kernel", mm: MmStruct, start: int, end: int) -> None:
    """MADV_FREE (madvise_free_single_vma): present pages become lazyfree, swap entries are dropped.

    A wholly covered, unshared THP is marked lazyfree in place
    (madvise_free_huge_pmd); a partly covered one is split first.  Swap
    entries are freed and cleared (patch 9/13 for a PMD swap entry, which frees
    its deposited table too).  Swapped pages read zero afterwards; lazyfree
    pages keep their data until reclaim finds them clean.
    """
    from .huge_memory import split_huge_pmd_locked, zap_huge_pmd
    from .swapfile import free_swap_and_cache_nr
    from .swapops import SwpEntry

    mem = k.mem
    for vma in mm.vmas_in(start, end):
        lo, hi = max(start, vma.start), min(end, vma.end)
        addr = lo
        while addr < hi:
            pmdi = addr >> PMD_SHIFT
            nxt = min(hi, (pmdi + 1) << PMD_SHIFT)
            pmd = mm.pmds.get(pmdi)
            whole = addr & ~PMD_MASK == 0 and nxt - addr == PMD_SIZE
            if pmd is not None and pmd.kind is PmdKind.SWAP:
                if whole:
                    zap_huge_pmd(k, mm, addr)
                    k.shadow.zero(mm.pid, addr, nxt)
                    addr = nxt
                    continue
                split_huge_pmd_locked(k, mm, vma, addr & PMD_MASK)
                pmd = mm.pmds[pmdi]
            if pmd is not None and pmd.kind is PmdKind.HUGE:
                pfn = pmd.pfn
                if mem.folio_mapcount(pfn) != 1:
                    addr = nxt
                    continue
                if whole:
                    pmd.flags &= ~(F_YOUNG | F_DIRTY)
                    _mark_lazyfree(k, pfn)
                    addr = nxt
                    continue
                split_folio(k, pfn)
                pmd = mm.pmds.get(pmdi)
            if pmd is not None and pmd.kind is PmdKind.TABLE:
                ptes = pmd_pgtable(pmd).ptes
                for i in range((addr >> PAGE_SHIFT) & 511, ((nxt - 1) >> PAGE_SHIFT & 511) + 1):
                    pte = ptes[i]
                    if pte & 3 == 2:
                        ptes[i] = 0
                        free_swap_and_cache_nr(k, SwpEntry((pte >> 12) & 0x1F, pte >> 17), 1)
                        mm.rss_swapents -= 1
                        a = (pmdi << PMD_SHIFT) + (i << PAGE_SHIFT)
                        k.shadow.zero(mm.pid, a, a + (1 << PAGE_SHIFT))
                    elif pte & 3 == 1 and not pte & F_SPECIAL:
                        head = mem.folio_of(pte >> 12)
                        if mem.folio_maybe_mapped_shared(head):
                            continue
                        if mem.order[head] and not _covers_folio(mm, vma, lo, hi, head, k):
                            split_folio(k, head)
                            head = ptes[i] >> 12
                        ptes[i] &= ~(F_YOUNG | F_DIRTY)
                        _mark_lazyfree(k, head)
            addr = nxt
    k.trace("madvise_free")


def _mark_lazyfree(k: "Kernel", pfn: int) -> None:
    """folio_mark_lazyfree(): clean, not swap-backed, at the tail of the inactive list."""
    from .swap_state import folio_free_swap

    mem = k.mem
    if not mem.test(pfn, PG.SWAPBACKED):
        return
    if mem.test(pfn, PG.SWAPCACHE) and not folio_free_swap(k, pfn):
        return
    mem.clear(pfn, PG.DIRTY)
    mem.clear(pfn, PG.SWAPBACKED)
    k.lru.delete(pfn)
    k.lru.inactive[pfn] = None
    k.vmstat.count("pglazyfree", mem.nr_pages(pfn))
