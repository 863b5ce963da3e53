"""The step summary at the finest grain (views/step_diff.py): the PTEs that changed, the
swap slots that changed, and VMA changes, never the whole table or "no change"."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings, strategies as st

from mmshell.mm.access import access_range
from mmshell.mm.mprotect import sys_mprotect
from mmshell.mm.vma import VM
from mmshell.views.step import StepView, digest
from mmshell.views.step_diff import slot_changes, slot_state_text, vma_changes

M = 1 << 20


def squeeze(s: str) -> str:
    return " ".join(s.split())


def mainline_swapped(machine):
    """Mainline: one THP written and paged out, 512 swap PTEs in one table."""
    m = machine(pmd_swap=False)
    m.mmap("a", 2 * M)
    m.touch("a")
    m.madvise("a", "pageout")
    return m


def read_back(machine, off: int, length: int) -> StepView:
    """The step that reads [off, off+length) of a THP swapped out in mainline (a table of swap PTEs)."""
    m = mainline_swapped(machine)
    before = digest(m.k)
    m.touch("a", off, length, write=False)
    return StepView(before, digest(m.k), m.names)


def test_one_pte_read_back_is_that_pte_and_that_slot(machine, text) -> None:
    view = read_back(machine, 3 * 4096, 4096)
    out = squeeze(text(view))
    assert "a+0x0 1 PTE 3: swap s0 slot 0x203 excl → present pfn 0x1 W excl" in out
    assert "0-2 swap" not in out and "4-511" not in out and "table:" not in out     # not the whole table
    assert "slot 0x203: count 1 → free" in out
    js = view.to_json()
    assert [(c["level"], c["old"]) for c in js["pmds"]] == [("pte", "PTE 3: swap s0 slot 0x203 excl")]
    assert js["pmds"][0]["ptes"] == [{"first": 3, "last": 3, "old": "swap s0 slot 0x203 excl",
                                      "new": "present pfn 0x1 W excl"}]
    assert js["swap"][0]["slots"] == [{"first": 0x203, "last": 0x203, "old": {"count": 1, "cache": False},
                                       "new": None}]
    assert max(len(ln) for ln in text(view).splitlines() if "PTE" in ln) < 80    # not 150-character tables


def test_a_run_of_ptes_is_one_line(machine, text) -> None:
    out = squeeze(text(read_back(machine, 0x10000, 0x3000)))
    assert "PTEs 16-18: swap s0 slots 0x210-0x212 excl → present pfn 0x1..0x3 W excl" in out
    assert "slots 0x210-0x212: count 1 → free" in out


def test_old_and_new_runs_cover_the_same_ptes(machine) -> None:
    """Old PTEs that run on (slots 0x210-0x212) against new ones that do not (pages read out
    of order, their pfns not in index order): run j of old and of new cover the same PTEs."""
    m = mainline_swapped(machine)
    before = digest(m.k)
    for i in (18, 16, 17):
        m.touch("a", i * 4096, 4096, write=False)
    [change] = StepView(before, digest(m.k), m.names).changes
    assert [(r.lo, r.hi) for r in change.old.descs[0].runs] == [(r.lo, r.hi) for r in change.new.descs[0].runs]
    ptes = change.ptes()
    assert len(ptes) > 1 and {i for p in ptes for i in range(p["first"], p["last"] + 1)} == {16, 17, 18}


def test_a_kind_change_is_shown_whole(machine, text) -> None:
    """A PMD whose kind changes (THP -> table of swap PTEs) is shown old -> new whole."""
    m = machine(pmd_swap=False)
    m.mmap("a", 2 * M)
    m.touch("a")
    before = digest(m.k)
    m.madvise("a", "pageout")
    js = StepView(before, digest(m.k), m.names).to_json()
    assert [(c["level"], c["new"]) for c in js["pmds"]] == [("pmd", "table: 0-511 swap s0 slots 0x200-0x3ff excl")]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pages=st.sets(st.integers(0, 511), min_size=1, max_size=12))
def test_the_ptes_shown_are_exactly_the_ptes_read(machine, pages: set[int]) -> None:
    """Read some pages of a swapped-out mainline THP: the PTE-level change lists exactly those
    indices (runs folded), and the slot changes exactly their slots."""
    m = mainline_swapped(machine)
    a = m.names["a"][0]
    before = digest(m.k)
    for i in sorted(pages):
        access_range(m.k, m.mm, a + i * 4096, a + (i + 1) * 4096, False)
    js = StepView(before, digest(m.k), m.names).to_json()
    [change] = js["pmds"]
    shown: set[int] = set()
    for part in change["old"].split("; "):
        idx = part.split(":")[0].split()[1]
        lo, _, hi = idx.partition("-")
        shown |= set(range(int(lo), int(hi or lo) + 1))
    assert change["level"] == "pte" and shown == pages
    slots = {s for c in js["swap"][0]["slots"] for s in range(c["first"], c["last"] + 1)}
    assert slots == {0x200 + i for i in pages}


def test_vma_changes_are_changes(machine, text) -> None:
    """mmap, mprotect and madvise hugepage change VMAs only: never 'no change'."""
    m = machine()
    before = digest(m.k)
    m.mmap("a", 2 * M)
    view = StepView(before, digest(m.k), m.names)
    assert not view.empty and "unmapped → rw-p hugepage" in squeeze(text(view))
    before = digest(m.k)
    sys_mprotect(m.k, m.mm, m.names["a"][0], 2 * M, VM.READ)
    view = StepView(before, digest(m.k), m.names)
    assert "1 a+0x0" in squeeze(text(view))                        # where: named after its region
    assert view.to_json()["vmas"] == [{"pid": 1, "start": m.names["a"][0], "end": m.names["a"][0] + 2 * M,
                                       "old": "rw-p hugepage", "new": "r--p hugepage"}]
    assert "rw-p hugepage → r--p hugepage" in squeeze(text(view))


def test_slot_and_vma_diffs_fold_and_order() -> None:
    before = [(0, 9, 1, False), (20, 29, 2, True)]
    after = [(0, 3, 1, False), (5, 9, 1, False), (20, 29, 1, True)]
    assert slot_changes(before, after) == [
        {"first": 4, "last": 4, "old": {"count": 1, "cache": False}, "new": None},
        {"first": 20, "last": 29, "old": {"count": 2, "cache": True}, "new": {"count": 1, "cache": True}}]
    assert slot_changes(after, after) == []
    assert vma_changes({(0, 4): "rw-p"}, {(0, 2): "rw-p", (2, 4): "r--p"}) == [
        {"start": 0, "end": 2, "old": None, "new": "rw-p"}, {"start": 0, "end": 4, "old": "rw-p", "new": None},
        {"start": 2, "end": 4, "old": None, "new": "r--p"}]


def runs_of(values: list) -> list[tuple[int, int, int, bool]]:
    out: list[tuple[int, int, int, bool]] = []
    for i, v in enumerate(values):
        if v is None:
            continue
        if out and out[-1][1] == i - 1 and out[-1][2:] == v:
            out[-1] = (out[-1][0], i, *v)
        else:
            out.append((i, i, *v))
    return out


def test_slot_changes_match_a_slot_by_slot_diff() -> None:
    """Changed slot ranges found from run boundaries agree with a slot-by-slot diff, and like
    neighbours are merged."""
    rng = random.Random(11)
    choices = [None, (1, False), (0, True), (2, False), (1, True)]

    def state(v):
        return None if v is None else {"count": v[0], "cache": v[1]}
    for _ in range(300):
        n = rng.randrange(1, 40)
        old = [rng.choice(choices) for _ in range(n)]
        new = [v if rng.random() < 0.7 else rng.choice(choices) for v in old]
        got = slot_changes(runs_of(old), runs_of(new))
        expanded = {i: (c["old"], c["new"]) for c in got for i in range(c["first"], c["last"] + 1)}
        want = {i: (state(a), state(b)) for i, (a, b) in enumerate(zip(old, new)) if a != b}
        assert expanded == want
        for c1, c2 in zip(got, got[1:]):
            assert not (c2["first"] == c1["last"] + 1 and (c1["old"], c1["new"]) == (c2["old"], c2["new"]))
        assert all(slot_state_text(c["old"]) != slot_state_text(c["new"]) for c in got)


def _per_index(desc) -> list[tuple]:
    """A table description as one entry per PTE index (the reference pte_diff is checked against)."""
    out = []
    for r in desc.runs:
        for i in range(r.lo, r.hi + 1):
            out.append((r.kind, r.dev, r.flags, r.base + (i - r.lo) if r.slides else r.base))
    return out


OPS = st.lists(st.tuples(st.sampled_from(("read", "write", "pageout", "dontneed", "fork")),
                         st.integers(0, 1023), st.integers(1, 64)), min_size=1, max_size=8)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_pte_diff_names_exactly_the_ptes_whose_entry_changed(machine, ops) -> None:
    """Random reads, writes, page-outs, MADV_DONTNEED and forks over a split mainline THP: each
    PTE-level change lists exactly the indices whose entry (kind, device, flags, pfn or slot)
    differs, old and new as they were."""
    from mmshell.mm.fork import sys_fork
    from mmshell.views.describe import describe_pmd

    m = mainline_swapped(machine)
    m.touch("a", 0, 4096)
    a = m.names["a"][0]
    for op, first, n in ops:
        off, length = first * 4096 % (2 * M), min(n * 4096, 2 * M - first * 4096 % (2 * M))
        before = {i: describe_pmd(m.k, p) for i, p in m.mm.pmds.items()}
        d0 = digest(m.k)
        if op == "fork":
            sys_fork(m.k, m.mm)
        elif op in ("read", "write"):
            access_range(m.k, m.mm, a + off, a + off + length, op == "write")
        else:
            m.madvise("a", op, off, length)
        after = {i: describe_pmd(m.k, p) for i, p in m.mm.pmds.items()}
        view = StepView(d0, digest(m.k), m.names)
        for c in view.changes:
            if c.pid != 1 or c.level != "pte":
                continue
            for k, (old, new) in enumerate(zip(c.old.descs, c.new.descs)):
                idx = c.first + k
                ref_old, ref_new = _per_index(before[idx]), _per_index(after[idx])
                want = {i for i in range(512) if ref_old[i] != ref_new[i]}
                got = {i for r in old.runs for i in range(r.lo, r.hi + 1)}
                assert got == want == {i for r in new.runs for i in range(r.lo, r.hi + 1)}
                assert all(ref_old[i] == _per_index_of(old, i) and ref_new[i] == _per_index_of(new, i) for i in got)
        # and every table that changed and stayed a table is reported
        for idx in set(before) & set(after):
            if before[idx].kind == after[idx].kind == "table" and before[idx] != after[idx]:
                if _per_index(before[idx]) != _per_index(after[idx]):
                    assert any(c.pid == 1 and c.first <= idx <= c.last for c in view.changes)


def _per_index_of(desc, i: int) -> tuple:
    r = next(r for r in desc.runs if r.lo <= i <= r.hi)
    return (r.kind, r.dev, r.flags, r.base + (i - r.lo) if r.slides else r.base)


def test_a_new_process_is_said_once_not_vma_by_vma(machine) -> None:
    from mmshell.mm.fork import sys_fork

    m = machine()
    m.mmap("a", 2 * M)
    before = digest(m.k)
    child = sys_fork(m.k, m.mm)
    view = StepView(before, digest(m.k), m.names)
    assert view.new_pids == [child.pid] and view.vmas == []
