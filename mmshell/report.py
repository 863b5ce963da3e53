"""Running sources and showing each step: the glue between the runner and the views.

`run_sources` boots a fresh machine per source, runs it through the language
runner and renders every step (rich text or JSON Lines).  `StepPrinter` is
shared with the interactive shell.
"""

from __future__ import annotations

import sys
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from rich.text import Text

from rich.markup import escape

from .lang.parser import Command
from .lang.registry import shows_changes
from .lang.runner import Outcome, StepRecord, read_script, run_text
from .lang.step_loop import read_script_stream
from .lang.values import plural
from .lang.session import Session
from .stepkeys import Quit, ask
from .views.console import make_console
from .recorder import Recorder
from .stepdisplay import PrintedSession, StepDisplay
from .views.progress import StepProgress
from .views.sim_source import SimViews

if TYPE_CHECKING:
    from rich.console import Console

    from .export import Pictures
    from .views.source import ViewObserver
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
        import json

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


def print_narration(console: Console, cmd: Command) -> None:
    """A command's `#:` narration, then the text of a `pause` (for `run --step` and `present`)."""
    for line in cmd.narration:
        console.print(f"[italic cyan]│ {escape(line)}[/]", highlight=False, soft_wrap=True)
    if cmd.name == "pause":
        console.print(f"[bold reverse] pause [/] [bold]{escape(cmd.args.get('text') or '')}[/]", highlight=False)


class StepPrinter:
    """Render each StepRecord as it arrives: the command, its output, what it changed.

    One printer for both backends: what it draws it reads through `views` (the
    ViewObserver of views/source.py: the simulator's by default, the live kernel's
    for `mmshell kernel run`), so a step's views and its change summary (a Digest
    before and after it, views/step.py) are the same objects on both."""

    def __init__(self, session: PrintedSession, json_mode: bool = False, quiet: bool = False,
                 step: str | None = None, echo: bool = True, stream=None, show_views: bool = True,
                 recorder: Recorder | None = None, views: ViewObserver | None = None) -> None:
        self.session = session
        self.views: ViewObserver = views if views is not None else SimViews(session)
        self.show_views = show_views      # False: `show` output is drawn elsewhere (the presenter's top)
        self.json_mode = json_mode
        self.quiet = quiet
        self.step = step                  # None, or a --step mode: "each" or "pause"
        self.echo = echo
        self.stream = stream if stream is not None else sys.stdout
        self.console = make_console(file=self.stream)
        self._before: Digest | None = None
        self._before_names: dict[int, dict[str, tuple[int, int]]] = {}
        self._prev: Digest | None = None
        # a bar under a step that runs long, on a terminal only (never piped, --json or --quiet)
        self.progress = StepProgress(lambda: make_console(file=self.stream),
                                     self.console.is_terminal and not json_mode and not quiet)
        self.display = StepDisplay()
        self.recorder = recorder if recorder is not None else Recorder()
        session.exporter = self.export

    def before(self, cmd: Command) -> None:
        if self.step and not self.json_mode:
            self._stop(cmd)
        self.progress.start(cmd.text or str(cmd))
        # quiet draws nothing, unless every step is kept for pictures (--export, --html)
        if (self.quiet and self.recorder.keep is not None) or not shows_changes(cmd):
            self._before = None
            return
        self._before = self.views.digest()
        self.display.before(self.session)
        # an exited process's names go with it: its last rows are still named
        self._before_names = dict(dict.items(self.session.regions))

    def _stop(self, cmd: Command) -> None:
        """`--step`: the narration of the next command, then a stop before it (before every
        command, or with `--step=pause` at `pause` only)."""
        print_narration(self.console, cmd)
        if self.step == "pause" and cmd.name != "pause":
            return
        if cmd.name != "pause":
            self.console.print(f"[dim]next:[/] {escape(cmd.text or str(cmd))}", highlight=False)

        def prompt(text: str) -> None:
            self.console.print(text, end="", markup=False, highlight=False)
            self.console.file.flush()
        try:
            going = ask(prompt)
        finally:
            self.console.print()
        if not going:
            self.step = None               # input ended: run on without stopping

    def __call__(self, rec: StepRecord) -> None:
        self.progress.stop()
        if self.json_mode:
            self._json(rec)
            return
        if rec.error:
            self.console.print(rec.error, markup=False, highlight=False, soft_wrap=True)
            self._record(rec, [Text(rec.error)])
            if self.session.explain and rec.command is not None and not self.quiet:
                self.console.print(self._explain(rec, None))
            self._time(rec)
            return
        if self.quiet and self.recorder.keep is not None:
            return
        items = self._draw(rec)
        if not self.quiet:
            for item in items:
                self.console.print(item, soft_wrap=isinstance(item, Text))
            self._time(rec)
        self._record(rec, items)

    def _time(self, rec: StepRecord) -> None:
        """`timing on`: the step's wall time, after what it drew (not kept for export, not with --quiet)."""
        line = rec.timing_line()
        if line is not None and not self.quiet:
            self.console.print(Text("  " + line, style="dim"), soft_wrap=True)

    def _draw(self, rec: StepRecord) -> list[Any]:
        """What one step draws after its command: output lines, views, trace, the display."""
        out = rec.output
        items: list[Any] = []
        if self.echo and rec.command is not None:
            items.append(Text.assemble((f"{rec.source}:{rec.line}", "bold"), f"  {rec.text}"))
        items += [Text("  " + line) for line in out.lines]
        items += [Text("  note: " + note) for note in out.notes]
        for name, opts in out.views if self.show_views else ():
            items.append(self.views.view(name, opts, self._prev))
        if out.trace:
            items.append(Text.assemble(("  trace:", "dim"), " " + " > ".join(_fold_trace(out.trace))))
        summary = None
        if self._before is not None:
            previous = self._before             # a displayed view marks what this step changed
            if out.changed:
                from .views.step import StepView
                summary = StepView(self._before, self.views.digest(), names_by_pid=self._names(),
                                   counters=self.session.counters)
                self._prev = self._before
            items += list(self.display.renderables(self.session, summary, previous))
        self._before = None
        if self.session.explain and rec.command is not None:
            items.append(self._explain(rec, summary))
        return items

    def _explain(self, rec: StepRecord, view) -> Text:
        """`explain on`: the step in plain sentences, indented under it."""
        import textwrap

        text = textwrap.fill(" ".join(self._sentences(rec, view)), width=max(40, self.console.width - 1),
                             initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False)
        return Text(text, style="italic")

    @staticmethod
    def _sentences(rec: StepRecord, view) -> list[str]:
        from .views.explain import explain_step
        out = rec.output
        assert rec.command is not None
        return explain_step(rec.command, getattr(out, "calls", []) if out is not None else [], view, rec.error,
                            out.lines if out is not None else (), rec.kind)

    def _record(self, rec: StepRecord, items: list[Any]) -> None:
        """Keep the step for `export` (and --export/--html), without its echo line."""
        if rec.command is None or rec.command.name == "export":
            return
        title = f"{rec.source}:{rec.line}  {rec.text}" if rec.source != "<stdin>" else f"mmsh> {rec.text}"
        drawn = items[1:] if self.echo and not rec.error else items
        self.recorder.add(title, rec.text, drawn, self.session)

    def export(self, what: str, path: str) -> str:
        """`export svg|html|txt|session FILE`: the last step (or every step kept) to FILE."""
        from .export import export_steps, format_of

        steps = self.recorder.steps
        if what == "session":
            fmt = format_of(path)
            if fmt is None:
                raise ValueError(f"{path}: export session writes .svg, .html or .txt; say which by the suffix")
        else:
            fmt, steps = what, steps[-1:]
        if not steps:
            raise ValueError("no step to export yet")
        line = export_steps(steps, fmt, path)
        return line + (f" (the last {len(steps)} kept)" if what == "session" and self.recorder.dropped else "")

    @property
    def previous(self) -> Digest | None:
        """The machine before the last step that changed it: what `show vmstat` marks as changed."""
        return self._prev

    def _names(self) -> dict[int, dict[str, tuple[int, int]]]:
        """Region names per pid after the step, and before it for a process that is gone."""
        return {**self._before_names, **self.session.regions}

    def _json(self, rec: StepRecord) -> None:
        import json                      # --json only: not loaded for text output

        obj = rec.json_head()
        out = rec.output
        view = None
        if out is not None:
            if out.notes:
                obj["notes"] = out.notes
            if out.views:
                obj["views"] = {name: self.views.view(name, opts, self._prev).to_json()
                                for name, opts in out.views}
            if out.trace:
                obj["trace"] = out.trace
            if self._before is not None and out.changed:
                from .views.step import StepView
                after = self.views.digest()
                view = StepView(self._before, after, names_by_pid=self._names(), counters=self.session.counters)
                obj["changes"] = view.to_json()
                self._prev = self._before
            if self._before is not None and (shown := self.display.to_json(self.session, self._before)):
                obj["display"] = shown
        if self.session.explain and rec.command is not None:
            obj["explain"] = self._sentences(rec, view)
        self._before = None
        print(json.dumps(obj), file=self.stream)

    def final(self, source: str, outcome: Outcome, extra: dict[str, Any] | None = None,
              where: str = "", counts: str = "") -> None:
        """The script's last line, or with --json its final object: the outcome, then `extra`
        (the backend's own keys: the live kernel's are read before its tear-down), else the
        machine's counters and processes; `where`, `counts`: words the backend adds to the line."""
        self.progress.stop()
        if self.json_mode:
            import json

            obj = {"final": True, "source": source, "exit": outcome.exit_status(),
                   "steps": outcome.steps, "refused": outcome.refused, "expectations_failed": outcome.failed}
            if extra is None:
                vmstat, mthp = self.views.counters(False)
                extra = {"vmstat": vmstat, "mthp": mthp, "pids": self.views.pids(), "current_pid": self.session.pid}
            print(json.dumps({**obj, **extra}), file=self.stream)
            return
        status = STATUS_WORDS[outcome.exit_status()]
        self.console.print(f"{source}: {plural(outcome.steps, 'step')}{where}, {outcome.failed} failed "
                           f"expectation(s){counts}, {outcome.refused} refused: {status}",
                           highlight=False, soft_wrap=True)


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


def run_sources(sources: Sequence[tuple[str, str | Unreadable]], json_mode: bool = False, step: str | None = None,
                keep_going: bool = False, quiet: bool = False, debug_vm: bool = False,
                pictures: Pictures | None = None) -> int:
    """Run every source, each on a freshly booted machine, whatever the others did (a
    refusal stops only its own script, unless keep_going); a summary line per source,
    and the worst exit status of all (an unreadable source is 2).  `pictures`: write
    each script's steps as SVGs and/or a page too (export.py)."""
    worst = 0
    tally: dict[str, int] = {}
    for name, text in sources:
        if isinstance(text, Unreadable):
            report_unreadable(name, text, json_mode)
            status, word = 2, "unreadable"
        else:
            session = Session.boot(debug_vm=debug_vm)
            printer = StepPrinter(session, json_mode=json_mode, quiet=quiet, step=step,
                                  recorder=pictures.recorder() if pictures else None)
            base = Path(name).parent if name != "-c" else Path.cwd()
            outcome = Outcome()
            try:
                run_text(session, text, name, printer, keep_going=keep_going, outcome=outcome, base=base,
                         before=printer.before)
            except Quit:                   # `q` at a --step stop: the run ends here, not a failure
                printer.final(name, outcome)
                return max(worst, outcome.exit_status())
            if pictures is not None:
                try:
                    for line in pictures.write(printer.recorder, name, len(sources) > 1):
                        print(line, file=sys.stderr)
                except OSError as e:
                    print(f"mmshell: {name}: cannot write the pictures: {e}", file=sys.stderr)
                    outcome.refused += 1
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
