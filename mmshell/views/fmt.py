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
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from mmshell.mm.lanes import lane_constants

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

    `names` maps each region name to the range mmap or mremap bound it to, in the
    order they were bound (a dict keeps it).  An address is named after what is
    mapped there now: the newest binding that covers it, since only mmap and mremap
    map anything, and each binds a new name over exactly the range it maps.  So
    after `munmap a; mmap b` at the same address it is `b+0x0`, while `a` still
    resolves to its own range in commands.  The bindings are painted oldest first
    into `pieces`, disjoint (lo, hi, name, start, size) in address order, where
    start and size are the binding's own range.
    """

    __slots__ = ("pieces", "_los")

    def __init__(self, names: Names | None) -> None:
        pieces: list[tuple[int, int, str, int, int]] = []
        for name, (start, size) in (names or {}).items():
            if size > 0:
                pieces = _paint(pieces, (start, start + size, name, start, size))
        self.pieces = pieces
        self._los = [p[0] for p in pieces]

    def __bool__(self) -> bool:
        return bool(self.pieces)

    def _piece(self, addr: int) -> tuple[int, int, str, int, int] | None:
        i = bisect_right(self._los, addr) - 1
        if i >= 0 and addr < self.pieces[i][1]:
            return self.pieces[i]
        return None

    def region(self, addr: int) -> tuple[str, int] | None:
        """(name, offset in its binding) of what is mapped at addr, or None."""
        hit = self._piece(addr)
        return (hit[2], addr - hit[3]) if hit else None

    def label(self, addr: int) -> str:
        """`a+0x200000` when a region holds addr, else ''."""
        hit = self.region(addr)
        return f"{hit[0]}+{hit[1]:#x}" if hit else ""

    def addr(self, addr: int) -> str:
        """`a+0x200000` when a region holds addr, else `0x7f...`."""
        return self.label(addr) or f"{addr:#x}"

    def first_start_in(self, start: int, end: int) -> tuple[str, int] | None:
        """(name, address) of the lowest region piece that begins inside [start, end)."""
        i = bisect_left(self._los, start)
        if i < len(self.pieces) and self.pieces[i][0] < end:
            return self.pieces[i][2], self.pieces[i][0]
        return None

    def overlapping(self, start: int, end: int) -> list[str]:
        """What is mapped in [start, end), in address order: `a` when the whole of a's
        range lies there, else the part there as `a+0xOFF:LEN`."""
        out = []
        for lo, hi, name, rs, size in self.pieces[max(bisect_right(self._los, start) - 1, 0):]:
            lo, hi = max(lo, start), min(hi, end)
            if lo >= end:
                break
            if lo >= hi:
                continue
            out.append(name if (lo, hi) == (rs, rs + size) else f"{name}+{lo - rs:#x}:{fmt_size(hi - lo)}")
        return out


def _paint(pieces: list[tuple[int, int, str, int, int]],
           new: tuple[int, int, str, int, int]) -> list[tuple[int, int, str, int, int]]:
    """`pieces` with `new` laid over them (what it covers is cut out of the older pieces)."""
    lo, hi = new[0], new[1]
    out = []
    for p in pieces:
        if p[1] <= lo or p[0] >= hi:
            out.append(p)
            continue
        if p[0] < lo:
            out.append((p[0], lo, *p[2:]))
        if p[1] > hi:
            out.append((hi, p[1], *p[2:]))
    out.append(new)
    out.sort()
    return out


def device_name(k: "Kernel", swp_type: int) -> str:
    """The name of swap type `swp_type` (`type7` once the device is gone)."""
    si = k.swap_info[swp_type] if 0 <= swp_type < len(k.swap_info) else None
    return si.name if si is not None else f"type{swp_type}"


def hex_range(first: int, last: int) -> str:
    """Page frame numbers: `0x200..0x3ff`, or `0x200` for one (always after the word `pfn`)."""
    return f"{first:#x}" if first == last else f"{first:#x}..{last:#x}"


def slot_range(first: int, last: int) -> str:
    """Swap slots (offsets on a device): `0x200-0x3ff`, or `0x204` for one.

    The one notation for swap offsets in every view: hex with a dash, after the word
    `slot`/`slots` (`slots_text`), so that it is never read as a pfn range (`pfn 0x200..0x3ff`).
    """
    return f"{first:#x}" if first == last else f"{first:#x}-{last:#x}"


def slots_text(first: int, last: int) -> str:
    """`slots 0x200-0x3ff`, `slot 0x204`."""
    return f"slot {first:#x}" if first == last else f"slots {slot_range(first, last)}"


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
    if n > _LANES:          # a long slice (a live pagemap of gigabytes): compared a block at a time
        return all(_is_seq_block(words, b, min(hi, b + _LANES), w0 + step * (b - lo), step)
                   for b in range(lo, hi, _LANES))
    return _is_seq_block(words, lo, hi, w0, step)


#: The most lanes compared as one integer (lanes.lane_constants stay 32 KiB each).
_LANES = 4096


def _is_seq_block(words: array, lo: int, hi: int, w0: int, step: int) -> bool:
    ones, ramp = lane_constants(hi - lo)
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
