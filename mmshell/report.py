"""Running sources and showing each step: the glue between the runner and the views.

`run_sources` boots a fresh machine per source, runs it through the language
runner and renders every step (rich text or JSON Lines).  `StepPrinter` is
shared with the interactive shell.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from .lang.parser import Command
from .lang.runner import Outcome, StepRecord, read_script, run_text
from .lang.steps import read_script_stream
from .lang.session import Session
from .mm.task_mmu import vmstat_snapshot
from .views.console import make_console
from .views.render import render_view, view_json

if TYPE_CHECKING:
    from .views.step import Digest

#: Commands after which no step summary is shown (they change nothing).
QUIET_COMMANDS = frozenset({"show", "expect", "expect_fails", "help", "trace", "switch"})


def shows_changes(cmd: Command) -> bool:
    """Whether a step summary follows the command: what it runs (through `@PID` and `if`)
    may change the machine.  `check RANGE` reads through the fault path, so it may; a
    bare `check` only looks."""
    while cmd.name in ("at", "if") and isinstance(cmd.args.get("command"), Command):
        cmd = cmd.args["command"]
    if cmd.name == "check":
        return cmd.args.get("range") is not None
    return cmd.name not in QUIET_COMMANDS


def read_sources(files: Iterable[str]) -> list[tuple[str, str]] | None:
    """(name, text) of each file (`-` is standard input, named <stdin>), or None after
    printing why one cannot be read."""
    out = []
    for f in files:
        try:
            out.append(("<stdin>", read_script_stream(sys.stdin.buffer)) if f == "-"
                       else (f, read_script(Path(f))))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            why = (f"not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})"
                   if isinstance(e, UnicodeDecodeError) else getattr(e, "strerror", None) or e)
            print(f"mmshell: {'<stdin>' if f == '-' else f}: {why}", file=sys.stderr)
            return None
    return out


class StepPrinter:
    """Render each StepRecord as it arrives: the command, its output, what it changed."""

    def __init__(self, session: Session, json_mode: bool = False, quiet: bool = False,
                 step: bool = False, echo: bool = True, stream=None) -> None:
        self.session = session
        self.json_mode = json_mode
        self.quiet = quiet
        self.step = step
        self.echo = echo
        self.stream = stream if stream is not None else sys.stdout
        self.console = make_console(file=self.stream)
        self._before: Digest | None = None
        self._before_names: dict[int, dict[str, tuple[int, int]]] = {}
        self._prev: Digest | None = None

    def before(self, cmd: Command) -> None:
        if self.step and not self.json_mode:
            self.console.print(f"[dim]next:[/] {cmd.text or cmd}", markup=True, highlight=False)
            try:
                input("  press Enter to run it ")
            except EOFError:
                self.step = False
        if self.quiet or not shows_changes(cmd):
            self._before = None
            return
        from .views.step import digest
        self._before = digest(self.session.kernel)
        # an exited process's names go with it: its last rows are still named
        self._before_names = {pid: dict(names) for pid, names in self.session.regions.items()}

    def __call__(self, rec: StepRecord) -> None:
        if self.json_mode:
            self._json(rec)
            return
        out = rec.output
        if rec.error:
            self.console.print(rec.error, markup=False, highlight=False, soft_wrap=True)
            return
        if self.quiet:
            return
        if self.echo and rec.command is not None:
            self.console.print(f"[bold]{rec.source}:{rec.line}[/]  {rec.text}", highlight=False, soft_wrap=True)
        for line in out.lines:
            self.console.print("  " + line, markup=False, highlight=False, soft_wrap=True)
        for name, opts in out.views:
            self.console.print(render_view(self.session, name, opts, self._prev))
        if out.trace:
            self.console.print("  [dim]trace:[/] " + " > ".join(_fold_trace(out.trace)), highlight=False,
                               soft_wrap=True)
        if self._before is not None and out.changed:
            from .views.step import StepView, digest
            after = digest(self.session.kernel)
            self.console.print(StepView(self._before, after, names_by_pid=self._names()))
            self._prev = self._before
        self._before = None

    def _names(self) -> dict[int, dict[str, tuple[int, int]]]:
        """Region names per pid after the step, and before it for a process that is gone."""
        return {**self._before_names, **self.session.regions}

    def _json(self, rec: StepRecord) -> None:
        obj = rec.json_head()
        out = rec.output
        if out is not None:
            if out.views:
                obj["views"] = {name: view_json(self.session, name, opts, self._prev)
                                for name, opts in out.views}
            if out.trace:
                obj["trace"] = out.trace
            if self._before is not None and out.changed:
                from .views.step import StepView, digest
                after = digest(self.session.kernel)
                obj["changes"] = StepView(self._before, after, names_by_pid=self._names()).to_json()
                self._prev = self._before
        self._before = None
        print(json.dumps(obj), file=self.stream)

    def final(self, source: str, outcome: Outcome) -> None:
        k = self.session.kernel
        if self.json_mode:
            print(json.dumps({"final": True, "source": source, "exit": outcome.exit_status(),
                              "steps": outcome.steps, "refused": outcome.refused,
                              "expectations_failed": outcome.failed,
                              "vmstat": vmstat_snapshot(k), "mthp": dict(k.vmstat.mthp),
                              "pids": sorted(k.mms), "current_pid": self.session.pid}), file=self.stream)
            return
        status = {0: "ok", 1: "expectation failed", 2: "refused"}[outcome.exit_status()]
        self.console.print(f"{source}: {outcome.steps} steps, {outcome.failed} failed expectation(s), "
                           f"{outcome.refused} refused: {status}", highlight=False)


def _fold_trace(names: list[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        if out and (out[-1] == n or out[-1].startswith(n + " x")):
            last = out[-1]
            count = int(last.rpartition(" x")[2]) + 1 if " x" in last and last.startswith(n + " x") else 2
            out[-1] = f"{n} x{count}"
        else:
            out.append(n)
    return out


def run_sources(sources: list[tuple[str, str]], json_mode: bool = False, step: bool = False,
                keep_going: bool = False, quiet: bool = False, debug_vm: bool = False) -> int:
    """Run each source on a fresh machine; the contract's exit status over all of them."""
    refused = failed = False
    for name, text in sources:
        session = Session.boot(debug_vm=debug_vm)
        printer = StepPrinter(session, json_mode=json_mode, quiet=quiet, step=step)
        base = Path(name).parent if name != "-c" else Path.cwd()
        outcome = run_text(session, text, name, printer, keep_going=keep_going, base=base,
                           before=printer.before)
        if name != "-c" or json_mode:
            printer.final(name, outcome)
        refused |= outcome.refused > 0
        failed |= outcome.failed > 0
        if outcome.refused and not keep_going:
            break
    return 2 if refused else 1 if failed else 0
