"""The differential corpus: every tests/kernel/*.mmsh on the live kernel and in the simulator.

When asked for (MMSHELL_LIVE_TESTS=1, which .ci/run sets) on a machine where a live run
is possible (root, zram), each scenario runs through `mmshell kernel diff`'s comparison: it must show no difference that is not marked
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


#: The environment variable that asks for the live-kernel tests (.ci/run sets it).
LIVE_TESTS_VAR = "MMSHELL_LIVE_TESTS"


def _live_unavailable() -> str | None:
    """Why the live-kernel tests do not run here, or None when they do: only when asked for
    (they add swap devices, write the THP and khugepaged knobs, make a memory cgroup and kill
    a run on purpose, all undone after), as root, on Linux with zram."""
    if os.environ.get(LIVE_TESTS_VAR) != "1":
        return (f"live-kernel test: it changes this machine while it runs (swap devices, THP knobs, a "
                f"memory cgroup); set {LIVE_TESTS_VAR}=1 to run it (as root, with zram)")
    if platform.system() != "Linux":
        return f"the live runner needs Linux (this is {platform.system()})"
    from mmshell.kernel.devices import missing_requirements

    missing = missing_requirements()
    if missing:
        return "a live run needs " + "; ".join(missing)
    return None


LIVE_SKIP = _live_unavailable()


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("path", CORPUS, ids=IDS)
def test_corpus_holds_in_the_simulator(path: Path) -> None:
    """Every expectation holds in mainline mode, but those on a line marked `# known difference:`
    (what the kernel does that the simulator does not do yet: the kernel's numbers are expected)."""
    from mmshell.kernel.diff import known_differences

    session = Session.boot(Config(pmd_swap=False), debug_vm=True)
    records: list = []
    text = path.read_text()
    run_text(session, text, path.name, records.append, base=path.parent)
    known, whole = known_differences(text)
    problems = [r.error for r in records if r.error and not (
        r.kind == "expect-failed" and r.source == path.name and (whole or r.line in known))]
    assert not problems, "\n".join(problems)


def _problems(res) -> list[str]:
    out = [f"{d.source}:{d.line}: {d.command}: {d.what}: kernel {d.kernel}, simulator {d.simulator}"
           for d in res.unknown]
    out += [f"on the live kernel: {e}" for e in res.kernel_failed]
    out += [f"in the simulator: {e}" for e in res.sim_failed]
    return out


#: How many times a corpus script runs before a difference it shows each time fails the test.
RUNS = 3


@pytest.mark.slow
@pytest.mark.skipif(LIVE_SKIP is not None, reason=LIVE_SKIP or "")
@pytest.mark.parametrize("path", CORPUS, ids=IDS)
def test_kernel_diff(path: Path) -> None:
    """No unexplained difference, every expectation held on both sides.

    Two things outside the script move what it sees: /proc/vmstat counts for the whole machine
    (another process that faults, frees or splits a THP, or takes a major fault, during a step
    moves the counters too), and a DAMON monitor, where one runs, clears the accessed bits of
    the pages it samples, so a `reclaim` can see one reference where the script made two
    (diff.py `damon_note`; about one run in ten of corpus 127 on a loaded machine).  So a
    scenario that shows a problem runs again, up to RUNS times, and fails only when every run
    showed one.
    """
    from mmshell.kernel.diff import diff_script

    name = str(path.relative_to(HERE.parents[1]))
    runs: list[list[str]] = []
    while len(runs) < RUNS:
        problems = _problems(diff_script(name, path.read_text()))
        if not problems:
            return
        runs.append(problems)
    pytest.fail(f"the kernel and the simulator differ (seen in all {RUNS} runs):\n"
                + "\n".join(f"run {i + 1}:\n" + "\n".join(p) for i, p in enumerate(runs)))
