"""Hypothesis profiles of the stateful tests (see conftest.py for what each means)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])

# 150 examples of up to 100 rules per mode (about 1.4 * 10**4 rule steps: a rule is often a
# scenario of several commands, and few are refused, so a step costs several times what it
# did when a third were refused); the test asserts MIN_STEPS_CI.  Enough for the reach
# check to find each of issue 9's defects with its fix taken out (scripts/reach_survey,
# docs/reliability.md: the last found by 7,700 rule steps), within the test command's ten
# minutes on two CPUs.
settings.register_profile("ci", max_examples=150, stateful_step_count=100, derandomize=True,
                          database=None, **_COMMON)
settings.register_profile("long", max_examples=2000, stateful_step_count=150, **_COMMON)

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in ("ci", "long"):
    PROFILE = "ci"


def stateful_settings(scale: float = 1.0) -> settings:
    """The chosen profile for a stateful test; `scale` shrinks its number of examples."""
    base = settings.get_profile(PROFILE)
    examples = int(os.environ.get("MMSHELL_STATEFUL_EXAMPLES", max(1, int(base.max_examples * scale))))
    steps = int(os.environ.get("MMSHELL_STATEFUL_STEPS", base.stateful_step_count))
    return settings(base, max_examples=examples, stateful_step_count=steps)
