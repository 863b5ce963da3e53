"""Running .mmsh text step by step, whatever runs the commands.

The simulator (lang/runner.py) and the live kernel (kernel/runner.py) run the
same language the same way: the whole text is parsed first (a syntax error
runs nothing), each command is one step reported to an observer as a
`StepRecord`, `source FILE` runs FILE's commands in place (bounded in depth,
count and size), `expect fails source FILE` is one step that holds when FILE is
refused, and the outcome gives the exit status of `mmshell run`:
0 all expectations held, 1 one failed, 2 a command was refused (the run stops
there unless keep_going).  What differs is only how one command runs: a
`StepFn` that returns its classified record.

This module imports nothing of the simulator, so the live runner can use it.
"""

from __future__ import annotations

import errno
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Container

from .errors import LangError
from .backend import StepOutput
from .parser import Command, parse_script
from .registry import unwrap

__all__ = ["MAX_SOURCE_DEPTH", "MAX_SOURCES", "MAX_SCRIPT_BYTES", "StepRecord", "Outcome", "Observer",
           "StepFn", "Checkpoint", "Run", "back_to", "exit_of", "format_error", "op_name", "read_script",
           "read_script_stream", "run_commands"]

MAX_SOURCE_DEPTH = 8
#: Files sourced in one run, at any depth (a file that sources itself twice per level
#: would otherwise run 2**8 times), and the largest script read.
MAX_SOURCES = 256
MAX_SCRIPT_BYTES = 16 << 20


@dataclass(slots=True)
class StepRecord:
    """One executed (or refused) command.

    `output` is what the command produced (lang/backend.py's `StepOutput`, in
    either backend).  `kind` is ok, refused, expect-failed,
    not-observable (live kernel only), syntax or bug.
    """

    source: str
    line: int
    command: Command | None
    output: Any = None
    error: str | None = None          # the one formatted error line
    kind: str = "ok"
    ms: float | None = None           # wall time of the step in ms, rendering excluded
    timed: bool = False               # `timing on` before and after the step: its time is printed

    def timing_line(self) -> str | None:
        """`time: 1.234 ms` after a step run with `timing on`, else None."""
        return f"time: {self.ms:.3f} ms" if self.timed and self.ms is not None else None

    @property
    def text(self) -> str:
        return self.command.text if self.command is not None and self.command.text else str(self.command)

    def json_head(self) -> dict[str, Any]:
        """The fields every JSON Lines step object starts with, in `mmshell run --json` and
        `kernel run --json` alike: source, line, command, status, and error and output
        where there are some."""
        obj: dict[str, Any] = {"source": self.source, "line": self.line,
                               "command": self.text if self.command is not None else None,
                               "status": self.kind}
        if self.error:
            obj["error"] = self.error
        if self.output is not None and self.output.lines:
            obj["output"] = self.output.lines
        if self.ms is not None:
            obj["ms"] = round(self.ms, 3)
        return obj


@dataclass(slots=True)
class Outcome:
    refused: int = 0
    failed: int = 0
    steps: int = 0
    stopped: bool = False
    sourced: int = 0

    def exit_status(self) -> int:
        if self.refused:
            return 2
        return 1 if self.failed else 0


Observer = Callable[[StepRecord], None]
#: Runs one command (never `source`) read from `source`; returns its classified record.
StepFn = Callable[[Command, str], StepRecord]
#: Takes a checkpoint of the machine; what it returns is called once when the commands after
#: it are done: with True it puts the machine back there, with False it keeps what they did.
Checkpoint = Callable[[], Callable[[bool], None]]


def back_to(current: int, parent: int | None, alive: Container[int]) -> int:
    """The current process after `@PID COMMAND`: the same one as before, unless COMMAND
    made it exit; then its parent (or pid 1), as when the current process exits."""
    if current in alive:
        return current
    return parent if parent is not None and parent in alive else 1


def exit_of(cmd: Command, pid: int) -> Command:
    """`@PID exit [Q]` as the command it means, `exit Q` (default `exit PID`), run from the
    current process: so only an exit of the current process changes which one is current."""
    return Command("exit", {"pid": cmd.args["pid"] if cmd.args["pid"] is not None else pid},
                   cmd.line, cmd.column, cmd.text)


def format_error(source: str, line: int, op: str, why: str) -> str:
    """The one error line: `FILE:LINE: command: ERRNO: why`."""
    return f"{source}:{line}: {op}: {why}"


def op_name(cmd: Command) -> str:
    """The command an error line names: the innermost of `@PID`, `if` and `expect fails`."""
    return " ".join(unwrap(cmd, into_refusal=True).spec.words)


def read_script(path: Path) -> str:
    """The text of a script file: a regular file of at most MAX_SCRIPT_BYTES, in UTF-8.

    A device, FIFO or directory is refused (reading /dev/zero would never end), as is
    a file too large to be a script.
    """
    st = path.stat()
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
    if not stat.S_ISREG(st.st_mode):
        raise ValueError("not a regular file")
    with path.open("rb") as f:
        return read_script_stream(f)


def read_script_stream(f: BinaryIO) -> str:
    """A script from an open binary stream (a file, standard input): at most
    MAX_SCRIPT_BYTES, UTF-8, newlines as Path.read_text gives them."""
    data = f.read(MAX_SCRIPT_BYTES + 1)
    if len(data) > MAX_SCRIPT_BYTES:
        raise ValueError(f"larger than {MAX_SCRIPT_BYTES >> 20} MiB")
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


@dataclass(slots=True)
class Run:
    """One run of .mmsh text: how each command runs, who sees the steps, and the tally.

    `step` runs one command (never `source`) and classifies its record; `before`
    sees each command just before it runs (a sourced file's too), `observer` each
    record just after; `keep_going` goes on after a refusal; `checkpoint` (where the
    machine can be put back) lets `expect fails source FILE` undo FILE's commands
    when one of them is refused.  `source`, `depth` and `base` (where a relative
    `source` path is taken from) are the file's being run, so they are arguments.
    """

    step: StepFn
    observer: Observer | None = None
    keep_going: bool = False
    outcome: Outcome = field(default_factory=Outcome)
    before: Callable[[Command], None] | None = None
    checkpoint: Checkpoint | None = None

    def text(self, text: str, source: str, depth: int = 0, base: Path | None = None) -> Outcome:
        """Parse all of `text` first (a syntax error runs nothing), then run it step by step."""
        outcome = self.outcome
        try:
            commands = parse_script(text)
        except LangError as e:
            outcome.refused += 1
            outcome.stopped = True
            if self.observer:
                self.observer(StepRecord(source, e.line, None, kind="syntax",
                                         error=format_error(source, e.line, "syntax", str(e))))
            return outcome
        for cmd in commands:
            if self.before is not None:
                self.before(cmd)
            rec = self.command(cmd, source, depth, base)
            outcome.steps += 1
            if rec is not None and self.observer:
                self.observer(rec)
            if outcome.stopped:
                break
        return outcome

    def command(self, cmd: Command, source: str, depth: int = 0,
                base: Path | None = None) -> StepRecord | None:
        """Run one command and tally it; a `source` runs its file's commands (each seen by
        `before` and `observer` as its own step) and returns None; `expect fails source FILE`
        is one step, run here (FILE is read as `source` reads it)."""
        outcome = self.outcome
        if cmd.name == "source":
            return self._source(cmd, source, depth, base)
        inner = cmd.args.get("command") if cmd.name == "expect_fails" else None
        if isinstance(inner, Command) and inner.name == "source":
            rec = self._expect_fails_source(cmd, inner, source, depth, base)
        else:
            rec = self.step(cmd, source)
        if rec.kind in ("refused", "bug"):
            outcome.refused += 1
            outcome.stopped = not self.keep_going or rec.kind == "bug"
        elif rec.kind in ("expect-failed", "not-observable"):
            outcome.failed += 1
        return rec

    def _source(self, cmd: Command, source: str, depth: int, base: Path | None) -> StepRecord | None:
        path, text, why = _read_source(cmd, depth, base, self.outcome)
        if text is None:
            self.outcome.refused += 1
            self.outcome.stopped = not self.keep_going
            return StepRecord(source, cmd.line, cmd, error=format_error(source, cmd.line, "source", why),
                              kind="refused")
        self.text(text, str(path), depth + 1, path.parent)
        return None

    def _expect_fails_source(self, cmd: Command, inner: Command, source: str, depth: int,
                             base: Path | None) -> StepRecord:
        """`expect fails source FILE`: one step that holds when FILE cannot be read or parsed,
        or one of its commands is refused; then what its commands did is undone (where the
        machine can be put back).  FILE's commands run without steps of their own."""
        outcome = self.outcome
        rec = StepRecord(source, cmd.line, cmd)
        path, text, why = _read_source(inner, depth, base, outcome)
        if text is not None:
            restore = self.checkpoint() if self.checkpoint is not None else None
            undo = False
            try:
                stops: list[StepRecord] = []

                def stopped(r: StepRecord) -> None:
                    if r.kind in ("refused", "bug", "syntax"):
                        stops.append(r)
                sub = Run(self.step, stopped, False, Outcome(sourced=outcome.sourced), None, self.checkpoint)
                sub.text(text, str(path), depth + 1, path.parent)
                outcome.sourced = sub.outcome.sourced
                if stops and stops[0].kind == "bug":
                    rec.kind, rec.error = "bug", stops[0].error
                    return rec
                if not stops:
                    failed = sub.outcome.failed
                    ran = "but it ran" + (f" ({failed} failed expectation(s))" if failed else "")
                    rec.kind = "expect-failed"
                    rec.error = format_error(source, cmd.line, "expect",
                                             f"expected '{inner.text or inner}' to be refused, {ran}")
                    return rec
                why = stops[0].error or ""
                if sub.outcome.steps > 1:
                    why += (" (the commands before it were undone)" if restore is not None else
                            " (the commands before it took effect: they cannot be undone here)")
                undo = bool(sub.outcome.steps)
            finally:
                if restore is not None:
                    restore(undo)
        rec.output = StepOutput(lines=[f"refused as expected: {why}"], changed=False)
        return rec


def run_commands(text: str, source: str, step: StepFn, observer: Observer | None = None,
                 keep_going: bool = False, outcome: Outcome | None = None, depth: int = 0,
                 base: Path | None = None, before: Callable[[Command], None] | None = None,
                 checkpoint: Checkpoint | None = None) -> Outcome:
    """`Run(...).text(...)` with the run's parts as arguments."""
    run = Run(step, observer, keep_going, outcome if outcome is not None else Outcome(), before, checkpoint)
    return run.text(text, source, depth, base)


def _read_source(cmd: Command, depth: int, base: Path | None,
                 outcome: Outcome) -> tuple[Path, str | None, str]:
    """(path, text, "") of the file `source` names, or (path, None, why) when it cannot be run."""
    path = Path(cmd.args["path"])
    if base is not None and not path.is_absolute():
        path = base / path
    if depth >= MAX_SOURCE_DEPTH:
        return path, None, f"ELOOP: sources nested more than {MAX_SOURCE_DEPTH} deep"
    if outcome.sourced >= MAX_SOURCES:
        return path, None, f"E2BIG: more than {MAX_SOURCES} files sourced in one run"
    outcome.sourced += 1
    try:
        return path, read_script(path), ""
    except OSError as e:
        name = errno.errorcode.get(e.errno or 0, "EIO")
        return path, None, f"{name}: cannot read {path}: {e.strerror or e}"
    except (UnicodeDecodeError, ValueError) as e:
        return path, None, f"EINVAL: cannot read {path}: {e}"
