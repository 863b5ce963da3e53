"""madvise(2) (mm/madvise.c): MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_PAGEOUT, MADV_COLD,
MADV_FREE, MADV_DONTNEED and MADV_COLLAPSE (khugepaged.py).

Like the kernel, madvise walks the VMAs of the range and applies the advice to
each; a hole in the range gives ENOMEM after the mapped parts were advised
(the message says so).  MADV_COLD / MADV_PAGEOUT skip folios that may be
mapped by another process, split a THP the range covers only partly, and leave
non-present PMDs (migration, and with the series PMD swap entries) alone.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING

from .constants import PAGE_SHIFT, PMD_MASK, PMD_SHIFT, PMD_SIZE
from .errors import MmError
from .folio import PG
from .huge_memory import zap_huge_pmd
from .huge_split import split_folio, split_huge_pmd_locked
from .khugepaged import madvise_collapse
from .mm_types import MmStruct
from .mman import Madv
from .mmap import page_aligned, unmap_page_range, vma_merge_around, vma_range
from .pagewalk import Walker, pte_range, walk_page_range, walk_pmd_range
from .pgtable_generic import pte_free
from .pgtable import (F_DIRTY, F_SPECIAL, F_YOUNG, KIND_MASK, KIND_PRESENT, PFN_SHIFT, PmdKind, is_swap_pte,
                      pmd_pgtable, pte_pfn, pte_present, pte_to_swp_entry)
from .swap_slots import free_swap_and_cache_nr
from .swap_state import folio_free_swap
from .vma import VM
from .vmscan import reclaim_pages

if TYPE_CHECKING:
    from .kernel import Kernel

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


def sys_madvise(k: "Kernel", mm: MmStruct, start: int, length: int, advice: Madv) -> None:
    page_aligned("madvise", start, length, beyond="ENOMEM")
    end = start + length
    if not mm.vmas_in(start, end):
        raise MmError("ENOMEM", "madvise", f"no mapping in {start:#x}-{end:#x}")
    holes = _holes(mm, start, end)
    k.trace(f"madvise({advice.name})")
    match advice:
        case Madv.MADV_HUGEPAGE | Madv.MADV_NOHUGEPAGE:
            madvise_thp_flags(k, mm, start, end, advice is Madv.MADV_HUGEPAGE)
        case Madv.MADV_PAGEOUT | Madv.MADV_COLD:
            madvise_cold_or_pageout(k, mm, start, end, advice is Madv.MADV_PAGEOUT)
        case Madv.MADV_DONTNEED:
            madvise_dontneed(k, mm, start, end)
        case Madv.MADV_FREE:
            madvise_free(k, mm, start, end)
        case Madv.MADV_COLLAPSE:
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
    # no PMD split at the range's edges, and no merge: two VMAs that could merge stay apart,
    # kernel fuzz seed 15151 script 3060); a VMA whose flags change merges with its neighbours
    # as they are then (vma_modify_flags(), one VMA after the other from the lowest), never a
    # neighbour with its other neighbour: a changed VMA takes in the one above it that has
    # the flags already, and the next changed VMA merges with both (seed 17171 script 1245).
    parts = [(max(start, v.start), min(end, v.end)) for v in mm.vmas_in(start, end)
             if new_flags(v.flags) != v.flags]
    for lo, hi in parts:
        for vma in vma_range(k, mm, lo, hi):
            vma.flags = new_flags(vma.flags)
            vma_merge_around(k, mm, vma)


def madvise_cold_or_pageout(k: "Kernel", mm: MmStruct, start: int, end: int, pageout: bool) -> None:
    """madvise_cold_or_pageout_pte_range() over every VMA, then reclaim_pages() for PAGEOUT.

    Each folio loses PG_referenced; only MADV_COLD clears the young bit of its PMD or PTEs
    (`if (!pageout && pmd_young(orig_pmd))`): a folio that PAGEOUT fails to reclaim (no swap
    space) keeps them, and khugepaged counts its pages as referenced.
    """
    mem = k.mem
    folios: dict[int, None] = {}
    for vma, pmdi, pmd, addr, nxt in walk_page_range(k, mm, start, end, Walker.MADVISE):
        if pmd is not None and pmd.kind is PmdKind.HUGE:
            pfn = pmd.pfn
            if mem.folio_maybe_mapped_shared(pfn):
                continue
            if addr & ~PMD_MASK == 0 and nxt - addr == PMD_SIZE:
                if not pageout:
                    pmd.flags &= ~F_YOUNG
                mem.clear(pfn, PG.REFERENCED)
                folios[pfn] = None
                continue
            # Only part of the THP is covered: split the folio, then go on per PTE.
            split_folio(k, pfn)
            pmd = mm.pmds.get(pmdi)
        if pmd is not None and pmd.kind is PmdKind.TABLE:
            lo, hi = max(start, vma.start), min(end, vma.end)
            ptes, idx = pte_range(k, Walker.MADVISE, pmd, addr, nxt)
            flags, order, mapcount = mem.flags, mem.order, mem.mapcount
            batches: dict[int, bool] = {}
            for i in idx:
                pte = ptes[i]
                if pte & KIND_MASK != KIND_PRESENT or pte & F_SPECIAL:
                    continue
                head = pte >> PFN_SHIFT
                if order[head] or flags[head] & PG.TAIL:
                    head = _folio_to_advise(k, ptes, i, pmdi << PMD_SHIFT, lo, hi, batches)
                    if head is None:
                        continue
                elif mapcount[head] > 1:
                    continue            # an order-0 folio another process may map (inline: once per PTE)
                if not pageout:
                    ptes[i] = pte & ~F_YOUNG
                flags[head] &= ~PG.REFERENCED
                folios[head] = None
    if pageout:
        reclaim_pages(k, [p for p in folios if mem.flags[p] & PG.USED])
    else:
        for pfn in folios:
            if k.lru.deactivate(pfn):
                k.vmstat.count("pgdeactivate", mem.nr_pages(pfn))


def _folio_to_advise(k: "Kernel", ptes: array, i: int, base: int, lo: int, hi: int,
                     batches: dict[int, bool]) -> int | None:
    """The folio the present PTE ptes[i] (of the table at `base`) maps, for MADV_COLD/PAGEOUT
    over [lo, hi): None when another process may map it (skipped); a large folio the range's
    PTEs do not map whole is split first, and the PTE's small folio is the one advised."""
    mem = k.mem
    head = mem.folio_of(pte_pfn(ptes[i]))
    if mem.folio_maybe_mapped_shared(head):
        return None
    if mem.order[head] and not _pte_batch_covers(k, ptes, i, base, lo, hi, head, batches):
        split_folio(k, head)
        # The kernel looks at the same PTE again (`pte--; addr -= PAGE_SIZE; continue`): the
        # split may have mapped a never-written page to the shared zero page, which
        # vm_normal_folio() does not return (nothing to advise).
        if not pte_present(ptes[i]) or ptes[i] & F_SPECIAL:
            return None
        head = pte_pfn(ptes[i])
    return head


def _pte_batch_covers(k: "Kernel", ptes: array, i: int, base: int, lo: int, hi: int, head: int,
                      batches: dict[int, bool]) -> bool:
    """madvise_folio_pte_batch() == folio_nr_pages(folio): the PTEs of [lo, hi) map every page
    of the large folio `head` in order, one after the other (the kernel batches from the
    folio's first PTE and steps over the batch).  A page of it COW-copied, zapped or moved
    away breaks the batch, however much of the folio's span the range covers.  The PTE bits
    the kernel ignores there (dirty, young, write, soft-dirty) are not compared.  `batches`
    keeps the answer per folio for one PTE table."""
    known = batches.get(head)
    if known is not None:
        return known
    nr = k.mem.nr_pages(head)
    first = i - (pte_pfn(ptes[i]) - head)
    start, stop = base + (first << PAGE_SHIFT), base + ((first + nr) << PAGE_SHIFT)
    ok = (0 <= first and first + nr <= len(ptes) and lo <= start and stop <= hi
          and all(pte_present(pte) and not pte & F_SPECIAL and pte_pfn(pte) == head + j
                  for j, pte in enumerate(ptes[first:first + nr])))
    batches[head] = ok
    return ok


def madvise_dontneed(k: "Kernel", mm: MmStruct, start: int, end: int) -> None:
    """madvise_dontneed_single_vma(): zap the range; the pages read zero afterwards.

    CONFIG_PT_RECLAIM: a PTE table that ends up empty is freed when the zap of this VMA
    covered its whole PMD (zap_pte_range() reclaims only if `end - start >= PMD_SIZE`,
    reclaim_pt_is_enabled()); a table the zap covered in part stays.
    """
    for vma in mm.vmas_in(start, end):
        lo, hi = max(start, vma.start), min(end, vma.end)
        unmap_page_range(k, mm, vma, lo, hi)
        first = (lo + PMD_SIZE - 1) & PMD_MASK
        for pmdi, pmd, _, _ in walk_pmd_range(k, mm, first, hi & PMD_MASK, Walker.ZAP):
            if pmd is not None and pmd.kind is PmdKind.TABLE and pmd_pgtable(pmd).is_empty():
                del mm.pmds[pmdi]
                pte_free(mm)
    k.shadow.zero(mm.pid, start, end)


def madvise_free(k: "Kernel", mm: MmStruct, start: int, end: int) -> None:
    """MADV_FREE (madvise_free_single_vma): present pages become lazyfree, swap entries are dropped.

    A wholly covered, unshared THP is marked lazyfree in place
    (madvise_free_huge_pmd); a partly covered one is split first.  Swap
    entries are freed and cleared (patch 9/13 for a PMD swap entry, which frees
    its deposited table too).  Swapped pages read zero afterwards; lazyfree
    pages keep their data until reclaim finds them clean.
    """
    mem = k.mem
    for vma, pmdi, pmd, addr, nxt in walk_page_range(k, mm, start, end, Walker.MADVISE):
        whole = addr & ~PMD_MASK == 0 and nxt - addr == PMD_SIZE
        if pmd is not None and pmd.kind is PmdKind.SWAP:
            if whole:
                zap_huge_pmd(k, mm, addr)
                k.shadow.drop(mm.pid, addr, nxt)
                continue
            split_huge_pmd_locked(k, mm, vma, addr & PMD_MASK)
            pmd = mm.pmds[pmdi]
        if pmd is not None and pmd.kind is PmdKind.HUGE:
            pfn = pmd.pfn
            if mem.folio_mapcount(pfn) != 1:
                continue
            if whole:
                pmd.flags &= ~(F_YOUNG | F_DIRTY)
                _mark_lazyfree(k, pfn)
                continue
            split_folio(k, pfn)
            pmd = mm.pmds.get(pmdi)
        if pmd is not None and pmd.kind is PmdKind.TABLE:
            lo, hi = max(start, vma.start), min(end, vma.end)
            ptes, idx = pte_range(k, Walker.MADVISE, pmd, addr, nxt)
            batches: dict[int, bool] = {}
            for i in idx:
                pte = ptes[i]
                if is_swap_pte(pte):
                    ptes[i] = 0
                    free_swap_and_cache_nr(k, pte_to_swp_entry(pte), 1)
                    mm.rss_swapents -= 1
                    a = (pmdi << PMD_SHIFT) + (i << PAGE_SHIFT)
                    k.shadow.drop(mm.pid, a, a + (1 << PAGE_SHIFT))
                elif pte_present(pte) and not pte & F_SPECIAL:
                    head = _folio_to_free(k, ptes, i, pmdi << PMD_SHIFT, lo, hi, batches)
                    if head is None:
                        continue
                    ptes[i] &= ~(F_YOUNG | F_DIRTY)
                    _mark_lazyfree(k, head)
    k.trace("madvise_free")


def _folio_to_free(k: "Kernel", ptes: array, i: int, base: int, lo: int, hi: int,
                   batches: dict[int, bool]) -> int | None:
    """The folio the present PTE ptes[i] maps, for MADV_FREE over [lo, hi) (the table at `base`)
    (madvise_free_pte_range()), or None when it is left alone.  Unlike COLD and PAGEOUT, a
    folio another process maps too is marked lazyfree when it is clean and not in the swap
    cache; a dirty or swap-cache one only when this mapping is its only one
    (`folio_mapcount(folio) != folio_nr_pages(folio)`).  A large folio the range does not
    map whole (`_pte_batch_covers`) is split first, unless it is shared (left alone)."""
    mem = k.mem
    head = mem.folio_of(pte_pfn(ptes[i]))
    if mem.order[head] and not _pte_batch_covers(k, ptes, i, base, lo, hi, head, batches):
        if mem.folio_maybe_mapped_shared(head):
            return None
        split_folio(k, head)
        head = pte_pfn(ptes[i])
    if mem.flags[head] & (PG.SWAPCACHE | PG.DIRTY) and mem.folio_mapcount(head) != mem.nr_pages(head):
        return None
    return head


def _mark_lazyfree(k: "Kernel", pfn: int) -> None:
    """madvise_free_pte_range()'s (and madvise_free_huge_pmd()'s) part, then
    folio_mark_lazyfree(): a swap-cache folio leaves the swap cache (or is left alone), and a
    dirty one is made clean (folio_clear_dirty()) whether or not it is lazyfree already;
    then a swap-backed one becomes lazyfree: not swap-backed, at the tail of the inactive
    list.  Measured on 6.18.44 (kernel fuzz seed 19191 script 2241): a lazyfree THP written
    again, then split by MADV_FREE of one of its pages, shows that page in smaps' LazyFree
    (clean again); the simulation left the already-lazyfree page dirty."""
    mem = k.mem
    if mem.test(pfn, PG.SWAPCACHE) and not folio_free_swap(k, pfn):
        return
    mem.clear(pfn, PG.DIRTY)
    if not mem.test(pfn, PG.SWAPBACKED):
        return
    mem.clear(pfn, PG.SWAPBACKED)
    k.lru.delete(pfn)
    k.lru.add(pfn)
    k.vmstat.count("pglazyfree", mem.nr_pages(pfn))
