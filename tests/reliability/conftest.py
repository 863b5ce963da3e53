"""Reliability tests: Hypothesis profiles for the stateful tests, and a summary of their steps.

Profiles (`HYPOTHESIS_PROFILE`, default `ci`), used only by the stateful tests
(tests/reliability/test_stateful.py and test_equivalence.py); every other
Hypothesis test keeps its own settings:

- `ci`: deterministic (derandomize), 150 examples (at least 13,000 rule steps)
  per mode, a few minutes per mode on the 2-core CI machine;
- `long`: random, with the example database, about 300,000 rule steps per
  mode: `HYPOTHESIS_PROFILE=long python3 -m pytest tests/reliability/test_stateful.py`.

MMSHELL_STATEFUL_EXAMPLES and MMSHELL_STATEFUL_STEPS override the number of
examples and the steps per example of whichever profile is chosen.

MMSHELL_REACH=all|1..6|new runs the stateful tests in reach mode
(mmsh_reach.py); MMSHELL_REACH_JSON=PATH also writes their findings there
(scripts/reach_survey reads them).  MMSHELL_COVERAGE=0 turns the branch coverage of
mmshell/mm off (mmsh_coverage.py).

After the tests, the summary prints per mode the steps, the refused share (the
deliberately invalid ones apart) and the refusals by command and errno, the
reach table in reach mode, and branch coverage per mm module (tests/conftest.py
prints it, after gathering the counts of every pytest-xdist worker).
"""

from __future__ import annotations

import mmsh_profiles  # noqa: F401  (registers the profiles)
