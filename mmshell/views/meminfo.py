"""`show meminfo`: the /proc/meminfo lines the simulation models, in kB."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmshell.mm.task_mmu import meminfo

from .widgets import Trimmed, cell, view_table

if TYPE_CHECKING:
    from mmshell.mm.kernel import Kernel


class MeminfoView:
    """MemTotal, MemFree, AnonPages, AnonHugePages, SwapCached, SwapTotal, SwapFree, ... in kB.

    to_json(): {FIELD: kB, ...} in /proc/meminfo order.
    """

    def __init__(self, k: "Kernel") -> None:
        self.fields = meminfo(k)
        self.title = "/proc/meminfo"

    @classmethod
    def of(cls, fields: dict[str, int], title: str) -> "MeminfoView":
        """The view of fields a backend read, under its own title."""
        view = cls.__new__(cls)
        view.fields, view.title = fields, title
        return view

    def __rich__(self) -> Trimmed:
        table = view_table(self.title, "field", "kB", right=("kB",))
        for name, value in self.fields.items():
            table.add_row(cell(name + ":"), cell(value))
        return Trimmed(table)

    def to_json(self) -> dict[str, int]:
        return dict(self.fields)
