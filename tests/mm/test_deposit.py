"""The page-table deposit, eager and lazy (mmshell/mm/pgtable_generic.py; decision 10 of the
semantics, §1.9).

Eager (the kernel today): every PMD-level entry owns one deposited PTE table, allocated
when the entry is made; a split fills it, a zap frees it.  Lazy (`set deposit lazy`, the
lazy page-table deposit series): no entry owns one, and a split allocates the table.
`Kernel.pte_tables_allocated` counts every PTE table page allocated; nr_ptes counts the
tables that exist.
"""

from __future__ import annotations

import pytest

from mm_unit import THP, RW, assert_consistent, boot, mmap_thp, pageout, pmd_at, swapon, vma_at
from mmshell.mm.access import access_range
from mmshell.mm.config import Deposit
from mmshell.mm.exit import exit_mmap
from mmshell.mm.fork import sys_fork
from mmshell.mm.huge_split import split_huge_pmd_locked
from mmshell.mm.khugepaged import madvise_collapse
from mmshell.mm.mman import Madv
from mmshell.mm.mmap import sys_mmap, sys_munmap
from mmshell.mm.pgtable import PmdKind
from mmshell.mm.swapoff import sys_swapoff

EAGER, LAZY = Deposit.EAGER, Deposit.LAZY


@pytest.mark.parametrize("pmd_swap", [False, True])
def test_round_trip_of_eight_thps_allocates_tables_where_the_mode_says(pmd_swap: bool) -> None:
    """Eight THPs written, paged out, read back.  Eager: eight deposits at the fault in both
    modes, no table after.  Lazy: none at the fault; mainline's reclaim splits each PMD and
    allocates its table (8), the series installs PMD swap entries and allocates none."""
    for deposit, expected in ((EAGER, (8, 8)), (LAZY, (0, 0 if pmd_swap else 8))):
        k = boot(pmd_swap, deposit=deposit)
        swapon(k, size=64 << 20)
        mm = k.mm(1)
        a = mmap_thp(k, 8 * THP)
        after_fault = k.pte_tables_allocated
        assert (after_fault, mm.nr_ptes) == (expected[0], expected[0])
        pageout(k, a, 8 * THP)
        access_range(k, mm, a, a + 8 * THP, False)
        assert k.pte_tables_allocated == expected[0] + (0 if deposit is EAGER else expected[1])
        assert all(pmd_at(k, a + i * THP).deposited is (deposit is EAGER)
                   for i in range(8) if pmd_at(k, a + i * THP).kind is not PmdKind.TABLE)
        assert_consistent(k)


def test_lazy_split_of_a_pmd_swap_entry_allocates_its_table() -> None:
    """§3.15: with lazy deposit a PMD swap entry holds no table, so its split allocates one
    (nr_page_table_pages +1); with eager deposit the split withdraws the deposit (+0)."""
    for deposit, new_tables in ((EAGER, 0), (LAZY, 1)):
        k = boot(True, deposit=deposit)
        swapon(k)
        a = mmap_thp(k)
        pageout(k, a)
        mm = k.mm(1)
        assert pmd_at(k, a).kind is PmdKind.SWAP and pmd_at(k, a).deposited is (deposit is EAGER)
        before, tables = k.pte_tables_allocated, mm.nr_ptes
        split_huge_pmd_locked(k, mm, vma_at(k, a), a)
        assert (k.pte_tables_allocated - before, mm.nr_ptes - tables) == (new_tables, new_tables)
        assert pmd_at(k, a).kind is PmdKind.TABLE and not pmd_at(k, a).deposited
        assert_consistent(k)


@pytest.mark.parametrize("deposit", [EAGER, LAZY])
@pytest.mark.parametrize("pmd_swap", [False, True])
def test_every_pmd_level_path_keeps_the_deposit_rule(deposit: Deposit, pmd_swap: bool) -> None:
    """Huge zero page, its write fault, fork of THP, zero and swap PMDs, swap-in, collapse,
    swapoff, munmap and exit: the invariant checker's deposit rule (one table per entry when
    eager, none when lazy) and nr_ptes hold after each."""
    k = boot(pmd_swap, deposit=deposit)
    swapon(k, size=32 << 20)
    mm = k.mm(1)
    z = sys_mmap(k, mm, 2 * THP, RW, Madv.MADV_HUGEPAGE, None)
    access_range(k, mm, z, z + 2 * THP, False)           # two huge zero PMDs
    access_range(k, mm, z, z + THP, True)                # do_huge_zero_wp_pmd keeps the deposit
    a = mmap_thp(k, 2 * THP)
    pageout(k, a, THP)
    assert_consistent(k)
    child = sys_fork(k, mm)                              # copies THP, zero and (series) swap PMDs
    assert_consistent(k)
    exit_mmap(k, child)
    access_range(k, mm, a, a + THP, True)                # swap-in: one PMD or 512 PTE faults
    madvise_collapse(k, mm, a, a + THP)                  # mainline: the PTE table becomes the deposit
    assert pmd_at(k, a).kind is PmdKind.HUGE
    assert_consistent(k)
    pageout(k, a, 2 * THP)
    sys_swapoff(k, "zram0")
    assert_consistent(k)
    sys_munmap(k, mm, a, 2 * THP)
    sys_munmap(k, mm, z, 2 * THP)
    assert mm.nr_ptes == 0
    assert_consistent(k)
