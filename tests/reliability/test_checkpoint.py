"""The checkpoint before each command: per-process tables save what a command reaches, and only that.

A refused command must change nothing (test_transactions.py checks every refusal
path); here: the PidTable's own rules (save once, nest, drop what was added), and
that a command's checkpoint holds the processes it reached, not all of them.
"""

from __future__ import annotations

from dataclasses import fields

import pytest

from mmsh_state import state_dump
from mmshell.lang import budget
from mmshell.lang.execute import execute
from mmshell.lang.parser import parse_line
from mmshell.lang.runner import run_text
from mmshell.lang.session import Session
from mmshell.lang.snapshot import Checkpoint, snapshot
from mmshell.mm.config import Config
from mmshell.mm.errors import MmError
from mmshell.mm.mm_types import MmStruct
from mmshell.mm.pgtable import Pmd
from mmshell.mm.pidtable import PidTable


def test_rollback_puts_back_reached_entries_and_drops_added_ones() -> None:
    t: PidTable[list[int]] = PidTable({1: [1], 2: [2]})
    t.open_level(snapshot)
    t[1].append(10)
    t[3] = [3]
    del t[2]
    t.rollback()
    assert dict(t) == {1: [1], 2: [2]}
    assert not t.levels


def test_peek_saves_nothing_and_commit_keeps_changes() -> None:
    t: PidTable[list[int]] = PidTable({1: [1], 2: [2]})
    t.open_level(snapshot)
    assert t.peek(2) == [2]
    t[1].append(10)
    assert set(t.levels[-1]) == {1}
    t.commit()
    assert dict(t) == {1: [1, 10], 2: [2]}


@pytest.mark.parametrize("inner_undo", [True, False])
def test_nested_levels_share_a_copy_and_undo_independently(inner_undo: bool) -> None:
    t: PidTable[list[int]] = PidTable({1: [1]})
    t.open_level(snapshot)                  # outer
    t.open_level(snapshot)                  # inner: both levels save pid 1's entry once
    t[1].append(2)
    assert t.levels[0][1] is t.levels[1][1]
    if inner_undo:
        t.rollback()
        assert t[1] == [1]
        t[1].append(3)                      # the live entry is not the outer level's copy
    else:
        t.commit()
    t.rollback()
    assert dict(t) == {1: [1]}


def test_unsettled_is_what_the_open_checkpoint_reached() -> None:
    t: PidTable[int] = PidTable({1: 1, 2: 2})
    assert t.unsettled() == {1, 2}
    t.open_level(snapshot)
    clock = t.clock
    assert t.unsettled() == set()
    _ = t[1]
    assert t.unsettled() == {1} and t.stamped_since(clock) == [1]
    t.commit()


def _run(s: Session, text: str) -> None:
    for cmd in parse_line(text):
        execute(s, cmd)


def _session(script: str) -> Session:
    s = Session.boot(Config())
    assert run_text(s, script, "setup").exit_status() == 0
    return s


def test_a_command_saves_the_processes_it_reaches_only() -> None:
    s = _session("mmap a 4M; touch a; " + "fork; " * 20 + "switch 5")
    cp = Checkpoint(s)                      # an outer level records every pid the command reached
    _run(s, "mmap b 1M")
    mms, shadow, regions = cp.tables
    assert set(mms.levels[-1]) == {5} and set(regions.levels[-1]) <= {5}
    assert set(shadow.levels[-1]) <= {5}
    cp.rollback()


def test_rollback_of_a_refused_command_inside_an_outer_checkpoint() -> None:
    s = _session("mmap a 4M; touch a; fork; fork")
    whole = state_dump(s)
    outer = Checkpoint(s)
    _run(s, "@2 touch a")
    mid = state_dump(s)
    with pytest.raises(MmError):
        _run(s, "@3 touch nosuch")
    assert state_dump(s) == mid
    outer.rollback()
    assert state_dump(s) == whole


def test_the_tally_kept_command_by_command_equals_a_fresh_count() -> None:
    s = _session("mmap a 4M; touch a; fork; fork")
    steps = ["@2 munmap a+2M:2M", "@3 touch a:4K", "exit 2", "@3 mmap b 2M", "@3 touch b", "fork",
             "@1 touch nosuch", "@4 munmap a", "swapon z 8M", "madvise a pageout", "@3 mmap a 4K"]
    for text in steps:
        try:
            _run(s, text)
        except MmError:
            pass
        cp = Checkpoint(s)
        kept = budget.process_tally(s.kernel)
        fresh = budget.ProcessTally()
        fresh.update(s.kernel)
        assert (kept.totals, kept.nr_ptes, kept.per_pid) == (fresh.totals, fresh.nr_ptes, fresh.per_pid), text
        cp.commit()


def test_the_copy_of_a_process_is_equal_and_shares_nothing_mutable() -> None:
    s = _session("mmap a 4M hugepage; mmap b 1M; touch a; touch b; swapon z 8M; madvise b:64K pageout; fork")
    mm = s.kernel.mms.peek(1)
    assert mm is not None
    c = snapshot(mm)
    for f in fields(MmStruct):
        if f.name not in ("vmas", "pmds"):
            assert getattr(c, f.name) == getattr(mm, f.name), f.name
    assert c.vmas == mm.vmas and not {id(v) for v in c.vmas} & {id(v) for v in mm.vmas}
    assert c.pmds.keys() == mm.pmds.keys()
    for i, p in mm.pmds.items():
        q = c.pmds[i]
        assert q is not p and all(getattr(q, f.name) == getattr(p, f.name) for f in fields(Pmd) if f.name != "table")
        assert (p.table is None) == (q.table is None)
        if p.table is not None and q.table is not None:
            assert q.table.ptes == p.table.ptes and q.table.ptes is not p.table.ptes


def test_stores_into_vmas_are_undone_from_the_journal() -> None:
    s = _session("mmap a 64K; mmap c 1M; touch c")
    whole = state_dump(s)
    vmas_before = [(v.start, v.end, v.flags, v.anon_vma) for v in s.kernel.mms.peek(1).vmas]  # type: ignore[union-attr]
    cp = Checkpoint(s)
    _run(s, "mmap b 64K; madvise a hugepage; mprotect c:64K r; fork; @2 touch c+64K:64K")
    assert state_dump(s) != whole
    cp.rollback()
    assert state_dump(s) == whole
    assert [(v.start, v.end, v.flags, v.anon_vma) for v in s.kernel.mms.peek(1).vmas] == vmas_before  # type: ignore[union-attr]


def test_the_mem_map_is_put_back_above_and_below_its_high_water_mark() -> None:
    s = _session("mmap a 4M hugepage; touch a:2M; munmap a:2M; mmap b 8M; touch b:64K")
    whole = state_dump(s)
    hwm = s.kernel.mem.hwm
    cp = Checkpoint(s)
    _run(s, "touch b; touch a+2M:2M; fork; @2 touch b")
    assert s.kernel.mem.hwm > hwm
    cp.rollback()
    assert s.kernel.mem.hwm == hwm and state_dump(s) == whole


def test_the_lru_lists_are_put_back_in_their_order() -> None:
    s = _session("set thp never; swapon z0 16M; mmap a 1M; touch a; mmap b 1M; touch b; "
                 "madvise a+256K:64K pageout; touch a")
    whole = state_dump(s)
    order = (s.kernel.lru.inactive(), s.kernel.lru.active())
    assert order[0]
    cp = Checkpoint(s)
    _run(s, "madvise b:128K pageout; munmap a:256K; touch b; reclaim 64K")
    assert (s.kernel.lru.inactive(), s.kernel.lru.active()) != order
    cp.rollback()
    assert (s.kernel.lru.inactive(), s.kernel.lru.active()) == order and state_dump(s) == whole
