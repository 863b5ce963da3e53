"""The differential corpus: every tests/kernel/*.mmsh on the live kernel and in the simulator.

On a machine where a live run is possible (root, zram) each scenario runs through
`mmshell kernel diff`'s comparison: it must show no difference that is not marked
`# known difference:` in the scenario, and every expectation must hold on both
sides.  Elsewhere that test skips with the reason; the simulator half (every
scenario's expectations hold in mainline mode, invariants checked after each step)
runs everywhere.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest

from mmshell.lang.runner import run_text
from mmshell.lang.session import Session
from mmshell.mm.config import Config

HERE = Path(__file__).resolve().parent
CORPUS = sorted(HERE.glob("*.mmsh"))
IDS = [p.name for p in CORPUS]


def _live_unavailable() -> str | None:
    if platform.system() != "Linux":
        return f"the live runner needs Linux (this is {platform.system()})"
    from mmshell.kernel.devices import missing_requirements

    missing = missing_requirements()
    if missing:
        return "a live run needs " + "; ".join(missing)
    if os.environ.get("MMSHELL_SKIP_KERNEL"):
        return "MMSHELL_SKIP_KERNEL is set"
    return None


LIVE_SKIP = _live_unavailable()


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("path", CORPUS, ids=IDS)
def test_corpus_holds_in_the_simulator(path: Path) -> None:
    session = Session.boot(Config(pmd_swap=False), debug_vm=True)
    records: list = []
    outcome = run_text(session, path.read_text(), path.name, records.append, base=path.parent)
    assert outcome.exit_status() == 0, "\n".join(r.error for r in records if r.error)


def _problems(res) -> list[str]:
    out = [f"{d.source}:{d.line}: {d.command}: {d.what}: kernel {d.kernel}, simulator {d.simulator}"
           for d in res.unknown]
    out += [f"on the live kernel: {e}" for e in res.kernel_failed]
    out += [f"in the simulator: {e}" for e in res.sim_failed]
    return out


@pytest.mark.skipif(LIVE_SKIP is not None, reason=LIVE_SKIP or "")
@pytest.mark.parametrize("path", CORPUS, ids=IDS)
def test_kernel_diff(path: Path) -> None:
    """No unexplained difference, every expectation held on both sides.

    /proc/vmstat counts for the whole machine: another process that faults, frees or
    splits a THP, or takes a major fault, during a step moves the counters too.  So a
    scenario that shows a problem runs once more, and only a problem seen both times fails.
    """
    from mmshell.kernel.diff import diff_script

    name = str(path.relative_to(HERE.parents[1]))
    first = _problems(diff_script(name, path.read_text()))
    if not first:
        return
    again = _problems(diff_script(name, path.read_text()))
    assert not again, ("the kernel and the simulator differ (seen twice):\n" + "\n".join(again)
                       + "\nfirst run:\n" + "\n".join(first))
