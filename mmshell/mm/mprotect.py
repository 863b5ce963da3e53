"""mprotect(2) (mm/mprotect.c): new VMA flags, then change_protection over the page tables.

VMAs are split at the range's edges first; a PMD-level entry cut by an edge is
split (a present THP's PMD, and with the series a PMD swap entry: patch 6).
Present entries lose write permission when write is removed; when it is
added, entries of PageAnonExclusive pages become writable at once
(can_change_pte_writable), others wait for a write fault.  Swap entries, PTE
or PMD, keep everything but their uffd-wp bit (patch 9: change_non_present_huge_pmd).
A hole in the range: the VMAs before it are changed, then ENOMEM, as the kernel does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import PAGE_SHIFT, PMD_SHIFT
from .errors import MmError
from .folio import PG
from .mm_types import MmStruct
from .mmap import page_aligned, vma_merge_around, vma_range
from .pgtable import F_SPECIAL, F_WRITE, PmdKind, pmd_pgtable
from .vma import VM, PROT_FLAGS, VmArea

if TYPE_CHECKING:
    from .kernel import Kernel

_PROT_BITS = VM.READ | VM.WRITE


def sys_mprotect(k: "Kernel", mm: MmStruct, start: int, length: int, prot: str) -> None:
    page_aligned("mprotect", start, length)
    end = start + length
    newflags = PROT_FLAGS[prot]
    # Find how far the range is mapped without a hole (mprotect stops at the first one).
    addr = start
    for vma in mm.vmas_in(start, end):
        if vma.start > addr:
            break
        addr = vma.end
    mapped_end = min(addr, end)
    if mapped_end <= start:
        raise MmError("ENOMEM", "mprotect", f"no mapping at {start:#x}")
    k.trace("mprotect_fixup")
    # mprotect_fixup() leaves a VMA that already has the new flags alone: no VMA split, no
    # PMD split at the range's edges.
    parts = [(max(start, v.start), min(mapped_end, v.end)) for v in mm.vmas_in(start, mapped_end)
             if v.flags & _PROT_BITS != newflags]
    for lo, hi in parts:
        for vma in vma_range(k, mm, lo, hi):
            vma.flags = (vma.flags & ~_PROT_BITS) | newflags
            change_protection(k, mm, vma)
    for vma in list(mm.vmas_in(start - 1, mapped_end + 1)):
        if vma in mm.vmas:
            vma_merge_around(mm, vma)
    if mapped_end < end:
        raise MmError("ENOMEM", "mprotect", f"range has a hole at {mapped_end:#x}",
                      partial=f"protection changed up to {mapped_end:#x}, as the kernel does")


def change_protection(k: "Kernel", mm: MmStruct, vma: VmArea) -> None:
    """change_pmd_range() / change_pte_range() over the whole VMA."""
    mem = k.mem
    writable = bool(vma.flags & VM.WRITE)
    for pmdi in range(vma.start >> PMD_SHIFT, ((vma.end - 1) >> PMD_SHIFT) + 1):
        pmd = mm.pmds.get(pmdi)
        if pmd is None:
            continue
        if pmd.kind is PmdKind.HUGE:
            # change_huge_pmd()
            if writable and mem.test(pmd.pfn, PG.ANON_EXCLUSIVE):
                pmd.flags |= F_WRITE
            elif not writable:
                pmd.flags &= ~F_WRITE
        elif pmd.kind is PmdKind.ZERO:
            pmd.flags &= ~F_WRITE
        elif pmd.kind is PmdKind.TABLE:
            ptes = pmd_pgtable(pmd).ptes
            base = pmdi << PMD_SHIFT
            lo, hi = max(vma.start, base), min(vma.end, base + (1 << PMD_SHIFT))
            for i in range((lo >> PAGE_SHIFT) & 511, ((hi - 1) >> PAGE_SHIFT & 511) + 1):
                pte = ptes[i]
                if pte & 3 != 1:
                    continue
                if writable and not pte & F_SPECIAL and mem.flags[pte >> 12] & PG.ANON_EXCLUSIVE:
                    ptes[i] = pte | F_WRITE
                elif not writable:
                    ptes[i] = pte & ~F_WRITE
        # PMD swap entries (series) and swap PTEs: protection lives in the VMA.
