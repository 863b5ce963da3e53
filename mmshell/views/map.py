"""`show map [RANGE]`: each PMD as a grid of its 512 pages, one glyph per page.

A grid is 16 rows of 32 cells (PTE 0-31 in the first row, a row is 128K);
each cell is two characters: the letter of the entry that maps the page
(cells.GLYPHS) and a mark for the overlays (`~` in the swap cache, `+` shared,
`*` both).  A PMD-level entry (H, Z, S) is drawn as one solid block of its
letter.  Beside each grid: the region and address, the PMD's kind and the
count of each letter.  Neighbouring PMDs that draw alike fold into one grid
(`4 × huge`).  A grid is 79 columns wide, so a map fits 80.

The view is built from `PmdCells` values, whoever read them: the simulator
(`map_cells`) or the live kernel's pagemap (kernel/map_cells.py).  Given the
cells from before a step, cells that changed are drawn in reverse video and
counted beside the grid (`set display map`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Group
from rich.text import Text

from mmshell.mm.constants import PAGE_SHIFT, PMD_SHIFT, PMD_SIZE
from mmshell.mm.mm_types import MmStruct

from mmshell.notation import MAP_BOTH

from .cells import BOTH_MARK, CACHED, GLYPH, GLYPHS, OVERLAYS, PTRS, SHARED, PmdCells, none_cells, pmd_cells, runs_of
from .fmt import AddrNamer, Names, fmt_size
from .widgets import Packed, Trimmed

if TYPE_CHECKING:
    from mmshell.mm.kernel import Kernel

COLUMNS = 32
ROWS = PTRS // COLUMNS
#: The label column beside a grid (an address, 0x7fffffe00000, and a space).
LABEL_WIDTH = 15
CHANGED_STYLE = "reverse"


def map_indices(mm: MmStruct, start: int | None, end: int | None) -> list[int]:
    """The PMD slots `show map` draws over [start, end): every slot a VMA meets or a
    non-none PMD holds, in address order (default: the whole address space)."""
    lo = 0 if start is None else start >> PMD_SHIFT
    hi = None if end is None else (end - 1) >> PMD_SHIFT
    found = set(mm.pmds)
    for v in mm.vmas:
        found.update(range(v.start >> PMD_SHIFT, ((v.end - 1) >> PMD_SHIFT) + 1))
    return [i for i in sorted(found) if i >= lo and (hi is None or i <= hi)]


def map_cells(k: "Kernel", mm: MmStruct, start: int | None = None, end: int | None = None) -> list[PmdCells]:
    """The cells of every PMD slot `show map` draws for mm over [start, end)."""
    return [pmd_cells(k, i, mm.pmds.get(i)) for i in map_indices(mm, start, end)]


def changed_cells(now: PmdCells, before: PmdCells | None) -> bytes:
    """1 per cell whose letter or overlays differ from `before` (None: the slot was not drawn)."""
    if before is None:
        before = none_cells(now.index)
    if before.same_picture(now):
        return bytes(PTRS)
    return bytes(1 if (a, now.cached[i], now.shared[i]) != (b, before.cached[i], before.shared[i]) else 0
                 for i, (a, b) in enumerate(zip(now.cells, before.cells)))


@dataclass(slots=True)
class MapGrid:
    """Neighbouring slots first..last that draw alike (the first one's cells)."""

    cells: PmdCells
    last: int
    changed: bytes

    @property
    def count(self) -> int:
        return self.last - self.cells.index + 1


class MapView:
    """The map of one process's PMDs (`pid`), from their cells.

    `before` (slot index -> cells before the step) marks the cells a step changed.
    to_json(): {"pid", "pmds": [{"index", "addr", "region", "kind", "cells" (512 letters),
    "swapcache": [[first, last]], "shared": [[first, last]], "changed": [[first, last]]
    (with before)}], "legend": {letter: meaning}, "marks": {mark: meaning}}.
    """

    def __init__(self, pid: int, cells: Sequence[PmdCells], names: Names | None = None,
                 before: Mapping[int, PmdCells] | None = None, title: str = "") -> None:
        self.pid = pid
        self.cells = list(cells)
        self.namer = AddrNamer(names)
        self.before = before
        self.title = title or f"map of pid {pid}"
        self.changed = {c.index: changed_cells(c, before.get(c.index)) if before is not None else bytes(PTRS)
                        for c in self.cells}
        self.grids = self._fold()

    def _fold(self) -> list[MapGrid]:
        grids: list[MapGrid] = []
        for c in self.cells:
            ch = self.changed[c.index]
            g = grids[-1] if grids else None
            if (g is not None and g.last == c.index - 1 and g.cells.same_picture(c) and g.changed == ch
                    and self._region_name(c.index) == self._region_name(g.cells.index)):
                g.last = c.index
            else:
                grids.append(MapGrid(c, c.index, ch))
        return grids

    def _region_name(self, idx: int) -> str | None:
        hit = self.namer.region(idx << PMD_SHIFT)
        return hit[0] if hit else None

    def _where(self, idx: int, count: int) -> str:
        start = idx << PMD_SHIFT
        label = self.namer.label(start)
        if not label:
            hit = self.namer.first_start_in(start, start + PMD_SIZE)
            label = f"{hit[0]} at pte {(hit[1] - start) >> PAGE_SHIFT}" if hit else ""
        return f"{label}:{fmt_size(count * PMD_SIZE)}" if label and count > 1 else label

    def _labels(self, g: MapGrid) -> list[str]:
        c = g.cells
        start = c.index << PMD_SHIFT
        kind = f"{g.count} × {c.kind}" if g.count > 1 else c.kind
        lines = [self._where(c.index, g.count), f"{start:#x}", kind]
        lines += [f"{letter} {n}" for letter, n in c.counts().items()]
        for ov, mask in ((CACHED, c.cached), (SHARED, c.shared)):
            if n := sum(mask):
                lines.append(f"{ov.mark} {n}")
        if n := sum(g.changed):
            lines.append(f"changed {n}")
            runs = runs_of(g.changed)
            first, last = runs[0]
            where = f"pte {first}" if first == last else f"ptes {first}-{last}"
            lines.append(where + (" …" if len(runs) > 1 else ""))
        return lines

    def _row(self, g: MapGrid, r: int) -> Text:
        c = g.cells
        text = Text()
        for i in range(r * COLUMNS, (r + 1) * COLUMNS):
            letter = c.cells[i]
            mark = c.mark(i)
            if mark == " " and c.pmd_level:
                mark = letter            # one solid block
            style = GLYPH[letter].style + (" " + CHANGED_STYLE if g.changed[i] else "")
            text.append(letter + mark, style=style)
        return text

    def _grid(self, g: MapGrid) -> list[Text]:
        labels = self._labels(g)
        if g.cells.kind == "none" and not any(g.changed):
            # an empty slot is one line, not 16 rows of dots
            empty = " ".join(labels[:3]) + f": no entry in its {g.count * PTRS} pages"
            return [Text(empty, style="dim")]
        out: list[Text] = []
        for r in range(ROWS):
            label = labels[r] if r < len(labels) else ""
            if len(label) >= LABEL_WIDTH:
                label = label[:LABEL_WIDTH - 2] + "…"
            line = Text(label.ljust(LABEL_WIDTH), style="bold" if r == 0 else "")
            line.append_text(self._row(g, r))
            out.append(line)
        return out

    def legend(self) -> list[str]:
        """The letters and marks this map uses, each with its meaning."""
        used = {ch for c in self.cells for ch in set(c.cells)}
        items = [f"{g.letter} {g.meaning}" for g in GLYPHS if g.letter in used]
        cached = any(any(c.cached) for c in self.cells)
        shared = any(any(c.shared) for c in self.cells)
        items += [f"{ov.mark} {ov.meaning}" for ov, on in ((CACHED, cached), (SHARED, shared)) if on]
        if cached and shared:
            items.append(f"{BOTH_MARK} {MAP_BOTH[1]}")
        if self.before is not None:
            items.append("reverse video: changed in this step")
        return items

    def __rich__(self) -> Trimmed:
        parts: list = [Text(self.title, style="bold")]
        if not self.grids:
            parts.append(Text("no PMD in the range", style="dim"))
            return Trimmed(Group(*parts))
        for g in self.grids:
            lines = self._grid(g)
            parts.extend(lines)
            if len(lines) > 1:
                parts.append(Text(""))
        parts.append(Text(f"one cell per 4K page, {COLUMNS} to a row ({fmt_size(COLUMNS << PAGE_SHIFT)}); "
                          "a PMD-level entry is one solid block", style="dim"))
        parts.append(Packed("legend: ", self.legend(), style="dim"))
        return Trimmed(Group(*parts))

    def to_json(self) -> dict:
        pmds = []
        for c in self.cells:
            addr = c.index << PMD_SHIFT
            obj = {"index": c.index, "addr": addr, "region": self._where(c.index, 1) or None, "kind": c.kind,
                   "cells": c.cells, "swapcache": runs_of(c.cached), "shared": runs_of(c.shared)}
            if self.before is not None:
                obj["changed"] = runs_of(self.changed[c.index])
            pmds.append(obj)
        return {"pid": self.pid, "pmds": pmds, "legend": {g.letter: g.meaning for g in GLYPHS},
                "marks": {**{ov.mark: ov.meaning for ov in OVERLAYS}, BOTH_MARK: MAP_BOTH[1]}}
