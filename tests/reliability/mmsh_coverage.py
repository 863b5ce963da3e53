"""Branch coverage of mmshell/mm reached by the random suites alone.

Each stateful run (series, mainline, lockstep; the mainline one in a forked
child) measures itself with coverage.py, branch coverage of the package
mmshell.mm only, over a share of its examples (one in MMSHELL_COVERAGE, 6 by
default: tracing every line of the core makes a step about 2.6 times slower;
the examples are deterministic, so the share is the same every run), into its
own data file under the pytest cache
(`.pytest_cache/d/mmshell/coverage/`, or `build/mmshell-coverage/` without the
cache plugin).  At the end of the session the conftest combines them and
prints branch coverage per mm module; the full JSON report (every missing
branch) is written beside the data as `coverage.json`, which
`scripts/uncovered_branches` turns into the list in docs/reliability.md.

Off when coverage.py is not installed, when something else is already
tracing (pytest-cov, a debugger), or with MMSHELL_COVERAGE=0; MMSHELL_COVERAGE=1
measures every example.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

#: Where the data files go; set by the conftest (pytest_configure).
DIR: Path | None = None
PACKAGE = "mmshell.mm"
#: One example in SHARE is measured (0: none).
SHARE = int(os.environ.get("MMSHELL_COVERAGE", "6") or 0)

_active: Any = None         # the running suite's Coverage, between measure()'s start and end
_tracing = False


def enabled() -> bool:
    if SHARE <= 0 or DIR is None or sys.gettrace() is not None:
        return False
    try:
        import coverage  # noqa: F401
    except ImportError:
        return False
    return True


def _coverage(data_file: Path):
    import coverage

    cov = coverage.Coverage(data_file=str(data_file), branch=True, source_pkgs=[PACKAGE], config_file=False)
    cov.set_option("run:disable_warnings", ["module-not-measured", "no-data-collected"])
    return cov


@contextmanager
def measure(suite: str) -> Iterator[None]:
    """While the block runs, the suite's examples (begin/end) measure mmshell/mm's branches
    into the suite's data file."""
    global _active
    if not enabled():
        yield
        return
    assert DIR is not None
    DIR.mkdir(parents=True, exist_ok=True)
    _active = _coverage(DIR / f".coverage.{suite}")
    try:
        yield
    finally:
        end()
        _active.save()
        _active = None


def begin(example: int) -> None:
    """Example `example` (1, 2, ...) of the running suite starts: trace it if it is in the share."""
    global _tracing
    if _active is not None and not _tracing and (example - 1) % SHARE == 0:
        _active.start()
        _tracing = True


def end() -> None:
    global _tracing
    if _tracing:
        _active.stop()
        _tracing = False


def report() -> tuple[list[str], Path] | None:
    """Combine the suites' data; (summary lines, JSON report path), or None when nothing was measured."""
    if DIR is None or not any(DIR.glob(".coverage.*")):
        return None
    suites = sorted(p.name.split(".", 2)[2] for p in DIR.glob(".coverage.*"))
    cov = _coverage(DIR / ".coverage")
    cov.erase()                 # the last session's combined data
    cov.combine([str(DIR)], keep=True)
    cov.save()
    out = DIR / "coverage.json"
    cov.json_report(outfile=str(out), pretty_print=True)
    data = json.loads(out.read_text())
    share = "every example" if SHARE == 1 else f"one example in {SHARE}"
    lines = [f"branch coverage of mmshell/mm by the random suites ({', '.join(suites)}; {share}):"]
    total_b = total_c = 0
    for path, f in sorted(data["files"].items()):
        s = f["summary"]
        nb, cb = s["num_branches"], s["covered_branches"]
        total_b += nb
        total_c += cb
        if nb:
            lines.append(f"  {Path(path).name:<18} {cb:>4}/{nb:<4} {100 * cb / nb:5.1f}%")
    if total_b:
        lines.append(f"  {'all':<18} {total_c:>4}/{total_b:<4} {100 * total_c / total_b:5.1f}%  "
                     f"(uncovered branches: {out}; scripts/uncovered_branches lists them)")
    # every suite starts over next session: stale data must not be combined in
    for p in DIR.glob(".coverage.*"):
        p.unlink()
    return lines, out
