"""`show pt [RANGE]`: the page table, one row per PMD slot, PTE tables folded into runs.

Each present PMD slot is described by `describe.describe_pmd` (huge: the THP's
pfns and W/D/excl; swap: the PMD swap entry; table: its 512 PTEs as runs like
`0-511 swap s0 slots 0x200-0x3ff`).  Neighbouring slots whose descriptions differ
only in the sliding pfn/offset share one row (`512 × huge`), so a GiB fits on
one screen; the caption says how many slots were folded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.text import Text

from mmshell.mm.constants import PAGE_SHIFT, PMD_SHIFT, PMD_SIZE
from mmshell.mm.mm_types import MmStruct

from .describe import PmdDesc, describe_pmd
from .fold import PmdGroup, fold_pmds
from .fmt import AddrNamer, Names, fmt_size
from .widgets import KIND_STYLE, Trimmed, cell, view_table

if TYPE_CHECKING:
    from mmshell.mm.kernel import Kernel

#: Detail lines shown for one row before the rest are summarised.
MAX_RUN_LINES = 8


def pmd_items(k: "Kernel", mm: MmStruct, start: int | None = None,
              end: int | None = None) -> list[tuple[int, PmdDesc]]:
    """(pmd index, description) of every non-none PMD slot meeting [start, end), in address order."""
    lo = 0 if start is None else start >> PMD_SHIFT
    hi = None if end is None else (end - 1) >> PMD_SHIFT
    out = []
    for idx in sorted(mm.pmds):
        if idx < lo or (hi is not None and idx > hi):
            continue
        desc = describe_pmd(k, mm.pmds[idx])
        if desc.kind != "none":
            out.append((idx, desc))
    return out


def cap_lines(lines: list[str], limit: int = MAX_RUN_LINES) -> list[str]:
    """At most `limit` lines, the rest summarised as `… N more runs`."""
    if len(lines) <= limit:
        return lines
    return lines[:limit - 1] + [f"… {len(lines) - limit + 1} more runs"]


class PageTableView:
    """The PMD level of one process's page table over [start, end) (default: everything).

    to_json(): {"pid", "pmds": [{"index", "addr", "region", "kind", "label", "text",
    "runs": [{"first", "last", "kind", "pfn"|"device"+"offset", "flags"}]}],
    "rows": [{"start", "end", "count", "kind", "detail": [str]}]} (end is the last byte).
    """

    def __init__(self, k: "Kernel", mm: MmStruct, start: int | None = None, end: int | None = None,
                 names: Names | None = None) -> None:
        self._fill(mm.pid, pmd_items(k, mm, start, end), names, [(v.start, v.end) for v in mm.vmas])

    def _fill(self, pid: int, items: list[tuple[int, PmdDesc]], names: Names | None,
              vmas: list[tuple[int, int]]) -> None:
        self.pid = pid
        self.namer = AddrNamer(names)
        self.items = items
        self.groups: list[PmdGroup] = fold_pmds(self.items, self.namer, vmas)

    @classmethod
    def of(cls, pid: int, items: list[tuple[int, PmdDesc]], names: Names | None,
           vmas: list[tuple[int, int]]) -> "PageTableView":
        """The view of the PMD descriptions a backend read, folded within the VMAs (start, end)."""
        view = cls.__new__(cls)
        view._fill(pid, items, names, vmas)
        return view

    @property
    def folded(self) -> int:
        """How many PMD slots were folded into the row above them."""
        return len(self.items) - len(self.groups)

    def _span(self, g: PmdGroup) -> tuple[int, int]:
        return g.first << PMD_SHIFT, ((g.last + 1) << PMD_SHIFT) - 1

    def _kind(self, g: PmdGroup) -> str:
        kind = g.descs[0].kind
        return f"{g.count} × {kind}" if g.count > 1 else kind

    def _region(self, count: int, start: int, last: int) -> str:
        """`a+0x200000`; `a+0x0:1G` for a folded row; `b at pte 256` where b begins inside the slot."""
        a = self.namer.label(start)
        if not a:
            hit = self.namer.first_start_in(start, start + PMD_SIZE)
            return f"{hit[0]} at pte {(hit[1] - start) >> PAGE_SHIFT}" if hit else ""
        return a if count == 1 else f"{a}:{fmt_size(last + 1 - start)}"

    def caption(self) -> str:
        n, rows = len(self.items), len(self.groups)
        if not n:
            return "no PMD in use"
        text = f"{n} PMD{'s' if n != 1 else ''} in {rows} row{'s' if rows != 1 else ''}"
        return text + (f" ({self.folded} folded)" if self.folded else "")

    def __rich__(self) -> Trimmed:
        cols = ["address"] + (["region"] if self.namer else []) + ["kind", "detail"]
        table = view_table(f"page table of pid {self.pid}", *cols)
        for g in self.groups:
            start, last = self._span(g)
            addr = f"{start:#x}" if g.count == 1 else f"{start:#x}:{fmt_size(last + 1 - start)}"
            row = [cell(addr)]
            if self.namer:
                row.append(cell(self._region(g.count, start, last)))
            kind = g.descs[0].kind
            row.append(cell(self._kind(g), KIND_STYLE.get(kind, "")))
            row.append(cell("\n".join(cap_lines(g.detail_lines()))))
            table.add_row(*row)
        return Trimmed(Group(table, Text(self.caption(), style="dim")))

    def to_json(self) -> dict:
        pmds = []
        for idx, desc in self.items:
            addr = idx << PMD_SHIFT
            pmds.append({"index": idx, "addr": addr, "region": self._region(1, addr, addr) or None,
                         **desc.to_json()})
        rows = []
        for g in self.groups:
            start, last = self._span(g)
            rows.append({"start": start, "end": last, "count": g.count, "kind": g.descs[0].kind,
                         "detail": g.detail_lines()})
        return {"pid": self.pid, "pmd_size": PMD_SIZE, "pmds": pmds, "rows": rows, "folded": self.folded}
