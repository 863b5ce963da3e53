"""The cells of `show map`: one glyph per PTE-level page of a PMD, and its overlays.

A PMD covers 512 pages; `show map` draws each as a grid of 512 cells, one
letter per cell for the state of the entry that maps that page (the letters
are declared once, in :data:`GLYPHS`), plus two overlays: the page (or the
swap slot) is in the swap cache, and it is shared (the page's mapcount, or
the slot's swap count, is above 1).  `PmdCells` is that picture as plain
data; `pmd_cells(k, pmd)` reads it from the simulated kernel, and the live
kernel's runner builds the same value from /proc/PID/pagemap, so one
renderer (views/map.py) draws both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmshell.mm.constants import COUNT_CONTINUED, HPAGE_PMD_NR, SWAP_COUNT_MASK, SWAP_HAS_CACHE, SWAP_MAP_BAD
from mmshell.mm.folio import PG
from mmshell.mm.pgtable import (F_SPECIAL, KIND_MASK, KIND_PRESENT, KIND_SWAP, PFN_SHIFT, SWP_OFFSET_SHIFT, Pmd,
                                PmdKind, pte_swp_type)
from mmshell.notation import MAP_BOTH, MAP_LETTERS, MAP_OVERLAYS

if TYPE_CHECKING:
    from mmshell.mm.kernel import Kernel
    from mmshell.mm.swap_info import SwapInfo

#: Cells per PMD: the pages one PTE table maps.
PTRS = HPAGE_PMD_NR


@dataclass(frozen=True, slots=True)
class Glyph:
    """One cell state: its letter, what it means, its colour."""

    letter: str
    meaning: str
    style: str


#: The colour of each letter (notation.MAP_LETTERS says what it means).
STYLES = {".": "dim", "p": "green", "t": "cyan", "H": "bold green", "Z": "bold blue", "z": "blue",
          "s": "magenta", "S": "bold magenta", "m": "yellow"}
#: Every cell state, in the order the legend lists them.
GLYPHS: tuple[Glyph, ...] = tuple(Glyph(letter, meaning, STYLES[letter]) for letter, meaning in MAP_LETTERS)
#: bytes.translate tables over swap_map bytes: the cache bit; a plain count above 1 (or continued).
_HAS_CACHE = bytes(1 if b & SWAP_HAS_CACHE and b != SWAP_MAP_BAD else 0 for b in range(256))
_COUNT_ABOVE_1 = bytes(1 if b != SWAP_MAP_BAD and ((b & SWAP_COUNT_MASK) > 1 or b & COUNT_CONTINUED) else 0
                       for b in range(256))
GLYPH = {g.letter: g for g in GLYPHS}
LETTERS = "".join(g.letter for g in GLYPHS)


@dataclass(frozen=True, slots=True)
class Overlay:
    """A property drawn after a cell's letter: its mark, its JSON key and what it means."""

    mark: str
    key: str
    meaning: str


#: The overlays (in the swap cache, shared), and the mark for a cell that has both.
CACHED, SHARED = OVERLAYS = tuple(Overlay(*o) for o in MAP_OVERLAYS)
BOTH_MARK = MAP_BOTH[0]


@dataclass(frozen=True, slots=True)
class PmdCells:
    """One PMD slot as 512 cells: `cells` has one letter of :data:`LETTERS` per page;
    `cached` and `shared` have one byte per page (1 where the overlay holds).
    `kind` is the contract's word for the PMD (none, table, huge, swap, migration)."""

    index: int
    kind: str
    cells: str
    cached: bytes = bytes(PTRS)
    shared: bytes = bytes(PTRS)

    @property
    def pmd_level(self) -> bool:
        """Whether one PMD-level entry maps the whole slot (H, Z, S: drawn as one block)."""
        return self.kind in ("huge", "swap", "migration")

    def mark(self, i: int) -> str:
        """The overlay mark after cell i: ' ', '~', '+' or '*'."""
        c, s = self.cached[i], self.shared[i]
        return BOTH_MARK if c and s else CACHED.mark if c else SHARED.mark if s else " "

    def same_picture(self, other: "PmdCells") -> bool:
        """Whether two slots draw alike (so neighbours fold into one grid)."""
        return (self.kind, self.cells, self.cached, self.shared) == (other.kind, other.cells, other.cached,
                                                                      other.shared)

    def counts(self) -> dict[str, int]:
        """How many cells of each letter, in legend order (letters present only)."""
        return {g.letter: n for g in GLYPHS if (n := self.cells.count(g.letter))}


def runs_of(mask: bytes) -> list[list[int]]:
    """[[first, last], ...] of the cells where mask is set."""
    out: list[list[int]] = []
    for i, v in enumerate(mask):
        if v:
            if out and out[-1][1] == i - 1:
                out[-1][1] = i
            else:
                out.append([i, i])
    return out


def none_cells(index: int) -> PmdCells:
    return PmdCells(index, "none", "." * PTRS)


def pmd_cells(k: "Kernel", index: int, pmd: Pmd | None) -> PmdCells:
    """The cells of one PMD slot of the simulated kernel."""
    if pmd is None or pmd.kind is PmdKind.NONE:
        return none_cells(index)
    mem = k.mem
    match pmd.kind:
        case PmdKind.HUGE:
            cached = bytes([1]) * PTRS if mem.flags[pmd.pfn] & PG.SWAPCACHE else bytes(PTRS)
            entire = mem.entire_mapcount[pmd.pfn]
            counts = mem.mapcount[pmd.pfn:pmd.pfn + PTRS]
            shared = (bytes(PTRS) if max(counts) + entire <= 1
                      else bytes(1 if m + entire > 1 else 0 for m in counts))
            return PmdCells(index, "huge", "H" * PTRS, cached, shared)
        case PmdKind.ZERO:
            return PmdCells(index, "huge", "Z" * PTRS)
        case PmdKind.SWAP:
            si = k.swap_info[pmd.swp_type]
            off = pmd.swp_offset
            if si is None:
                return PmdCells(index, "swap", "S" * PTRS)
            return PmdCells(index, "swap", "S" * PTRS, _slot_cached(si, off, PTRS), _slot_shared(si, off, PTRS))
        case PmdKind.MIGRATION:
            return PmdCells(index, "migration", "m" * PTRS)
        case PmdKind.TABLE:
            assert pmd.table is not None
            return _table_cells(k, index, pmd.table.ptes)
    return none_cells(index)


def _slot_cached(si: "SwapInfo", off: int, n: int) -> bytes:
    """1 per slot holding SWAP_HAS_CACHE (a folio in the swap cache)."""
    return bytes(si.swap_map[off:off + n].translate(_HAS_CACHE))


def _slot_shared(si: "SwapInfo", off: int, n: int) -> bytes:
    """1 per slot whose swap count (continuation included) is above 1."""
    low = bytes(si.swap_map[off:off + n].translate(_COUNT_ABOVE_1))
    if not si.cont:
        return low
    return bytes(1 if si.swap_count(off + i) > 1 else 0 for i in range(n))


def _table_cells(k: "Kernel", index: int, ptes) -> PmdCells:
    mem = k.mem
    letters = []
    cached = bytearray(PTRS)
    shared = bytearray(PTRS)
    for i, w in enumerate(ptes):
        kind = w & KIND_MASK
        if w == 0:
            letters.append(".")
        elif kind == KIND_PRESENT and w & F_SPECIAL:
            letters.append("z")
        elif kind == KIND_PRESENT:
            pfn = w >> PFN_SHIFT
            head = mem.folio_of(pfn)
            letters.append("t" if mem.order[head] else "p")
            cached[i] = 1 if mem.flags[head] & PG.SWAPCACHE else 0
            shared[i] = 1 if mem.page_mapcount(pfn) > 1 else 0
        elif kind == KIND_SWAP:
            letters.append("s")
            si = k.swap_info[pte_swp_type(w)]
            if si is not None:
                off = w >> SWP_OFFSET_SHIFT
                cached[i] = 1 if si.has_cache(off) else 0
                shared[i] = 1 if si.swap_count(off) > 1 else 0
        else:
            letters.append("m")
    return PmdCells(index, "table", "".join(letters), bytes(cached), bytes(shared))
