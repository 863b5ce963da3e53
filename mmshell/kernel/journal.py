"""The undo journal of a live run: what to put back if the run dies before its tear-down.

A live run changes the machine: it writes sysfs knobs, sets up swap devices,
creates files and a memory cgroup.  Its tear-down undoes all of that, also on
errors, Ctrl-C and SIGTERM; but a run killed outright (SIGKILL, the OOM
killer) never gets there.  So every undo step is also written, as data, to a
journal file (state.py: a directory only root can write) before the change it
undoes is made, and the file is removed once the tear-down is done.  The next
live run, or `mmshell kernel recover`, holding the run lock, replays a journal
left behind, newest step first, and says what it put back.

Replay trusts nothing in the file.  Each step is one of the few kinds a live
run writes, with the arguments that kind has (`check_step`); anything else is
refused and reported.  And each step proves that the thing is still the dead
run's before touching it (the kinds' own `undo` functions: a zram or loop
device by its disk sequence number, a swap area by the UUID the run wrote in
its header, a file or directory by device and inode, a knob by holding a value
the run wrote, everything but files by the boot the journal was written in);
what cannot be proven is left alone and named in one line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from .state import StateDir, UnsafeState, boot_id

__all__ = ["Journal", "LeftBehind", "NotProven", "Step"]

VERSION = 2


class NotProven(Exception):
    """An undo step whose thing cannot be proven to be the dead run's: left alone (the message says why)."""


@dataclass(frozen=True)
class Step:
    """One undo step as data: `what` names the action, `args` its JSON-able arguments by name."""

    what: str
    args: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> list:
        return [self.what, self.args]

    def with_args(self, **changes: Any) -> "Step":
        return Step(self.what, {**self.args, **changes})

    def __str__(self) -> str:
        return f"{self.what} " + " ".join(f"{k}={v}" for k, v in self.args.items())


@dataclass
class LeftBehind:
    """A journal a run left behind: who wrote it, in which boot, and its steps as read."""

    pid: int | None
    boot: str | None
    steps: list[Any]

    @property
    def same_boot(self) -> bool:
        try:
            return self.boot == boot_id()
        except OSError:
            return False


@dataclass
class Journal:
    """The undo steps of the running live run, kept on disk as they are added.

    `add()` writes the whole journal again before the caller makes the change;
    `replace()` fills in what is known only once the thing exists (a device's
    sequence number, a file's inode); `drop()` forgets a step once it has been
    undone in the normal way; `close()` removes the file.  With no state
    directory the journal is kept in memory only (tests, and parts used alone).
    """

    state: StateDir | None = None
    steps: list[Step] = field(default_factory=list)

    def add(self, step: Step) -> Step:
        self.steps.append(step)
        self._write()
        return step

    def replace(self, old: Step, new: Step) -> Step:
        self.steps[self.steps.index(old)] = new
        self._write()
        return new

    def drop(self, step: Step) -> None:
        if step in self.steps:
            self.steps.remove(step)
            self._write()

    def close(self) -> None:
        self.steps.clear()
        if self.state is not None:
            self.state.remove_journal()

    def _write(self) -> None:
        if self.state is None:
            return
        data = {"version": VERSION, "pid": os.getpid(), "boot_id": boot_id(),
                "steps": [s.to_json() for s in self.steps]}
        self.state.write_journal(json.dumps(data).encode())

    # -- recovery --------------------------------------------------------------------------------------
    @staticmethod
    def left_behind(state: StateDir) -> LeftBehind | None:
        """The journal a dead run left, or None; one that cannot be read as a journal has no steps
        (and is reported by the caller).  Raises UnsafeState when the file is not one a run wrote."""
        raw = state.read_journal()
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("version") != VERSION:
                return LeftBehind(None, None, [])
            pid = data.get("pid")
            boot = data.get("boot_id")
            steps = data.get("steps")
            return LeftBehind(pid if isinstance(pid, int) else None, boot if isinstance(boot, str) else None,
                              steps if isinstance(steps, list) else [])
        except (ValueError, UnicodeDecodeError):
            return LeftBehind(None, None, [])

    @staticmethod
    def replay(items: list[Any], undo: Callable[[Step], str | None],
               check: Callable[[Any], Step]) -> tuple[list[str], list[str], list[Step]]:
        """Undo `items` newest first: each is checked (`check` raises ValueError for anything a
        live run does not write) and undone with `undo` (which returns what it did, or None when
        there was nothing left to do, and raises NotProven to leave a thing alone).

        Returns (what was done, one line per step left alone, refused or failed, the steps that
        failed and should be tried again, oldest first).  Never raises.
        """
        done: list[str] = []
        notes: list[str] = []
        failed: list[Step] = []
        for item in reversed(items):
            try:
                step = check(item)
            except (ValueError, TypeError, KeyError) as e:
                notes.append(f"refused a journal step no live run writes ({str(item)[:120]}): {e}")
                continue
            try:
                what = undo(step)
            except NotProven as e:
                notes.append(f"left alone: {e}")
                continue
            except (OSError, RuntimeError, UnsafeState) as e:
                notes.append(f"could not {step.what} ({e}); kept for the next run")
                failed.insert(0, step)
                continue
            if what:
                done.append(what)
        return done, notes, failed
