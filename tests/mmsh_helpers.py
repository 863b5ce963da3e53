"""Shared test helpers: every test machine runs with the invariant checker on (debug_vm)."""

from __future__ import annotations

from mmshell.lang.runner import Outcome, StepRecord, run_text
from mmshell.lang.session import Session
from mmshell.mm.config import Config


class Run:
    """A script run in one mode: its session, records and outcome."""

    def __init__(self, text: str, pmd_swap: bool, **config) -> None:
        self.session = Session.boot(Config(pmd_swap=pmd_swap, **config), debug_vm=True)
        self.records: list[StepRecord] = []
        self.outcome: Outcome = run_text(self.session, text, "test.mmsh", self.records.append)

    @property
    def k(self):
        return self.session.kernel

    def errors(self) -> list[str]:
        return [r.error for r in self.records if r.error]

    def ok(self) -> "Run":
        assert self.outcome.exit_status() == 0, self.errors()
        return self


def run(text: str, pmd_swap: bool = True, **config) -> Run:
    return Run(text, pmd_swap, **config)


class TooMuchWork(AssertionError):
    """More Python function calls than a test's bound: the work is not bounded as it should be."""


def bounded_calls(limit: int, fn, *args, **kwargs):
    """fn(*args, **kwargs), its Python function calls counted and stopped past `limit`: a bound
    on the work done that holds however loaded the machine is (tests assert no wall-clock time)."""
    import sys

    calls = 0

    def count(frame, event, arg) -> None:
        nonlocal calls
        if event == "call":
            calls += 1
            if calls > limit:
                raise TooMuchWork(f"more than {limit:,} calls")

    previous = sys.getprofile()
    sys.setprofile(count)
    try:
        return fn(*args, **kwargs)
    finally:
        sys.setprofile(previous)
