"""The swap cache's per-slot table (mmshell/mm/swap_table.py; mm/swap_table.h in 6.18).

Each slot of a device has one entry: the head pfn of the folio caching it, or
nothing.  A folio enters and leaves as one slice; lookups read like the mapping
slot -> head pfn; the count of cached slots follows every change.
"""

from __future__ import annotations

import pytest

from mmshell.mm.swap_table import SwapTable


def test_a_folio_enters_and_leaves_as_one_slice() -> None:
    t = SwapTable(2048)
    t.add(512, 512, 77)
    t.add(1030, 1, 5)
    assert len(t) == 513 and t
    assert t.get(512) == 77 and t.get(1023) == 77 and t[1030] == 5
    assert t.get(1024) is None and t.get(1024, -1) == -1 and 1024 not in t and 1030 in t
    assert t.any_in(1000, 100) and t.any_in(1030, 1) and not t.any_in(0, 512) and not t.any_in(1031, 5000)
    assert list(t.items()) == [(s, 77) for s in range(512, 1024)] + [(1030, 5)]
    assert list(t) == [*range(512, 1024), 1030] and set(t.values()) == {77, 5}
    with pytest.raises(KeyError):
        t[0]
    t.delete(512, 512)
    assert len(t) == 1 and list(t.items()) == [(1030, 5)]
    t.delete(1030, 1)
    assert not t and len(t) == 0 and list(t.items()) == [] and not t.any_in(0, 2048)


def test_setting_one_entry_keeps_the_count() -> None:
    """A split swap-cache THP points each slot at its own new folio (huge_split.py), one entry at
    a time; the invariant checker's tests write entries directly too."""
    t = SwapTable(600)
    t.add(0, 4, 9)
    t[1] = 10           # held -> held
    t[100] = 3          # empty -> held
    t[2] = 0            # held -> empty
    assert len(t) == 4 and list(t.items()) == [(0, 9), (1, 10), (3, 9), (100, 3)]
    assert t != SwapTable(600)
    other = SwapTable(600)
    for s, p in t.items():
        other[s] = p
    assert other == t and len(other) == len(t)
