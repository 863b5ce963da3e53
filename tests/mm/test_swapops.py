"""swp_entry_t (mmshell/mm/swapops.py, include/linux/swapops.h).

A swap entry is a (type, offset) pair; its text form `TYPE:0xOFFSET` is what
the views print and what `SwpEntry.parse` reads back (design.md, "values parsed
from text print back as the same text").
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings, strategies as st

from mmshell.mm.constants import MAX_SWAPFILES, MAX_SWAP, PAGE_SHIFT
from mmshell.mm.swapops import SwpEntry

TYPES = st.integers(0, MAX_SWAPFILES - 1)
OFFSETS = st.integers(0, (MAX_SWAP >> PAGE_SHIFT) - 1)


def test_swp_entry_text_is_type_colon_hex_offset() -> None:
    """The first PMD-size allocation on a fresh device is slot 512 of type 0: `0:0x200`."""
    assert str(SwpEntry(0, 512)) == "0:0x200"
    assert str(SwpEntry(31, 0)) == "31:0x0"
    assert str(SwpEntry(3, 0x3FF)) == "3:0x3ff"


def test_swp_entry_parse_reads_the_printed_form() -> None:
    assert SwpEntry.parse("0:0x200") == SwpEntry(0, 512)
    assert SwpEntry.parse("31:0x0") == SwpEntry(31, 0)


@settings(max_examples=200, deadline=None)
@given(TYPES, OFFSETS)
def test_swp_entry_prints_back_as_it_parses(type_: int, offset: int) -> None:
    """parse(str(e)) == e and str(parse(text)) == text for the canonical text."""
    entry = SwpEntry(type_, offset)
    text = str(entry)
    assert SwpEntry.parse(text) == entry
    assert str(SwpEntry.parse(text)) == text


def test_swp_entry_parse_accepts_any_integer_base_and_prints_canonically() -> None:
    """`0:512` and `0x0:0x200` name the same slot; the printed form is the hex one."""
    assert SwpEntry.parse("0:512") == SwpEntry(0, 0x200)
    assert str(SwpEntry.parse("0x0:0x200")) == "0:0x200"


@pytest.mark.parametrize("text", ["512", "0x200", "", "0:", ":0x200", "a:0x200", "0:0xzz"])
def test_swp_entry_parse_refuses_what_is_not_type_colon_offset(text: str) -> None:
    with pytest.raises(ValueError):
        SwpEntry.parse(text)


def test_swp_entry_plus_nr_is_the_nth_slot_of_the_same_device() -> None:
    """folio->swap + i: page i of a large swap-cache folio (swp_entry(type, offset + i))."""
    assert SwpEntry(1, 512) + 511 == SwpEntry(1, 1023)
    assert (SwpEntry(1, 512) + 0) == SwpEntry(1, 512)


def test_swp_entry_is_a_frozen_ordered_value() -> None:
    """A value: hashable, compared field by field, ordered by (type, offset), immutable."""
    entries = [SwpEntry(1, 0), SwpEntry(0, 1024), SwpEntry(0, 512)]
    assert sorted(entries) == [SwpEntry(0, 512), SwpEntry(0, 1024), SwpEntry(1, 0)]
    assert len({SwpEntry(0, 512), SwpEntry(0, 512)}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        SwpEntry(0, 512).offset = 1024  # type: ignore[misc]
