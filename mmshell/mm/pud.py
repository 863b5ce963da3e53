"""The PUD level as the simulation sees it: whether a PMD table page covers an address.

The kernel walks pgd -> p4d -> pud -> pmd; mm_find_pmd() returns NULL when the PUD entry
of the address's 1 GiB is none (no PMD table page was ever allocated there), and callers
refuse early: khugepaged's find_pmd_or_thp_or_none() says SCAN_PMD_NULL, UFFDIO_MOVE's
move_pages() says ENOENT before it looks at the destination.

The simulation keeps no PUD entries: a PMD table page is taken to be there while some
2 MiB block of the same 1 GiB has an entry in `mm.pmds`.  Left out: the kernel keeps the
table page after every entry of it is zapped, until free_pgtables() frees it with the
last VMA of its range.
"""

from __future__ import annotations

from .constants import PTRS_PER_PMD, pmd_index
from .mm_types import MmStruct


def pmd_table_present(mm: MmStruct, addr: int) -> bool:
    """Whether mm_find_pmd(mm, addr) finds a PMD table page (some block of addr's 1 GiB has
    an entry).  Linear in the smaller of the process's entries and a table's 512."""
    base = pmd_index(addr) & ~(PTRS_PER_PMD - 1)
    if len(mm.pmds) < PTRS_PER_PMD:         # fewer entries than a table: look at each of them
        return any(base <= i < base + PTRS_PER_PMD for i in mm.pmds)
    return any(i in mm.pmds for i in range(base, base + PTRS_PER_PMD))
