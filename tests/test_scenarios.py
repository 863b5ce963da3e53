"""Every .mmsh scenario and example runs clean in both modes, invariants checked after each step."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmsh_helpers import run

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*ROOT.glob("examples/*.mmsh"), *ROOT.glob("tests/scenarios/**/*.mmsh")])
#: The scenarios that take seconds (memory pressure, swap count continuations of many forks).
LONG = {"examples/memory-pressure.mmsh", "tests/scenarios/fallbacks/f4_fork_count_continuation.mmsh",
        "tests/scenarios/fallbacks/f8_swap_dup_failure.mmsh",
        "tests/scenarios/regressions/fork_swap_cont_retry.mmsh"}


def _param(p: Path) -> object:
    name = str(p.relative_to(ROOT))
    return pytest.param(p, id=name, marks=[pytest.mark.slow] if name in LONG else [])


@pytest.mark.parametrize("path", [_param(p) for p in SCRIPTS])
@pytest.mark.parametrize("mode", [True, False], ids=["series", "mainline"])
def test_script(path: Path, mode: bool) -> None:
    r = run(path.read_text(), pmd_swap=mode)
    assert r.outcome.exit_status() == 0, "\n".join(r.errors())
    assert r.outcome.steps > 0
