"""The page-range walker (mmshell/mm/pagewalk.py; mm/pagewalk.c, pmd_addr_end() in
include/linux/pgtable.h) and its tally of page-table entries visited per walker.

A PMD-level entry counts one visit, a PTE table the PTEs the walker looks at, an
empty slot none: zapping a PMD swap entry is 1 visit, zapping the 512 swap PTEs
mainline leaves is 512.
"""

from __future__ import annotations

import pytest

from mm_unit import THP, M, assert_consistent, boot, mmap_small, mmap_thp, swapon, swapped_thp
from mmshell.mm.constants import PAGE_SIZE, PMD_SIZE, pte_index
from mmshell.mm.fork import sys_fork
from mmshell.mm.kernel import Kernel
from mmshell.mm.madvise import sys_madvise
from mmshell.mm.mman import Madv
from mmshell.mm.mmap import sys_munmap
from mmshell.mm.mprotect import sys_mprotect
from mmshell.mm.mremap import sys_mremap
from mmshell.mm.pagewalk import Walker, pmd_addr_end, pte_range, walk_page_range, walk_pmd_range
from mmshell.mm.pgtable import PmdKind
from mmshell.mm.swapoff import sys_swapoff
from mmshell.mm.task_mmu import pagemap_read, smaps_range
from mmshell.mm.vma import VM


class Visits:
    """walk_visits as deltas from when it was made, walkers that moved only."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.before = dict(k.walk_visits)

    def moved(self) -> dict[str, int]:
        return {w.value: n - self.before[w] for w, n in self.k.walk_visits.items() if n != self.before[w]}


@pytest.mark.parametrize("addr, end, want", [
    (0, 3 * PMD_SIZE, PMD_SIZE),                          # to the next PMD boundary
    (PMD_SIZE + PAGE_SIZE, 3 * PMD_SIZE, 2 * PMD_SIZE),   # from inside a PMD
    (PAGE_SIZE, 5 * PAGE_SIZE, 5 * PAGE_SIZE),            # end comes first
    (PMD_SIZE, 2 * PMD_SIZE, 2 * PMD_SIZE),               # end on the boundary
    ((1 << 47) - PMD_SIZE, 1 << 47, 1 << 47),             # the last PMD of the address space
])
def test_pmd_addr_end(addr: int, end: int, want: int) -> None:
    assert pmd_addr_end(addr, end) == want


def test_walk_yields_every_slot_of_the_range_with_its_part() -> None:
    """Slots in address order, each with [addr, next) of the range; empty slots as None."""
    k = boot()
    a = mmap_thp(k, 2 * THP)
    mm = k.mm(1)
    start, end = a + PAGE_SIZE, a + 2 * THP + 3 * PAGE_SIZE
    got = [(pmdi, None if pmd is None else pmd.kind, lo, hi) for pmdi, pmd, lo, hi
           in walk_pmd_range(k, mm, start, end, Walker.SMAPS)]
    base = a >> 21
    assert got == [(base, PmdKind.HUGE, start, a + THP), (base + 1, PmdKind.HUGE, a + THP, a + 2 * THP),
                   (base + 2, None, a + 2 * THP, end)]
    assert k.walk_visits[Walker.SMAPS] == 2       # two huge PMDs; the empty slot counts nothing


def test_walk_page_range_goes_vma_by_vma_and_skips_holes() -> None:
    k = boot()
    a = mmap_small(k, 4)
    mm = k.mm(1)
    sys_munmap(k, mm, a + PAGE_SIZE, PAGE_SIZE)          # two VMAs around a hole
    got = [(vma.start - a, lo - a, hi - a) for vma, _, _, lo, hi in walk_page_range(k, mm, a, a + 4 * PAGE_SIZE,
                                                                                     Walker.PAGEMAP)]
    assert got == [(0, 0, PAGE_SIZE), (2 * PAGE_SIZE, 2 * PAGE_SIZE, 4 * PAGE_SIZE)]


def test_pte_range_counts_the_ptes_looked_at() -> None:
    k = boot()
    a = mmap_small(k, 8)
    pmd = k.mm(1).pmds[a >> 21]
    ptes, idx = pte_range(k, Walker.MPROTECT, pmd, a + PAGE_SIZE, a + 4 * PAGE_SIZE)
    i = pte_index(a)
    assert pmd.table is not None and ptes is pmd.table.ptes and idx == range(i + 1, i + 4)
    assert k.walk_visits[Walker.MPROTECT] == 3


@pytest.mark.parametrize("pmd_swap, entries", [(True, 1), (False, 512)], ids=["series", "mainline"])
def test_a_swapped_thp_is_one_entry_with_the_series_and_512_in_mainline(pmd_swap: bool, entries: int) -> None:
    """smaps, pagemap, fork, mprotect and munmap each visit the swapped THP once (a PMD swap
    entry) or as 512 swap PTEs; mremap moves either as one entry (move_huge_pmd, or
    move_normal_pmd for the whole PTE table)."""
    k, si, a = swapped_thp(pmd_swap)
    mm = k.mm(1)
    v = Visits(k)
    smaps_range(k, mm, a, a + THP)
    pagemap_read(k, mm, a, a + THP)
    child = sys_fork(k, mm)
    sys_mprotect(k, mm, a, THP, VM.READ)
    b = sys_mremap(k, mm, a, THP, THP, None)
    assert v.moved() == {"smaps": entries, "pagemap": entries, "fork": entries, "mprotect": entries,
                         "mremap": 1}
    v = Visits(k)
    sys_munmap(k, mm, b, THP)
    sys_munmap(k, child, a, THP)
    assert v.moved() == {"zap": 2 * entries}
    assert_consistent(k)
    assert si.inuse_pages == 0


@pytest.mark.parametrize("pmd_swap, entries", [(True, 1), (False, 512)], ids=["series", "mainline"])
def test_swapoff_counts_its_walk(pmd_swap: bool, entries: int) -> None:
    k, _, _ = swapped_thp(pmd_swap)
    v = Visits(k)
    sys_swapoff(k, "zram0")
    assert v.moved() == {"swapoff": entries}
    assert_consistent(k)


@pytest.mark.parametrize("pmd_swap, entries", [(True, 1), (False, 512)], ids=["series", "mainline"])
def test_madvise_free_counts_its_walk(pmd_swap: bool, entries: int) -> None:
    k, _, a = swapped_thp(pmd_swap)
    v = Visits(k)
    sys_madvise(k, k.mm(1), a, THP, Madv.MADV_FREE)
    assert v.moved() == {"madvise": entries}
    assert_consistent(k)


def test_an_entry_the_walker_splits_counts_once_and_then_its_ptes() -> None:
    """MADV_FREE of half a PMD swap entry: the entry (1 visit), split, then 256 PTEs.  (munmap
    of half of it splits the entry with the VMA first: its zap walk sees only the 256 PTEs.)"""
    k, _, a = swapped_thp()
    v = Visits(k)
    sys_madvise(k, k.mm(1), a, THP // 2, Madv.MADV_FREE)
    assert v.moved() == {"madvise": 1 + 256}
    assert_consistent(k)
    k, _, a = swapped_thp()
    v = Visits(k)
    sys_munmap(k, k.mm(1), a, THP // 2)
    assert v.moved() == {"zap": 256}
    assert_consistent(k)


def test_a_whole_table_moved_by_mremap_is_one_entry() -> None:
    """move_normal_pmd(): a PTE table that moves whole is one PMD-level entry visited."""
    k = boot()
    swapon(k)
    a = mmap_small(k, 512)
    v = Visits(k)
    sys_mremap(k, k.mm(1), a, 2 * M, 2 * M, None)
    assert v.moved() == {"mremap": 1}
