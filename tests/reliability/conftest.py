"""Reliability tests: Hypothesis profiles for the stateful tests, and a summary of their steps.

Profiles (`HYPOTHESIS_PROFILE`, default `ci`), used only by the stateful tests
(tests/reliability/test_stateful.py and test_equivalence.py); every other
Hypothesis test keeps its own settings:

- `ci`: deterministic (derandomize), at least 10**5 rule steps per mode, a
  couple of minutes per mode on the 2-core CI machine;
- `long`: random, with the example database, about 1.2 million rule steps per
  mode (about 25 minutes per mode): `HYPOTHESIS_PROFILE=long python3 -m pytest
  tests/reliability/test_stateful.py`.

MMSHELL_STATEFUL_EXAMPLES and MMSHELL_STATEFUL_STEPS override the number of
examples and the steps per example of whichever profile is chosen.
"""

from __future__ import annotations

import mmsh_profiles  # noqa: F401  (registers the profiles)


def pytest_terminal_summary(terminalreporter) -> None:
    from mmsh_machine import STATS

    if not STATS:
        return
    terminalreporter.section("mmshell stateful runs")
    for mode, st in sorted(STATS.items()):
        if mode == "fuzz":
            terminalreporter.write_line("fuzzed inputs: " + ", ".join(f"{n} {what}" for what, n in sorted(st.items()))
                                        + f" ({sum(st.values())} in all)")
            continue
        wall = st["wall"] or 1e-9
        terminalreporter.write_line(
            f"{mode}: {st['rules']} rule steps ({st['steps']} commands) in {st['runs']} runs, "
            f"{wall:.0f} s ({st['rules'] / wall:.0f} steps/s); {st['refused']} refused "
            f"({st['partial']} with the kernel's partial effect)")
