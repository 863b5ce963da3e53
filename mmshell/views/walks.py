"""`show walks`: how many page-table entries each walker has visited since boot, and the
PTE table pages allocated.

These are the simulation's own counts (mm/pagewalk.py, mm/pgtable_generic.py): the
kernel keeps no such counter, so they are never shown among /proc/vmstat's names.  A
PMD-level entry (THP, huge zero page, PMD swap entry) counts one visit; a PTE table
counts the PTEs looked at: zapping one PMD swap entry is 1 visit, its PTE-mapped form 512.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.text import Text

from mmshell.mm.pagewalk import WALKER_FUNCTION, Walker

from .widgets import Trimmed, cell, view_table

if TYPE_CHECKING:
    from mmshell.mm.kernel import Kernel

#: The name of the PTE-table count beside the walkers' (in `show walks` and compare).
PTE_TABLES = "pte_tables_allocated"


def sim_counts(k: "Kernel") -> dict[str, int]:
    """The simulator's own counts: entries visited per walker (by walker name), then
    PTE table pages allocated."""
    out = {w.value: k.walk_visits[w] for w in Walker}
    out[PTE_TABLES] = k.pte_tables_allocated
    return out


class WalksView:
    """Each walker's visits and the PTE tables allocated; with `previous` (the counts before
    the last step), changes marked.

    to_json(): {"walks": [{"walker", "function", "visits", "delta"}], "total": int,
    "pte_tables_allocated": {"value", "delta"}}.
    """

    def __init__(self, counts: Mapping[str, int], previous: Mapping[str, int] | None = None) -> None:
        prev = previous or {}
        self.rows: list[dict[str, Any]] = [{"walker": w.value, "function": WALKER_FUNCTION[w], "visits": counts[w.value],
                      "delta": counts[w.value] - prev.get(w.value, counts[w.value])} for w in Walker]
        self.tables = {"value": counts[PTE_TABLES], "delta": counts[PTE_TABLES] - prev.get(PTE_TABLES,
                                                                                           counts[PTE_TABLES])}

    def __rich__(self) -> Trimmed:
        table = view_table("page-table entries visited per walker (simulator counts, not /proc/vmstat)",
                           "", "walker", "visits", "change", "kernel function", right=("visits", "change"))
        for r in self.rows:
            style = "bold yellow" if r["delta"] else ""
            table.add_row(cell("*" if r["delta"] else " ", style), cell(r["walker"], style), cell(r["visits"]),
                          cell(f"{r['delta']:+d}" if r["delta"] else "", style), cell(r["function"], "dim"))
        total = sum(r["visits"] for r in self.rows)
        t = self.tables
        lines = [f"total {total} entries visited",
                 f"PTE table pages allocated: {t['value']}" + (f" ({t['delta']:+d})" if t["delta"] else "")
                 + "  (deposits included; pte_alloc_one)",
                 "A PMD-level entry counts 1 visit, a PTE table the PTEs looked at."]
        return Trimmed(Group(table, Text("\n".join(lines))))

    def to_json(self) -> dict:
        return {"walks": self.rows, "total": sum(r["visits"] for r in self.rows), PTE_TABLES: self.tables}
