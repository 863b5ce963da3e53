"""How compare shows a step in one mode (a cell), a step in both, and the summary.

A cell holds the step's error, or its output lines, its `show` views as drawn then, and
what it changed: VMAs, PMD-level entries or the PTEs that changed (`PTE 3: old → new`),
swap slots (`slot 0x203: count 1 → free`), and the event counters that moved (gauges such
as nr_* and pgfree left out: the step summary of `mmshell run` has them).  Each step is a
header line (FILE:LINE, pid, command, the marks) over the two cells side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..views.step import StepView
from ..views.step_diff import slot_change_text
from ..views.widgets import Trimmed
from .record import Step
from .summary import ROWS, row_value

#: Slot changes listed per device, and runs of PTEs per table, in a cell before the rest are counted.
MAX_SLOT_LINES = 3
#: The marks of a step, explained under the table.
DIFFERS, SWAP_DIFFERS = "≠", "!"
LEGEND = (f"{DIFFERS} the modes differ (their lines in bold)  {SWAP_DIFFERS} the swap_maps differ "
          "after the step")


def change_lines(view: StepView, pid: int) -> list[str]:
    """What a step run in `pid` changed, one short line per change (a change in another
    process starts with its pid)."""
    def of(p: int) -> str:
        return "" if p == pid else f"pid {p} "

    j = view.to_json()
    lines = ([f"new process {p}" for p in j["processes"]["new"]]
             + [f"process {p} gone" for p in j["processes"]["gone"]])
    for v in j["vmas"]:
        lines.append(f"{of(v['pid'])}vma {view.vma_label(v)}: {v['old'] or 'unmapped'} → "
                     f"{v['new'] or 'unmapped'}")
    for c in view.changes:
        head = f"{of(c.pid)}{view.where(c)}" + (f" ×{c.count}" if c.count > 1 else "")
        if c.level == "pmd":
            lines.append(f"{head}: {c.old.text()} → {c.new.text()}")
            continue
        ptes = c.lines()            # `PTE 3: old → new`, one per run of changed PTEs
        lines += [f"{head}: {ptes[0]}"] + [f"  {p}" for p in ptes[1:MAX_SLOT_LINES]]
        if len(ptes) > MAX_SLOT_LINES:
            lines.append(f"  … {len(ptes) - MAX_SLOT_LINES} more runs of PTEs")
    for s in j["swap"]:
        if s["before"] is None:
            lines.append(f"swap {s['name']}: swapon")
            continue
        if s["after"] is None:
            lines.append(f"swap {s['name']}: swapoff")
            continue
        lines.append(f"swap {s['name']} used {s['delta']:+d}")
        slots = s["slots"]
        lines += [f"  {slot_change_text(c)}" for c in slots[:MAX_SLOT_LINES]]
        if len(slots) > MAX_SLOT_LINES:
            lines.append(f"  … {len(slots) - MAX_SLOT_LINES} more slot ranges")
    counters = {k: v for k, v in j["vmstat"].items() if not k.startswith("nr_") and k != "pgfree"}
    counters.update({f"mthp.{k}": v for k, v in j["mthp"].items() if not k.startswith("nr_")})
    if counters:
        lines.append("  ".join(f"{k} {v:+d}" for k, v in counters.items()))
    return lines


def mode_cell(step: Step | None, views: bool = True) -> Text:
    """One mode's cell of a step (without its `show` views when views is False)."""
    if step is None:
        return Text("(not reached)", style="dim")
    if step.error:
        return Text(step.error.split(": ", 2)[-1], style="red")
    parts = list(step.lines) + ([text for _, text, _ in step.views] if views else [])
    if step.changes is not None:
        parts += change_lines(step.changes, step.pid)
    return Text("\n".join(parts))


def _views_text(step: Step | None) -> str:
    return "\n".join(text for _, text, _ in step.views) if step is not None and not step.error else ""


def step_json(mode: str, step: Step, differs: bool, swap_identical: bool) -> dict[str, Any]:
    """One step of one mode in `compare --json`."""
    return {"mode": mode, "source": step.source, "line": step.line, "pid": step.pid, "command": step.command,
            "status": step.status, "error": step.error, "output": step.lines,
            "views": {name: js for name, _, js in step.views},
            "changes": step.changes.to_json() if step.changes else None,
            "differs": differs, "swap_map_identical": swap_identical}


def _header(pair: dict[str, Step | None], differs: bool, swap_differs: bool) -> Text:
    first = next(st for st in pair.values() if st is not None)
    marks = (DIFFERS if differs else "") + (SWAP_DIFFERS if swap_differs else "")
    head = Text(f"{first.source}:{first.line}", style="bold")
    head.append(f"  pid {first.pid}  ")
    head.append(first.command)
    if marks:
        head.append(f"  {marks}", style="bold yellow")
    return head


def _columns(*cells: RenderableType) -> Table:
    """Two cells side by side, half the width each."""
    grid = Table.grid(expand=True, padding=(0, 2))
    grid.add_column(ratio=1, overflow="fold")
    grid.add_column(ratio=1, overflow="fold")
    grid.add_row(*cells)
    return grid


def _mark_differences(a: Text, b: Text) -> tuple[Text, Text]:
    """The two cells with each line the other cell lacks in bold."""
    la, lb = a.plain.split("\n"), b.plain.split("\n")

    def marked(cell: Text, lines: list[str], other: set[str]) -> Text:
        if cell.style:                  # an error or (not reached): as it is
            return cell
        out = Text()
        for i, line in enumerate(lines):
            out.append(("\n" if i else "") + line, style="" if line in other else "bold")
        return out
    return marked(a, la, set(lb)), marked(b, lb, set(la))


def render_compare(name: str, steps: Sequence[dict[str, Step | None]], differs: Sequence[bool],
                   swap_differs: Sequence[bool], summary: dict[str, dict[str, Any]]) -> RenderableType:
    """The steps, each a header over its two cells, then the summary table.  `show` views,
    drawn at the full width, follow the cells: once when both modes drew the same, else
    one under the other."""
    parts: list[RenderableType] = [
        Text(f"{name}: mainline (pmd_swap off) against the series (pmd_swap on)", style="bold"),
        _columns(Text("mainline", style="bold underline"), Text("series", style="bold underline"))]
    for pair, d, s in zip(steps, differs, swap_differs):
        a, b = pair["mainline"], pair["series"]
        cells = [mode_cell(a, views=False), mode_cell(b, views=False)]
        va, vb = _views_text(a), _views_text(b)
        if not any(c.plain for c in cells) and not (va or vb) and not s:
            continue
        parts.append(Text(""))
        parts.append(_header(pair, d, s))
        if any(c.plain for c in cells):
            parts.append(_columns(*_mark_differences(*cells)))
        if va == vb and va:
            parts.append(Text("both modes:", style="dim"))
            parts.append(Text(va))
        else:
            for mode, text in (("mainline", va), ("series", vb)):
                if text:
                    parts += [Text(f"{mode}:", style="dim"), Text(text)]
    parts += [Text(""), Text(LEGEND, style="dim"), Text(""), summary_table(name, summary)]
    return Trimmed(Group(*parts))


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def summary_table(name: str, summary: dict[str, dict[str, Any]]) -> Table:
    """The summary, mainline against the series, a row per figure; rows that differ marked."""
    table = Table(title=f"{name}: summary", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  title_justify="left")
    table.add_column("", overflow="fold")
    table.add_column("mainline", justify="right")
    table.add_column("series", justify="right")
    table.add_column("")
    for key, words in ROWS:
        a, b = row_value(summary["mainline"], key), row_value(summary["series"], key)
        table.add_row(words, _value(a), _value(b), DIFFERS if a != b else "")
    return table
