"""Replaying .mmsh text: parse, run each command as one step, tally the outcome.

The runner never prints.  Each step is reported to an observer as a
`StepRecord` (the command, what it produced, or why it was refused), so the
command line, the shell and the tests can render or check it as they like.
Exit statuses follow the contract: 0 all expectations held, 1 one failed,
2 a command was refused (run stops there unless keep_going).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..mm.errors import MmError, VmBug
from .errors import LangError
from .execute import ExpectError, StepOutput, execute
from .parser import Command, parse_script
from .session import Session

MAX_SOURCE_DEPTH = 8
#: Files sourced in one run, at any depth (a file that sources itself twice per level
#: would otherwise run 2**8 times), and the largest script read.
MAX_SOURCES = 256
MAX_SCRIPT_BYTES = 16 << 20


@dataclass(slots=True)
class StepRecord:
    """One executed (or refused) command."""

    source: str
    line: int
    command: Command | None
    output: StepOutput | None = None
    error: str | None = None          # the one formatted error line
    kind: str = "ok"                  # ok | refused | expect-failed | syntax | bug

    @property
    def text(self) -> str:
        return self.command.text if self.command is not None and self.command.text else str(self.command)


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


def format_error(source: str, line: int, op: str, why: str) -> str:
    """The one error line: `FILE:LINE: command: ERRNO: why`."""
    return f"{source}:{line}: {op}: {why}"


def _op_name(cmd: Command) -> str:
    inner = cmd
    while inner.name in ("at", "if", "expect_fails") and "command" in inner.args:
        inner = inner.args["command"]
    return " ".join(inner.spec.words)


def run_text(session: Session, text: str, source: str, observer: Observer | None = None,
             keep_going: bool = False, outcome: Outcome | None = None, depth: int = 0,
             base: Path | None = None, before: Callable[[Command], None] | None = None) -> Outcome:
    """Parse all of `text` first (a syntax error runs nothing), then run it step by step."""
    outcome = outcome if outcome is not None else Outcome()
    try:
        commands = parse_script(text)
    except LangError as e:
        outcome.refused += 1
        outcome.stopped = True
        if observer:
            observer(StepRecord(source, e.line, None, error=format_error(source, e.line, "syntax",
                                                                          str(e)), kind="syntax"))
        return outcome
    for cmd in commands:
        if before is not None:
            before(cmd)
        rec = run_one(session, cmd, source, depth, base, observer, keep_going, outcome, before)
        outcome.steps += 1
        if rec is not None and observer:
            observer(rec)
        if outcome.stopped:
            break
    return outcome


def run_one(session: Session, cmd: Command, source: str, depth: int, base: Path | None,
            observer: Observer | None, keep_going: bool, outcome: Outcome,
            before: Callable[[Command], None] | None = None) -> StepRecord | None:
    """Run one command; a `source` runs its file's commands (each seen by `before` and
    `observer` as its own step) and returns None."""
    if cmd.name == "source":
        return _run_source(session, cmd, source, depth, base, observer, keep_going, outcome, before)
    rec = StepRecord(source, cmd.line, cmd)
    try:
        rec.output = execute(session, cmd)
    except MmError as e:
        rec.kind, rec.error = "refused", format_error(source, cmd.line, _op_name(cmd), str(e))
    except ExpectError as e:
        rec.kind, rec.error = "refused", format_error(source, cmd.line, "expect", str(e))
    except VmBug as e:
        rec.kind, rec.error = "bug", format_error(source, cmd.line, _op_name(cmd),
                                                  f"simulator bug (invariant broken): {e}")
    if rec.kind in ("refused", "bug"):
        outcome.refused += 1
        outcome.stopped = not keep_going or rec.kind == "bug"
    elif rec.output is not None and rec.output.failed_expect:
        rec.kind = "expect-failed"
        rec.error = format_error(source, cmd.line, "expect", rec.output.failed_expect)
        outcome.failed += 1
    return rec


def read_script(path: Path) -> str:
    """The text of a script file: a regular file of at most MAX_SCRIPT_BYTES, in UTF-8.

    A device, FIFO or directory is refused (reading /dev/zero would never end), as is
    a file too large to be a script.
    """
    import stat

    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise ValueError("not a regular file")
    with path.open("rb") as f:
        data = f.read(MAX_SCRIPT_BYTES + 1)
    if len(data) > MAX_SCRIPT_BYTES:
        raise ValueError(f"larger than {MAX_SCRIPT_BYTES >> 20} MiB")
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")   # as Path.read_text


def _run_source(session: Session, cmd: Command, source: str, depth: int, base: Path | None,
                observer: Observer | None, keep_going: bool, outcome: Outcome,
                before: Callable[[Command], None] | None) -> StepRecord | None:
    path = Path(cmd.args["path"])
    if base is not None and not path.is_absolute():
        path = base / path
    why = None
    if depth >= MAX_SOURCE_DEPTH:
        why = f"ELOOP: sources nested more than {MAX_SOURCE_DEPTH} deep"
    elif outcome.sourced >= MAX_SOURCES:
        why = f"E2BIG: more than {MAX_SOURCES} files sourced in one run"
    else:
        outcome.sourced += 1
        try:
            text = read_script(path)
        except (OSError, UnicodeDecodeError, ValueError) as e:
            errno = "EINVAL" if isinstance(e, (ValueError, UnicodeDecodeError)) else "ENOENT"
            why = f"{errno}: cannot read {path}: {getattr(e, 'strerror', None) or e}"
    if why is not None:
        outcome.refused += 1
        outcome.stopped = not keep_going
        return StepRecord(source, cmd.line, cmd, error=format_error(source, cmd.line, "source", why),
                          kind="refused")
    run_text(session, text, str(path), observer, keep_going, outcome, depth + 1, path.parent, before)
    return None
