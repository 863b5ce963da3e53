"""Page-table entry encodings (mmshell/mm/pgtable.py; arch/x86/include/asm/pgtable_64.h,
include/linux/pgtable.h, include/linux/leafops.h).

kernel-semantics.md §1.2-1.4: a PTE is present, swap or none; a swap entry
packs a 5-bit type and an offset into the word next to the software bits
_PAGE_SWP_EXCLUSIVE, _PAGE_SWP_SOFT_DIRTY and _PAGE_SWP_UFFD_WP, which survive
the round trip; a PMD swap entry (the series) has the same encoding at PMD
level, with offset % 512 == 0 and its deposited PTE table.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings, strategies as st

from mmshell.mm.constants import MAX_SWAP, MAX_SWAPFILES, PAGE_SHIFT, PTRS_PER_PTE
from mmshell.mm.errors import VmBug
from mmshell.mm.pgtable import (F_DIRTY, F_SOFT_DIRTY, F_SPECIAL, F_SWP_EXCLUSIVE, F_UFFD_WP, F_WRITE, F_YOUNG,
                                FLAGS_MASK, KIND_MASK, PTE_NONE, SWP_KEPT, SWP_TYPE_MASK, PmdKind, PteTable,
                                is_swap_pte, mk_huge_pmd, mk_pte, mk_swap_pmd, mk_table_pmd, pmd_pgtable, pte_flags,
                                pte_none, pte_pfn, pte_present, pte_swp_offset, pte_swp_type, pte_to_swp_entry,
                                swp_entry_to_pte)
from mmshell.mm.swapops import SwpEntry

SWP_BITS = st.sampled_from([0, F_SWP_EXCLUSIVE, F_SOFT_DIRTY, F_UFFD_WP,
                            F_SWP_EXCLUSIVE | F_SOFT_DIRTY | F_UFFD_WP])
PRESENT_BITS = st.integers(0, FLAGS_MASK).map(lambda f: f & FLAGS_MASK)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, MAX_SWAPFILES - 1), st.integers(1, (MAX_SWAP >> PAGE_SHIFT) - 1), SWP_BITS)
def test_swap_pte_round_trips_type_offset_and_swp_bits(type_: int, offset: int, bits: int) -> None:
    """pte_to_swp_entry(swp_entry_to_pte(e)) == e, with the swp software bits kept apart."""
    pte = swp_entry_to_pte(type_, offset, bits)
    assert pte_swp_type(pte) == type_
    assert pte_swp_offset(pte) == offset
    assert pte_to_swp_entry(pte) == SwpEntry(type_, offset)
    assert pte_flags(pte) == bits
    assert is_swap_pte(pte) and not pte_present(pte) and not pte_none(pte)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, (64 << 30 >> PAGE_SHIFT) - 1), PRESENT_BITS)
def test_present_pte_round_trips_pfn_and_flags(pfn: int, flags: int) -> None:
    """mk_pte(pfn, prot): pte_pfn() gives the frame back, the protection bits stay as given."""
    pte = mk_pte(pfn, flags)
    assert pte_pfn(pte) == pfn
    assert pte_flags(pte) == flags
    assert pte_present(pte) and not is_swap_pte(pte) and not pte_none(pte)


def test_pte_kind_predicates_on_every_kind() -> None:
    """pte_none / pte_present / is_swap_pte: exactly one holds for none, present, swap;
    none of them for the unused kind 3."""
    kinds = {
        "none": PTE_NONE,
        "present": mk_pte(0x200, F_WRITE | F_DIRTY | F_YOUNG),
        "zero page": mk_pte(0, F_SPECIAL | F_YOUNG),
        "swap": swp_entry_to_pte(0, 0x200, F_SWP_EXCLUSIVE),
        "bad": 3,
    }
    got = {name: (pte_none(p), pte_present(p), is_swap_pte(p)) for name, p in kinds.items()}
    assert got == {
        "none": (True, False, False),
        "present": (False, True, False),
        "zero page": (False, True, False),
        "swap": (False, False, True),
        "bad": (False, False, False),
    }


def test_swap_pte_word_layout_matches_the_documented_bits() -> None:
    """bits 0-1 kind 2, bit 7 _PAGE_SWP_EXCLUSIVE, bits 12-16 type, bits 17- offset."""
    assert swp_entry_to_pte(0, 0x200, F_SWP_EXCLUSIVE) == 0x4000082
    assert swp_entry_to_pte(1, 0x201) == (0x201 << 17) | (1 << 12) | 2
    assert mk_pte(0x200, F_WRITE | F_DIRTY | F_YOUNG) == (0x200 << 12) | 0x1C | 1


def test_swap_type_field_holds_max_swapfiles_types() -> None:
    """MAX_SWAPFILES_SHIFT = 5: the type field holds types 0..31 and no more."""
    assert SWP_TYPE_MASK + 1 == MAX_SWAPFILES
    assert pte_swp_type(swp_entry_to_pte(MAX_SWAPFILES - 1, 7)) == MAX_SWAPFILES - 1
    assert pte_swp_offset(swp_entry_to_pte(MAX_SWAPFILES - 1, 7)) == 7


def test_encoders_drop_bits_outside_the_flag_field() -> None:
    """A caller's stray kind bits cannot turn a present PTE into a swap one, or back."""
    assert pte_present(mk_pte(5, FLAGS_MASK | KIND_MASK))
    assert is_swap_pte(swp_entry_to_pte(0, 5, FLAGS_MASK | KIND_MASK))
    assert pte_flags(swp_entry_to_pte(0, 5, ~0)) == FLAGS_MASK


def test_swp_kept_bits_are_soft_dirty_and_uffd_wp() -> None:
    """try_to_unmap_one copies soft-dirty and uffd-wp from the present PTE into the swap PTE
    (pte_swp_mksoft_dirty, pte_swp_mkuffd_wp); write/dirty/young do not survive."""
    assert SWP_KEPT == F_SOFT_DIRTY | F_UFFD_WP
    assert not SWP_KEPT & (F_WRITE | F_DIRTY | F_YOUNG | F_SWP_EXCLUSIVE)


@pytest.mark.parametrize("bits", [0, F_SWP_EXCLUSIVE, F_SOFT_DIRTY | F_UFFD_WP,
                                  F_SWP_EXCLUSIVE | F_SOFT_DIRTY | F_UFFD_WP])
def test_pmd_swap_entry_round_trips_entry_and_swp_bits(bits: int) -> None:
    """Patches 5 and 12 of the series: a PMD swap entry carries type, offset, pmd_swp_exclusive, soft-dirty and
    uffd-wp; it keeps its deposited table (decision 10)."""
    pmd = mk_swap_pmd(SwpEntry(2, 1024), bits)
    assert pmd.kind is PmdKind.SWAP
    assert pmd.entry == SwpEntry(2, 1024)
    assert (pmd.swp_type, pmd.swp_offset) == (2, 1024)
    assert pmd.flags == bits
    assert pmd.pmd_swp_exclusive() is bool(bits & F_SWP_EXCLUSIVE)
    assert pmd.deposited and pmd.table is None


def test_pmd_swap_entry_text_is_the_swap_entry_text() -> None:
    """The entry a PMD swap entry holds prints (and parses) as any swap entry does."""
    pmd = mk_swap_pmd(SwpEntry(0, 0x200), F_SWP_EXCLUSIVE)
    assert str(pmd.entry) == "0:0x200"
    assert SwpEntry.parse(str(pmd.entry)) == pmd.entry


def test_huge_pmd_is_present_with_its_deposit() -> None:
    """mk_huge_pmd: pmd_trans_huge, the head pfn, pmd_write from the flags, a deposited table."""
    pmd = mk_huge_pmd(0x400, F_WRITE | F_DIRTY | F_YOUNG | KIND_MASK)
    assert (pmd.kind, pmd.pfn, pmd.flags, pmd.deposited) == (PmdKind.HUGE, 0x400, F_WRITE | F_DIRTY | F_YOUNG, True)
    assert pmd.pmd_write() and not pmd.pmd_swp_exclusive()
    assert not mk_huge_pmd(0x400, F_DIRTY).pmd_write()


def test_table_pmd_points_to_512_none_ptes_and_has_no_deposit() -> None:
    pmd = mk_table_pmd()
    table = pmd_pgtable(pmd)
    assert (pmd.kind, pmd.deposited) == (PmdKind.TABLE, False)
    assert len(table.ptes) == PTRS_PER_PTE and table.is_empty()
    table.ptes[3] = swp_entry_to_pte(0, 3)
    assert not table.is_empty()


@pytest.mark.parametrize("pmd", [mk_huge_pmd(0x200, 0), mk_swap_pmd(SwpEntry(0, 512), 0)],
                         ids=["huge", "swap"])
def test_pmd_pgtable_of_a_leaf_pmd_is_a_vm_bug(pmd) -> None:
    """pmd_pgtable() is for table PMDs only: asking a leaf PMD for its table is a broken invariant."""
    with pytest.raises(VmBug):
        pmd_pgtable(pmd)


def test_pte_table_deepcopy_is_independent() -> None:
    """Snapshots copy a PTE table as one array: changing the copy leaves the original alone."""
    table = PteTable()
    table.ptes[0] = mk_pte(7, F_WRITE)
    clone = copy.deepcopy(table)
    clone.ptes[0] = PTE_NONE
    assert table.ptes[0] == mk_pte(7, F_WRITE)


def test_pmd_kind_report_names_the_huge_zero_page_huge() -> None:
    """`pmd.ADDR` reports the huge zero page as `huge` (pmd_trans_huge holds for it too)."""
    assert {k: k.report for k in PmdKind} == {
        PmdKind.NONE: "none", PmdKind.TABLE: "table", PmdKind.HUGE: "huge", PmdKind.ZERO: "huge",
        PmdKind.SWAP: "swap", PmdKind.MIGRATION: "migration"}
