"""struct mm_struct: one process's address space."""

from __future__ import annotations

import bisect
from array import array
from dataclasses import dataclass, field

from .pgtable import Pmd, PteTable
from .vma import VmArea


@dataclass(slots=True)
class MmStruct:
    """A process: pid, VMAs sorted by address, the PMD level of its page table.

    `pmds` maps a PMD index (addr >> 21) to its Pmd; a missing key is pmd_none.
    `rss_anon` / `rss_swapents` are MM_ANONPAGES / MM_SWAPENTS; `nr_ptes` counts
    PTE tables, deposited ones included (mm->pgtables_bytes / 4096).
    `on_mmlist`: on init_mm.mmlist, the list swapoff walks.
    """

    pid: int
    parent: int
    vmas: list[VmArea] = field(default_factory=list)
    pmds: dict[int, Pmd] = field(default_factory=dict)
    rss_anon: int = 0
    rss_swapents: int = 0
    nr_ptes: int = 0
    on_mmlist: bool = False

    def __deepcopy__(self, memo: dict) -> "MmStruct":
        """A copy sharing nothing mutable: each VMA, PMD and PTE table copied by its constructor."""
        new = self._copy_with([VmArea(v.start, v.end, v.flags, v.pgoff, v.anon_vma, v.anon_vma_chain,
                                      v.avc_seq)
                               for v in self.vmas])
        memo[id(self)] = new
        return new

    def checkpoint_copy(self) -> "MmStruct":
        """The copy a command's checkpoint keeps (lang/snapshot.py): as __deepcopy__, but the
        VMAs themselves are shared, since every store into one is journaled (vma.VMA_JOURNAL)."""
        return self._copy_with(list(self.vmas))

    def _copy_with(self, vmas: list[VmArea]) -> "MmStruct":
        return MmStruct(self.pid, self.parent, vmas,
                        {i: Pmd(p.kind, p.flags, p.pfn, p.swp_type, p.swp_offset,
                                None if p.table is None else PteTable(array("Q", p.table.ptes)), p.deposited)
                         for i, p in self.pmds.items()},
                        self.rss_anon, self.rss_swapents, self.nr_ptes, self.on_mmlist)

    def find_vma(self, addr: int) -> VmArea | None:
        """find_vma() restricted to a VMA containing addr (vma_lookup)."""
        i = bisect.bisect_right([v.start for v in self.vmas], addr) - 1
        if i >= 0 and self.vmas[i].contains(addr):
            return self.vmas[i]
        return None

    def vmas_in(self, start: int, end: int) -> list[VmArea]:
        """VMAs overlapping [start, end), in address order."""
        return [v for v in self.vmas if v.start < end and v.end > start]

    def insert_vma(self, vma: VmArea) -> None:
        starts = [v.start for v in self.vmas]
        self.vmas.insert(bisect.bisect_left(starts, vma.start), vma)
