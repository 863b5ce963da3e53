"""`show map` on the live kernel draws what the simulator draws (mainline), from /proc/PID/pagemap."""

from __future__ import annotations

import pytest

from mmshell.views.map import LABEL_WIDTH, ROWS
from test_kernel_diff import LIVE_SKIP

#: A THP swapped out to zram, then 3 of its pages read back: mainline gives 3 `p` and 509 `s`.
ROUND_TRIP = """set pmd_swap off
swapon z 64M
mmap a 2M hugepage
touch a
show map
madvise a pageout
show map
touch a+0x0:12K read
show map
"""


def grids(text: str) -> list[list[str]]:
    """The cell columns of the first grid of each `show map` in a run's output (labels dropped)."""
    lines = text.splitlines()
    return [[ln[LABEL_WIDTH:] for ln in lines[i + 1:i + 1 + ROWS]]
            for i, ln in enumerate(lines) if ln.startswith("map of pid")]


def test_grids_of_the_simulator(capsys) -> None:
    from mmshell.report import run_sources

    assert run_sources([("-c", ROUND_TRIP.replace("\n", "; "))], debug_vm=True) == 0
    sim = grids(capsys.readouterr().out)
    assert [len(g) for g in sim] == [16, 16, 16]
    assert sim[0] == ["H" * 64] * 16
    assert " ".join(sim[2]).split() == ["p"] * 3 + ["s"] * 509


@pytest.mark.skipif(LIVE_SKIP is not None, reason=LIVE_SKIP or "")
def test_live_kernel_draws_the_same_mainline_map(tmp_path, capsys) -> None:
    from mmshell.kernel.report import run_live
    from mmshell.report import run_sources

    assert run_sources([("-c", ROUND_TRIP.replace("\n", "; "))], debug_vm=True) == 0
    sim = capsys.readouterr().out
    assert run_live([("round_trip.mmsh", ROUND_TRIP)]) == 0
    live = capsys.readouterr().out
    assert grids(live) == grids(sim)
    assert "p 3" in live and "s 509" in live
