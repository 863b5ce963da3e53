"""Reach mode: which known defect a failure of the random suites is, and where it was first found.

The random suites stop at their first failure, so on a tree where several
defects are still open only one would ever show.  `MMSHELL_REACH` (or pytest's
`--mmshell-reach`) changes what a failure does:

- `all` (the survey): no failure stops the run; each is classified (`classify`)
  and the first example of each defect is recorded (`FOUND`: mode, example,
  step, the rule steps the suite had run until then, the commands of that
  example).  The stateful tests then print the table and pass.
- `1` ... `6` (or `new`): only a failure of that class fails the test, so
  Hypothesis shrinks it and prints the minimal command sequence; every other
  failure ends its example quietly (the example is "dead": its later rules run
  nothing).

The classes are the defects of issue 9 that the random suites must reach,
told apart by what the checks say (their text is stable: it comes from the
checker, the oracles of mmsh_oracles.py, or the simulator's own VmBug):
1 a swap-in or swapoff of a PMD swap entry caches a folio over slots already
  cached as smaller folios (the checker: slots that do not point back);
2 a swap-cache folio moved by UFFDIO_MOVE whose index no longer finds its
  mappings (the drain oracle: index lost; or, first, the checker: a page not found
  where it is mapped by the rmap walk);
3 swapoff's allocation reclaims to the device being removed (VmBug: slots
  still in use);
4 a PMD-size swap-in after zswap was enabled (the zswap oracle);
5 a fork that splits a PMD swap entry for a count continuation that failed
  once (the fork oracle);
6 reclaim of a folio mapped across a VMA edge (the drain oracle).
Anything else is `new`: a failure no class explains.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

#: "" (off), "all", a defect number, or "new".
REACH = os.environ.get("MMSHELL_REACH", "")
#: where the stateful tests also write their findings, per mode, as JSON (scripts/reach_survey)
REACH_JSON = os.environ.get("MMSHELL_REACH_JSON", "")

DEFECTS = {
    "1": "PMD swap entry swapped in over slots cached as small folios",
    "2": "UFFDIO_MOVE of a cached PMD-size folio loses its index",
    "3": "swapoff's allocation reclaims to the device being removed",
    "4": "PMD swap-in after zswap was enabled",
    "5": "fork splits a PMD swap entry for a continuation that failed once",
    "6": "reclaim misses a folio mapped across a VMA edge",
}

#: the defects mainline mode has too (the others are the series' own)
BOTH_MODES = frozenset({"6"})

_PATTERNS = [
    ("3", re.compile(r"slots still in use")),
    ("1", re.compile(r"swap cache slots .* do not all point back|nr_swapcached|cached by two folios|"
                     r"slot .* cached by")),
    ("4", re.compile(r"after zswap was enabled")),
    ("5", re.compile(r"fork split")),
    # the drain oracle, or the checker's rmap invariant first (the moved folio's pages are not
    # found where they are mapped)
    ("2", re.compile(r"whole reclaim left .*index lost|is not found there by the rmap walk")),
    ("6", re.compile(r"whole reclaim left .*across a VMA edge")),
]

#: defect -> the first example that found it (see the module docstring).
FOUND: dict[str, dict] = {}


def classify(text: str) -> str:
    for defect, pattern in _PATTERNS:
        if pattern.search(text):
            return defect
    return "new"


def record(defect: str, mode: str, example: int, step: int, rule_steps: int, script: list[str],
           text: str) -> None:
    """Keep the first finding of each class (and count the others)."""
    seen = FOUND.get(defect)
    if seen is None:
        FOUND[defect] = {"mode": mode, "example": example, "step": step, "rule_steps": rule_steps,
                         "script": list(script), "text": text[:600], "count": 1}
    else:
        seen["count"] += 1


def table(found: dict[str, dict]) -> list[str]:
    """The survey's lines: one per class, found or not."""
    lines = []
    for defect in [*DEFECTS, "new"]:
        f = found.get(defect)
        what = DEFECTS.get(defect, "a failure no known defect explains")
        if f is None:
            lines.append(f"defect {defect} ({what}): not reached")
            continue
        lines.append(f"defect {defect} ({what}): {f['mode']} example {f['example']}, step {f['step']} "
                     f"(after {f['rule_steps']} rule steps), found {f['count']} time(s)")
    return lines


def save(path: str, mode: str, found: dict[str, dict]) -> None:
    """Add one mode's findings to the JSON file at `path` ({mode: {defect: finding}})."""
    file = Path(path)
    data = json.loads(file.read_text()) if file.exists() else {}
    data[mode] = found
    file.write_text(json.dumps(data, indent=1))
