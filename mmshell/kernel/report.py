"""`mmshell kernel run`: each script on a freshly set-up live machine, every step printed.

The steps are printed by `mmshell run`'s printer (report.py StepPrinter) through
the same views: a step's `show VIEW` and its change summary (page tables, VMAs,
swap use, counters) are built from what the live kernel exports
(kernel/live_views.py), with a line under a view for what user space cannot
see.  With --json: the JSON Lines of `mmshell run --json` (per step source,
line, command, status, error, output, views, changes; notes where a proxy was
used or the kernel did something worth knowing), then a final object per
script with the live run's own keys (kernel, not_observable, warnings, the
counters as moved since the script began).  Exit statuses are those of
`mmshell run`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable

from ..export import Recorder
from ..lang.errors import LangError
from ..lang.parser import Command, parse_script
from ..report import StepPrinter
from . import procfs
from .live_views import LiveViews
from .machine import LiveMachine, MissingRequirement, SetupError, raise_on_sigterm, recover_now, restore_signals
from .state import UnsafeState
from ..lang.step_loop import Outcome, StepRecord
from .runner import LiveSession, asks_for_huge_zero, live_priorities, run_live_text, script_priorities


class Printed:
    """A live session as the step printer reads it: its pid and region names; the summary is
    its only display (`set display`, `set counters`, `explain` and `export` are the simulator's)."""

    explain = False
    counters = "all"
    display: tuple[str, ...] = ("summary",)
    exporter: Callable[[str, str], str] | None = None

    def __init__(self, s: LiveSession) -> None:
        self.s = s

    @property
    def pid(self) -> int:
        return self.s.pid

    @property
    def regions(self) -> dict[int, dict[str, tuple[int, int]]]:
        return self.s.regions

    def names(self, pid: int | None = None) -> dict[str, tuple[int, int]]:
        return self.s.names(pid)


class LiveRun:
    """The printing of one script's live run: a StepPrinter made once its machine is set up,
    and the count of expectations the kernel could not answer."""

    def __init__(self, json_mode: bool = False, quiet: bool = False) -> None:
        self.json_mode, self.quiet = json_mode, quiet
        self.printer: StepPrinter | None = None
        self.not_observable = 0

    def start(self, s: LiveSession) -> None:
        self.printer = StepPrinter(Printed(s), json_mode=self.json_mode, quiet=self.quiet,
                                   recorder=Recorder(keep=0), views=LiveViews(s))

    def before(self, cmd: Command) -> None:
        assert self.printer is not None
        self.printer.before(cmd)

    def __call__(self, rec: StepRecord) -> None:
        if rec.kind == "not-observable":
            self.not_observable += 1
        assert self.printer is not None
        self.printer(rec)

    def final(self, source: str, outcome: Outcome, state: dict[str, Any], warnings: list[str]) -> None:
        assert self.printer is not None
        if self.json_mode:
            self.printer.final(source, outcome, {"not_observable": self.not_observable, "kernel": procfs_release(),
                                                 **state, **({"warnings": warnings} if warnings else {})})
            return
        for w in warnings:
            print(f"{source}: warning: {w}", file=self.printer.stream)
        extra = f", {self.not_observable} not observable" if self.not_observable else ""
        self.printer.final(source, outcome, where=f" on Linux {procfs_release()}", counts=extra)


def cannot_run(what: str, name: str, e: MissingRequirement | SetupError) -> str:
    """The line `mmshell kernel run|diff` prints when a script's live machine cannot be set up (exit 2)."""
    if isinstance(e, MissingRequirement):
        return f"mmshell kernel {what}: cannot run on the live kernel: missing {e}"
    return f"mmshell kernel {what}: {name}: setting up the live machine failed: {e}"


def procfs_release() -> str:
    return os.uname().release


def final_state(s: LiveSession) -> dict[str, Any]:
    """The final object's facts, read before the tear-down: counters as deltas, the live pids."""
    base = s.machine.baseline
    assert base is not None
    return {"vmstat": {k: v - base.vmstat.get(k, 0) for k, v in procfs.vmstat().items()},
            "mthp": {k: v - base.mthp.get(k, 0) for k, v in procfs.mthp_stats().items()},
            "pids": sorted(p for p, _ in s.live_pids()), "current_pid": s.pid}


def run_script_live(name: str, text: str, observer: Callable[[StepRecord], None] | None,
                    keep_going: bool = False,
                    after: Callable[[LiveSession, Outcome], None] | None = None,
                    start: Callable[[LiveSession], None] | None = None,
                    before: Callable[[Command], None] | None = None,
                    ) -> tuple[Outcome, dict[str, Any], list[str]]:
    """Set up a live machine, run one script on it, tear everything down.  `start` sees the
    session once it is set up, `before` each command before it runs.

    Raises MissingRequirement when the machine cannot run scripts at all.
    Returns the outcome, the final state (read before the tear-down) and warnings.
    """
    try:
        commands = parse_script(text)
    except LangError:
        commands = []       # run_live_text reports the syntax error
    prios = script_priorities(commands)
    old = raise_on_sigterm()
    warnings: list[str] = []
    try:
        with LiveMachine(free_huge_zero=asks_for_huge_zero(commands)) as machine:
            assert machine.devices is not None
            top = machine.devices.top_foreign_priority()
            session = LiveSession(machine, live_priorities(prios, top if top is not None else -1))
            base = Path(name).parent if name != "-c" else Path.cwd()
            if start is not None:
                start(session)
            outcome = run_live_text(session, text, name, observer, keep_going=keep_going, base=base,
                                    before=before)
            if after is not None:
                after(session, outcome)
            state = final_state(session)
            warnings = machine.warnings + machine.devices.warnings + session.warnings
            errors = machine.close()
            warnings += [f"teardown: {e}" for e in errors]
    finally:
        restore_signals(old)
    return outcome, state, warnings


def run_live(sources: list[tuple[str, str]], json_mode: bool = False, keep_going: bool = False,
             quiet: bool = False) -> int:
    refused = failed = False
    for name, text in sources:
        run = LiveRun(json_mode=json_mode, quiet=quiet)
        try:
            outcome, state, warnings = run_script_live(name, text, run, keep_going, start=run.start,
                                                       before=run.before)
        except (MissingRequirement, SetupError) as e:
            print(cannot_run("run", name, e), file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("mmshell kernel run: interrupted; everything set up was torn down", file=sys.stderr)
            return 2
        run.final(name, outcome, state, warnings)
        refused |= outcome.refused > 0       # every script runs, each on its own machine
        failed |= outcome.failed > 0
    return 2 if refused else 1 if failed else 0


def run_recover() -> int:
    """`mmshell kernel recover`: replay a journal a killed live run left, print what was done.
    Exit status: 0 nothing left to undo, 1 something could not be undone (it stays in the
    journal), 2 no live run is possible here (not root) or the state directory is unsafe."""
    if os.geteuid() != 0:
        print(f"mmshell kernel recover: needs root (running as uid {os.geteuid()})", file=sys.stderr)
        return 2
    try:
        status, lines = recover_now()
    except (UnsafeState, OSError) as e:
        print(f"mmshell kernel recover: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mmshell kernel recover: interrupted", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    return status
