"""Allocating, freeing and depositing PTE tables (pte_alloc_one / pte_free from
include/linux/pgalloc.h and mm_inc_nr_ptes; pgtable_trans_huge_deposit() and
pgtable_trans_huge_withdraw() from mm/pgtable-generic.c).

A PTE table is one page: `mm.nr_ptes` counts the tables an mm holds, deposited
ones included (mm->pgtables_bytes / 4096, summed into nr_page_table_pages), and
`Kernel.pte_tables_allocated` counts every table page ever allocated, a
simulator count (no /proc/vmstat counter) that compare reads.

The deposit follows `config.deposit` (decision 10 of the semantics): EAGER, the
kernel today, allocates a table when a PMD-level entry is made and keeps it
with the entry until a split fills it or a zap frees it; LAZY, the what-if for
the lazy page-table deposit series, deposits nothing and allocates the table at
split time.  In that series the allocation may fail (-ENOMEM back through
munmap/mprotect, VM_FAULT_OOM from a fault); the simulation always has the page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import Deposit
from .mm_types import MmStruct
from .pgtable import Pmd

if TYPE_CHECKING:
    from .kernel import Kernel


def pte_alloc_one(k: "Kernel", mm: MmStruct) -> None:
    """pte_alloc_one() + mm_inc_nr_ptes(): one PTE table page for mm."""
    mm.nr_ptes += 1
    k.pte_tables_allocated += 1


def pte_free(mm: MmStruct) -> None:
    """pte_free() + mm_dec_nr_ptes(): mm gives one PTE table page back."""
    mm.nr_ptes -= 1


def pgtable_trans_huge_deposit(k: "Kernel", mm: MmStruct) -> bool:
    """The table a new PMD-level entry owns: allocated and deposited with eager deposit
    (True: the entry's `deposited`); nothing with lazy deposit (False)."""
    # lazy page-table deposit series: no pre-deposit where arch_needs_pgtable_deposit() is false
    if k.config.deposit is Deposit.LAZY:
        return False
    pte_alloc_one(k, mm)
    return True


def pgtable_trans_huge_withdraw(k: "Kernel", mm: MmStruct, pmd: Pmd) -> None:
    """The table a split fills: the entry's deposit, or (lazy deposit) a new table page."""
    if not pmd.deposited:
        # lazy page-table deposit series: __split_huge_pmd_locked() allocates the table
        pte_alloc_one(k, mm)


def zap_deposited_table(mm: MmStruct, pmd: Pmd) -> None:
    """zap_deposited_table(): a zapped PMD-level entry frees its deposit, if it has one."""
    if pmd.deposited:
        pte_free(mm)
