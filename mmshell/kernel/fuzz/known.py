"""Differences between the live kernel and the simulator that the simulator does not model on
purpose: each declared once, narrowly, with its reason and the docs/semantics.md entry that
explains it.

`kernel fuzz` reports a difference that one of these patterns matches as known (counted, not
a failure).  A pattern names the observable (`what`, matched whole against `Difference.what`),
the command of the step (searched in its text) and, where the cause needs it, a condition on
the script's lines before that step.  Each pattern carries examples it must match and near
misses it must not (tests/kernel/test_kernel_fuzz.py checks both), so that it stays narrow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from ..diff import Difference

__all__ = ["Example", "Known", "KNOWN", "explain"]


@dataclass(frozen=True)
class Example:
    """A difference at the last of `lines` (the script up to the step that differs)."""

    lines: tuple[str, ...]
    what: str
    kernel: str
    simulator: str

    def difference(self) -> Difference:
        return Difference("example.mmsh", len(self.lines), self.lines[-1], self.what, self.kernel,
                          self.simulator)


@dataclass(frozen=True)
class Known:
    """One explained difference."""

    name: str
    reason: str
    docs: str                          # the heading of its entry in docs/semantics.md
    what: str                          # a regex matched whole against Difference.what
    command: str                       # a regex searched in the step's command
    before: Callable[[list[str]], bool] | None = None   # a condition on the lines before the step
    examples: tuple[Example, ...] = ()
    near_misses: tuple[Example, ...] = ()

    def matches(self, d: Difference, lines: list[str]) -> bool:
        if not re.fullmatch(self.what, d.what) or not re.search(self.command, d.command):
            return False
        return self.before is None or self.before(lines[:max(0, d.line - 1)])


#: Steps that fault nothing in: no major fault of the script's own can happen in them (fork
#: copies present pages and swap entries as they are; it reads nothing from a swap device).
_NO_FAULT_STEP = (r"^(@\d+ )?(mmap|munmap|mprotect|swapon|set|uffd register|fork"
                  r"|madvise \S+ (hugepage|nohugepage|cold))\b")

KNOWN: tuple[Known, ...] = (
    Known(
        name="machine-wide pgmajfault",
        reason="/proc/vmstat counts the major faults of every process on the machine: during a step "
               "that faults nothing in, another process reading a file page from disk moves "
               "pgmajfault, which user space cannot attribute (measured on 6.18.44 with no live run: "
               "76 in 20 s, up to 12 in one 0.1 s); the simulator counts the script's own",
        docs="also counts major faults of other processes",
        what=r"vmstat\.pgmajfault change",
        command=_NO_FAULT_STEP,
        examples=(
            Example(("set pmd_swap off", "swapon z0 64M kind zram"), "vmstat.pgmajfault change", "+2", "+0"),
            Example(("set pmd_swap off", "mmap a 2M", "@2 mmap c 1M"), "vmstat.pgmajfault change",
                    "+1", "+0"),
            Example(("mmap a 2M", "madvise a:1M cold"), "vmstat.pgmajfault change", "+1", "+0"),
            Example(("swapon z0 64M kind zram", "mmap a 2M hugepage", "fork"), "vmstat.pgmajfault change",
                    "+12", "+0"),
        ),
        near_misses=(
            Example(("mmap a 2M", "touch a"), "vmstat.pgmajfault change", "+3", "+0"),
            Example(("mmap a 2M", "madvise a pageout"), "vmstat.pgmajfault change", "+1", "+0"),
            Example(("mmap a 2M", "swapoff z0"), "vmstat.pgmajfault change", "+1", "+0"),
            Example(("mmap a 2M", "fork"), "vmstat.pswpin change", "+1", "+0"),
            Example(("mmap a 2M", "swapon z0 64M"), "vmstat.pswpin change", "+1", "+0"),
        ),
    ),
)


def explain(d: Difference, lines: list[str]) -> Known | None:
    """The known pattern that explains d (lines: the script's lines), or None."""
    for k in KNOWN:
        if k.matches(d, lines):
            return k
    return None
