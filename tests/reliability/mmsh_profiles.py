"""Hypothesis profiles of the stateful tests (see conftest.py for what each means)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])

# 10**5 rule steps per mode: 1100 examples of up to 100 steps (a run stops a little
# early now and then, and the test asserts the total).
settings.register_profile("ci", max_examples=1100, stateful_step_count=100, derandomize=True,
                          database=None, **_COMMON)
settings.register_profile("long", max_examples=8000, stateful_step_count=150, **_COMMON)

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in ("ci", "long"):
    PROFILE = "ci"


def stateful_settings(scale: float = 1.0) -> settings:
    """The chosen profile for a stateful test; `scale` shrinks its number of examples."""
    base = settings.get_profile(PROFILE)
    examples = int(os.environ.get("MMSHELL_STATEFUL_EXAMPLES", max(1, int(base.max_examples * scale))))
    steps = int(os.environ.get("MMSHELL_STATEFUL_STEPS", base.stateful_step_count))
    return settings(base, max_examples=examples, stateful_step_count=steps)
