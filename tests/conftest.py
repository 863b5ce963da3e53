"""Session-wide hooks: the summary of the random suites, gathered across pytest-xdist workers.

The README's test command runs the suite on every CPU (`-n auto`, pytest-xdist). Each
worker counts its own stateful runs (mmsh_machine.STATS), reach findings
(mmsh_reach.FOUND) and branch-coverage data files (mmsh_coverage.DIR); a worker hands
its counts to the controller when it finishes (`workeroutput`), and the controller, or
the one process of a run without xdist, prints the summary (steps and refusals per mode,
the reach table, branch coverage of mmshell/mm).

The live-kernel tests (tests/kernel) share the machine's swap devices and THP knobs and
take a machine-wide lock, and each stateful module forks its second mode beside the
first: `xdist_group` keeps each of those on one worker (`--dist loadgroup`).
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path

import pytest

import mmsh_coverage
import mmsh_reach
from mmsh_machine import STATS
from mmsh_summary import refusal_lines


@pytest.fixture
def python_sigint():
    """SIGINT raises KeyboardInterrupt during the test, as in a terminal.  A background job
    (`cmd &` in a script, nohup) inherits SIGINT ignored, and Python leaves it so; a test
    that interrupts itself needs Python's own handler.  The inherited one comes back after."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


#: Test files whose tests run on one worker, in file order (see the module doc).
GROUPED = {"kernel": "live-kernel", "test_stateful.py": "stateful", "test_equivalence.py": "equivalence"}


def _worker(config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "xdist_group(name): the tests of one group run on one pytest-xdist worker")
    cache = getattr(config, "cache", None)
    mmsh_coverage.DIR = (cache.mkdir("mmshell") / "coverage" if cache is not None
                         else Path(str(config.rootpath)) / "build" / "mmshell-coverage")
    if not _worker(config):             # the workers start after this: their files are new
        for stale in mmsh_coverage.DIR.glob(".coverage.*"):
            stale.unlink()


@pytest.hookimpl(tryfirst=True)       # before pytest-xdist reads the groups into the node ids
def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        path = Path(str(item.fspath))
        group = GROUPED.get(path.name) or GROUPED.get(path.parent.name)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


def pytest_sessionfinish(session) -> None:
    if _worker(session.config):
        session.config.workeroutput["mmshell"] = json.dumps(
            {"stats": {mode: dict(st) for mode, st in STATS.items()}, "found": mmsh_reach.FOUND})


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """A worker finished: add its counts to the controller's."""
    data = json.loads(getattr(node, "workeroutput", {}).get("mmshell", "{}") or "{}")
    for mode, st in data.get("stats", {}).items():
        STATS.setdefault(mode, Counter()).update(st)
    for defect, found in data.get("found", {}).items():
        mmsh_reach.FOUND.setdefault(defect, found)


def pytest_terminal_summary(terminalreporter) -> None:
    if _worker(terminalreporter.config):     # the controller prints, and combines the coverage data
        return
    if STATS:
        terminalreporter.section("mmshell stateful runs")
        for mode, st in sorted(STATS.items()):
            if mode == "fuzz":
                fuzzed = ", ".join(f"{n} {what}" for what, n in sorted(st.items()))
                terminalreporter.write_line(f"fuzzed inputs: {fuzzed} ({sum(st.values())} in all)")
                continue
            for line in refusal_lines(mode, st):
                terminalreporter.write_line(line)
    if mmsh_reach.REACH and mmsh_reach.FOUND:
        terminalreporter.section("mmshell reach (issue 9's defects)")
        for line in mmsh_reach.table(mmsh_reach.FOUND):
            terminalreporter.write_line(line)
    cov = mmsh_coverage.report()
    if cov is not None:
        terminalreporter.section("mmshell/mm branch coverage (random suites)")
        for line in cov[0]:
            terminalreporter.write_line(line)
