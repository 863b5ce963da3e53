"""The host memory budget (lang/budget.py): the state is costed item by item, and a command
that would take it past the budget is refused (before it starts where it can be bounded)."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from mmshell.lang import budget
from mmshell.lang.budget import COST, footprint, process_cost
from mmshell.mm.constants import HOST_BUDGET

from mmsh_helpers import run
from mmsh_state import state_dump

#: The issue's script, scaled down: mapped memory, forks, swap out and in.
SCRIPT = """set ram 256M
swapon s0 256M
mmap a 64M hugepage
touch a
fork
fork
fork
reclaim
touch a read
check a
"""


def test_the_footprint_counts_every_costed_item() -> None:
    r = run("set ram 64M\nswapon s0 64M kind disk\nmmap a 4M hugepage\nmmap b 2M nohugepage\ntouch a\ntouch b:8K\n"
            "madvise a+2M:2M pageout\nfork\n", pmd_swap=False).ok()
    counts = footprint(r.k).counts
    assert counts["frames"] == 64 << 8 and counts["swap slots"] == 64 << 8
    assert counts["PMD entries"] == 6 and counts["VMAs"] == 4              # a, b in both processes
    assert counts["page tables"] == 4                                     # b's, and a+2M's split, in each
    assert counts["contents blocks"] == 6
    assert counts["cached slots"] == 512
    assert footprint(r.k).bytes == sum(COST[i] * n for i, n in counts.items())
    assert process_cost(r.k, 2) == 3 * COST["PMD entries"] + 2 * COST["page tables"] + 3 * COST["contents blocks"] \
        + 2 * COST["VMAs"]


def test_the_costs_bound_what_the_host_spends() -> None:
    """Each item's cost is what CPython spends on it, within a quarter (an upper bound mostly)."""
    from mmshell.lang.runner import run_text
    from mmshell.lang.session import Session

    session = Session.boot()                     # no invariant checker: its own allocations would count
    assert run_text(session, "set ram 128M\nswapon s0 128M\nmmap a 32M hugepage\nmmap b 8M nohugepage\n",
                    "t.mmsh").exit_status() == 0
    # One-time costs that are no item's: the modules of the fault and reclaim paths, loaded by
    # their first command, and the LRU's ramp, grown as frames first come into use (costed with
    # the frames at `set ram`).
    assert run_text(session, "mmap w 48M nohugepage\ntouch w\nmadvise w pageout\nmunmap w\n",
                    "t.mmsh").exit_status() == 0

    def spent(text: str) -> tuple[int, int]:
        before = footprint(session.kernel).bytes
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        assert run_text(session, text, "t.mmsh").exit_status() == 0
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        return used, footprint(session.kernel).bytes - before
    for text in ("touch a\n", "touch b\n", "set pmd_swap off\nmadvise a pageout\n", "fork\n"):
        used, costed = spent(text)
        assert 0.75 * used <= costed <= 1.25 * used, (text, used, costed)


def test_a_command_past_the_budget_is_refused_before_it_starts(monkeypatch) -> None:
    r = run(SCRIPT.split("fork")[0]).ok()
    now = footprint(r.k).bytes
    # room for one copy of pid 1 and a little more
    monkeypatch.setattr(budget, "HOST_BUDGET", now + process_cost(r.k, 1) * 3 // 2)
    for mode in (True, False):
        r = run(SCRIPT, pmd_swap=mode)
        errors = r.errors()
        assert errors[0] == ("test.mmsh:6: fork: ENOMEM: a copy of pid 1 could add 0.1 MiB of host memory to "
                             "the 3.9 MiB the simulation holds: beyond its budget of 4.0 MiB (the most is 65536 "
                             "frames, 2.9 MiB)"), errors
        assert sorted(r.k.mms) == [1, 2]                                  # the first fork ran, no other
        assert footprint(r.k).bytes <= budget.HOST_BUDGET


def test_mainline_reclaim_is_bounded_by_the_tables_it_splits(monkeypatch) -> None:
    from mmshell.lang.runner import run_text

    r = run(SCRIPT.split("reclaim")[0] + "mmap b 4M hugepage\ntouch b\n", pmd_swap=False).ok()
    start, length = r.session.names()["a"]
    assert budget.reclaim_bound(r.k, 1, start, start + length) == 0       # MADV_PAGEOUT skips shared THPs
    b, length = r.session.names()["b"]
    assert budget.reclaim_bound(r.k, 1, b, b + length) == 2 * COST["page tables"]
    tables = (4 * 32 + 2) * COST["page tables"]                           # 32 THPs in 4 processes, and b
    assert budget.reclaim_bound(r.k, None) == tables
    monkeypatch.setattr(budget, "HOST_BUDGET", footprint(r.k).bytes + tables - 1)
    records: list = []
    run_text(r.session, "reclaim\nmadvise b pageout\n", "t.mmsh", records.append, keep_going=True)
    assert records[0].error == ("t.mmsh:1: reclaim: ENOMEM: splitting the PMDs of the THPs it swaps out could "
                                f"add 0.6 MiB of host memory to the {budget._mib(footprint(r.k).bytes - 2 * COST['page tables'])}"
                                f" the simulation holds: beyond its budget of {budget._mib(budget.HOST_BUDGET)} (the "
                                "most is 65536 frames, 2.9 MiB)")
    assert records[1].kind == "ok"                                        # 2 tables fit
    monkeypatch.setattr(budget, "HOST_BUDGET", footprint(r.k).bytes + tables)
    assert run_text(r.session, "reclaim\n", "t.mmsh").exit_status() == 0


def test_a_command_that_ends_past_the_budget_is_undone(monkeypatch) -> None:
    from mmshell.lang.runner import run_text

    r = run("mmap a 8M\n").ok()
    before = state_dump(r.session)
    monkeypatch.setattr(budget, "HOST_BUDGET", footprint(r.k).bytes + 1000)

    records: list = []
    run_text(r.session, "swapon s1 64M\n", "t.mmsh", records.append)
    assert records[0].error.startswith("t.mmsh:1: swapon: ENOMEM: the simulation would hold ")
    assert "beyond its budget of" in records[0].error
    assert state_dump(r.session) == before


def test_the_budget_is_stated() -> None:
    assert HOST_BUDGET == 1536 << 20
    # the largest machine fits with room for processes
    assert (64 << 18) * (COST["frames"] + COST["swap slots"]) < HOST_BUDGET * 2 // 3


@pytest.fixture(autouse=True)
def _no_leak():
    yield
    if tracemalloc.is_tracing():
        tracemalloc.stop()


def test_a_read_bounds_a_table_only_where_none_is() -> None:
    """After mainline reclaim every 2 MiB is a table of swap PTEs: reading it back adds no
    host memory (its small folios' frames and LRU links are there from `set ram`); after the
    series' reclaim a PMD swap entry is read back as a THP, costed a table as any PMD-level
    entry's read may need one."""
    r = run(SCRIPT.split("touch a read")[0], pmd_swap=False).ok()
    start, length = r.session.names()["a"]
    assert budget.range_bound(r.k, 1, start, start + length, False) == 0
    r = run(SCRIPT.split("touch a read")[0], pmd_swap=True).ok()         # PMD swap entries: a THP each
    assert budget.range_bound(r.k, 1, start, start + length, False) == 32 * COST["page tables"]


def test_a_walk_short_of_frames_counts_what_its_direct_reclaim_may_split() -> None:
    r = run("set ram 16M\nswapon s0 64M\nmmap a 8M hugepage\ntouch a\nfork\nmmap b 8M hugepage\n",
            pmd_swap=False).ok()
    b, length = r.session.names()["b"]
    free = r.k.mem.alloc.nr_free
    assert free < length >> 12
    split = budget.reclaim_bound(r.k, None)
    assert split == 8 * COST["page tables"]                               # a's 4 THPs in both processes
    short, enough = (b, b + length), (b, b + (free >> 1 << 12))
    with_split = [budget.range_bound(r.k, 1, *span, True) for span in (short, enough)]
    r.k.config.pmd_swap = True                      # the same walks where reclaim splits nothing
    without = [budget.range_bound(r.k, 1, *span, True) for span in (short, enough)]
    assert [w - wo for w, wo in zip(with_split, without)] == [split, 0]
