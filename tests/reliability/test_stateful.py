"""mmshell cannot be caught lying: random command sequences in both modes, checked after every step.

The rules are the .mmsh commands (see mmsh_machine.py); after every step the
invariant checker and the shadow of page contents must agree with the
machine, and a refused command must leave the whole state as it was.  The
profile (`HYPOTHESIS_PROFILE`, default `ci`; see mmsh_profiles.py) sets how many
steps: 150 examples (at least 13,000 rule steps) per mode in CI, about 300,000
rule steps with `HYPOTHESIS_PROFILE=long python3 -m pytest tests/reliability/test_stateful.py`.

`MMSHELL_REACH=all` runs them as the reach check of issue 9's defects
(mmsh_reach.py): on a tree without their fixes each must be found.

The two modes run at the same time on a machine with two CPUs: the mainline run
goes to a forked child when the first test starts, and its test waits for it
(set MMSHELL_STATEFUL_PARALLEL=0 to run them one after the other).  The child's
Hypothesis report (the falsifying example, if any) is printed by that test.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import sys
import time
import traceback
from collections import Counter
from contextlib import redirect_stdout

import pytest
from hypothesis.stateful import run_state_machine_as_test

import mmsh_coverage
import mmsh_machine as machine
import mmsh_reach as reach
from mmsh_profiles import PROFILE, stateful_settings

pytestmark = pytest.mark.slow      # Hypothesis state machines: minutes per mode

MIN_STEPS_CI = 13_000


class SeriesMachine(machine.MmshMachine):
    PMD_SWAP = True


class MainlineMachine(machine.MmshMachine):
    PMD_SWAP = False


MACHINES = {"series": SeriesMachine, "mainline": MainlineMachine}


Result = tuple[str | None, Counter, str, dict]


def run_mode(mode: str) -> Result:
    """Run one mode's state machine; (failure text or None, its stats, Hypothesis output, reach findings)."""
    machine.STATS.pop(mode, None)
    out = io.StringIO()
    t = time.perf_counter()
    failure = None
    try:
        with redirect_stdout(out), mmsh_coverage.measure(mode):
            run_state_machine_as_test(MACHINES[mode], settings=stateful_settings())
    except BaseException as e:      # noqa: BLE001 -- reported in full by the test
        failure = "".join(traceback.format_exception(e))
    stats = machine.STATS.get(mode, Counter())
    stats["wall"] = time.perf_counter() - t
    return failure, stats, out.getvalue(), {d: f for d, f in reach.FOUND.items() if f["mode"] == mode}


def _child(mode: str, conn) -> None:
    try:
        conn.send(run_mode(mode))
    finally:
        conn.close()


class _Background:
    """One mode run in a forked child, started once, joined by its test."""

    def __init__(self, mode: str) -> None:
        ctx = multiprocessing.get_context("fork")
        self.mode = mode
        self.recv, send = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_child, args=(mode, send), daemon=True)
        self.proc.start()
        send.close()

    def result(self) -> Result:
        try:
            res = self.recv.recv()
        except EOFError:
            res = (f"the {self.mode} child died (exit code {self.proc.exitcode})", Counter(), "", {})
        self.proc.join()
        return res


def _parallel() -> bool:
    return os.environ.get("MMSHELL_STATEFUL_PARALLEL", "1") != "0" and (os.cpu_count() or 1) >= 2 \
        and sys.platform.startswith("linux")


@pytest.fixture(scope="module")
def background() -> dict[str, _Background]:
    return {"mainline": _Background("mainline")} if _parallel() else {}


@pytest.mark.parametrize("mode", ["series", "mainline"])
def test_stateful(mode: str, background: dict[str, _Background]) -> None:
    job = background.get(mode)
    failure, stats, report, found = job.result() if job is not None else run_mode(mode)
    machine.STATS[mode] = stats
    for defect, f in found.items():
        reach.FOUND.setdefault(defect, f)
    if report:
        print(report)
    if reach.REACH:
        if reach.REACH_JSON:
            reach.save(reach.REACH_JSON, mode, found)
        print("\n".join(reach.table(found)))
        for defect, f in sorted(found.items()):
            print(f"defect {defect}, first found by example {f['example']} at its step {f['step']}:",
                  *f["script"], f"  -> {f['text']}", sep="\n  ")
    assert failure is None, failure
    if PROFILE == "ci" and not os.environ.get("MMSHELL_STATEFUL_EXAMPLES") and not reach.REACH:
        assert stats["rules"] >= MIN_STEPS_CI, f"only {stats['rules']} rule steps in {mode}"
