"""Page-table entries (arch/x86/include/asm/pgtable*.h, include/linux/pgtable.h, leafops.h).

A PTE is one 64-bit word, as on x86-64, and a PTE table is one `array('Q')` of
512 words: the simulation never holds a Python object per PTE.  The encoding:

    bits 0-1   kind: 0 none, 1 present, 2 swap
    bits 2-8   _PAGE_RW, _PAGE_DIRTY, _PAGE_ACCESSED (young), soft-dirty, uffd-wp,
               _PAGE_SWP_EXCLUSIVE (swap entries), special (the shared zero page)
    present    bits 12-  the page frame number
    swap       bits 12-16 the swap type, bits 17- the offset

A PMD is a small slotted object (there are only 512 per GiB): its kind, the
folio's head pfn or the swap entry, the same flag bits, the PTE table when the
PMD points to one, and whether a PTE table is deposited with it (eager deposit:
every present THP PMD, huge-zero PMD and PMD swap entry owns one).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from enum import Enum

from .constants import PTRS_PER_PTE
from .errors import VmBug
from .swapops import SwpEntry

PTE_NONE = 0
KIND_MASK = 0x3
KIND_PRESENT = 1
KIND_SWAP = 2

F_WRITE = 1 << 2
F_DIRTY = 1 << 3
F_YOUNG = 1 << 4
F_SOFT_DIRTY = 1 << 5
F_UFFD_WP = 1 << 6
F_SWP_EXCLUSIVE = 1 << 7
F_SPECIAL = 1 << 8
FLAGS_MASK = 0x1FC

PFN_SHIFT = 12
SWP_TYPE_SHIFT = 12
SWP_TYPE_MASK = 0x1F
SWP_OFFSET_SHIFT = 17
#: The width of the type field: a swap PTE word >> SWP_TYPE_SHIFT is the entry as one int,
#: (offset << SWP_TYPE_BITS) | type (the invariant checker's census key).
SWP_TYPE_BITS = SWP_OFFSET_SHIFT - SWP_TYPE_SHIFT

#: Bits a swap entry keeps from the present entry it replaces.
SWP_KEPT = F_SOFT_DIRTY | F_UFFD_WP


def mk_pte(pfn: int, flags: int) -> int:
    """A present PTE mapping pfn."""
    return (pfn << PFN_SHIFT) | (flags & FLAGS_MASK) | KIND_PRESENT


def swp_entry_to_pte(type_: int, offset: int, flags: int = 0) -> int:
    """A swap PTE for (type, offset) carrying the swp bits in flags."""
    return (offset << SWP_OFFSET_SHIFT) | (type_ << SWP_TYPE_SHIFT) | (flags & FLAGS_MASK) | KIND_SWAP


def pte_none(pte: int) -> bool:
    return pte == PTE_NONE


def pte_present(pte: int) -> bool:
    return pte & KIND_MASK == KIND_PRESENT


def is_swap_pte(pte: int) -> bool:
    return pte & KIND_MASK == KIND_SWAP


def pte_pfn(pte: int) -> int:
    return pte >> PFN_SHIFT


def pte_swp_type(pte: int) -> int:
    return (pte >> SWP_TYPE_SHIFT) & SWP_TYPE_MASK


def pte_swp_offset(pte: int) -> int:
    return pte >> SWP_OFFSET_SHIFT


def pte_to_swp_entry(pte: int) -> SwpEntry:
    return SwpEntry(pte_swp_type(pte), pte_swp_offset(pte))


def pte_flags(pte: int) -> int:
    return pte & FLAGS_MASK


class PmdKind(Enum):
    """What a PMD slot holds (the names `pmd.ADDR` reports)."""

    NONE = "none"
    TABLE = "table"
    HUGE = "huge"          # pmd_trans_huge: a PMD-mapped anonymous THP
    ZERO = "zero"          # the huge zero page (pmd_trans_huge too; reported as "huge")
    SWAP = "swap"          # the series' PMD swap entry (pmd_is_swap_entry)
    MIGRATION = "migration"

    @property
    def report(self) -> str:
        """The value `pmd.ADDR` and `show pt` give."""
        return "huge" if self is PmdKind.ZERO else self.value


class PteTable:
    """One page of 512 PTEs (pgtable_t)."""

    __slots__ = ("ptes",)

    def __init__(self, ptes: array | None = None) -> None:
        self.ptes: array = ptes if ptes is not None else array("Q", bytes(8 * PTRS_PER_PTE))

    def is_empty(self) -> bool:
        return not any(self.ptes)

    def __deepcopy__(self, memo: dict) -> "PteTable":
        return PteTable(array("Q", self.ptes))


@dataclass(slots=True)
class Pmd:
    """One PMD slot.  `pfn` for HUGE, `swp_type`/`swp_offset` for SWAP, `table` for TABLE."""

    kind: PmdKind
    flags: int = 0
    pfn: int = 0
    swp_type: int = 0
    swp_offset: int = 0
    table: PteTable | None = None
    deposited: bool = False

    @property
    def entry(self) -> SwpEntry:
        """The PMD swap entry (pmd_to_swp_entry); only for kind SWAP."""
        return SwpEntry(self.swp_type, self.swp_offset)

    def pmd_write(self) -> bool:
        return bool(self.flags & F_WRITE)

    def pmd_swp_exclusive(self) -> bool:
        return bool(self.flags & F_SWP_EXCLUSIVE)


def pmd_pgtable(pmd: Pmd) -> PteTable:
    """pmd_pgtable(): the PTE table a TABLE PMD points to.

    For callers that know the PMD is a table (pmd.kind is PmdKind.TABLE); any
    other PMD has none, and asking for it is a broken invariant.
    """
    table = pmd.table
    if table is None:
        raise VmBug(f"{pmd.kind.value} PMD has no PTE table")
    return table


def mk_table_pmd(table: PteTable | None = None) -> Pmd:
    return Pmd(PmdKind.TABLE, table=table if table is not None else PteTable())


def mk_huge_pmd(pfn: int, flags: int, deposited: bool = True) -> Pmd:
    """A present PMD mapping the THP at head pfn (with its deposited table, if it has one)."""
    return Pmd(PmdKind.HUGE, flags=flags & FLAGS_MASK, pfn=pfn, deposited=deposited)


def mk_swap_pmd(entry: SwpEntry, flags: int, deposited: bool = True) -> Pmd:
    """patch 12: a PMD swap entry; offset % 512 == 0 (the THP's deposit, if any, stays with it)."""
    return Pmd(PmdKind.SWAP, flags=flags & FLAGS_MASK, swp_type=entry.type,
               swp_offset=entry.offset, deposited=deposited)
