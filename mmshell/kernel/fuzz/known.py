"""Differences between the live kernel and the simulator that the simulator does not model on
purpose: each declared once, narrowly, with its reason and the docs/semantics.md entry that
explains it.

`kernel fuzz` reports a difference that one of these patterns matches as known (counted, not
a failure).  A pattern names the observable (`what`, matched whole against `Difference.what`),
the command of the step (searched in its text), where the cause needs it a condition on the
script's lines before that step, and for a cause that can only add to a kernel counter, that
the kernel's change is the larger (`kernel_more`).  Each pattern carries examples it must
match and near misses it must not (tests/kernel/test_kernel_fuzz.py checks both), so that it
stays narrow.
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
    kernel_more: bool = False          # only a counter change larger on the kernel (what adds to it)

    def matches(self, d: Difference, lines: list[str]) -> bool:
        if not re.fullmatch(self.what, d.what) or not re.search(self.command, d.command):
            return False
        if self.kernel_more and not _kernel_more(d):
            return False
        return self.before is None or self.before(lines[:max(0, d.line - 1)])


def _kernel_more(d: Difference) -> bool:
    """Whether d is a counter change ("+N" on each side) larger on the kernel."""
    try:
        return int(str(d.kernel)) > int(str(d.simulator))
    except ValueError:
        return False


#: Steps that fault nothing in: no major fault of the script's own can happen in them (fork
#: copies present pages and swap entries as they are; it reads nothing from a swap device).
#: swapoff reads every slot still in use back, but not through a fault: try_to_unuse() ->
#: unuse_pte_range() reads with swapin_readahead() and maps the page itself, and shmem_unuse()
#: passes no fault type, so neither counts PGMAJFAULT (of the swap reads, only do_swap_page()
#: and shmem's fault count it); with nothing on the device it returns at once.  Measured on
#: 6.18.44: +0 at swapoffs that read 512 slots back (zram and disk, shared after fork: corpus
#: 70, 71, 72, 74).  MADV_FREE and MADV_DONTNEED drop what they find (a swap entry's slot is
#: freed, not read: madvise_free_pte_range(), zap_pte_range()).
_NO_FAULT_STEP = (r"^(@\d+ )?(mmap|munmap|mprotect|swapon|swapoff|set|uffd register|fork"
                  r"|madvise \S+ (hugepage|nohugepage|cold|free|dontneed))\b")

def _words(line: str) -> list[str]:
    """A script line's words without its `@PID ` prefix and its comment."""
    words = line.split("#", 1)[0].split()
    return words[1:] if words and words[0].startswith("@") else words


def _reclaim_mixing_refaults_on_two_devices(lines: list[str]) -> bool:
    """A whole-cgroup `reclaim` ran while two or more swap devices were on, after a region
    swapped out (`madvise R pageout`, or a `reclaim` after R was mapped) was faulted in again
    (`touch R`, `check R`): a refault the kernel puts on the active list."""
    on: set[str] = set()
    mapped: set[str] = set()
    swapped: set[str] = set()
    refaulted = False
    for line in lines:
        words = _words(line)
        if len(words) < 1 or words[0] == "expect":
            continue
        region = re.split(r"[+:]", words[1], maxsplit=1)[0] if len(words) > 1 else ""
        if words[0] == "swapon" and region:
            on.add(region)
        elif words[0] == "swapoff" and region:
            on.discard(region)
        elif words[0] == "mmap" and region:
            mapped.add(region)
        elif words[0] == "reclaim":
            if len(words) == 1 and refaulted and len(on) >= 2:
                return True
            swapped |= mapped
        elif words[0] == "madvise" and words[-1] == "pageout":
            swapped.add(region)
        elif words[0] in ("touch", "check") and region in swapped:
            refaulted = True
    return False


KNOWN: tuple[Known, ...] = (
    Known(
        name="machine-wide pgmajfault",
        reason="/proc/vmstat counts the major faults of every process on the machine: during a step "
               "that faults nothing in, another process reading a file page from disk moves "
               "pgmajfault, which user space cannot attribute (measured on 6.18.44 with no live run: "
               "76 in 20 s, up to 12 in one 0.1 s; while other processes start (git, python): 24 in "
               "one 7 ms step, 55 in one 0.1 s); the simulator counts the script's own, and only "
               "the kernel's count can gain from them",
        docs="also counts major faults of other processes",
        what=r"vmstat\.pgmajfault change",
        command=_NO_FAULT_STEP,
        kernel_more=True,
        examples=(
            Example(("set pmd_swap off", "swapon z0 64M kind zram"), "vmstat.pgmajfault change", "+2", "+0"),
            Example(("set pmd_swap off", "mmap a 2M", "@2 mmap c 1M"), "vmstat.pgmajfault change",
                    "+1", "+0"),
            Example(("mmap a 2M", "madvise a:1M cold"), "vmstat.pgmajfault change", "+1", "+0"),
            # kernel fuzz seed 18181 script 910: seen at two runs in a row
            Example(("mmap b 2M", "touch b", "madvise b+108K:4K free"), "vmstat.pgmajfault change",
                    "+3", "+0"),
            Example(("swapon z0 64M kind zram", "mmap a 2M hugepage", "fork"), "vmstat.pgmajfault change",
                    "+12", "+0"),
            # kernel fuzz seed 14141 script 829: nothing on the device at its swapoff
            Example(("set pmd_swap off", "set page_cluster 0", "swapon z0 32M kind zram", "mmap a 2052K",
                     "touch a", "set max_ptes_none 511", "fork", "swapoff z0"),
                    "vmstat.pgmajfault change", "+49", "+0"),
            # a swapoff that reads 512 slots back counts no fault of its own
            Example(("swapon z0 64M kind zram", "mmap a 2M", "touch a", "madvise a pageout", "swapoff z0"),
                    "vmstat.pgmajfault change", "+1", "+0"),
        ),
        near_misses=(
            Example(("mmap a 2M", "touch a"), "vmstat.pgmajfault change", "+3", "+0"),
            Example(("mmap a 2M", "madvise a pageout"), "vmstat.pgmajfault change", "+1", "+0"),
            # the simulator counting more is never another process's fault
            Example(("mmap a 2M", "swapoff z0"), "vmstat.pgmajfault change", "+0", "+1"),
            Example(("swapon z0 64M kind zram", "mmap a 2M", "touch a", "madvise a pageout", "swapoff z0"),
                    "vmstat.pswpin change", "+511", "+512"),
            Example(("swapon z0 64M kind zram", "mmap a 2M", "touch a", "madvise a pageout", "swapoff z0",
                     "touch a"), "vmstat.pgmajfault change", "+1", "+0"),
            Example(("mmap a 2M", "fork"), "vmstat.pswpin change", "+1", "+0"),
            Example(("mmap a 2M", "swapon z0 64M"), "vmstat.pswpin change", "+1", "+0"),
        ),
    ),
    Known(
        name="the device of a page reclaimed beside refaulted pages",
        reason="a page swapped out and faulted in again is activated on its refault "
               "(workingset_refault(): measured on 6.18.44, 256 of 256, workingset_activate_anon "
               "+256); the memory-cgroup reclaim then deactivates the active list in batches "
               "between its scans of the inactive one (get_scan_count() targets per priority, "
               "force_deactivate), so the refaulted pages reach the swap allocator interleaved "
               "with the older ones, in batches that vary run to run (87, 87 and 82 of 256 "
               "refaulted pages took the first device's per-CPU cluster before it filled, in "
               "runs of kernel fuzz seed 4242 script 38); the simulator has one LRU order, "
               "oldest first, so the number of pages on each device agrees but not which pages",
        docs="refaulted pages are activated",
        what=r"pagemap\.\S+\.swap_type",
        command=r"^(@\d+ )?expect pagemap\.\S+\.swap_type\b",
        before=_reclaim_mixing_refaults_on_two_devices,
        examples=(
            Example(("set pmd_swap off", "swapon z0 32M kind zram", "mmap a 2M at 0x600014003000",
                     "touch a", "mmap b 8M nohugepage", "touch b", "madvise a:2M pageout",
                     "swapon z2 32M kind zram prio 0", "touch a:1M", "reclaim", "khugepaged",
                     "swapon z3 16M kind zram", "expect pagemap.a+168K.swap_type == 0"),
                    "pagemap.a+168K.swap_type", "0", "1"),
            Example(("swapon z0 8M kind zram", "swapon d1 8M kind disk", "mmap a 1M", "touch a",
                     "reclaim", "check a:4K", "mmap b 1M", "touch b", "reclaim",
                     "@2 expect pagemap.b+4K.swap_type == 1"),
                    "pagemap.b+4K.swap_type", "1", "0"),
        ),
        near_misses=(
            # one device on at the reclaim: every page goes to it
            Example(("swapon z0 32M kind zram", "mmap a 2M", "touch a", "madvise a pageout", "touch a:1M",
                     "reclaim", "swapon z2 32M kind zram", "expect pagemap.a.swap_type == 0"),
                    "pagemap.a.swap_type", "0", "1"),
            # nothing faulted in again before the reclaim
            Example(("swapon z0 32M kind zram", "swapon z2 32M kind zram", "mmap a 2M", "touch a",
                     "madvise a pageout", "mmap b 2M", "touch b", "reclaim",
                     "expect pagemap.b.swap_type == 0"),
                    "pagemap.b.swap_type", "0", "1"),
            # a reclaim of a size (not generated) or another observable
            Example(("swapon z0 32M kind zram", "swapon z2 32M kind zram", "mmap a 2M", "touch a",
                     "madvise a pageout", "touch a", "reclaim 1M", "expect pagemap.a.swap_type == 0"),
                    "pagemap.a.swap_type", "0", "1"),
            Example(("swapon z0 32M kind zram", "swapon z2 32M kind zram", "mmap a 2M", "touch a",
                     "madvise a pageout", "touch a", "reclaim", "expect swap.z0.used == 511"),
                    "swap.z0.used", "511", "512"),
        ),
    ),
    Known(
        name="the device a page beside refaulted pages is read back from",
        reason="the same cause as \"the device of a page reclaimed beside refaulted pages\", seen "
               "when the pages are read back: each device's Used falls by the pages read from it, "
               "and which device a page went to depends on where the refaulted pages met the "
               "allocator among the older ones (kernel fuzz seed 18181 script 1943: two disks of "
               "one priority, which take turns page by page; 4 pages read back, 3 and 1 on the "
               "kernel, 2 and 2 in the simulator, the same 4 in all)",
        docs="refaulted pages are activated",
        what=r"swap\.\S+\.used change",
        command=r"^(@\d+ )?(touch|check)\b",
        before=_reclaim_mixing_refaults_on_two_devices,
        examples=(
            Example(("set pmd_swap off", "set page_cluster 0", "swapon d0 64M kind disk prio 10",
                     "mmap a 1M hugepage", "touch a", "madvise a+512K:4K pageout", "madvise a+1020K:4K free",
                     "swapon d2 64M kind disk prio 10", "touch a:1M", "mremap a+512K:16K b", "reclaim",
                     "touch b:16K"), "swap.d0.used change", "-3", "-2"),
        ),
        near_misses=(
            # one device on at the reclaim
            Example(("swapon d0 64M kind disk", "mmap a 1M", "touch a", "madvise a pageout", "touch a",
                     "reclaim", "touch a"), "swap.d0.used change", "-255", "-256"),
            # nothing faulted in again before the reclaim
            Example(("swapon d0 64M kind disk prio 10", "swapon d2 64M kind disk prio 10", "mmap a 1M",
                     "touch a", "reclaim", "touch a:16K"), "swap.d0.used change", "-3", "-2"),
            # the reclaim itself
            Example(("swapon d0 64M kind disk prio 10", "mmap a 1M", "touch a", "madvise a pageout",
                     "swapon d2 64M kind disk prio 10", "touch a", "reclaim"), "swap.d0.used change",
                    "+129", "+128"),
        ),
    ),
)


def explain(d: Difference, lines: list[str]) -> Known | None:
    """The known pattern that explains d (lines: the script's lines), or None."""
    for k in KNOWN:
        if k.matches(d, lines):
            return k
    return None
