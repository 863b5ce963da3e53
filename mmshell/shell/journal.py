"""What the prompt remembers of the commands it ran: `history`, `undo`, `back N`, `save FILE`.

Every command that ran (not refused, no failed expectation) is logged with
its text.  A command that may change something (all but `show`, `help`,
`expect`, `expect fails`, `timing` and a bare `check`) is a *step*: before it
runs a checkpoint is taken (lang/snapshot.py, what a refusal uses), and after it
the checkpoint becomes an undo record (lang/undo.py): the per-process entries the
step reached as they were, the stores into VMAs it made, the pieces of the
mem_map it changed, and the rest of the machine (swap, LRU, counters), with the
display settings as they were.  A record costs what the step reached and
changed, not what the machine holds.  `undo` applies the last step's record, so
the machine is byte for byte what it was; `back N` applies the last N, newest
first.  A command run after a step that is not logged as a step (a refusal, a
failed expectation, `expect fails source FILE`) is undone with that step.  Only
the last MAX_UNDO steps keep their records, and only as many as fit in
UNDO_BUDGET of host memory (lang/budget.py's units); older steps stay in the log
for `save`.

`save FILE` writes the log as a .mmsh script: run with `mmshell run FILE`, it
ends in the same state, because the prompt's machine boots as `mmshell run`
boots one, and each command is run as the prompt ran it (`source` with its
path made absolute).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..lang.parser import Command
from ..lang.session import Session
from ..lang.snapshot import Checkpoint
from ..lang.topics import MAX_UNDO, UNDO_BUDGET
from ..lang.undo import UndoRecord

__all__ = ["MAX_UNDO", "Journal", "JournalError", "is_step", "may_change"]

#: Commands that only look: logged for `save`, never a step.
LOOKING = frozenset({"show", "help", "expect", "expect_fails", "timing"})


class JournalError(Exception):
    """A shell command that cannot be done: its one line says why."""


def is_step(cmd: Command) -> bool:
    """Whether `cmd` may change the machine or what is printed (undo returns past it)."""
    if cmd.name == "check":
        return cmd.args.get("range") is not None
    return cmd.name not in LOOKING


def may_change(cmd: Command) -> bool:
    """Whether the machine may differ after `cmd`, logged as a step or not: a step, and
    `expect fails source FILE`, which keeps what FILE did when none of it was refused."""
    inner = cmd.args.get("command") if cmd.name == "expect_fails" else None
    return is_step(cmd) or (isinstance(inner, Command) and inner.name == "source")


@dataclass(slots=True)
class _Entry:
    text: str
    step: bool
    #: What undoes the step, then each command after it that changed the machine without
    #: being a step, oldest first; empty once it is too old to be taken back.
    before: list[UndoRecord] = field(default_factory=list)
    settings: tuple[Any, ...] = ()      # explain, counters, pager before the step

    @property
    def cost(self) -> int:
        return sum(r.cost for r in self.before)


#: What `checkpoint` gives and `record` takes: the checkpoint and the display settings.
Before = tuple[Checkpoint, tuple[Any, ...]]


class Journal:
    """The log of one prompt session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.entries: list[_Entry] = []

    # -- recording ---------------------------------------------------------------------
    def checkpoint(self) -> Before:
        """A checkpoint of everything a command may change (taken before it runs)."""
        s = self.session
        return Checkpoint(s), (s.explain, s.counters, s.pager)

    def record(self, cmd: Command, before: Before | None) -> None:
        """Log a command that ran; `before` is its checkpoint (None for a looking command)."""
        text = cmd.text or str(cmd)
        if cmd.name == "source":
            text = f"source {Path(cmd.args['path']).resolve()}"
        if before is not None and is_step(cmd):
            self.entries.append(_Entry(text, True, [UndoRecord(before[0])], before[1]))
            self._trim()
            return
        self.entries.append(_Entry(text, False))
        if before is not None:
            self.discard(before)

    def discard(self, before: Before) -> None:
        """A command with a checkpoint that is not logged as a step: what it did is undone with
        the last step that can still be taken back (kept out of the log, as before)."""
        last = next((e for e in reversed(self.entries) if e.before), None)
        if last is None:
            before[0].commit()
            return
        last.before.append(UndoRecord(before[0]))
        self._trim()

    def _trim(self) -> None:
        total, n = 0, 0
        for e in reversed(self.entries):      # newest first: keep what fits, drop the older records
            if not e.before:
                continue
            total, n = total + e.cost, n + 1
            if n > MAX_UNDO or total > UNDO_BUDGET:
                e.before = []

    def clear(self) -> None:
        self.entries.clear()

    # -- undo --------------------------------------------------------------------------
    def steps(self) -> list[_Entry]:
        return [e for e in self.entries if e.step]

    def back(self, n: int) -> str:
        """Return to the machine before the last n steps; what was undone, in one line."""
        steps = self.steps()
        if n < 1:
            raise JournalError("back: EINVAL: N must be 1 or more")
        if not steps:
            raise JournalError("undo: nothing to undo: no command has changed anything yet")
        if n > len(steps):
            raise JournalError(f"back: EINVAL: only {len(steps)} step(s) so far")
        target = steps[-n]
        if not target.before:
            raise JournalError(f"back: EINVAL: only the last {MAX_UNDO} steps can be undone, as long as "
                               f"their records fit in {UNDO_BUDGET >> 20} MiB "
                               f"({sum(bool(e.before) for e in steps)} kept)")
        s = self.session
        undone = self.entries[self.entries.index(target):]
        for e in reversed(undone):
            for record in reversed(e.before):
                record.apply()
        s.explain, s.counters, s.pager = target.settings
        del self.entries[self.entries.index(target):]
        names = [e.text for e in undone if e.step]
        return (f"undone: {names[0]}" if len(names) == 1 else f"undone {len(names)} steps: "
                + "; ".join(names)) + f" (pid {s.pid} current)"

    # -- listing and saving ------------------------------------------------------------
    def listing(self) -> list[str]:
        steps = self.steps()
        if not steps:
            return ["no steps yet"]
        width = len(str(len(steps)))
        lines = [f"  {i:>{width}}  {e.text}" for i, e in enumerate(steps, 1)]
        kept = sum(bool(e.before) for e in steps)
        if kept:
            lines.append(f"undo takes back step {len(steps)}, back N the last N: up to {kept} (undo keeps "
                         f"the last {MAX_UNDO} steps)")
        else:
            lines.append(f"none of these can be taken back: undo keeps only the last {MAX_UNDO} steps")
        return lines

    def script(self) -> str:
        head = ("# Saved at the mmshell prompt: the commands that ran, refused ones and failed\n"
                "# expectations left out. `mmshell run` of this file ends in the same state.\n")
        return head + self.commands()

    def commands(self) -> str:
        """The commands that ran, one a line (what `save` writes and `compare` runs)."""
        return "".join(e.text + "\n" for e in self.entries)

    def save(self, path: Path) -> str:
        if path.exists():
            raise JournalError(f"save: EEXIST: {path} exists; save to a new file")
        if path.suffix != ".mmsh":
            raise JournalError(f"save: EINVAL: {path}: a script's name ends in .mmsh")
        try:
            path.write_text(self.script())
        except OSError as e:
            raise JournalError(f"save: {e.strerror or e}: {path}") from None
        return f"saved {len(self.entries)} command(s) to {path}"
