"""`show smaps [NAME]`: /proc/PID/smaps per VMA, or summed over the VMAs inside region NAME."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.text import Text

from mmshell.mm.mm_types import MmStruct
from mmshell.mm.task_mmu import SMAPS_FIELDS, smaps_range, smaps_vma

from .fmt import AddrNamer, Names
from .widgets import Trimmed, cell, view_table

if TYPE_CHECKING:
    from mmshell.mm.kernel import Kernel

#: VMA columns per table (each about 15 characters), so 80 columns hold one table.
COLUMNS_PER_TABLE = 4

#: The fields the table shows, in smaps order (kB; THPeligible 0/1).
SHOWN = ("Rss", "Pss", "AnonHugePages", "Swap", "SwapPss", "Private_Dirty", "LazyFree", "THPeligible")


class SmapsView:
    """smaps of every VMA of `mm`, or (with `name`) of the VMAs meeting that region's range,
    each only for its part inside it (a VMA merged with a neighbour reaches beyond it).

    to_json(): {"pid", "name", "vmas": [{"start", "end", "vma": [start, end], "regions": [str], FIELD: kB ...}],
    "total": {FIELD: kB ...}} with every field of task_mmu.SMAPS_FIELDS; with a name,
    start and end are those of the part inside the region, and "total" is smaps_range over
    the region (the value `smaps.NAME.FIELD` reads).
    Raises KeyError for a name that is not a region.
    """

    def __init__(self, k: "Kernel", mm: MmStruct, names: Names | None = None, name: str | None = None) -> None:
        self.pid = mm.pid
        self.name = name
        names = names or {}
        namer = AddrNamer(names)
        if name is not None:
            if name not in names:
                raise KeyError(f"no region named {name!r}")
            start, length = names[name]
            parts = [(v, max(v.start, start), min(v.end, start + length)) for v in mm.vmas_in(start, start + length)]
            total: dict[str, int] | None = smaps_range(k, mm, start, start + length)
        else:
            parts = [(v, v.start, v.end) for v in mm.vmas]
            total = None
        self.vmas: list[dict[str, Any]] = [{"start": lo, "end": hi, "vma": [v.start, v.end],
                                            "regions": namer.overlapping(lo, hi), **smaps_vma(k, mm, v, lo, hi)}
                                           for v, lo, hi in parts]
        self.total: dict[str, int] = total if total is not None else self._sum()

    @classmethod
    def of(cls, pid: int, name: str | None, vmas: list[dict[str, Any]]) -> "SmapsView":
        """The view of rows a backend read ({"start", "end", "vma", "regions", FIELD: kB}), summed."""
        view = cls.__new__(cls)
        view.pid, view.name, view.vmas = pid, name, vmas
        view.total = view._sum()
        return view

    def _sum(self) -> dict[str, int]:
        total = dict.fromkeys(SMAPS_FIELDS, 0)
        for row in self.vmas:
            for f in SMAPS_FIELDS:
                total[f] += row.get(f, 0)
        total["KernelPageSize"] = total["MMUPageSize"] = 4
        total["THPeligible"] = int(any(row.get("THPeligible") for row in self.vmas))
        return total

    def _label(self, row: dict) -> str:
        """A VMA's column head: the region it is exactly, else its start address."""
        exact = [r for r in row["regions"] if ":" not in r]
        return exact[0] if len(exact) == 1 and len(row["regions"]) == 1 else f"{row['start']:#x}"

    def __rich__(self) -> Trimmed:
        title = f"smaps of pid {self.pid}" + (f", region {self.name}" if self.name else "") + " (kB)"
        columns: list[tuple[str, dict[str, Any]]] = [(self._label(r), r) for r in self.vmas]
        if len(self.vmas) != 1:
            columns.append(("total", self.total))
        parts: list = []
        for i in range(0, max(len(columns), 1), COLUMNS_PER_TABLE):
            chunk = columns[i:i + COLUMNS_PER_TABLE]
            table = view_table(title if i == 0 else None, "field", *(c[0] for c in chunk),
                               right=tuple(c[0] for c in chunk), wrap=())
            for f in SHOWN:
                table.add_row(cell(f + ":"), *(cell(c[1].get(f, "-")) for c in chunk))
            parts.append(table)
        if self.vmas:
            where = ", ".join(_where(r) for r in self.vmas)
            parts.append(Text(f"VMAs: {where}", style="dim"))
        else:
            parts.append(Text("no VMA" + (f" in region {self.name}'s range" if self.name else ""), style="dim"))
        return Trimmed(Group(*parts))

    def to_json(self) -> dict:
        return {"pid": self.pid, "name": self.name, "vmas": self.vmas, "total": self.total}


def _where(row: dict[str, Any]) -> str:
    """`0x...-0x... a`, and for part of a VMA `(part of the VMA 0x...-0x...)`."""
    text = f"{row['start']:#x}-{row['end']:#x} {' '.join(row['regions'])}".rstrip()
    lo, hi = row["vma"]
    return text if (lo, hi) == (row["start"], row["end"]) else f"{text} (part of the VMA {lo:#x}-{hi:#x})"
