"""fork(2) (kernel/fork.c dup_mmap -> mm/memory.c copy_page_range; copy_huge_pmd is in huge_memory.py).

The child gets a copy of every VMA (linked to the parent's anon_vma and its
own, anon_vma_fork) and of every page-table entry:
- a present THP PMD is shared: entire mapcount +1, PageAnonExclusive cleared,
  both PMDs write-protected, a new deposited table for the child;
- present PTEs likewise per page (folio_try_dup_anon_rmap_pte);
- PTE swap entries take one more slot reference each (swap_duplicate, with a
  count continuation past SWAP_MAP_MAX) and lose the exclusive bit on both sides;
- patch 7/13 (series): a PMD swap entry is duplicated in one call over its 512
  slots, a failed count continuation retried once with GFP_KERNEL as for PTEs;
  when the copy needs PMD-order memory that cannot be had (`thp_alloc`:
  decision 4, F4) the parent's entry is split and copied per PTE.
The child's VMAs lose their userfaultfd registration (no UFFD_FEATURE_EVENT_FORK),
and with it the uffd-wp bits.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .anon_vma_order import anon_vma_interval_tree_insert
from .constants import PMD_SHIFT, PMD_SIZE, pmd_index
from .errors import MmError
from .folio import PG
from .huge_memory import copy_huge_pmd
from .huge_split import split_huge_pmd_locked
from .mm_types import MmStruct
from .pagewalk import Walker, pte_range, walk_pmd_range
from .pgtable_generic import pte_alloc_one
from .pgtable import (F_SPECIAL, F_SWP_EXCLUSIVE, F_UFFD_WP, F_WRITE, F_YOUNG, Pmd, PmdKind, PteTable,
                      is_swap_pte, pmd_pgtable, pte_pfn, pte_present, pte_to_swp_entry)
from .swap_slots import swap_duplicate
from .vma import VM, VM_UFFD_FLAGS, VmArea

if TYPE_CHECKING:
    from .kernel import Kernel


def sys_fork(k: "Kernel", parent: MmStruct) -> MmStruct:
    """dup_mmap(): a new process with a copy of parent's address space; returns the child."""
    pid = k.next_pid
    child = MmStruct(pid=pid, parent=parent.pid)
    k.trace("dup_mmap")
    for vma in parent.vmas:
        cvma = replace(vma, flags=vma.flags & ~VM_UFFD_FLAGS)
        if vma.anon_vma:
            # anon_vma_fork(): the child's own anon_vma, chained after the parent's
            cvma.anon_vma = k.alloc_anon_vma()
            cvma.anon_vma_chain = (*vma.anon_vma_chain, cvma.anon_vma)
            anon_vma_interval_tree_insert(k, cvma)     # behind the parent's VMA
            copy_page_range(k, child, cvma, parent, vma)
        child.vmas.append(cvma)
    k.next_pid += 1
    k.mms[pid] = child
    k.shadow.copy_process(parent.pid, pid)
    return child


def copy_page_range(k: "Kernel", dst: MmStruct, dvma: VmArea, src: MmStruct, svma: VmArea) -> None:
    """copy_page_range() / copy_pmd_range(): every entry of svma, PMD by PMD; a PMD-level entry
    copy_huge_pmd() cannot copy whole (-EAGAIN, F4) is split and copied per PTE."""
    for pmdi, pmd, _, _ in walk_pmd_range(k, src, svma.start, svma.end, Walker.FORK):
        if pmd is None:
            continue
        addr = pmdi << PMD_SHIFT
        if pmd.kind in (PmdKind.HUGE, PmdKind.ZERO, PmdKind.SWAP):
            if copy_huge_pmd(k, dst, dvma, pmd, addr):
                continue
            split_huge_pmd_locked(k, src, svma, addr)      # F4: fall back to PTEs
            pmd = src.pmds[pmdi]
        if pmd.kind is PmdKind.TABLE:
            copy_pte_range(k, dst, dvma, src, svma, pmd, addr)


def copy_pte_range(k: "Kernel", dst: MmStruct, dvma: VmArea, src: MmStruct, svma: VmArea, pmd: Pmd,
                   addr: int) -> None:
    """copy_pte_range(): present pages shared and write-protected, swap entries duplicated.

    Only the PTEs inside the VMA are copied (a table may serve two VMAs).
    """
    mem = k.mem
    dpmd = dst.pmds.get(pmd_index(addr))
    if dpmd is None:
        dpmd = dst.pmds[pmd_index(addr)] = Pmd(PmdKind.TABLE, table=PteTable())
        pte_alloc_one(k, dst)
    dptes = pmd_pgtable(dpmd).ptes
    keep_uffd = bool(dvma.flags & VM.UFFD_WP)
    sptes, idx = pte_range(k, Walker.FORK, pmd, max(svma.start, addr), min(svma.end, addr + PMD_SIZE))
    for i in idx:
        pte = sptes[i]
        if pte_present(pte):
            if not pte & F_SPECIAL:
                page = pte_pfn(pte)
                mem.mapcount[page] += 1
                mem.flags[page] &= ~PG.ANON_EXCLUSIVE
                pte &= ~F_WRITE
                sptes[i] = pte
                dst.rss_anon += 1
            pte &= ~F_YOUNG            # __copy_present_ptes(): pte_mkold() for the child only
        elif is_swap_pte(pte):
            entry = pte_to_swp_entry(pte)
            try:
                swap_duplicate(k, entry)
            except MmError:
                # copy_pte_range() drops its locks, allocates with GFP_KERNEL and retries once
                swap_duplicate(k, entry)
            pte &= ~F_SWP_EXCLUSIVE
            sptes[i] = pte
            dst.rss_swapents += 1
            dst.on_mmlist = True
        else:
            continue
        dptes[i] = pte if keep_uffd else pte & ~F_UFFD_WP
    k.trace("copy_pte_range")
