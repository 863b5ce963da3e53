"""`mmshell kernel run`: each script on a freshly set-up live machine, every step printed.

The output follows `mmshell run`: one block per step (or, with --json, one
JSON object per step with the keys of `mmshell run --json`: source, line,
command, status, error, output, changes; plus notes where a proxy was used
or the kernel did something worth knowing), then a final object or summary
line per script.  Exit statuses are those of `mmshell run`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, TextIO

from ..lang.errors import LangError
from ..lang.parser import parse_script
from . import procfs
from .machine import LiveMachine, MissingRequirement, SetupError, raise_on_sigterm, recover_now, restore_signals
from .state import UnsafeState
from ..lang.steps import Outcome, StepRecord
from ..lang.values import plural
from .runner import LiveSession, asks_for_huge_zero, live_priorities, run_live_text, script_priorities


class LivePrinter:
    def __init__(self, json_mode: bool = False, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stdout

    def _p(self, text: str) -> None:
        print(text, file=self.stream)

    def __call__(self, rec: StepRecord) -> None:
        if self.json_mode:
            self._json(rec)
            return
        out = rec.output
        if rec.error:
            self._p(rec.error)
            self._time(rec)
            return
        if self.quiet:
            return
        if rec.command is not None:
            self._p(f"{rec.source}:{rec.line}  {rec.text}")
        assert out is not None
        for line in out.lines:
            self._p("  " + line)
        for note in out.notes:
            self._p("  note: " + note)
        if out.changes:
            for line in format_changes(out.changes):
                self._p("  " + line)
        self._time(rec)

    def _time(self, rec: StepRecord) -> None:
        """`timing on`: the step's wall time after it (not with --quiet)."""
        line = rec.timing_line()
        if line is not None and not self.quiet:
            self._p("  " + line)

    def _json(self, rec: StepRecord) -> None:
        obj = rec.json_head()
        out = rec.output
        if out is not None:
            if out.notes:
                obj["notes"] = out.notes
            if out.changes is not None:
                obj["changes"] = out.changes
        print(json.dumps(obj), file=self.stream)

    def final(self, source: str, outcome: Outcome, state: dict[str, Any], not_observable: int,
              warnings: list[str]) -> None:
        if self.json_mode:
            obj: dict[str, Any] = {"final": True, "source": source, "exit": outcome.exit_status(),
                                   "steps": outcome.steps, "refused": outcome.refused,
                                   "expectations_failed": outcome.failed, "not_observable": not_observable,
                                   "kernel": procfs_release()}
            obj.update(state)
            if warnings:
                obj["warnings"] = warnings
            print(json.dumps(obj), file=self.stream)
            return
        for w in warnings:
            self._p(f"{source}: warning: {w}")
        status = {0: "ok", 1: "expectation failed", 2: "refused"}[outcome.exit_status()]
        extra = f", {not_observable} not observable" if not_observable else ""
        self._p(f"{source}: {plural(outcome.steps, 'step')} on Linux {procfs_release()}, {outcome.failed} failed "
                f"expectation(s){extra}, {outcome.refused} refused: {status}")


def procfs_release() -> str:
    return os.uname().release


def format_changes(ch: dict[str, Any]) -> list[str]:
    lines = []
    for sw in ch.get("swap", []):
        if sw["before"] is None:
            lines.append(f"swap {sw['name']}: swapon, used {sw['after']}")
        else:
            lines.append(f"swap {sw['name']}: used {sw['before']} -> {sw['after']} ({sw['delta']:+d})")
    vm = {k: v for k, v in ch.get("vmstat", {}).items() if k != "nr_free_pages"}
    if vm:
        lines.append("vmstat: " + "  ".join(f"{k} {v:+d}" for k, v in vm.items()))
    if ch.get("mthp"):
        lines.append("mthp: " + "  ".join(f"{k} {v:+d}" for k, v in ch["mthp"].items()))
    return lines or ["no counter changed"]


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
                    ) -> tuple[Outcome, dict[str, Any], list[str]]:
    """Set up a live machine, run one script on it, tear everything down.

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
            outcome = run_live_text(session, text, name, observer, keep_going=keep_going, base=base)
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
        printer = LivePrinter(json_mode=json_mode, quiet=quiet)
        counts = {"not_observable": 0}

        def observer(rec: StepRecord, printer: LivePrinter = printer) -> None:
            if rec.kind == "not-observable":
                counts["not_observable"] += 1
            printer(rec)
        try:
            outcome, state, warnings = run_script_live(name, text, observer, keep_going)
        except MissingRequirement as e:
            print(f"mmshell kernel run: cannot run on the live kernel: missing {e}", file=sys.stderr)
            return 2
        except SetupError as e:
            print(f"mmshell kernel run: {name}: setting up the live machine failed: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("mmshell kernel run: interrupted; everything set up was torn down", file=sys.stderr)
            return 2
        printer.final(name, outcome, state, counts["not_observable"], warnings)
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
