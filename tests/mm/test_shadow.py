"""Shadow.drop / as_written: what MADV_FREE let the kernel drop is kept until the page is
written or unmapped, and follows the page through fork, mremap and UFFDIO_MOVE."""

from __future__ import annotations

from array import array

from hypothesis import given, settings, strategies as st

from mmshell.lang.snapshot import snapshot
from mmshell.mm.pidtable import PidTable
from mmshell.mm.shadow import Shadow

P, M2 = 4096, 2 << 20
BASE = 0x7F00_0000_0000
PAGES = 3 * 512                     # pages over three PMDs, so ranges cross PMD boundaries


def _value(sh: Shadow, pid: int, addr: int, as_written: bool) -> int:
    if not as_written:
        return sh.get(pid, addr)
    chunk = sh.as_written(pid).get(addr // M2)
    return chunk[(addr % M2) // P] if chunk is not None else 0


ops = st.lists(st.tuples(st.sampled_from(("write", "write", "drop", "drop", "zero", "move", "fork")),
                         st.integers(0, PAGES - 1), st.integers(1, 700), st.integers(0, PAGES - 1)),
               min_size=1, max_size=12)


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(ops)
def test_shadow_agrees_with_a_page_model(steps) -> None:
    """Each page has a value (what it reads) and a written value (what as_written gives): a
    write sets both, drop zeroes the first, zero both; move and fork carry both."""
    sh = Shadow()
    reads: dict[tuple[int, int], int] = {}
    written: dict[tuple[int, int], int] = {}
    pid, serial = 1, 0
    for op, first, n, other in steps:
        n = min(n, PAGES - first)
        pages = range(first, first + n)
        if op == "write":
            for p in pages:
                serial += 1
                sh.set_run(pid, BASE + p * P, array("Q", [serial]))
                reads[pid, p] = written[pid, p] = serial
        elif op == "drop":
            sh.drop(pid, BASE + first * P, BASE + (first + n) * P)
            for p in pages:
                reads.pop((pid, p), None)
        elif op == "zero":
            sh.zero(pid, BASE + first * P, BASE + (first + n) * P)
            for p in pages:
                reads.pop((pid, p), None)
                written.pop((pid, p), None)
        elif op == "move":
            dst = PAGES + 7 + other         # a destination past the source, not PMD-aligned
            sh.move(pid, BASE + first * P, pid, BASE + dst * P, n * P)
            for model in (reads, written):
                moved = {p: model.pop((pid, p), 0) for p in pages}
                for j in range(n):
                    model.pop((pid, dst + j), None)
                model.update({(pid, dst + j): moved[first + j] for j in range(n) if moved[first + j]})
        else:                               # fork: the child goes on
            sh.copy_process(pid, pid + 1)
            for model in (reads, written):
                model.update({(pid + 1, p): v for (q, p), v in list(model.items()) if q == pid})
            pid += 1
    for (q, p), v in written.items():
        assert reads.get((q, p), 0) in (0, v)
    for q in range(1, pid + 1):
        for p in range(2 * PAGES + 7):
            addr = BASE + p * P
            assert _value(sh, q, addr, False) == reads.get((q, p), 0)
            assert _value(sh, q, addr, True) == written.get((q, p), 0)


def test_a_checkpoint_puts_back_what_was_dropped() -> None:
    """The process's entry is saved whole (lang/snapshot.py copies it): a rolled-back write
    leaves the dropped value as it was."""
    sh = Shadow()
    sh.set_run(1, BASE, array("Q", [5, 6]))
    sh.drop(1, BASE, BASE + 2 * P)
    table: PidTable = sh.procs
    table.open_level(snapshot)
    sh.set_run(1, BASE, array("Q", [9]))
    assert sh.as_written(1)[BASE // M2][:2].tolist() == [9, 6]
    table.rollback()
    assert sh.get(1, BASE) == 0
    assert sh.as_written(1)[BASE // M2][:2].tolist() == [5, 6]
