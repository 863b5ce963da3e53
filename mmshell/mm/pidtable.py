"""Per-process tables that save a process's entry before a command first reaches it.

The shell refuses a command whole: a refused command leaves the machine as it
was.  A copy of the whole machine before every command costs what the machine
holds, every process's page tables and VMAs, so a script of N forks or N mmaps
cost O(N^2).  The per-process parts of the state are `PidTable`s instead
(`Kernel.mms`, `Shadow.procs`, the session's region names): while a checkpoint
is open (`open_level`), the first time a command reaches a pid's entry (looks it
up, stores or removes it) the entry as it was is saved, once; `rollback` puts
the saved entries back and drops the ones the command added, `commit` forgets
them.  A command pays for the processes it reached, not for all of them.

Every mutation of an entry goes through a lookup first, so a reader that
changes nothing may look without saving (`peek`, `peek_values`).  Each lookup
also stamps the pid: a value computed from an entry no command reached since
stays valid while the pid's stamp is unchanged (`stamped_since`, `unsettled`:
lang/budget.py caches per-process counts so).

Checkpoints nest (a command inside `expect fails source FILE`): levels are a
stack, and an entry saved for an inner level is saved for every outer level
that has not saved it yet (the state at both starts is the same).

This is the simulation's own bookkeeping; the kernel has nothing like it.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any, Callable, Iterable, TypeVar

V = TypeVar("V")

#: The value a level saves for a pid that had no entry when the command reached it.
_ABSENT: Any = object()


class PidTable(dict[int, V]):
    """A dict pid -> entry whose entries are saved before their first use in an open checkpoint."""

    __slots__ = ("levels", "copy_entry", "stamps", "clock")

    def __init__(self, items: Iterable[tuple[int, V]] | dict[int, V] = ()) -> None:
        super().__init__(items)
        self.levels: list[dict[int, Any]] = []
        self.copy_entry: Callable[[Any], Any] | None = None
        self.stamps: dict[int, int] = {}
        self.clock = 0

    # -- the checkpoint -----------------------------------------------------------------
    def open_level(self, copy_entry: Callable[[Any], Any]) -> None:
        """Start saving entries (copied with `copy_entry`) as a command first reaches them."""
        self.copy_entry = copy_entry
        self.levels.append({})

    def commit(self) -> None:
        """The innermost checkpoint's command succeeded: forget what it saved."""
        self.levels.pop()

    def rollback(self) -> None:
        """Put back every entry the innermost checkpoint saved; drop the entries it added."""
        self.restore(self.levels.pop())

    def detach(self) -> dict[int, Any]:
        """End the innermost checkpoint keeping what its command did, as `commit` does, and
        return what it saved: `restore` of it later puts the entries back (the shell's undo)."""
        return self.levels.pop()

    def restore(self, saved: dict[int, Any]) -> None:
        """Put back the entries a level saved (its `rollback`, or a detached level's undo when
        the table is again as it was when the level was detached); drop the ones it added."""
        for pid, old in saved.items():
            self._stamp(pid)
            if old is _ABSENT:
                dict.pop(self, pid, None)
                continue
            if any(level.get(pid) is old for level in self.levels):
                # an outer level holds the same copy: the live entry must be another one
                old = self._copy(old)
            dict.__setitem__(self, pid, old)

    def _copy(self, value: Any) -> Any:
        if self.copy_entry is None:
            raise RuntimeError("PidTable: no copier (open_level was never called)")
        return self.copy_entry(value)

    def reach(self, pid: int) -> None:
        """The command is about to use (and may change) pid's entry: save it first."""
        self._stamp(pid)
        if not self.levels or pid in self.levels[-1]:
            return                      # saved in the innermost level: in every level (they nest)
        old: Any = _ABSENT
        for level in self.levels:
            if pid not in level:
                if old is _ABSENT and dict.__contains__(self, pid):
                    old = self._copy(dict.__getitem__(self, pid))
                level[pid] = old

    def _stamp(self, pid: int) -> None:
        self.clock += 1
        stamps = self.stamps
        stamps.pop(pid, None)           # kept in stamp order: see stamped_since
        stamps[pid] = self.clock

    def stamped_since(self, clock: int) -> list[int]:
        """The pids reached after `clock` (a past value of `self.clock`), newest first."""
        out = []
        for pid, stamp in reversed(self.stamps.items()):
            if stamp <= clock:
                break
            out.append(pid)
        return out

    def unsettled(self) -> set[int]:
        """The pids the innermost open checkpoint's command reached (every pid when none is open)."""
        return set(self.levels[-1]) if self.levels else set(dict.keys(self))

    # -- reads that change nothing --------------------------------------------------------
    def peek(self, pid: int) -> V | None:
        """pid's entry, for a reader that changes nothing (not saved, not stamped)."""
        return dict.get(self, pid)

    def peek_values(self) -> Iterable[V]:
        """Every entry, for a reader that changes nothing."""
        return dict.values(self)

    def peek_items(self) -> Iterable[tuple[int, V]]:
        """Every (pid, entry), for a reader that changes nothing (the invariant checkers)."""
        return dict.items(self)

    # -- the dict interface, each access reaching the pids it uses ------------------------
    def __getitem__(self, pid: int) -> V:
        self.reach(pid)
        return dict.__getitem__(self, pid)

    def get(self, pid: int, default: Any = None) -> Any:
        if dict.__contains__(self, pid):
            self.reach(pid)
            return dict.__getitem__(self, pid)
        return default

    def setdefault(self, pid: int, default: Any = None) -> Any:
        self.reach(pid)
        return dict.setdefault(self, pid, default)

    def __setitem__(self, pid: int, value: V) -> None:
        self.reach(pid)
        dict.__setitem__(self, pid, value)

    def __delitem__(self, pid: int) -> None:
        self.reach(pid)
        dict.__delitem__(self, pid)

    def pop(self, pid: int, *default: Any) -> Any:
        self.reach(pid)
        return dict.pop(self, pid, *default)

    def values(self) -> Any:
        for pid in list(dict.keys(self)):
            self.reach(pid)
        return dict.values(self)

    def items(self) -> Any:
        for pid in list(dict.keys(self)):
            self.reach(pid)
        return dict.items(self)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for pid, value in dict(*args, **kwargs).items():
            self[pid] = value

    def clear(self) -> None:
        for pid in list(dict.keys(self)):
            self.reach(pid)
        dict.clear(self)

    def popitem(self) -> tuple[int, V]:
        if dict.__len__(self):
            self.reach(next(reversed(dict.keys(self))))
        return dict.popitem(self)

    def copy(self) -> "PidTable[V]":
        return self.__deepcopy__({}, shallow=True)

    def __deepcopy__(self, memo: dict, shallow: bool = False) -> "PidTable[V]":
        """A table with no open checkpoint and copies of the entries (the same entries if shallow)."""
        new: PidTable[V] = PidTable()
        memo[id(self)] = new
        for pid, value in dict.items(self):
            dict.__setitem__(new, pid, value if shallow else deepcopy(value, memo))
        return new

    def __reduce__(self) -> Any:
        return (PidTable, (dict(dict.items(self)),))
