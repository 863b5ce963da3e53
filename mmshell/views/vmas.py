"""`show vmas`: the current process's VMAs, like /proc/PID/maps, with their flags and regions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.text import Text

from mmshell.mm.mm_types import MmStruct
from mmshell.mm.vma import VM, VmArea

from .fmt import AddrNamer, Names, fmt_size
from .widgets import Trimmed, cell, view_table

if TYPE_CHECKING:
    from mmshell.mm.kernel import Kernel

#: vm_flags worth naming, as the words madvise/uffd use for them.
FLAG_WORDS = ((VM.HUGEPAGE, "hugepage"), (VM.NOHUGEPAGE, "nohugepage"), (VM.UFFD_MISSING, "uffd"),
              (VM.UFFD_WP, "uffd-wp"), (VM.LOCKED, "locked"))


def vma_flag_words(vma: VmArea) -> list[str]:
    """The named vm_flags of vma: `hugepage`, `nohugepage`, `uffd`, `uffd-wp`, `locked`."""
    return [word for flag, word in FLAG_WORDS if vma.flags & flag]


def vma_rows(vmas: list[tuple[int, int, str, int | None, list[str]]],
             names: Names | None) -> list[dict[str, Any]]:
    """The view's rows of (start, end, perms, pgoff, flag words) of each VMA, with the regions they meet."""
    namer = AddrNamer(names)
    return [{"start": lo, "end": hi, "size": hi - lo, "perms": perms, "pgoff": pgoff, "flags": flags,
             "regions": namer.overlapping(lo, hi)} for lo, hi, perms, pgoff, flags in vmas]


class VmasView:
    """The VMAs of one process in address order.

    to_json(): {"pid", "vmas": [{"start", "end", "size", "perms", "pgoff" (null where the backend
    cannot see it: an anonymous VMA's on the live kernel), "flags": [str],
    "regions": [str]}]}; end is exclusive as in maps; a region wholly inside the VMA
    is its name, one partly inside is `NAME+0xOFF:LEN` (the part inside).
    """

    def __init__(self, k: "Kernel", mm: MmStruct, names: Names | None = None) -> None:
        self.pid = mm.pid
        self.rows = vma_rows([(v.start, v.end, v.flag_string(), v.pgoff, vma_flag_words(v)) for v in mm.vmas],
                             names)

    @classmethod
    def of(cls, pid: int, rows: list[dict[str, Any]]) -> "VmasView":
        """The view of rows a backend read (vma_rows)."""
        view = cls.__new__(cls)
        view.pid, view.rows = pid, rows
        return view

    def __rich__(self) -> Trimmed:
        table = view_table(f"VMAs of pid {self.pid}", "address", "perms", "size", "flags", "regions",
                           right=("size",))
        for r in self.rows:
            table.add_row(cell(f"{r['start']:#x}-{r['end']:#x}"), cell(r["perms"]), cell(fmt_size(r["size"])),
                          cell(" ".join(r["flags"])), cell(" ".join(r["regions"])))
        n = len(self.rows)
        return Trimmed(Group(table, Text(f"{n} VMA{'s' if n != 1 else ''}", style="dim")))

    def to_json(self) -> dict:
        return {"pid": self.pid, "vmas": [dict(r) for r in self.rows]}
