"""`show vmstat [all]`: /proc/vmstat and the PMD-size mTHP stats, changes since the last step marked.

The view takes plain dicts (`task_mmu.vmstat_snapshot(k)`, `k.vmstat.mthp`) so the
caller decides what "the last step" was by passing the snapshot taken before it.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Group
from rich.table import Table
from rich.text import Text

from .widgets import Trimmed, cell, view_table

#: The title of the mTHP section, the sysfs directory it mirrors.
MTHP_DIR = "hugepages-2048kB/stats"


def counter_rows(values: Mapping[str, int], previous: Mapping[str, int] | None,
                 show_all: bool) -> list[dict]:
    """[{name, value, delta}] in the given (kernel) order: non-zero or changed ones, or all.

    delta is the change since `previous` (0 when there is no previous or no change).
    """
    rows = []
    for name, value in values.items():
        delta = value - previous.get(name, 0) if previous is not None else 0
        if show_all or value or delta:
            rows.append({"name": name, "value": value, "delta": delta})
    return rows


def signed(n: int) -> str:
    """`+512`, `-1`."""
    return f"{n:+d}"


class VmstatView:
    """The counters of `snapshot` and `mthp`; with `previous` (and `previous_mthp`), changes marked.

    to_json(): {"vmstat": [{"name", "value", "delta"}], "hugepages-2048kB/stats":
    [{"name", "value", "delta"}], "all": bool}.
    """

    def __init__(self, snapshot: Mapping[str, int], mthp: Mapping[str, int],
                 previous: Mapping[str, int] | None = None, show_all: bool = False,
                 previous_mthp: Mapping[str, int] | None = None) -> None:
        self.show_all = show_all
        self.rows = counter_rows(snapshot, previous, show_all)
        self.mthp_rows = counter_rows(mthp, previous_mthp, show_all)

    @staticmethod
    def _table(title: str, rows: list[dict]) -> Table | Text:
        if not rows:
            return Text(f"{title}: all zero", style="dim")
        table = view_table(title, "", "counter", "value", "change", right=("value", "change"))
        for r in rows:
            changed = r["delta"] != 0
            style = "bold yellow" if changed else ""
            table.add_row(cell("*" if changed else " ", style), cell(r["name"], style), cell(r["value"]),
                          cell(signed(r["delta"]) if changed else "", style))
        return table

    def __rich__(self) -> Trimmed:
        return Trimmed(Group(self._table("/proc/vmstat", self.rows), Text(""), self._table(MTHP_DIR, self.mthp_rows)))

    def to_json(self) -> dict:
        return {"vmstat": self.rows, MTHP_DIR: self.mthp_rows, "all": self.show_all}
