"""What the prompt remembers of the commands it ran: `history`, `undo`, `back N`, `save FILE`.

Every command that ran (not refused, no failed expectation) is logged with
its text.  A command that may change something (all but `show`, `help`,
`expect`, `expect fails` and a bare `check`) is a *step*: before it runs,
the machine (kernel, current pid, region names) and the display settings are
copied with lang/snapshot.py, the copy the command's own refusal uses.
`undo` puts the copy of the last step back, so the machine is byte for byte
what it was; `back N` does so for the last N steps.  Only the last
MAX_UNDO steps keep their copy, and only as many as fit in UNDO_BUDGET of host
memory (each copy costs what the machine costs, lang/budget.py); older steps
stay in the log for `save`.

`save FILE` writes the log as a .mmsh script: run with `mmshell run FILE`, it
ends in the same state, because the prompt's machine boots as `mmshell run`
boots one, and each command is run as the prompt ran it (`source` with its
path made absolute).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..lang.parser import Command
from ..lang.session import Session
from ..lang.snapshot import snapshot
from ..lang.budget import footprint
from ..lang.topics import MAX_UNDO, UNDO_BUDGET

__all__ = ["MAX_UNDO", "Journal", "JournalError", "is_step"]

#: Commands that only look: logged for `save`, never a step.
LOOKING = frozenset({"show", "help", "expect", "expect_fails", "timing"})


class JournalError(Exception):
    """A shell command that cannot be done: its one line says why."""


def is_step(cmd: Command) -> bool:
    """Whether `cmd` may change the machine or what is printed (undo returns past it)."""
    if cmd.name == "check":
        return cmd.args.get("range") is not None
    return cmd.name not in LOOKING


@dataclass(slots=True)
class _Entry:
    text: str
    step: bool
    before: Any = None          # the machine before the step, while it is among the last MAX_UNDO
    cost: int = 0               # host bytes of that copy


class Journal:
    """The log of one prompt session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.entries: list[_Entry] = []

    # -- recording ---------------------------------------------------------------------
    def checkpoint(self) -> Any:
        """A copy of everything a step may change (taken before it runs)."""
        s = self.session
        return snapshot((s.kernel, s.pid, s.regions, s.explain, s.counters, s.pager))

    def record(self, cmd: Command, before: Any) -> None:
        """Log a command that ran; `before` is its checkpoint (None for a looking command)."""
        text = cmd.text or str(cmd)
        if cmd.name == "source":
            text = f"source {Path(cmd.args['path']).resolve()}"
        kept = before if is_step(cmd) else None
        cost = footprint(kept[0]).bytes if kept is not None else 0
        self.entries.append(_Entry(text, is_step(cmd), kept, cost))
        total, n = 0, 0
        for e in reversed(self.entries):      # newest first: keep what fits, drop the older copies
            if e.before is None:
                continue
            total, n = total + e.cost, n + 1
            if n > MAX_UNDO or total > UNDO_BUDGET:
                e.before = None

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
        if target.before is None:
            raise JournalError(f"back: EINVAL: only the last {MAX_UNDO} steps can be undone, as long as "
                               f"their copies fit in {UNDO_BUDGET >> 20} MiB "
                               f"({sum(e.before is not None for e in steps)} kept)")
        s = self.session
        s.kernel, s.pid, s.regions, s.explain, s.counters, s.pager = target.before
        undone = self.entries[self.entries.index(target):]
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
        kept = sum(e.before is not None for e in steps)
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
