"""Running sources and showing each step: the glue between the runner and the views.

`run_sources` boots a fresh machine per source, runs it through the language
runner and renders every step (rich text or JSON Lines).  `StepPrinter` is
shared with the interactive shell.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

from .lang.parser import Command
from .lang.registry import shows_changes
from .lang.runner import Outcome, StepRecord, read_script, run_text
from .lang.steps import read_script_stream
from .lang.values import plural
from .lang.session import Session
from .mm.task_mmu import vmstat_snapshot
from .views.console import make_console
from .views.render import render_view, view_json

if TYPE_CHECKING:
    from .views.step import Digest



@dataclass(frozen=True)
class Unreadable:
    """A script that could not be read: the one line that says why (`mmshell: FILE: why`)."""

    error: str


def read_sources(files: Iterable[str]) -> list[tuple[str, str | Unreadable]]:
    """(name, text) of each file (`-` is standard input, named <stdin>); where one cannot
    be read, (name, Unreadable) in its place."""
    out: list[tuple[str, str | Unreadable]] = []
    for f in files:
        name = "<stdin>" if f == "-" else f
        try:
            out.append((name, read_script_stream(sys.stdin.buffer) if f == "-" else read_script(Path(f))))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            why = (f"not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})"
                   if isinstance(e, UnicodeDecodeError) else getattr(e, "strerror", None) or e)
            out.append((name, Unreadable(f"mmshell: {name}: {why}")))
    return out


def report_unreadable(name: str, bad: Unreadable, json_mode: bool, stream=None) -> None:
    """Say that a script cannot be read: its line on standard error, or with --json a final
    object that carries it (exit 2, no steps)."""
    if json_mode:
        print(json.dumps({"final": True, "source": name, "exit": 2, "steps": 0, "refused": 0,
                          "expectations_failed": 0, "error": bad.error}), file=stream or sys.stdout)
    else:
        print(bad.error, file=sys.stderr)


def readable(sources: list[tuple[str, str | Unreadable]], json_mode: bool = False) -> list[tuple[str, str]] | None:
    """The sources when every one could be read; else None after saying which could not
    (for the commands that run their files together: compare, kernel run, kernel diff)."""
    ok = [(n, t) for n, t in sources if isinstance(t, str)]
    for name, text in sources:
        if isinstance(text, Unreadable):
            report_unreadable(name, text, json_mode)
    return ok if len(ok) == len(sources) else None


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
        status = STATUS_WORDS[outcome.exit_status()]
        self.console.print(f"{source}: {plural(outcome.steps, 'step')}, {outcome.failed} failed expectation(s), "
                           f"{outcome.refused} refused: {status}", highlight=False, soft_wrap=True)


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


#: How a script's exit status reads in its summary line.
STATUS_WORDS = {0: "ok", 1: "expectation failed", 2: "refused"}


def run_sources(sources: Sequence[tuple[str, str | Unreadable]], json_mode: bool = False, step: bool = False,
                keep_going: bool = False, quiet: bool = False, debug_vm: bool = False) -> int:
    """Run every source, each on a freshly booted machine, whatever the others did (a
    refusal stops only its own script, unless keep_going); a summary line per source,
    and the worst exit status of all (an unreadable source is 2)."""
    worst = 0
    tally: dict[str, int] = {}
    for name, text in sources:
        if isinstance(text, Unreadable):
            report_unreadable(name, text, json_mode)
            status, word = 2, "unreadable"
        else:
            session = Session.boot(debug_vm=debug_vm)
            printer = StepPrinter(session, json_mode=json_mode, quiet=quiet, step=step)
            base = Path(name).parent if name != "-c" else Path.cwd()
            outcome = run_text(session, text, name, printer, keep_going=keep_going, base=base,
                               before=printer.before)
            if name != "-c" or json_mode:
                printer.final(name, outcome)
            status = outcome.exit_status()
            word = STATUS_WORDS[status]
        worst = max(worst, status)
        tally[word] = tally.get(word, 0) + 1
    if len(sources) > 1 and not json_mode:
        print(f"{len(sources)} scripts: " + ", ".join(f"{n} {w}" for w, n in tally.items()) +
              f": exit {worst}")
    return worst
