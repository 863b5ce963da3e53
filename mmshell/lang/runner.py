"""Replaying .mmsh text in the simulator: each command one step, the outcome tallied.

The runner never prints.  Each step is reported to an observer as a
`StepRecord` (the command, what it produced, or why it was refused), so the
command line, the shell and the tests can render or check it as they like.
The loop, `source` and the exit statuses are step_loop.py's, shared with the live
kernel's runner; what is the simulator's here is how one command runs and how
its errors are classified.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from time import perf_counter
from typing import Callable

from ..mm.errors import MmError, VmBug
from .execute import ExpectError, execute
from .parser import Command
from .session import Session
from .snapshot import Checkpoint
from .step_loop import (MAX_SCRIPT_BYTES, MAX_SOURCE_DEPTH, MAX_SOURCES, Observer, Outcome, Run, StepRecord,
                    format_error, op_name, read_script)

__all__ = ["MAX_SCRIPT_BYTES", "MAX_SOURCE_DEPTH", "MAX_SOURCES", "Observer", "Outcome", "StepRecord",
           "format_error", "read_script", "run_text", "run_one"]


def run_text(session: Session, text: str, source: str, observer: Observer | None = None,
             keep_going: bool = False, outcome: Outcome | None = None, depth: int = 0,
             base: Path | None = None, before: Callable[[Command], None] | None = None) -> Outcome:
    """Parse all of `text` first (a syntax error runs nothing), then run it step by step."""
    run = _run(session, observer, keep_going, outcome if outcome is not None else Outcome(), before)
    return run.text(text, source, depth, base)


def run_one(session: Session, cmd: Command, source: str, depth: int, base: Path | None,
            observer: Observer | None, keep_going: bool, outcome: Outcome,
            before: Callable[[Command], None] | None = None) -> StepRecord | None:
    """Run one command; a `source` runs its file's commands (each seen by `before` and
    `observer` as its own step) and returns None."""
    return _run(session, observer, keep_going, outcome, before).command(cmd, source, depth, base)


def _run(session: Session, observer: Observer | None, keep_going: bool, outcome: Outcome,
         before: Callable[[Command], None] | None) -> Run:
    """A run of commands in the simulator, which can put the machine back (checkpoint)."""
    return Run(partial(_step, session), observer, keep_going, outcome, before, partial(_checkpoint, session))


def _checkpoint(session: Session) -> Callable[[bool], None]:
    """A checkpoint of the machine, the current pid and the region names; the function returned
    puts them back when called with True (`expect fails source FILE` when one of FILE's commands
    is refused), and keeps what the commands did when called with False."""
    saved = Checkpoint(session)

    def close(undo: bool) -> None:
        if undo:
            saved.rollback()
        else:
            saved.commit()
    return close


def _step(session: Session, cmd: Command, source: str) -> StepRecord:
    """One command in the simulator: a refusal (MmError, ExpectError) or a broken
    invariant (VmBug) becomes the record's one error line."""
    rec = StepRecord(source, cmd.line, cmd)
    timing = session.timing
    start = perf_counter()
    try:
        rec.output = execute(session, cmd)
    except MmError as e:
        rec.kind, rec.error = "refused", format_error(source, cmd.line, op_name(cmd), str(e))
    except ExpectError as e:
        rec.kind, rec.error = "refused", format_error(source, cmd.line, "expect", str(e))
    except VmBug as e:
        rec.kind, rec.error = "bug", format_error(source, cmd.line, op_name(cmd),
                                                  f"simulator bug (invariant broken): {e}")
    rec.ms = (perf_counter() - start) * 1000
    rec.timed = timing and session.timing
    if rec.kind == "ok" and rec.output is not None and rec.output.failed_expect:
        rec.kind = "expect-failed"
        rec.error = format_error(source, cmd.line, "expect", rec.output.failed_expect)
    return rec
