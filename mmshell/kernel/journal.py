"""The undo journal of a live run: what to put back if the run dies before its tear-down.

A live run changes the machine: it writes sysfs knobs and sets up swap
devices.  Its tear-down undoes all of that, also on errors, Ctrl-C and
SIGTERM; but a run killed outright (SIGKILL, the OOM killer, a power cut of
the terminal) never gets there.  So every undo step is also written, as data,
to a journal file before the change it undoes is made, and the file is
removed once the tear-down is done.  The next live run, holding the run lock
(machine.run_lock), finds a journal left behind and replays it first, newest
step first, and says what it put back.

Only what the dead run itself recorded is ever undone, and each step checks
that the thing is still what that run made (a zram device of the recorded
size, a loop device over the recorded file, a swap area still active) before
touching it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

__all__ = ["JOURNAL_PATHS", "Journal", "Step", "journal_path", "runtime_path"]

JOURNAL_PATHS = ("/run/mmshell-kernel.journal", "/tmp/mmshell-kernel.journal")


def runtime_path(candidates: tuple[str, ...]) -> Path:
    """The first of candidates whose directory exists (/run before /tmp), else the last."""
    return Path(next((p for p in candidates if os.path.isdir(os.path.dirname(p))), candidates[-1]))


def journal_path() -> Path:
    """Next to the run lock: /run if it is there, else /tmp."""
    return runtime_path(JOURNAL_PATHS)


@dataclass(frozen=True)
class Step:
    """One undo step as data: `what` names the action, `args` its JSON-able arguments."""

    what: str
    args: tuple

    def to_json(self) -> list:
        return [self.what, list(self.args)]

    @classmethod
    def from_json(cls, item: list) -> "Step":
        what, args = item
        return cls(str(what), tuple(args))


@dataclass
class Journal:
    """The undo steps of the running live run, kept on disk as they are added.

    `add()` writes the whole journal again (atomically: a temporary file, then
    rename) before the caller makes the change; `drop()` forgets a step once it
    has been undone in the normal way; `close()` removes the file.  With no
    path the journal is kept in memory only (tests, and parts used on their own).
    """

    path: Path | None = field(default_factory=journal_path)
    steps: list[Step] = field(default_factory=list)

    def add(self, step: Step) -> Step:
        self.steps.append(step)
        self._write()
        return step

    def drop(self, step: Step) -> None:
        if step in self.steps:
            self.steps.remove(step)
            self._write()

    def close(self) -> None:
        self.steps.clear()
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def _write(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = json.dumps({"pid": os.getpid(), "steps": [s.to_json() for s in self.steps]})
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)

    # -- recovery --------------------------------------------------------------------------------------
    @staticmethod
    def left_behind(path: Path | None = None) -> tuple[int | None, list[Step]] | None:
        """(pid, steps) of a journal a dead run left, or None; an unreadable one gives no steps."""
        path = path or journal_path()
        try:
            data = json.loads(path.read_text())
            return int(data["pid"]), [Step.from_json(s) for s in data["steps"]]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return None, []

    @staticmethod
    def replay(steps: list[Step], undo: Callable[[Step], str | None]) -> tuple[list[str], list[str], list[Step]]:
        """Undo `steps` newest first with `undo` (which returns what it did, or None when
        there was nothing left to do); (what was done, errors, the steps that failed, oldest
        first).  Never raises."""
        done: list[str] = []
        errors: list[str] = []
        failed: list[Step] = []
        for step in reversed(steps):
            try:
                what = undo(step)
            except Exception as e:          # noqa: BLE001 -- every step is tried, each error reported
                errors.append(f"{step.what} {' '.join(map(str, step.args))}: {e}")
                failed.insert(0, step)
                continue
            if what:
                done.append(what)
        return done, errors, failed
