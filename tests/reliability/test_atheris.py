"""A short, bounded atheris (libFuzzer) session over the language, when atheris is installed.

scripts/fuzz_atheris.py holds the harness; this runs it for a fixed number of
inputs with a fixed seed (MMSHELL_ATHERIS_RUNS, default 15000: about 15 s).
Longer sessions: `scripts/fuzz_atheris.py -max_total_time=600 -max_len=256 corpus/`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow      # coverage-guided fuzzing in a subprocess

pytest.importorskip("atheris")

ROOT = Path(__file__).resolve().parents[2]


def test_atheris_session(tmp_path: Path) -> None:
    runs = int(os.environ.get("MMSHELL_ATHERIS_RUNS", 15000))
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "fuzz_atheris.py"), f"-runs={runs}",
                          "-seed=1", "-max_len=256", f"-artifact_prefix={tmp_path}/"],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    log = out.stderr + out.stdout
    assert out.returncode == 0, log[-4000:]
    done = re.search(r"Done (\d+) runs in (\d+) second", log)
    assert done and int(done.group(1)) == runs, log[-2000:]
    from mmsh_machine import STATS
    from collections import Counter

    STATS.setdefault("fuzz", Counter())["atheris inputs"] += runs
