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

from .errors import MmError
from .folio import PG
from .huge_memory import change_huge_pmd
from .mm_types import MmStruct
from .mmap import page_aligned, vma_merge_around, vma_range
from .pagewalk import Walker, pte_range, walk_pmd_range
from .pgtable import F_SPECIAL, F_WRITE, PmdKind, pte_pfn, pte_present
from .vma import VM, VmArea

if TYPE_CHECKING:
    from .kernel import Kernel

_PROT_BITS = VM.READ | VM.WRITE


def sys_mprotect(k: "Kernel", mm: MmStruct, start: int, length: int, prot: VM) -> None:
    """mprotect(start, length, prot), prot as the vm_flags it sets (calc_vm_prot_bits():
    VM_READ, VM_WRITE, or neither for PROT_NONE)."""
    if prot & ~_PROT_BITS:
        raise MmError("EINVAL", "mprotect", f"protection {int(prot):#x} is more than VM_READ | VM_WRITE "
                      "(the simulation models no other)")
    page_aligned("mprotect", start, length, beyond="ENOMEM")
    end = start + length
    newflags = prot
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
    # Only a VMA whose flags change is merged, with its neighbours as they are then
    # (vma_modify_flags() -> vma_merge_existing_range(), one VMA after the other from the
    # lowest): mprotect with the flags a VMA has merges nothing, even where the VMA could
    # merge (a forked child's copy of a registered VMA, which lost its registration: kernel
    # fuzz seed 17171 script 683).
    parts = [(max(start, v.start), min(mapped_end, v.end)) for v in mm.vmas_in(start, mapped_end)
             if v.flags & _PROT_BITS != newflags]
    for lo, hi in parts:
        for vma in vma_range(k, mm, lo, hi):
            vma.flags = mprotect_account(vma, (vma.flags & ~_PROT_BITS) | newflags)
            change_protection(k, mm, vma)
            vma_merge_around(k, mm, vma)
    if mapped_end < end:
        raise MmError("ENOMEM", "mprotect", f"range has a hole at {mapped_end:#x}",
                      partial=f"protection changed up to {mapped_end:#x}, as the kernel does")


def mprotect_account(vma: VmArea, flags: VM) -> VM:
    """mprotect_fixup()'s VM_ACCOUNT: a private mapping made writable is charged (unless it
    already was); made unwritable, the charge is given back only while the VMA is anonymous
    and has never been faulted (no anon_vma yet), otherwise VM_ACCOUNT stays."""
    if flags & VM.WRITE:
        if not vma.flags & (VM.ACCOUNT | VM.WRITE):
            return flags | VM.ACCOUNT
    elif vma.flags & VM.ACCOUNT and not vma.anon_vma:
        return flags & ~VM.ACCOUNT
    return flags


def change_protection(k: "Kernel", mm: MmStruct, vma: VmArea) -> None:
    """change_pmd_range() / change_pte_range() over the whole VMA."""
    mem = k.mem
    writable = bool(vma.flags & VM.WRITE)
    for _, pmd, addr, nxt in walk_pmd_range(k, mm, vma.start, vma.end, Walker.MPROTECT):
        if pmd is None:
            continue
        if pmd.kind is not PmdKind.TABLE:
            change_huge_pmd(k, vma, pmd)
        else:
            ptes, idx = pte_range(k, Walker.MPROTECT, pmd, addr, nxt)
            for i in idx:
                pte = ptes[i]
                if not pte_present(pte):
                    continue        # a swap PTE: its protection lives in the VMA
                if writable and not pte & F_SPECIAL and mem.flags[pte_pfn(pte)] & PG.ANON_EXCLUSIVE:
                    ptes[i] = pte | F_WRITE
                elif not writable:
                    ptes[i] = pte & ~F_WRITE
