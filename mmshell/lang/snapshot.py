"""A fast deep copy of the machine, taken before each command so a refusal can restore it.

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
from typing import Any

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


_SLOTS: dict[type, tuple[str, ...]] = {}


def _slot_names(cls: type) -> tuple[str, ...]:
    names = _SLOTS.get(cls)
    if names is None:
        found: list[str] = []
        for c in cls.__mro__:
            slots = c.__dict__.get("__slots__", ())
            found += [slots] if isinstance(slots, str) else [s for s in slots if s not in ("__dict__", "__weakref__")]
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
    if t is bytearray:
        new: Any = bytearray(obj)
    elif t is array:
        new = array(obj.typecode, obj)
    elif t is dict:
        if _all_plain(obj.values()) and _all_plain(obj.keys()):
            new = dict(obj)
        else:
            new = {}
            memo[key] = new
            for k, v in obj.items():
                new[snapshot(k, memo)] = snapshot(v, memo)
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
