"""What `expect PATH OP VALUE` means whatever is observed: the VALUE, the OPs, path errors.

lang/expect_paths.py reads PATH through either backend's Observer; both backends
parse VALUE and compare with these, so one script means the same on both.
Imports nothing of the simulator but its limits.
"""

from __future__ import annotations

import operator
from typing import Any, Callable

from ..mm.constants import MAX_ACCESS
from .values import PAGE_SIZE, BadValue, parse_int, parse_size

__all__ = ["OPS", "PAGEMAP_FIELDS", "PathError", "pagemap_count", "pagemap_span", "value_unit",
           "parse_expected",
           "compare"]

OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}

#: The FIELDs of `pagemap.ADDR.FIELD`.
PAGEMAP_FIELDS = ("present", "swapped", "file", "exclusive", "soft_dirty", "uffd_wp", "swap_type",
                  "swap_offset", "pfn")
#: The 0/1 FIELDs: over a range, `pagemap.ADDR:LEN.FIELD` counts the pages that have the bit.
PAGEMAP_FLAGS = PAGEMAP_FIELDS[:6]


def pagemap_span(text: str, field: str) -> tuple[str, int] | None:
    """The ADDR part of a pagemap path: (ADDR, pages) for `ADDR:LEN`, None for one address."""
    addr, colon, length = text.partition(":")
    if not colon:
        return None
    if field not in PAGEMAP_FLAGS:
        raise PathError(f"pagemap field {field!r} is one page's: over a range only the 0/1 fields count "
                        f"pages ({', '.join(PAGEMAP_FLAGS)})")
    try:
        size = parse_size(length)
    except BadValue as e:
        raise PathError(str(e)) from None
    if size <= 0 or size % PAGE_SIZE or size > MAX_ACCESS:
        raise PathError(f"pagemap range length {length!r} must be a positive multiple of 4K, at most "
                        f"{MAX_ACCESS >> 30}G (the longest range one step walks)")
    return addr, size // PAGE_SIZE


def pagemap_count(entries: list[Any], field: str) -> int:
    """How many of the pagemap entries (PagemapEntry-like) have the 0/1 FIELD set."""
    return sum(1 for e in entries if getattr(e, field))


class PathError(Exception):
    """The PATH itself is wrong (unknown counter, region, field): the expectation is an error."""


def value_unit(path: str) -> tuple[str, int] | None:
    """The unit of PATH's value where it is an amount of memory, as (name, bytes): kB for
    smaps and meminfo (as /proc shows them), pages for swap.NAME.used; None for counts,
    flags, offsets and words."""
    head, field = path.partition(".")[0], path.rpartition(".")[2]
    if (head == "smaps" and field != "THPeligible") \
            or (head == "meminfo" and not field.startswith("HugePages")):
        return "kB", 1024
    if head == "swap" and field == "used":
        return "pages", 4096
    return None


def parse_expected(text: str, path: str) -> int | str:
    """The VALUE of an expectation of PATH: a number (decimal or 0x hex) in PATH's own unit,
    a size (`2M`, `2048kB`) converted to that unit, or a word.

    A size where PATH has no unit (a counter, a flag), or one that is not a whole number
    of the unit, is a PathError: `expect smaps.a.Rss == 2M` means 2048 (kB), never 2097152.
    """
    try:
        return parse_int(text)
    except BadValue:
        pass
    try:
        size = parse_size(text)
    except BadValue:
        return text
    unit = value_unit(path)
    if unit is None:
        raise PathError(f"{text} is a size, but {path} is not an amount of memory: write a plain number")
    name, nbytes = unit
    if size % nbytes:
        raise PathError(f"{text} is not a whole number of {name}, the unit of {path}")
    return size // nbytes


def compare(actual: int | str, op: str, expected: int | str) -> bool:
    """`actual OP expected`; a number against a word, or `<` on words, is a PathError."""
    if isinstance(actual, int) != isinstance(expected, int):
        raise PathError(f"cannot compare {actual!r} with {expected!r}")
    if isinstance(actual, str) and op not in ("==", "!="):
        raise PathError(f"{op} needs numbers, not {actual!r}")
    return OPS[op](actual, expected)
