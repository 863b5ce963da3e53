"""The reach survey's reverts (mmsh_reverts.py) still take each fix out of today's tree.

Each defect's edits must find their text in mmshell/mm exactly once, and the
copy of the tree they leave must bring the defect back: the regression
scenarios of that defect, which pass on this tree, fail there.  Without this,
a moved fix would leave the survey measuring a tree that still has it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mmsh_reverts
from mmsh_reverts import REVERTS, Edit, RevertError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("defect", sorted(REVERTS))
def test_the_revert_brings_the_defect_back(defect: str, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "mmshell", tmp_path / "mmshell", ignore=shutil.ignore_patterns("__pycache__"))
    changed = mmsh_reverts.apply(tmp_path, defect)
    assert changed and all((tmp_path / p).read_text() != (ROOT / p).read_text() for p in changed)
    scenarios = [str(ROOT / s) for s in REVERTS[defect].scenarios]
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    res = subprocess.run([sys.executable, "-m", "mmshell.cli", "--debug-vm", "run", *scenarios],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    summaries = [line for line in res.stdout.splitlines() if line.endswith((": ok", "refused", "failed"))]
    assert res.returncode != 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert len(summaries) >= len(scenarios), summaries
    assert not any(line.endswith(": ok") for line in summaries), summaries


def test_an_edit_whose_text_moved_is_refused() -> None:
    edit = Edit("x.py", "a = 1\n", "a = 2\n")
    assert mmsh_reverts.reverted("b = 0\na = 1\n", edit) == "b = 0\na = 2\n"
    for text in ("b = 0\n", "a = 1\na = 1\n"):
        with pytest.raises(RevertError, match="not once"):
            mmsh_reverts.reverted(text, edit)
