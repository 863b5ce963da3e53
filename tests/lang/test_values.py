"""Tests for mmshell.lang.values: sizes, names, addresses and ranges."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from mmshell.lang.values import (
    NAME_MAX, PAGE_SIZE, RESERVED_WORDS, Addr, BadValue, Range, format_offset, format_size,
    parse_int, parse_name, parse_size,
)

K, M, G, T, P = 1 << 10, 1 << 20, 1 << 30, 1 << 40, 1 << 50


@pytest.mark.parametrize("text, value", [
    ("0", 0), ("4096", 4096), ("007", 7), ("0x1000", 4096), ("0X10", 16), ("0xFFff", 0xFFFF),
    ("4K", 4 * K), ("4k", 4 * K), ("4kB", 4 * K), ("4KB", 4 * K), ("4KiB", 4 * K),
    ("2M", 2097152), ("2MB", 2 * M), ("2MiB", 2 * M), ("2048kB", 2 * M),
    ("1G", G), ("1GB", G), ("1GiB", G), ("3T", 3 * T), ("3TB", 3 * T), ("3TiB", 3 * T),
    ("5P", 5 * P), ("5PB", 5 * P), ("5PiB", 5 * P), ("12B", 12),
    (str(2**64 - 1), 2**64 - 1), ("0xffffffffffffffff", 2**64 - 1), ("0x0000000000000000001", 1),
    ("15P", 15 * P),
])
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text, hint", [
    ("", "empty"),
    ("-1", "cannot be negative"),
    ("-4K", "cannot be negative"),
    ("x", ""),
    ("K", ""),
    ("2Q", "unknown unit 'Q'"),
    ("2m", "did you mean 'M'?"),
    ("2g", "did you mean 'G'?"),
    ("2kb", "unknown unit"),
    ("1.5M", "whole numbers"),
    ("0x2M", "needs a decimal number"),
    ("0x", "bad hexadecimal"),
    ("0xg", "bad hexadecimal"),
    ("+5", ""),
    ("5 M", ""),
    (str(2**64), "too large"),
    ("0x10000000000000000", "too large"),
    ("16384P", "too large"),
    ("1" * 100_000, "too large"),
    ("1" * 100_000 + "K", "too large"),
    ("0x" + "f" * 100_000, "too large"),
    ("٣", ""),  # a non-ASCII digit is not a digit here
])
def test_parse_size_rejects(text: str, hint: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_size(text)
    assert isinstance(info.value, BadValue)
    assert hint in info.value.hint
    assert "not a size" in str(info.value)


@pytest.mark.parametrize("value, text", [
    (0, "0"), (1, "1"), (4096, "4K"), (2 * M, "2M"), (G, "1G"), (3145728, "3M"), (4097, "4097"),
    (1536 * K, "1536K"), (P, "1P"), (1024 * P, "1024P"), (3 * T, "3T"), (2**64 - 1, str(2**64 - 1)),
])
def test_format_size(value: int, text: str) -> None:
    assert format_size(value) == text
    assert parse_size(text) == value


@pytest.mark.parametrize("value", [-1, 2**64])
def test_format_size_rejects(value: int) -> None:
    with pytest.raises(ValueError):
        format_size(value)


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_size_round_trip(n: int) -> None:
    text = format_size(n)
    assert parse_size(text) == n
    assert len(text) <= len(str(n))


def test_format_offset() -> None:
    assert format_offset(0) == "0"
    assert format_offset(2 * M) == "2M"
    assert format_offset(0x1234) == "0x1234"


@pytest.mark.parametrize("text, value", [("0", 0), ("64", 64), ("-2", -2), ("0x10", 16), ("-0x10", -16)])
def test_parse_int(text: str, value: int) -> None:
    assert parse_int(text) == value


@pytest.mark.parametrize("text", ["", "-", "2K", "x", "1.0", "--2", "9" * 30])
def test_parse_int_rejects(text: str) -> None:
    with pytest.raises(BadValue):
        parse_int(text)


@pytest.mark.parametrize("text", ["a", "_", "A1", "big_region", "Mmap", "s0", "x" * NAME_MAX])
def test_parse_name(text: str) -> None:
    assert parse_name(text) == text


@pytest.mark.parametrize("text, hint", [
    ("", "empty"), ("1a", "ASCII letters"), ("a-b", "ASCII letters"), ("a.b", "ASCII letters"),
    ("ä", "ASCII letters"), ("x" * (NAME_MAX + 1), "longer than"), ("at", "reserved"),
    ("prot", "reserved"), ("hugepage", "reserved"),
])
def test_parse_name_rejects(text: str, hint: str) -> None:
    with pytest.raises(BadValue) as info:
        parse_name(text)
    assert hint in info.value.hint


def test_reserved_words_are_rejected_everywhere() -> None:
    for word in RESERVED_WORDS:
        with pytest.raises(BadValue):
            Addr.parse(word)
        with pytest.raises(BadValue):
            Range.parse(word + ":4K")


@pytest.mark.parametrize("text, addr, canonical", [
    ("a", Addr("a", 0), "a"),
    ("a+2M", Addr("a", 2 * M), "a+2M"),
    ("a+0x1000", Addr("a", 0x1000), "a+4K"),
    ("a+0x1234", Addr("a", 0x1234), "a+0x1234"),
    ("a+0", Addr("a", 0), "a"),
    ("Big_1+4096", Addr("Big_1", 4096), "Big_1+4K"),
    ("a+2M+0x11000", Addr("a", 2 * M + 0x11000), "a+2116K"),
    ("a+2M-4K", Addr("a", 2 * M - 4096), "a+2044K"),
    ("a+4K-4K+2M", Addr("a", 2 * M), "a+2M"),
    ("0x40000000", Addr(None, 0x40000000), "0x40000000"),
    ("1073741824", Addr(None, 1 << 30), "0x40000000"),
    ("1G", Addr(None, 1 << 30), "0x40000000"),
    ("0", Addr(None, 0), "0x0"),
])
def test_addr(text: str, addr: Addr, canonical: str) -> None:
    assert Addr.parse(text) == addr
    assert str(addr) == canonical
    assert Addr.parse(canonical) == addr
    assert addr.is_absolute == (addr.name is None)


@pytest.mark.parametrize("text, hint", [
    ("", "empty"),
    ("a-0x1000", "NAME-OFFSET is not supported"),
    ("a-4K", "NAME-OFFSET is not supported"),
    ("a+", "missing offset"),
    ("+4K", "missing name"),
    ("a+x", "offset"),
    ("a+-4K", "cannot be negative"),
    ("a+2M+", "missing size after '+'"),
    ("a+2M-x", "offset"),
    ("a+4K-8K", "comes to less than 0"),
    ("-5", "cannot be negative"),
    ("1a", ""),
    ("at+4K", "reserved"),
    ("a:4K", "ASCII letters"),
    (str(2**64), "too large"),
])
def test_addr_rejects(text: str, hint: str) -> None:
    with pytest.raises(BadValue) as info:
        Addr.parse(text)
    assert hint in info.value.hint
    assert "not an address" in str(info.value)


def test_addr_constructor_validates() -> None:
    with pytest.raises(ValueError):
        Addr("1a", 0)
    with pytest.raises(ValueError):
        Addr(None, -1)
    with pytest.raises(ValueError):
        Addr(None, 2**64)


@pytest.mark.parametrize("text, rng, canonical", [
    ("a+2M:4K", Range(Addr("a", 2 * M), 4096), "a+2M:4K"),
    ("0x40000000:2M", Range(Addr(None, 0x40000000), 2 * M), "0x40000000:2M"),
    ("a", Range(Addr("a", 0), None), "a"),
    ("a+0x1000", Range(Addr("a", 0x1000), None), "a+4K"),
    ("0x40000000", Range(Addr(None, 0x40000000), None), "0x40000000"),
    ("a:4097", Range(Addr("a", 0), 4097), "a:4097"),
    ("a+0", Range(Addr("a", 0), PAGE_SIZE), "a:4K"),
    ("a:0", Range(Addr("a", 0), 0), "a:0"),
    ("a+0x1000:0x2000", Range(Addr("a", 0x1000), 0x2000), "a+4K:8K"),
])
def test_range(text: str, rng: Range, canonical: str) -> None:
    assert Range.parse(text) == rng
    assert str(rng) == canonical
    assert Range.parse(canonical) == rng


def test_range_kinds() -> None:
    assert Range.parse("a").whole_region and not Range.parse("a").one_page
    assert Range.parse("a+4K").one_page and not Range.parse("a+4K").whole_region
    assert Range.parse("0x1000").one_page
    assert not Range.parse("a:4K").one_page and not Range.parse("a:4K").whole_region


@pytest.mark.parametrize("text, hint", [
    ("", "empty"), (":4K", "missing address"), ("a:", "missing length"),
    ("a:4K:4K", "one ':' only"), ("a:x", "length"), ("a:-4K", "cannot be negative"),
    ("a-1:4K", "NAME-OFFSET"), ("prot:4K", "reserved"), ("a+:4K", "missing offset"),
])
def test_range_rejects(text: str, hint: str) -> None:
    with pytest.raises(BadValue) as info:
        Range.parse(text)
    assert hint in info.value.hint
    assert "not a range" in str(info.value)


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True).filter(
    lambda s: s not in RESERVED_WORDS)
u64 = st.integers(min_value=0, max_value=2**64 - 1)
addrs = st.builds(Addr, st.none() | names, u64)
ranges = st.builds(Range, addrs, st.none() | u64)


@given(addrs)
def test_addr_round_trip(addr: Addr) -> None:
    assert Addr.parse(str(addr)) == addr


@given(ranges)
def test_range_round_trip(rng: Range) -> None:
    assert Range.parse(str(rng)) == rng


@given(st.text(max_size=30))
def test_values_raise_only_value_error(text: str) -> None:
    for parse in (parse_size, parse_int, parse_name, Addr.parse, Range.parse):
        try:
            parse(text)
        except BadValue:
            pass


def test_pages_counts_in_words() -> None:
    from mmshell.lang.values import pages

    assert (pages(0), pages(1), pages(512)) == ("0 pages", "1 page", "512 pages")
