"""Shared formatting and folding helpers for the views.

Nothing here prints: it turns numbers into the texts the views show (hex
addresses, `NAME+0xOFF`, sizes, device names) and finds runs in the compact
arrays the simulated kernel keeps (PTE tables, swap_map, pagemap words) with
C-level slice comparisons and byte scans instead of a Python step per entry.
"""

from __future__ import annotations

import re
import sys
from array import array
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mmshell.mm.kernel import Kernel

#: region name -> (start, length), as the language keeps them.
Names = Mapping[str, tuple[int, int]]

_UNITS = ((40, "T"), (30, "G"), (20, "M"), (10, "K"))


def fmt_size(n: int) -> str:
    """The shortest exact text for n bytes: `2M`, `4K`, `1G`, `4097`."""
    if n > 0:
        for shift, letter in _UNITS:
            if n % (1 << shift) == 0:
                return f"{n >> shift}{letter}"
    return str(n)


def fmt_kb(n_bytes: int) -> str:
    """n bytes in the /proc unit: `2048 kB`."""
    return f"{n_bytes // 1024} kB"


class AddrNamer:
    """Prints addresses as hex and, when region names are known, as `NAME+0xOFF`.

    When several regions hold an address (a name stays bound to its range after
    mremap), the one starting highest wins, then the first name in sorted order.
    """

    __slots__ = ("_regions",)

    def __init__(self, names: Names | None) -> None:
        items = sorted((names or {}).items(), key=lambda kv: (-kv[1][0], kv[0]))
        self._regions: list[tuple[str, int, int]] = [(n, s, s + ln) for n, (s, ln) in items]

    def __bool__(self) -> bool:
        return bool(self._regions)

    def region(self, addr: int) -> tuple[str, int] | None:
        """(name, offset) of the region holding addr, or None."""
        for name, start, end in self._regions:
            if start <= addr < end:
                return name, addr - start
        return None

    def label(self, addr: int) -> str:
        """`a+0x200000` when a region holds addr, else ''."""
        hit = self.region(addr)
        return f"{hit[0]}+{hit[1]:#x}" if hit else ""

    def addr(self, addr: int) -> str:
        """`a+0x200000` when a region holds addr, else `0x7f...`."""
        return self.label(addr) or f"{addr:#x}"

    def first_start_in(self, start: int, end: int) -> tuple[str, int] | None:
        """(name, region start) of the lowest-starting region that begins inside [start, end)."""
        hits = [(rs, name) for name, rs, _ in self._regions if start <= rs < end]
        return (min(hits)[1], min(hits)[0]) if hits else None

    def overlapping(self, start: int, end: int) -> list[str]:
        """Regions meeting [start, end): `a` when wholly inside, else `a+0xOFF:LEN`."""
        out = []
        for name, rs, re_ in sorted(self._regions, key=lambda r: (r[1], r[0])):
            lo, hi = max(rs, start), min(re_, end)
            if lo >= hi:
                continue
            if lo == rs and hi == re_:
                out.append(name)
            else:
                out.append(f"{name}+{lo - rs:#x}:{fmt_size(hi - lo)}")
        return out


def device_name(k: "Kernel", swp_type: int) -> str:
    """The name of swap type `swp_type` (`type7` once the device is gone)."""
    si = k.swap_info[swp_type] if 0 <= swp_type < len(k.swap_info) else None
    return si.name if si is not None else f"type{swp_type}"


def hex_range(first: int, last: int) -> str:
    """`0x200..0x3ff`, or `0x200` for one value."""
    return f"{first:#x}" if first == last else f"{first:#x}..{last:#x}"


def dec_range(first: int, last: int) -> str:
    """`512..1023`, or `512` for one value."""
    return str(first) if first == last else f"{first}..{last}"


# -- runs in word arrays --------------------------------------------------------------

#: A run: [lo, hi) and the step between its consecutive words (None: a single word).
Run = tuple[int, int, "int | None"]


def fold_words(words: array, steps: Callable[[int], tuple[int, ...]]) -> list[list]:
    """Split `words` into maximal runs where each word is the previous plus a step.

    `steps(w)` gives the steps a run starting with word w may take (e.g. one pfn
    for a present PTE, 0 for none).  A slice is tested with one C-level array
    comparison against the arithmetic sequence it would be; a slice that is not
    one run is bisected and the pieces merged back, so a uniform table costs one
    comparison and a table of k runs about 2k log 512.
    Returns a list of [lo, hi, step] (step None for a one-word run).
    """
    out: list[list] = []
    if len(words):
        _fold(words, 0, len(words), steps, out)
    return out


@lru_cache(maxsize=None)
def _lanes(n: int) -> tuple[int, int]:
    """n 64-bit lanes read as one integer: all ones, and 0, 1, 2, ... (native byte order)."""
    ones = int.from_bytes(array("Q", [1]) * n, sys.byteorder)
    ramp = int.from_bytes(array("Q", range(n)), sys.byteorder)
    return ones, ramp


def _is_seq(words: array, lo: int, hi: int, step: int) -> bool:
    """Whether words[lo:hi] is words[lo], +step, +2*step, ...: one big-integer comparison.

    The slice read as one integer equals w0*ones + step*ramp exactly when every
    64-bit lane i holds w0 + i*step (no lane can carry: the last value fits).
    """
    w0, n = words[lo], hi - lo
    if words[hi - 1] != w0 + step * (n - 1):
        return False
    if words.itemsize != 8 or w0 + step * n >= 1 << 64:
        return words[lo:hi] == array(words.typecode, range(w0, w0 + step * n, step) if step else [w0] * n)
    ones, ramp = _lanes(n)
    return int.from_bytes(memoryview(words)[lo:hi], sys.byteorder) == w0 * ones + step * ramp


def _fold(words: array, lo: int, hi: int, steps: Callable, out: list[list]) -> None:
    if hi - lo == 1:
        _append(words, [lo, hi, None], steps, out)
        return
    for s in steps(words[lo]):
        if words[lo + 1] - words[lo] == s and _is_seq(words, lo, hi, s):
            _append(words, [lo, hi, s], steps, out)
            return
    mid = (lo + hi) // 2
    _fold(words, lo, mid, steps, out)
    _fold(words, mid, hi, steps, out)


def _append(words: array, run: list, steps: Callable, out: list[list]) -> None:
    if out:
        prev = out[-1]
        gap = words[run[0]] - words[prev[1] - 1]
        step = prev[2]
        if step is None and gap in steps(words[prev[0]]):
            step = gap
        if step is not None and gap == step and run[2] in (None, step):
            prev[1] = run[1]
            prev[2] = step
            return
    out.append(run)


#: `[^v]` for each byte value v: searching it finds where a run of v ends (no backtracking).
_NOT_BYTE = [re.compile(b"[^\\x%02x]" % v) for v in range(256)]
_BLOCK = 4096


def _run_end(data: bytes | bytearray, pos: int, v: int) -> int:
    """The first index at or after pos whose byte is not v (len(data) if none)."""
    n = len(data)
    m = _NOT_BYTE[v].search(data, pos, min(n, pos + 64))
    if m:
        return m.start()
    p = min(n, pos + 64)
    block = bytes((v,)) * _BLOCK
    while p + _BLOCK <= n and data[p:p + _BLOCK] == block:   # whole blocks: one memcmp each
        p += _BLOCK
    m = _NOT_BYTE[v].search(data, p)
    return m.start() if m else n


def byte_runs(data: bytes | bytearray, skip: int | None = None) -> list[tuple[int, int, int]]:
    """Runs of equal bytes as (start, end, value), end exclusive; runs of `skip` left out.

    Short runs cost one C-level regex search; long ones are skipped 4 KiB at a time.
    """
    out = []
    pos, n = 0, len(data)
    while pos < n:
        v = data[pos]
        end = _run_end(data, pos, v)
        if v != skip:
            out.append((pos, end, v))
        pos = end
    return out


def bit_runs(bits: bytes | bytearray) -> list[tuple[int, int, int]]:
    """Runs of a 0/1 byte string as (start, end, bit), found with bytes.find."""
    out = []
    pos, n = 0, len(bits)
    while pos < n:
        v = bits[pos]
        nxt = bits.find(b"\x00" if v else b"\x01", pos)
        end = n if nxt < 0 else nxt
        out.append((pos, end, v))
        pos = end
    return out
