"""The commands only the prompt takes (`undo`, `back N`, `history`, `save FILE`, `compare`,
`reset`, `clear`, `quit`), and how the prompt prints: errors with a caret at their column and
without the `<stdin>:N:` prefix, a passing `expect` said so, long output through a pager.

Their names and help are declared in lang/topics.py (`help shell`); each is
recognised only alone on its line.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from enum import Enum
from pathlib import Path
from typing import Callable, TypeVar

from rich.console import Console

from ..lang.sim_observer import evaluate
from ..lang.expect_values import PathError
from ..lang.runner import StepRecord
from ..lang.session import Session
from ..lang.topics import SHELL_COMMANDS
from ..mm.kernel import Kernel
from ..report import StepPrinter
from .journal import Journal, JournalError

__all__ = ["Leave", "ShellPrinter", "is_shell_command", "run_shell_command", "paged", "caret"]

T = TypeVar("T")


class Leave(Enum):
    """What a shell command asks of the loop."""

    STAY = 0
    QUIT = 1
    CLEAR = 2


def is_shell_command(text: str) -> bool:
    words = text.split()
    return bool(words) and words[0] in SHELL_COMMANDS and ";" not in text


def run_shell_command(text: str, session: Session, journal: Journal, console: Console) -> Leave:
    """Run one shell command line; its errors are one line, never raised."""
    words = text.split()
    name, args = words[0], words[1:]
    usage = SHELL_COMMANDS[name][0]
    takes = len(usage.split()) - 1
    if len(args) != takes:
        _say(console, f"{name}: EINVAL: usage: {usage}")
        return Leave.STAY
    try:
        if name == "quit":
            return Leave.QUIT
        if name == "clear":
            return Leave.CLEAR
        if name == "history":
            lines = journal.listing()
        elif name == "undo":
            lines = [journal.back(1)]
        elif name == "back":
            if not args[0].isdigit():
                raise JournalError(f"back: EINVAL: {args[0]!r} is not a number of steps")
            lines = [journal.back(int(args[0]))]
        elif name == "save":
            lines = [journal.save(Path(args[0]))]
        elif name == "compare":
            from ..compare import Comparison          # loaded on use: it runs four machines

            for part in Comparison("<session>", journal.commands(), view_width=console.width).renderables():
                console.print(part, highlight=False, markup=False)
            return Leave.STAY
        else:                               # reset
            session.kernel, session.pid, session.regions = Kernel(), 1, {1: {}}
            journal.clear()
            lines = ["a freshly booted machine: pid 1, no swap, default machine settings; the history starts again"]
    except JournalError as e:
        lines = [str(e)]
    for line in lines:
        _say(console, line)
    return Leave.STAY


def _say(console: Console, line: str) -> None:
    console.print("  " + line, markup=False, highlight=False, soft_wrap=True)


def caret(prompt_width: int, column: int) -> str:
    """The line that points at `column` (1-based) of what was typed after the prompt."""
    return " " * (prompt_width + column - 1) + "^"


class ShellPrinter(StepPrinter):
    """StepPrinter as the prompt prints: an error without its `<stdin>:N: ` prefix, the line
    again with a caret under a refused command that was not first on it (the steps before
    it have printed in between), and `holds` after a passing expect."""

    prompt_width = 0
    line_text = ""
    session: Session                # the shell runs the simulator

    def __call__(self, rec: StepRecord) -> None:
        if rec.error and rec.command is not None and rec.command.column > 1 and self.line_text:
            self.console.print("  " + self.line_text, markup=False, highlight=False, soft_wrap=True)
            self.console.print(caret(2, rec.command.column), markup=False, highlight=False)
        if rec.error:
            rec.error = rec.error.removeprefix(f"{rec.source}:{rec.line}: ")
        super().__call__(rec)
        cmd = rec.command
        if rec.kind == "ok" and cmd is not None and cmd.name == "expect":
            try:
                actual = evaluate(self.session, cmd.args["path"])
            except PathError:
                return
            self.console.print(f"  holds: {cmd.args['path']} {cmd.args['op']} {cmd.args['value']} (actual "
                               f"{actual})", markup=False, highlight=False, soft_wrap=True)


def paged(console: Console, enabled: bool, run: Callable[[], T]) -> T:
    """Run `run`, its output through a pager when it is longer than the terminal (`set pager`)."""
    if not enabled or not console.is_terminal or not sys.stdout.isatty():
        return run()
    console.begin_capture()
    try:
        return run()
    finally:
        text = console.end_capture()
        if text.count("\n") < console.height - 1 or not _page(text):
            console.file.write(text)
            console.file.flush()


def _page(text: str) -> bool:
    """Show `text` in $PAGER or `less -R -X` (kept on screen after it); False when there is none."""
    cmd = shlex.split(os.environ.get("PAGER") or "less -R -X")
    if not cmd or shutil.which(cmd[0]) is None:
        return False
    try:
        subprocess.run(cmd, input=text, text=True, check=False)
    except (OSError, KeyboardInterrupt):
        return False
    return True
