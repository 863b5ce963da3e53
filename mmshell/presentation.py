"""A lesson as a sequence of frames, for `mmshell present`: one frame per step.

Frame N is the machine after the script's first N steps (frame 0: before any):
on top, what the lesson shows (the views of the `show` steps since the machine
last changed, so an `expect` or a `pause` after them keeps them), or else the
page tables of the process the step ran in; below, the step's narration (`#:` lines), the command, its
output and what it changed, as `mmshell run` prints them.  A frame is built by
replaying the script from a freshly booted machine up to step N: the simulator
is deterministic, so going back is a replay, and nothing but the script is kept.

This module renders text (ANSI colour or plain) and knows nothing of the screen;
shell/present_app.py shows the frames full screen.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rich.console import Console
from rich.markup import escape

from .lang.parser import Command, parse_script
from .lang.runner import Outcome, StepRecord, run_text
from .lang.session import Session
from .mm.config import Config
from .mm.task_mmu import vmstat_snapshot
from .lang.registry import shows_changes
from .report import StepPrinter, print_narration
from .views.render import render_view

__all__ = ["Frame", "Presentation", "lesson_title"]


def lesson_title(text: str, source: str) -> str:
    """The lesson's title: its first line when that is a comment (`# Round trip on zram`),
    else the file name."""
    first = text.lstrip("\ufeff").split("\n", 1)[0].strip()
    if first.startswith("#") and not first.startswith("#:") and first.lstrip("# ").strip():
        return first.lstrip("# ").strip()
    return Path(source).name


@dataclass(frozen=True)
class Frame:
    """What the screen shows at step `index` of `total` (0: before the first step)."""

    index: int
    total: int
    where: str            # `FILE:LINE` of the step, empty for frame 0
    command: str          # the step's command text, empty for frame 0
    top: str              # the view, rendered
    bottom: str           # narration, command, output and changes, rendered
    status: str = "ok"    # the step's StepRecord.kind
    pause: bool = False   # the step is a `pause`
    pmd_swap: bool = True  # the machine's mode after the step


class _Stop(Exception):
    """The replay has reached the step it was asked for."""


@dataclass
class _Replay:
    """A replay up to step n: the session after it, its record, its rendering below, and
    the views on top (the step's `show`, or the last one while nothing has changed since)."""

    session: Session
    record: StepRecord | None = None
    command: Command | None = None
    bottom: str = ""
    previous: Any = None          # the digest before the last step that changed something
    pid: int = 1                  # the process the step ran in
    steps: int = 0
    pauses: list[int] = field(default_factory=list)   # the steps that are `pause`
    views: list[Any] = field(default_factory=list)    # the `show` views since the machine last changed


@dataclass
class Presentation:
    """The frames of one script.  `total` is the number of steps the script runs (a script
    stopped by a refused command has the steps up to and with that one)."""

    text: str
    source: str
    color: bool = True
    base: Path | None = None
    pmd_swap: bool = True          # the mode the machine boots in (a script may still `set pmd_swap`)
    total: int = field(init=False, default=0)
    pauses: list[int] = field(init=False, default_factory=list)   # the frames of `pause` steps
    title: str = field(init=False, default="")
    outcome: Outcome = field(init=False, default_factory=Outcome)

    def __post_init__(self) -> None:
        parse_script(self.text)            # a syntax error is the caller's to report (LangError)
        if self.base is None:
            self.base = Path(self.source).parent
        self.title = lesson_title(self.text, self.source)
        whole = self._replay(None, 80)
        self.total, self.pauses = whole.steps, whole.pauses

    def _console(self, buf: io.StringIO, width: int) -> Console:
        return Console(file=buf, width=width, force_terminal=self.color, color_system="standard" if self.color
                       else None, no_color=not self.color, highlight=False, emoji=False, legacy_windows=False)

    def _replay(self, n: int | None, width: int) -> _Replay:
        """Run the script from a fresh machine up to step n (None: to its end), rendering
        only step n's summary."""
        session = Session.boot(Config(pmd_swap=self.pmd_swap))
        buf = io.StringIO()
        printer = StepPrinter(session, stream=buf, show_views=False)
        printer.console = self._console(buf, width)
        state = _Replay(session)

        counters: list[Any] = [None]     # the counters before the current step, if it may change them

        def before(cmd: Command) -> None:
            if n is not None and state.steps == n:
                raise _Stop
            state.steps += 1
            state.command = cmd
            if cmd.name == "pause":
                state.pauses.append(state.steps)
            if state.steps == n:           # only step n is rendered: the replay up to it stays fast
                print_narration(printer.console, cmd)
                state.pid = _pid_of(cmd, session.pid)
                printer.before(cmd)
            elif n is not None and shows_changes(cmd):
                counters[0] = _counters(session)

        def observe(rec: StepRecord) -> None:
            out = rec.output
            if out is not None and out.changed:
                state.views = []
            for view in out.views if out is not None else ():
                if view not in state.views:
                    state.views.append(view)
            if state.steps == n:
                printer(rec)
                state.record = rec
            elif rec.output is not None and rec.output.changed and counters[0] is not None:
                state.previous = counters[0]    # as StepPrinter: `show vmstat` marks this step's changes

        self.outcome = Outcome()
        try:
            run_text(session, self.text, self.source, observe, outcome=self.outcome, base=self.base,
                     before=before)
        except _Stop:
            pass
        state.bottom = buf.getvalue()
        return state

    def frame(self, n: int, width: int = 100) -> Frame:
        """Frame n (0..total), rendered `width` columns wide."""
        n = max(0, min(n, self.total))
        if n == 0:
            return self._first(width)
        state = self._replay(n, width)
        rec, cmd = state.record, state.command
        assert cmd is not None
        session = state.session
        buf = io.StringIO()
        console = self._console(buf, width)
        if state.views:
            for name, opts in state.views:
                console.print(render_view(session, name, opts, state.previous))
        else:
            self._map(console, session, state.pid)
        return Frame(n, self.total, f"{rec.source}:{rec.line}" if rec is not None else "",
                     cmd.text or str(cmd), buf.getvalue(), state.bottom,
                     rec.kind if rec is not None else "ok", cmd.name == "pause",
                     session.kernel.config.pmd_swap)

    def _first(self, width: int) -> Frame:
        """Frame 0: the lesson's opening comment, and what comes first."""
        buf = io.StringIO()
        console = self._console(buf, width)
        console.print(f"[bold]{escape(self.title)}[/]")
        for line in self.text.lstrip("\ufeff").split("\n")[1:]:
            if not line.startswith("#") or line.startswith("#:") or not line.lstrip("#").strip():
                break                      # the opening comment ends at its first empty line
            console.print(escape(line.lstrip("#").strip()), highlight=False)
        top = buf.getvalue()
        buf = io.StringIO()
        console = self._console(buf, width)
        console.print(f"{self.total} steps.  → or space: the first step", style="dim", highlight=False)
        return Frame(0, self.total, "", "", top, buf.getvalue(), pmd_swap=self.pmd_swap)

    def _map(self, console: Console, session: Session, pid: int) -> None:
        """The page tables of process `pid` (the current one if it is gone), or why there are none."""
        if pid not in session.kernel.mms:
            pid = session.pid
        if not session.names(pid) and not session.kernel.mm(pid).vmas:
            console.print(f"pid {pid} has nothing mapped yet", style="dim")
            return
        console.print(render_view(session, "pt", {"pid": pid}))


def _counters(session: Session) -> SimpleNamespace:
    """The counters `show vmstat` compares with: /proc/vmstat and the mTHP stats."""
    k = session.kernel
    return SimpleNamespace(vmstat=vmstat_snapshot(k), mthp=dict(k.vmstat.mthp))


def _pid_of(cmd: Command, current: int) -> int:
    """The process a command runs in: PID of `@PID COMMAND`, else the current one."""
    return int(cmd.args["pid"]) if cmd.name == "at" else current
