"""expect PATH completion: the shapes come from the registry, every candidate evaluates."""

from __future__ import annotations

import pytest
from mmsh_helpers import run

from mmshell.lang.sim_observer import evaluate
from mmshell.shell.paths import PathShape, path_candidates, path_shapes

SETUP = "swapon s0 64M\nmmap a 4M hugepage\ntouch a\nmadvise a pageout\n"


def test_shapes_are_read_from_help_expect() -> None:
    assert [str(s) for s in path_shapes()] == [
        "vmstat.NAME", "mthp.NAME", "smaps.NAME.FIELD", "pmd.ADDR", "pte.ADDR",
        "pagemap.ADDR.FIELD", "swap.NAME.used", "swapmap.NAME.OFFSET", "swapcache.NAME.OFFSET",
        "meminfo.FIELD", "pid",
    ]
    assert path_shapes()[2] == PathShape(("smaps", "NAME", "FIELD"))
    assert path_shapes()[2].head == "smaps"


def _every_path(session) -> list[str]:
    """Every full path completion can build, an OFFSET filled with slot 1."""
    done, todo = [], [""]
    while todo:
        typed = todo.pop()
        _, words = path_candidates(session, typed)
        base = typed.rsplit(".", 1)[0] + "." if "." in typed else ""
        if not words:
            done.append(base + "1")
        for w in words:
            (todo if w.text.endswith(".") else done).append(base + w.text)
    return sorted(done)


@pytest.mark.parametrize("pmd_swap", [True, False])
def test_every_completed_path_evaluates(pmd_swap: bool) -> None:
    session = run(SETUP, pmd_swap=pmd_swap).ok().session
    paths = _every_path(session)
    assert len(paths) > 100
    for path in paths:
        evaluate(session, path)           # a PathError here is a completion the language refuses
    assert ("vmstat.thp_swpout_pmd" in paths) is pmd_swap
    for expected in ("pid", "pmd.a", "pte.a", "swap.s0.used", "swapmap.s0.1", "swapcache.s0.1",
                     "smaps.a.AnonHugePages", "pagemap.a.swap_offset", "meminfo.SwapFree",
                     "mthp.swpout", "vmstat.pswpout"):
        assert expected in paths


def test_the_part_being_completed_is_after_the_last_dot() -> None:
    session = run(SETUP).ok().session
    part, words = path_candidates(session, "smaps.a.Anon")
    assert part == "Anon"
    assert "AnonHugePages" in [w.text for w in words]
    assert path_candidates(session, "nosuch.")[1] == []
    assert path_candidates(session, "pid.")[1] == []
    assert path_candidates(session, "smaps.a.Rss.")[1] == []
