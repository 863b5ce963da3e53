"""Every operation over every state and range shape, both modes: data and invariants hold.

States: present THPs, swapped to zram, swapped to a disk (still in the swap
cache), swapped and shared with a child (non-exclusive entries).  Ranges: the
whole 4 MiB region, one whole THP, half a THP, a misaligned range, a range
across the two THPs.  An operation may be refused (the kernel refuses some of
these too, e.g. UFFDIO_MOVE of shared pages); a refusal must change nothing,
and afterwards every page must read back what was written, in every process.
"""

from __future__ import annotations

import itertools

import pytest

from mmsh_helpers import Run

pytestmark = pytest.mark.slow      # 536 cases of a tenth of a second or more: a minute in all

STATES = {
    "present": "",
    "zram": "madvise a pageout",
    "swapcache": "swapoff z0; swapon d0 64M kind disk; madvise a pageout",
    "shared": "madvise a pageout; fork",
}
RANGES = {"whole": "a", "thp": "a+2M:2M", "half": "a:1M", "misaligned": "a+4K:1M", "across": "a+1M:2M"}
OPS = {
    "munmap": "munmap {r}",
    "mprotect": "mprotect {r} r; mprotect {r} rw",
    "mremap": "mremap {r} moved",
    "mremap_fixed_misaligned": "mremap {r} moved at 0x600000001000",
    "dontneed": "madvise {r} dontneed",
    "free": "madvise {r} free",
    "cold": "madvise {r} cold",
    "pageout": "madvise {r} pageout",
    "collapse": "madvise {r} collapse",
    "uffd_move": "mmap dst 4M hugepage; uffd register dst; uffd move {r} dst",
    "read": "touch {r} read",
    "write": "touch {r} write",
    "fork_write": "fork; @2 touch {r}; touch {r}",
    "swapoff": "swapoff {dev}",
    "khugepaged": "khugepaged",
}


def _script(state: str, op: str, rng: str) -> str:
    dev = "d0" if state == "swapcache" else "z0"
    lines = ["swapon z0 64M", "mmap a 4M hugepage", "touch a", STATES[state],
             OPS[op].format(r=RANGES[rng], dev=dev), "check", "touch a read", "check"]
    return "\n".join(line for line in lines if line)


CASES = [(s, o, r) for s, o, r in itertools.product(STATES, OPS, RANGES)
         if not (o in ("swapoff", "khugepaged") and r != "whole")]


@pytest.mark.parametrize("state,op,rng", CASES, ids=["-".join(c) for c in CASES])
@pytest.mark.parametrize("mode", [True, False], ids=["series", "mainline"])
def test_operation(state: str, op: str, rng: str, mode: bool) -> None:
    from mmshell.lang.runner import run_text

    r = Run("", mode)
    records = []
    run_text(r.session, _script(state, op, rng), "matrix.mmsh", records.append, keep_going=True)
    bugs = [x.error for x in records if x.kind == "bug"]
    assert not bugs, bugs
    checks = [x for x in records if x.command is not None and x.command.name == "check"]
    assert len(checks) == 2 and all(x.kind == "ok" for x in checks), [x.error for x in checks]
    first_op = 4 if STATES[state] else 3      # the set-up's lines come first (an empty state has none)
    setup = [x for x in records if x.kind != "ok" and x.line <= first_op]
    assert not setup, [x.error for x in setup]
