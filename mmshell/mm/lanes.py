"""Whole-table arithmetic on int lanes: a table of 8-byte words as one int.

`int.from_bytes` of a table's bytes is one int whose 64-bit lanes are its words; a
progression (first, first + step, ...) is a ramp (0, step, 2 * step, ...) plus `first`
times lanes of ones, one big-int multiply and add, with no carry between lanes while
every word stays below 2**64.  So a table of consecutive pfns, swap offsets or page
indexes is built or checked without an int object per entry, at a cost that does not
grow with the values (pfns past 2**18, whose shifted PTE words need two 30-bit digits,
cost more each as ints).  Each function says when it applies and otherwise does what
the per-entry form does.
"""

from __future__ import annotations

import sys
from array import array
from functools import lru_cache

from .constants import HPAGE_PMD_NR

__all__ = ["lane_constants", "progression_int", "progression", "is_run"]


@lru_cache(maxsize=256)
def lane_constants(n: int) -> tuple[int, int]:
    """n 64-bit lanes read as one int (host byte order): all ones, and the ramp 0, 1, 2, ...
    So the words w0, w0 + step, ... of n lanes are w0 * ones + step * ramp."""
    return (int.from_bytes(array("Q", [1]).tobytes() * n, sys.byteorder),
            int.from_bytes(array("Q", range(n)).tobytes(), sys.byteorder))


#: Per step: the lanes 0, step, 2 * step, ... of a table (HPAGE_PMD_NR of them), as an int.
_RAMPS: dict[int, int] = {}
_ONES = lane_constants(HPAGE_PMD_NR)[0]


def progression_int(first: int, step: int, n: int) -> int:
    """int.from_bytes (in the host's byte order) of array("Q", range(first, first + n * step,
    step)), for 0 < n <= 512, 0 < step and 0 <= first with the last value below 2**64."""
    base = _RAMPS.get(step)
    if base is None:
        base = _RAMPS[step] = int.from_bytes(array("Q", range(0, HPAGE_PMD_NR * step, step)).tobytes(),
                                             sys.byteorder)
    ones = _ONES
    if n < HPAGE_PMD_NR:
        mask = (1 << (64 * n)) - 1
        base, ones = base & mask, ones & mask
    return base + first * ones


def progression(code: str, first: int, step: int, n: int) -> array:
    """array(code, range(first, first + n * step, step)) for a code of 8-byte items ("Q", "q"):
    by progression_int where it applies (0 < n <= 512, 0 <= first, last value below 2**63,
    0 < step), else from the range."""
    if 0 < n <= HPAGE_PMD_NR and first >= 0 and step > 0 and first + (n - 1) * step < 1 << 63:
        return array(code, progression_int(first, step, n).to_bytes(8 * n, sys.byteorder))
    return array(code, range(first, first + n * step, step))


def is_run(values: list[int]) -> bool:
    """Whether the non-empty list `values` is values[0], values[0] + 1, ... (pfns, slots):
    as array("Q") bytes against progression_int for up to 512 values from 0, else as lists."""
    n, first = len(values), values[0]
    if values[-1] - first != n - 1:
        return False
    if n > HPAGE_PMD_NR or first < 0:
        return values == list(range(first, first + n))
    try:
        table = array("Q", values)
    except OverflowError:           # a negative value: not a run from first >= 0
        return False
    return int.from_bytes(table.tobytes(), sys.byteorder) == progression_int(first, 1, n)
