"""`mmshell compare FILE`: the same script with pmd_swap off (mainline) and on (the series).

Both runs start from a freshly booted machine; the script's own `set pmd_swap`
lines still apply from where they stand.  Each step is shown once with what it
changed in each mode side by side: page-table entries, swap use and counter
deltas.  The exit status is the worse of the two runs.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from rich.table import Table
from rich.text import Text

from .lang.parser import Command
from .lang.runner import Outcome, StepRecord, run_text
from .lang.session import Session
from .lang.values import plural
from .mm.config import Config
from .views.console import make_console
from .views.step import StepView, digest

MODES = (("mainline", False), ("series", True))


@dataclass
class _Step:
    line: int
    command: str
    error: str | None = None
    changes: StepView | None = None


@dataclass
class _Run:
    steps: list[_Step]
    outcome: Outcome


def _record(text: str, source: str, pmd_swap: bool) -> _Run:
    session = Session.boot(Config(pmd_swap=pmd_swap))
    steps: list[_Step] = []
    pending: list[Any] = [None, {}]

    def before(cmd: Command) -> None:
        pending[0] = digest(session.kernel)
        pending[1] = {pid: dict(names) for pid, names in session.regions.items()}

    def observe(rec: StepRecord) -> None:
        step = _Step(rec.line, rec.text if rec.command is not None else "", rec.error)
        if rec.output is not None and pending[0] is not None:
            view = StepView(pending[0], digest(session.kernel),
                            names_by_pid={**pending[1], **session.regions})
            step.changes = None if view.empty else view
        steps.append(step)

    outcome = run_text(session, text, source, observe, keep_going=True, before=before)
    return _Run(steps, outcome)


def _cell(step: _Step | None) -> Text:
    if step is None:
        return Text("(not reached)", style="dim")
    if step.error:
        return Text(step.error.split(": ", 2)[-1], style="red")
    if step.changes is None:
        return Text("")
    j = step.changes.to_json()
    lines = [f"{c['old']} → {c['new']}" for c in j["pmds"]]
    lines += [f"swap {s['name']} used {s['delta']:+d}" for s in j["swap"] if s["delta"]]
    counters = {k: v for k, v in j["vmstat"].items() if not k.startswith("nr_") and k != "pgfree"}
    counters.update({f"mthp.{k}": v for k, v in j["mthp"].items() if k != "nr_anon"})
    if counters:
        lines.append("  ".join(f"{k} {v:+d}" for k, v in counters.items()))
    return Text("\n".join(lines))


def run_compare(source: tuple[str, str], json_mode: bool = False) -> int:
    name, text = source
    runs = {mode: _record(text, name, flag) for mode, flag in MODES}
    if json_mode:
        for mode, run in runs.items():
            for st in run.steps:
                print(json.dumps({"mode": mode, "line": st.line, "command": st.command, "error": st.error,
                                  "changes": st.changes.to_json() if st.changes else None}))
        print(json.dumps({"final": True, **{mode: run.outcome.exit_status() for mode, run in runs.items()}}))
    else:
        console = make_console(file=sys.stdout)
        table = Table(title=f"{name}: mainline (pmd_swap off) vs the series (on)", show_lines=True)
        table.add_column("line", justify="right")
        table.add_column("command")
        for mode, _ in MODES:
            table.add_column(mode)
        by_line = {mode: {st.line: st for st in run.steps} for mode, run in runs.items()}
        for line in sorted(set().union(*(set(d) for d in by_line.values()))):
            steps = {mode: by_line[mode].get(line) for mode, _ in MODES}
            first = next(st for st in steps.values() if st is not None)
            cells = [_cell(steps[m]) for m, _ in MODES]
            if not any(c.plain for c in cells):
                continue
            table.add_row(str(line), first.command, *cells)
        console.print(table)
        for mode, run in runs.items():
            o = run.outcome
            console.print(f"{mode}: {plural(o.steps, 'step')}, {o.failed} failed expectation(s), {o.refused} refused",
                          highlight=False)
    return max(run.outcome.exit_status() for run in runs.values())
