"""mremap(2) with MREMAP_MAYMOVE (and MREMAP_FIXED) (mm/mremap.c move_page_tables).

The range must lie in one VMA, but for a same-size MREMAP_FIXED move, which since
6.17 moves every VMA of the range (remap_move()).

The moved part becomes a new VMA with the same vm_pgoff and anon_vma, so
folio->index and the rmap stay valid (an anonymous VMA with no anon_vma yet takes the new
address's vm_pgoff instead), and merges with its neighbours (copy_vma(), copy_vma.py).  It
loses its userfaultfd registration, with whatever registered VMA it merged with:
mremap_userfaultfd_prep() drops it (userfaultfd_reset_ctx()) when the userfaultfd was
not opened with UFFD_FEATURE_EVENT_REMAP, which `uffd register` does not ask for.
A move that shrinks unmaps the range's tail first (shrink_vma()), so the moved part merges
with what that munmap left, not with the tail beyond it.
move_page_tables moves a whole, aligned PMD-level entry with its deposited table (move_huge_pmd: a present
THP, the huge zero page, and with the series a PMD swap entry) or a whole PTE
table (move_normal_pmd); anything else is split (thp_split_pmd) and moved PTE
by PTE (move_ptes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .anon_vma_order import anon_vma_interval_tree_insert
from .constants import PAGE_SHIFT, PAGE_SIZE, PMD_MASK, PMD_SIZE, pmd_index, pte_index
from .copy_vma import copy_vma, mremap_userfaultfd_prep
from .errors import MmError
from .huge_memory import move_huge_pmd
from .huge_split import split_huge_pmd_locked
from .mm_types import MmStruct
from .mmap import (free_pgtables, get_unmapped_area, may_expand_vm, page_aligned, sys_munmap,
                   vma_merge_around, vma_range)
from .pagewalk import Walker, count_visits, pmd_addr_end
from .pgtable_generic import pte_alloc_one
from .pgtable import Pmd, PmdKind, PteTable, pmd_pgtable
from .vma import VM, VmArea

if TYPE_CHECKING:
    from .kernel import Kernel


def sys_mremap(k: "Kernel", mm: MmStruct, start: int, old_len: int, new_len: int,
               fixed: int | None) -> int:
    """Move [start, start+old_len) to a new place of new_len bytes; returns the new address."""
    page_aligned("mremap", start, old_len)
    old_len = (old_len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    new_len = (new_len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    if new_len <= 0:
        raise MmError("EINVAL", "mremap", "new size must be positive")
    if fixed is not None:
        # check_mremap_params() checks the new address before do_mremap() looks the source up
        # (measured on 6.18.44, kernel fuzz seed 22222 script 2344: an overlapping move of an
        # unmapped range is EINVAL, not EFAULT)
        page_aligned("mremap", fixed, new_len)
        if fixed < start + old_len and start < fixed + new_len:
            raise MmError("EINVAL", "mremap", "old and new ranges overlap")
    vma = mm.find_vma(start)
    if vma is None:
        raise MmError("EFAULT", "mremap", f"no mapping at {start:#x}")
    if fixed is not None:
        new = fixed
    elif start + old_len > vma.end:
        raise MmError("EFAULT", "mremap", "the range spans more than one VMA")
    else:
        # the runner's MREMAP_FIXED goes where get_unmapped_area() puts it before the call
        new = get_unmapped_area(mm, new_len, PMD_SIZE if new_len >= PMD_SIZE else PAGE_SIZE)
    if new_len < old_len and start + new_len <= vma.end:
        old_len = shrink_vma(k, mm, start, old_len, new_len)
    if start + old_len > vma.end:
        if new_len != old_len:
            raise MmError("EFAULT", "mremap", "the range spans more than one VMA")
        return _remap_move(k, mm, start, old_len, new)
    replaced = 0 if fixed is None else sum(min(v.end, new + new_len) - max(v.start, new)
                                           for v in mm.vmas_in(new, new + new_len))
    may_expand_vm(mm, "mremap", new_len - old_len - replaced)
    k.trace("move_vma")
    if fixed is not None and mm.vmas_in(new, new + new_len):
        sys_munmap(k, mm, new, new_len)
    source = mm.find_vma(start)
    assert source is not None
    nvma, merged = copy_vma(mm, source, start, new, new_len)
    anon_vma_interval_tree_insert(k, nvma)         # anon_vma_clone(): behind every VMA there
    vma = vma_range(k, mm, start, start + old_len)[0]
    moved = min(old_len, new_len)
    mm.insert_vma(nvma)
    move_page_tables(k, mm, vma, start, nvma, new, moved)
    mm.vmas.remove(vma)
    free_pgtables(k, mm, start, start + old_len)
    k.shadow.move(mm.pid, start, mm.pid, new, moved)
    k.shadow.zero(mm.pid, start, start + old_len)
    vma_merge_around(k, mm, nvma)
    mremap_userfaultfd_prep(mm, nvma.flags, merged)
    return new


def shrink_vma(k: "Kernel", mm: MmStruct, start: int, old_len: int, new_len: int) -> int:
    """shrink_vma(): mremap_to() of a range that shrinks unmaps its tail, [start + new_len,
    start + old_len), first (do_vmi_munmap(), holes and other VMAs in it included), then moves
    what is left; returns the length left to move.

    So the moved range's copy_vma() merges with what the munmap left: the tail beyond the
    unmapped part is another VMA by then, and mremap_userfaultfd_prep() leaves its
    registration alone (measured on 6.18.44: kernel fuzz seed 16161 script 3004).  `mremap`
    without `at` is such a move too (the live runner gives it MREMAP_FIXED); a plain
    MREMAP_MAYMOVE shrink (mremap_at()) would only unmap the tail, moving nothing.  (Were
    what is left not in one VMA, the kernel would fail after that munmap; the simulation
    refuses before it, in sys_mremap(), and changes nothing.)"""
    sys_munmap(k, mm, start + new_len, old_len - new_len)
    return new_len


def _remap_move(k: "Kernel", mm: MmStruct, start: int, length: int, fixed: int) -> int:
    """6.17+ remap_move(): a same-size MREMAP_FIXED move of a range over several VMAs moves
    each VMA's part, the gaps between them kept; no gap may open the range, and a VMA
    registered with a userfaultfd may not be one of several."""
    page_aligned("mremap", fixed, length)
    end = start + length
    if fixed < end and start < fixed + length:
        raise MmError("EINVAL", "mremap", "old and new ranges overlap")
    parts = [(max(v.start, start), min(v.end, end), v.flags) for v in mm.vmas_in(start, end)]
    if any(flags & VM.UFFD_MISSING for _, _, flags in parts):
        raise MmError("EFAULT", "mremap", "a VMA registered with a userfaultfd cannot move with others")
    for lo, hi, _ in parts:
        sys_mremap(k, mm, lo, hi - lo, hi - lo, fixed + (lo - start))
    return fixed


def move_page_tables(k: "Kernel", mm: MmStruct, ovma: VmArea, old: int, nvma: VmArea, new: int,
                     length: int) -> None:
    """move_page_tables(): PMD by PMD, each extent the source's PMD cut at the destination's
    (get_extent)."""
    old_end = old + length
    src, dst = old, new
    while src < old_end:
        extent = min(pmd_addr_end(src, old_end) - src, PMD_SIZE - (dst & ~PMD_MASK))
        _move_extent(k, mm, ovma, src, dst, extent)
        src, dst = src + extent, dst + extent


def _move_extent(k: "Kernel", mm: MmStruct, ovma: VmArea, src: int, dst: int, extent: int) -> None:
    """One extent of move_page_tables: a whole PMD-level entry (move_huge_pmd) or a whole PTE
    table (move_normal_pmd) moves as one entry to an empty destination PMD; anything else is
    split and moved PTE by PTE (move_ptes)."""
    pmd = mm.pmds.get(pmd_index(src))
    if pmd is None:
        return
    whole = extent == PMD_SIZE
    if pmd.kind in (PmdKind.HUGE, PmdKind.ZERO, PmdKind.SWAP):
        count_visits(k, Walker.MREMAP)
        if whole and move_huge_pmd(k, mm, src, dst):
            return
        split_huge_pmd_locked(k, mm, ovma, src & PMD_MASK)
        pmd = mm.pmds[pmd_index(src)]
    if whole and pmd_index(dst) not in mm.pmds and _table_only_for(mm, src):
        k.trace("move_normal_pmd")
        count_visits(k, Walker.MREMAP)
        mm.pmds[pmd_index(dst)] = mm.pmds.pop(pmd_index(src))
        return
    move_ptes(k, mm, pmd, src, dst, extent >> PAGE_SHIFT)


def _table_only_for(mm: MmStruct, src: int) -> bool:
    """A PTE table can move whole only if no other VMA uses part of it."""
    base = src & PMD_MASK
    return len(mm.vmas_in(base, base + PMD_SIZE)) == 1


def move_ptes(k: "Kernel", mm: MmStruct, pmd: Pmd, src: int, dst: int, nr: int) -> None:
    """move_ptes(): each PTE moves as it is (swap PTEs and present ones alike)."""
    dpmd = mm.pmds.get(pmd_index(dst))
    if dpmd is None:
        dpmd = mm.pmds[pmd_index(dst)] = Pmd(PmdKind.TABLE, table=PteTable())
        pte_alloc_one(k, mm)
    si = pte_index(src)
    di = pte_index(dst)
    sp, dp = pmd_pgtable(pmd).ptes, pmd_pgtable(dpmd).ptes
    count_visits(k, Walker.MREMAP, nr)
    for j in range(nr):
        dp[di + j] = sp[si + j]
        sp[si + j] = 0
    k.trace("move_ptes")
