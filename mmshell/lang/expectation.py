"""What `expect PATH OP VALUE` means whatever is observed: the VALUE, the OPs, path errors.

The simulator (lang/expect.py) and the live kernel (kernel/observe.py) each
read PATH their own way; both parse VALUE and compare with these, so one
script means the same on both.  Imports nothing of the simulator.
"""

from __future__ import annotations

import operator
from typing import Any, Callable

from .values import BadValue, parse_size

__all__ = ["OPS", "PAGEMAP_FIELDS", "PathError", "parse_expected", "compare"]

OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}

#: The FIELDs of `pagemap.ADDR.FIELD`.
PAGEMAP_FIELDS = ("present", "swapped", "file", "exclusive", "soft_dirty", "uffd_wp", "swap_type",
                  "swap_offset", "pfn")


class PathError(Exception):
    """The PATH itself is wrong (unknown counter, region, field): the expectation is an error."""


def parse_expected(text: str) -> int | str:
    """The VALUE of an expectation: a number (sizes and `kB` allowed) or a word."""
    try:
        return parse_size(text[:-2] if text.endswith("kB") else text)
    except BadValue:
        return text


def compare(actual: int | str, op: str, expected: int | str) -> bool:
    """`actual OP expected`; a number against a word, or `<` on words, is a PathError."""
    if isinstance(actual, int) != isinstance(expected, int):
        raise PathError(f"cannot compare {actual!r} with {expected!r}")
    if isinstance(actual, str) and op not in ("==", "!="):
        raise PathError(f"{op} needs numbers, not {actual!r}")
    return OPS[op](actual, expected)
