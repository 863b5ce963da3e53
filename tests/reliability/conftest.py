"""Reliability tests: Hypothesis profiles for the stateful tests, and a summary of their steps.

Profiles (`HYPOTHESIS_PROFILE`, default `ci`), used only by the stateful tests
(tests/reliability/test_stateful.py and test_equivalence.py); every other
Hypothesis test keeps its own settings:

- `ci`: deterministic (derandomize), 200 examples (at least 15,000 rule steps)
  per mode, a few minutes per mode on the 2-core CI machine;
- `long`: random, with the example database, about 300,000 rule steps per
  mode: `HYPOTHESIS_PROFILE=long python3 -m pytest tests/reliability/test_stateful.py`.

MMSHELL_STATEFUL_EXAMPLES and MMSHELL_STATEFUL_STEPS override the number of
examples and the steps per example of whichever profile is chosen.

MMSHELL_REACH=all|1..6|new runs the stateful tests in reach mode
(mmsh_reach.py).  MMSHELL_COVERAGE=0 turns the branch coverage of
mmshell/mm off (mmsh_coverage.py).

After the tests, the summary prints per mode the steps, the refused share (the
deliberately invalid ones apart) and the refusals by command and errno, the
reach table in reach mode, and branch coverage per mm module.
"""

from __future__ import annotations

from pathlib import Path

import mmsh_coverage
import mmsh_profiles  # noqa: F401  (registers the profiles)
import mmsh_reach


def pytest_configure(config) -> None:
    cache = getattr(config, "cache", None)
    mmsh_coverage.DIR = (cache.mkdir("mmshell") / "coverage" if cache is not None
                         else Path(str(config.rootpath)) / "build" / "mmshell-coverage")
    for stale in mmsh_coverage.DIR.glob(".coverage.*"):
        stale.unlink()


def refusal_lines(mode: str, st) -> list[str]:
    """The summary of one mode: steps, refused share, deliberate share, refusals by command and errno."""
    wall = st["wall"] or 1e-9
    steps = st["steps"] or 1
    random_steps = steps - st["deliberate"]
    line = (f"{mode}: {st['rules']} rule steps ({st['steps']} commands) in {st['runs']} runs, "
            f"{wall:.0f} s ({st['rules'] / wall:.0f} steps/s); {st['refused']} refused "
            f"({100 * st['refused'] / steps:.1f}%): {st['refused random']} of {random_steps} random commands "
            f"({100 * st['refused random'] / max(1, random_steps):.1f}%), {st['refused deliberate']} of "
            f"{st['deliberate']} deliberately invalid ones; {st['partial']} with the kernel's partial effect")
    by = sorted(((n, key[len("refused "):]) for key, n in st.items()
                 if key.startswith("refused ") and key not in ("refused random", "refused deliberate")),
                reverse=True)
    lines = [line]
    if by:
        lines.append("  refused: " + ", ".join(f"{what} {n}" for n, what in by[:16])
                     + (f", {len(by) - 16} more kinds" if len(by) > 16 else ""))
    return lines


def pytest_terminal_summary(terminalreporter) -> None:
    from mmsh_machine import STATS

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
