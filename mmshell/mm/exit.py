"""Process exit (kernel/exit.c -> mm/mmap.c exit_mmap): tear down the whole address space."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .mm_types import MmStruct
from .mmap import free_pgtables, unmap_page_range

if TYPE_CHECKING:
    from .kernel import Kernel


def exit_mmap(k: "Kernel", mm: MmStruct) -> None:
    """exit_mmap(): zap every VMA, free the page tables, forget the process."""
    k.trace("exit_mmap")
    for vma in list(mm.vmas):
        unmap_page_range(k, mm, vma, vma.start, vma.end)
    vmas, mm.vmas = mm.vmas, []
    for vma in vmas:
        free_pgtables(k, mm, vma.start, vma.end)
    del k.mms[mm.pid]
    k.shadow.drop_process(mm.pid)
