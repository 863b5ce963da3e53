"""The checkpoint taken before each command so a refusal can put the machine back, and the
fast deep copy it is made with.

`Checkpoint(session)` saves what a command may change at a cost proportional to
what it reaches: the per-process tables (`Kernel.mms`, the shadow's `procs`, the
session's region names) are `PidTable`s that save a process's entry when the
command first reaches it (mm/pidtable.py), a process's VMAs are shared with its
saved copy and put back from the journal of stores into them (mm/vma.py), and the
mem_map is saved below its high-water mark (the frames ever allocated), the LRU lists
as their next links below theirs; the rest of the machine (swap devices and cache, counters: sized
by `swapon` and the pages in use, not by the number of processes or mappings) is
copied whole with `snapshot`.
`rollback()` puts everything back in the same Kernel object; `commit()` keeps
what the command did.  Exactly one of them ends each checkpoint.

`copy.deepcopy` is correct but visits every key and value of every dict on
its own; the machine is mostly containers of plain ints (swap caches, LRU
lists, counters, page-table arrays), so a command spent most of its time
copying them.  `snapshot(obj)` gives the same result as `copy.deepcopy`:

- plain values (int, str, bytes, None, enums, frozen dataclasses) are shared;
- bytearrays and arrays are copied in one call;
- a dict, list, set or tuple whose keys and items are all plain is copied
  shallowly in one call (that *is* a deep copy of it); other containers are
  copied element by element;
- an object with its own `__deepcopy__` uses it; any other object with
  `__slots__` or a `__dict__` gets a new instance with each attribute copied;
- anything else goes to `copy.deepcopy`.

Objects reached twice are copied once (the memo), as `copy.deepcopy` does.
"""

from __future__ import annotations

import copy
from array import array
from dataclasses import is_dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from ..mm.mm_types import MmStruct
from ..mm.pidtable import PidTable
from ..mm.vma import vma_journal_commit, vma_journal_begin, vma_journal_rollback

if TYPE_CHECKING:
    from .session import Session

_PLAIN: set[type] = {int, bool, str, bytes, float, type(None), range}


def _is_plain_type(t: type) -> bool:
    if t in _PLAIN:
        return True
    # __dataclass_params__ is set by @dataclass but not declared by typeshed's DataclassInstance.
    if issubclass(t, Enum) or (is_dataclass(t) and getattr(t, "__dataclass_params__").frozen):
        _PLAIN.add(t)
        return True
    return False


def _all_plain(items) -> bool:
    return all(t in _PLAIN or _is_plain_type(t) for t in set(map(type, items)))


#: Buffers of at least this many items are recycled (a swap device's swap_map and the like).
_RECYCLED_LEN = 1 << 14

#: Copies of large buffers that a committed checkpoint no longer needs, by (type code, length):
#: copying into one costs a memcpy, where a fresh buffer also costs the host a page fault per
#: 4 KiB touched.
_POOL: dict[tuple[str, int], list[Any]] = {}


def _copy_buffer(obj: Any) -> Any:
    code = obj.typecode if type(obj) is array else ""
    if len(obj) >= _RECYCLED_LEN:
        spare = _POOL.get((code, len(obj)))
        if spare:
            new = spare.pop()
            new[:] = obj
            return new
    return array(code, obj) if code else bytearray(obj)


def _recycle(copies: Any) -> None:
    """Give the large buffers among `copies` (no longer referenced) to later copies."""
    for obj in copies:
        t = type(obj)
        if (t is array or t is bytearray) and len(obj) >= _RECYCLED_LEN:
            spare = _POOL.setdefault((obj.typecode if t is array else "", len(obj)), [])
            if len(spare) < 4:
                spare.append(obj)


_SLOTS: dict[type, tuple[str, ...]] = {}


def _slot_names(cls: type) -> tuple[str, ...]:
    names = _SLOTS.get(cls)
    if names is None:
        found: list[str] = []
        for c in cls.__mro__:
            slots = c.__dict__.get("__slots__", ())
            found += [slots] if isinstance(slots, str) else [s for s in slots
                                                             if s not in ("__dict__", "__weakref__")]
        names = _SLOTS[cls] = tuple(found)
    return names


def snapshot(obj: Any, memo: dict[int, Any] | None = None) -> Any:
    """A deep copy of obj (see the module doc)."""
    if memo is None:
        memo = {}
    t: type[object] = type(obj)     # not type[Any], whose __new__ mypy takes for type.__new__
    if t in _PLAIN:
        return obj
    key = id(obj)
    done = memo.get(key)
    if done is not None:
        return done
    if t is bytearray or t is array:
        new: Any = _copy_buffer(obj)
    elif t is dict:
        if _all_plain(obj.values()) and _all_plain(obj.keys()):
            new = dict(obj)
        else:
            new = {}
            memo[key] = new
            for k, v in obj.items():
                new[snapshot(k, memo)] = snapshot(v, memo)
    elif t is PidTable:
        new = PidTable()
        memo[key] = new
        for k, v in dict.items(obj):
            dict.__setitem__(new, k, snapshot(v, memo))
    elif t is list:
        if _all_plain(obj):
            new = list(obj)
        else:
            new = []
            memo[key] = new
            new.extend(snapshot(v, memo) for v in obj)
    elif t is set and _all_plain(obj):
        new = set(obj)
    elif t is tuple:
        new = obj if _all_plain(obj) else tuple(snapshot(v, memo) for v in obj)
    elif _is_plain_type(t):
        return obj
    elif hasattr(obj, "__deepcopy__"):
        new = obj.__deepcopy__(memo)
    elif hasattr(t, "__slots__") or hasattr(obj, "__dict__"):
        new = t.__new__(t)
        memo[key] = new
        setattr_ = object.__setattr__
        for name in _slot_names(t):
            try:
                value = getattr(obj, name)
            except AttributeError:
                continue
            setattr_(new, name, value if type(value) in _PLAIN else snapshot(value, memo))
        if hasattr(obj, "__dict__"):
            for name, value in vars(obj).items():
                setattr_(new, name, value if type(value) in _PLAIN else snapshot(value, memo))
    else:
        return copy.deepcopy(obj, memo)
    memo[key] = new
    return new


#: The Kernel's attributes saved apart, not copied whole: the PidTables (per process), the
#: mem_map (below its high-water mark: MemMap.checkpoint) and the LRU lists (their next links
#: below their high-water mark: Lru.checkpoint).
_APART = frozenset({"mms", "shadow", "mem", "lru"})


class Checkpoint:
    """The machine, the current pid and the region names as they were before a command."""

    __slots__ = ("session", "kernel", "pid", "regions", "tables", "mem", "mem_saved", "lru", "lru_saved",
                 "rest", "copies", "open")

    def __init__(self, session: "Session") -> None:
        self.session = session
        k = self.kernel = session.kernel
        self.pid = session.pid
        if type(session.regions) is not PidTable:
            session.regions = PidTable(session.regions)
        self.regions = session.regions
        self.tables: tuple[PidTable, ...] = (k.mms, k.shadow.procs, session.regions)
        k.mms.open_level(MmStruct.checkpoint_copy)
        k.shadow.procs.open_level(snapshot)
        session.regions.open_level(dict.copy)     # name -> (start, length): the tuples are immutable
        vma_journal_begin()
        self.mem = k.mem
        self.mem_saved = k.mem.checkpoint()
        self.lru = k.lru
        self.lru_saved = k.lru.checkpoint()
        memo: dict[int, Any] = {}
        self.rest: dict[str, Any] = snapshot({name: value for name, value in vars(k).items()
                                              if name not in _APART}, memo)
        self.copies = list(memo.values())
        self.open = True

    def rollback(self) -> None:
        """Put the machine, pid and region names back as they were at the checkpoint."""
        self._close()
        for table in self.tables:
            table.rollback()
        vma_journal_rollback()
        k = self.kernel
        for name in [n for n in vars(k) if n not in self.rest and n not in _APART]:
            delattr(k, name)
        for name, value in self.rest.items():
            setattr(k, name, value)
        k.mem = self.mem
        self.mem.rollback(self.mem_saved)
        k.lru = self.lru
        self.lru.rollback(self.lru_saved)
        self.session.kernel, self.session.pid, self.session.regions = k, self.pid, self.regions

    def commit(self) -> None:
        """Keep what the commands since the checkpoint did."""
        self._close()
        for table in self.tables:
            table.commit()
        vma_journal_commit()
        copies, self.copies, self.rest = self.copies, [], {}
        _recycle(copies)

    def _close(self) -> None:
        if not self.open:
            raise RuntimeError("a checkpoint ends once")
        self.open = False
