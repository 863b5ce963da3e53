"""One run of a script for compare: a freshly booted machine pinned to a mode, each step recorded.

`record(text, source, pmd_swap, deposit)` runs the script with `pmd_swap` pinned (its own
`set pmd_swap` lines are skipped, with a line saying so) and, when `deposit` is given,
`deposit` pinned too.  Each step keeps what compare shows of it: the pid it ran in, its
output lines, the `show` views drawn as they were at that step (text at `view_width`
columns and JSON), what it changed (a `StepView`), and the swap_map of every device after
it.  The finished run keeps its `Session`, whose machine the summary reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..lang.parser import Command
from ..lang.runner import Outcome, StepRecord, run_text
from ..lang.session import Session
from ..mm.config import Config, Deposit
from ..lang.registry import shows_changes
from ..views.console import render_text
from ..views.render import render_view, view_json
from ..views.step import Digest, StepView, digest, swap_digest

#: Why a pinned setting's `set` line is skipped (the step's output line says so).
PINNED = "is pinned by compare: each column keeps its mode"

#: A step's key: the file it was read from and its line there.
StepKey = tuple[str, int]


@dataclass
class Step:
    """One recorded step of one run."""

    source: str
    line: int
    pid: int
    command: str
    status: str = "ok"
    error: str | None = None
    lines: list[str] = field(default_factory=list)
    views: list[tuple[str, str, Any]] = field(default_factory=list)    # (name, text, json)
    changes: StepView | None = None
    swap_map: dict[str, tuple] = field(default_factory=dict)         # device -> swap_map runs after
    setting: tuple[str, Any] | None = None                            # what a `set` line set (or tried)

    @property
    def key(self) -> StepKey:
        return (self.source, self.line)


@dataclass
class Run:
    """A whole run: its steps in order, the outcome and the session at the end."""

    steps: list[Step]
    outcome: Outcome
    session: Session

    def by_key(self) -> dict[StepKey, Step]:
        return {st.key: st for st in self.steps}


def innermost(cmd: Command) -> Command:
    """The command `@PID`, `if` and `expect fails` wrap."""
    while cmd.name in ("at", "if", "expect_fails") and isinstance(cmd.args.get("command"), Command):
        cmd = cmd.args["command"]
    return cmd


def record(text: str, source: str, pmd_swap: bool, deposit: Deposit | None = None,
           view_width: int = 60, base: Path | None = None, steps_too: bool = True) -> Run:
    """Run `text` on a fresh machine with pmd_swap (and deposit, if given) pinned; without
    steps_too only the machine at the end is kept (no step is recorded)."""
    config = Config(pmd_swap=pmd_swap)
    session = Session.boot(config)
    session.pinned["pmd_swap"] = PINNED
    if deposit is not None:
        config.deposit = deposit
        session.pinned["deposit"] = PINNED
    steps: list[Step] = []
    state: dict[str, Any] = {"before": None, "names": {}, "pid": 1, "prev": None}

    def before(cmd: Command) -> None:
        state["pid"] = cmd.args["pid"] if cmd.name == "at" and cmd.args.get("pid") else session.pid
        state["before"] = digest(session.kernel) if shows_changes(cmd) else None
        state["names"] = {pid: dict(names) for pid, names in session.regions.items()}

    def observe(rec: StepRecord) -> None:
        step = Step(rec.source, rec.line, state["pid"], rec.text if rec.command is not None else "",
                    rec.kind, rec.error)
        if rec.command is not None:
            inner = innermost(rec.command)
            if inner.name == "set":
                step.setting = (inner.args["setting"], inner.args["value"])
        out = rec.output
        if out is not None and not rec.error:
            step.lines = list(out.lines)
            for name, opts in getattr(out, "views", []):
                view = render_view(session, name, opts, state["prev"])
                step.views.append((name, render_text(view, view_width).rstrip("\n"),
                                   view_json(session, name, opts, state["prev"])))
        b: Digest | None = state["before"]
        if b is not None and out is not None and getattr(out, "changed", False):
            after = digest(session.kernel)
            view = StepView(b, after, names_by_pid={**state["names"], **session.regions})
            step.changes = None if view.empty else view
            state["prev"] = b
            swap = after.swap
        else:
            swap = swap_digest(session.kernel)
        step.swap_map = {name: d.runs for name, d in swap.items()}
        state["before"] = None
        steps.append(step)

    outcome = run_text(session, text, source, observe if steps_too else None, keep_going=True,
                       before=before if steps_too else None, base=base if base is not None else Path.cwd())
    return Run(steps, outcome, session)
