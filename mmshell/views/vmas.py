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


class VmasView:
    """The VMAs of one process in address order.

    to_json(): {"pid", "vmas": [{"start", "end", "size", "perms", "pgoff", "flags": [str],
    "regions": [str]}]}; end is exclusive as in maps; a region wholly inside the VMA
    is its name, one partly inside is `NAME+0xOFF:LEN` (the part inside).
    """

    def __init__(self, k: "Kernel", mm: MmStruct, names: Names | None = None) -> None:
        self.pid = mm.pid
        namer = AddrNamer(names)
        self.rows: list[dict[str, Any]] = [{
            "start": v.start,
            "end": v.end,
            "size": v.size,
            "perms": v.flag_string(),
            "pgoff": v.pgoff,
            "flags": vma_flag_words(v),
            "regions": namer.overlapping(v.start, v.end),
        } for v in mm.vmas]

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
