"""Every .mmsh scenario and example runs clean in both modes, invariants checked after each step."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmsh_helpers import run

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*ROOT.glob("examples/*.mmsh"), *ROOT.glob("tests/scenarios/**/*.mmsh")])


@pytest.mark.parametrize("path", SCRIPTS, ids=[str(p.relative_to(ROOT)) for p in SCRIPTS])
@pytest.mark.parametrize("mode", [True, False], ids=["series", "mainline"])
def test_script(path: Path, mode: bool) -> None:
    r = run(path.read_text(), pmd_swap=mode)
    assert r.outcome.exit_status() == 0, "\n".join(r.errors())
    assert r.outcome.steps > 0
