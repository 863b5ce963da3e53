"""mypy finds no error in the package (the [tool.mypy] section of pyproject.toml says what it checks)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                    reason="mypy is not installed (it is in the test extra: pip install -e '.[test]')")
def test_mypy_reports_no_errors() -> None:
    # Run from the checkout so mypy reads its pyproject.toml and keeps its incremental
    # cache in .mypy_cache there: a run after the first takes well under a second.
    r = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"mypy found errors:\n{r.stdout}{r.stderr}"
    assert "no issues found" in r.stdout
