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
from .sim_step import SimStep, sim_step

__all__ = ["Example", "Known", "KNOWN", "classify", "explain"]


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
    kernel: str | None = None          # a regex matched whole against the kernel's side
    sim: Callable[[SimStep], bool] | None = None   # a condition on the simulator at the step
    #: the two machines hold different memory after it (which pages were reclaimed or split), so
    #: every difference at a later step of the script is its consequence (`classify`)
    diverges: bool = False

    def matches(self, d: Difference, lines: list[str]) -> bool:
        if not re.fullmatch(self.what, d.what) or not re.search(self.command, d.command):
            return False
        if self.kernel_more and not _kernel_more(d):
            return False
        if self.kernel is not None and not re.fullmatch(self.kernel, str(d.kernel)):
            return False
        if self.before is not None and not self.before(lines[:max(0, d.line - 1)]):
            return False
        if self.sim is None:
            return True
        step = sim_step(tuple(lines[:d.line]))
        return step is not None and self.sim(step)


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


class _SwapHistory:
    """What a script's lines have done to swap so far, as the text says: the devices on, the
    regions mapped, those swapped out (`madvise R pageout`, or mapped before a `reclaim`), and
    whether one of those was faulted in again (`touch R`, `check R`): a refault, which the kernel
    puts on the active list (workingset_refault())."""

    def __init__(self) -> None:
        self.on: set[str] = set()
        self.mapped: set[str] = set()
        self.swapped: set[str] = set()
        self.refaulted = False

    def step(self, line: str) -> None:
        words = _words(line)
        if not words or words[0] == "expect":
            return
        region = re.split(r"[+:]", words[1], maxsplit=1)[0] if len(words) > 1 else ""
        if words[0] == "swapon" and region:
            self.on.add(region)
        elif words[0] == "swapoff" and region:
            self.on.discard(region)
        elif words[0] == "mmap" and region:
            self.mapped.add(region)
        elif words[0] == "reclaim":
            self.swapped |= self.mapped
        elif words[0] == "madvise" and words[-1] == "pageout":
            self.swapped.add(region)
        elif words[0] in ("touch", "check") and region in self.swapped:
            self.refaulted = True


def _reclaim_mixing_refaults_on_two_devices(lines: list[str]) -> bool:
    """A whole-cgroup `reclaim` ran while two or more swap devices were on, after a region
    swapped out was faulted in again."""
    h = _SwapHistory()
    for line in lines:
        words = _words(line)
        if words == ["reclaim"] and h.refaulted and len(h.on) >= 2:
            return True
        h.step(line)
    return False


def _refaulted(lines: list[str]) -> bool:
    """A region swapped out was faulted in again before the step."""
    h = _SwapHistory()
    for line in lines:
        h.step(line)
    return h.refaulted


#: The step is a whole-cgroup `reclaim` (no SIZE), as `kernel fuzz` generates it.
_WHOLE_RECLAIM = r"^(@\d+ )?reclaim$"
#: What a THP's fate at reclaim moves: swapped out whole, or split (for want of a free cluster,
#: or because it was partly mapped).
_THP_FATE = r"(vmstat\.thp_(split_page|swpout|swpout_fallback)|mthp\.(split|swpout|swpout_fallback)) change"


def _ran_out_of_swap(step: SimStep) -> bool:
    """The simulator's reclaim ran out of swap space: which THPs came last decided which found
    no free cluster and were split."""
    return step.ran_out_of_swap


def _ran_out_after_a_partly_mapped_thp(step: SimStep) -> bool:
    """The simulator's reclaim began with a partly mapped THP on the LRU and ran out of swap
    space."""
    return step.ran_out_of_swap and step.partially_mapped_before > 0


def _activated_with_space_left(step: SimStep) -> bool:
    """The simulator's reclaim activated a folio (its first look: mapped in two VMAs) and did not
    run out of swap space."""
    return step.events.get("pgactivate", 0) > 0 and step.swap_free_after > 0


#: Kernel fuzz seed 23232 script 1732, shrunk: 512 pages read back (`touch a`) before a reclaim
#: that needs 4,096 slots of the 4,095 the device has.
_SEED23232_1732 = ("set pmd_swap off", "set page_cluster 0", "swapon z0 16M kind zram", "mmap a 3M hugepage",
                   "touch a:2M", "mmap b 6M", "touch b", "madvise a pageout", "mmap c 8M hugepage", "touch c",
                   "touch a", "reclaim")
#: Kernel fuzz seed 22222 script 4303, shrunk: a partly unmapped THP, a THP and 256 pages, 4M of swap.
_SEED22222_4303 = ("set pmd_swap off", "set page_cluster 0", "swapon z0 4M kind zram", "mmap a 2M hugepage",
                   "touch a", "madvise a+0:4K dontneed", "mmap b 3M hugepage", "touch b", "reclaim")
#: Kernel fuzz seed 22222 script 1284, shrunk: a THP in two VMAs and 307 pages read back.
_SEED22222_1284 = ("set pmd_swap off", "set page_cluster 0", "mmap a 2M hugepage", "touch a",
                   "mremap a+1348K:16K b", "mmap c 2052K nohugepage at 0x7dffffbfb000", "touch c",
                   "swapon z1 16M kind zram", "madvise c pageout", "check c+824K:1228K", "reclaim")


def _without(lines: tuple[str, ...], *drop: str) -> tuple[str, ...]:
    return tuple(line for line in lines if line not in drop)


def _replace(lines: tuple[str, ...], old: str, new: str) -> tuple[str, ...]:
    return tuple(new if line == old else line for line in lines)


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
    Known(
        name="the THP that finds no free cluster beside refaulted pages",
        reason="when a whole-cgroup reclaim runs out of swap space, which THPs come last decides "
               "which find no free cluster and are split; pages read back from swap are on the "
               "active list (workingset_refault()), and the memory-cgroup reclaim deactivates them "
               "in batches between its scans of the inactive list, so they reach the swap allocator "
               "interleaved with older folios, in batches that vary run to run; the simulator has no "
               "workingset activation and reclaims oldest first (kernel fuzz seed 23232 script 1732: "
               "a reclaim needing 4,096 slots of 4,095 after 512 pages were read back; the kernel "
               "split one THP of four, the simulator none; without the read back, 0 differences)",
        docs="refaulted pages are activated",
        what=_THP_FATE,
        command=_WHOLE_RECLAIM,
        before=_refaulted,
        sim=_ran_out_of_swap,
        diverges=True,
        examples=(
            Example(_SEED23232_1732, "mthp.split change", "+1", "+0"),
            Example(_SEED23232_1732, "vmstat.thp_swpout change", "+3", "+4"),
            Example(_SEED23232_1732, "mthp.swpout_fallback change", "+1", "+0"),
        ),
        near_misses=(
            # nothing read back before the reclaim
            Example(_without(_SEED23232_1732, "touch a"), "mthp.split change", "+1", "+0"),
            # swap space left: every THP found a cluster
            Example(_replace(_SEED23232_1732, "swapon z0 16M kind zram", "swapon z0 64M kind zram"),
                    "mthp.split change", "+1", "+0"),
            # not the THPs' fate
            Example(_SEED23232_1732, "vmstat.pswpout change", "+4094", "+4095"),
            # a reclaim of a size
            Example(_replace(_SEED23232_1732, "reclaim", "reclaim 15M"), "mthp.split change", "+1", "+0"),
        ),
    ),
    Known(
        name="the THP that finds no free cluster after a partly mapped THP",
        reason="when a whole-cgroup reclaim runs out of swap space, which THPs come last decides "
               "which find no free cluster and are split; the kernel looks at each folio once per "
               "priority, keeps a folio referenced once for a second look, and runs the cgroup's "
               "shrinkers after each priority, the deferred split one scanning a short queue only "
               "at priority 1 and 0: when small pages make the first looks last that long, the "
               "shrinker splits a partly mapped THP in place before reclaim's second looks, its "
               "unmapped pages freed without swap slots; the simulator's reclaim splits it itself "
               "(6.12+ shrink_folio_list(): the head it holds takes a slot it frees again) "
               "(traced on 6.18.44, kernel fuzz seed 22222 script 4303: a partly unmapped THP, a THP "
               "and 256 pages on 4M of swap; the kernel's shrinker split at priority 1, the 511 "
               "pages fit the first cluster and the other THP took the free one whole; the "
               "simulator split both)",
        docs="order of a memory-cgroup reclaim's looks",
        what=_THP_FATE,
        command=_WHOLE_RECLAIM,
        sim=_ran_out_after_a_partly_mapped_thp,
        diverges=True,
        examples=(
            Example(_SEED22222_4303, "mthp.split change", "+1", "+2"),
            Example(_SEED22222_4303, "vmstat.thp_swpout change", "+1", "+0"),
            Example(_SEED22222_4303, "vmstat.thp_swpout_fallback change", "+0", "+1"),
        ),
        near_misses=(
            # no THP partly unmapped
            Example(_without(_SEED22222_4303, "madvise a+0:4K dontneed"), "mthp.split change", "+1", "+2"),
            # swap space left
            Example(_replace(_SEED22222_4303, "swapon z0 4M kind zram", "swapon z0 16M kind zram"),
                    "mthp.split change", "+1", "+2"),
            # not the THPs' fate
            Example(_SEED22222_4303, "swap.z0.used change", "+1022", "+1023"),
        ),
    ),
    Known(
        name="a reclaim after refaults that activates a folio frees nothing",
        reason="pages read back from swap are on the active list (workingset_refault()); when the "
               "reclaim's first look activates what is on the inactive list (a THP mapped in two "
               "VMAs), only a deactivation could give it more, and the memory-cgroup reclaim "
               "deactivates when its statistics show the inactive list low, which are not flushed "
               "within the reclaim, or new refaults, which its first call's snapshot takes: so it "
               "frees nothing and ends (traced on 6.18.44, kernel fuzz seed 22222 script 1284: one "
               "shrink_inactive with nr_activate_anon=512, no shrink_active, 16 memory.force_empty "
               "calls); the simulator has no workingset activation and reclaims the read-back pages "
               "in its first pass and the THP in its second (without the read back, or without the "
               "THP's second VMA, 0 differences)",
        docs="scans the active list only once",
        what=r"(vmstat\.\w+|mthp\.\w+|swap\.\S+\.used) change",
        command=_WHOLE_RECLAIM,
        kernel=r"\+0",
        before=_refaulted,
        sim=_activated_with_space_left,
        diverges=True,
        examples=(
            Example(_SEED22222_1284, "mthp.nr_anon change", "+0", "-1"),
            Example(_SEED22222_1284, "vmstat.pswpout change", "+0", "+819"),
            Example(_SEED22222_1284, "swap.z1.used change", "+0", "+819"),
        ),
        near_misses=(
            # nothing read back
            Example(_without(_SEED22222_1284, "check c+824K:1228K"), "vmstat.pswpout change", "+0", "+1025"),
            # no second VMA: nothing activated
            Example(_without(_SEED22222_1284, "mremap a+1348K:16K b"), "vmstat.pswpout change", "+0", "+819"),
            # the kernel freed something
            Example(_SEED22222_1284, "vmstat.pswpout change", "+307", "+819"),
        ),
    ),
)

def explain(d: Difference, lines: list[str]) -> Known | None:
    """The known pattern that explains d (lines: the script's lines), or None."""
    for k in KNOWN:
        if k.matches(d, lines):
            return k
    return None


def classify(diffs: list[Difference], lines: list[str]) -> list[str | None]:
    """For each of a script's differences (in step order), why it is known, or None: the name of
    the pattern that explains it, "marked in the script" for a `# known difference:` line, or
    "after: NAME" for a difference at a step after one that a diverging pattern (`diverges`)
    explained, whose machines no longer hold the same memory."""
    out: list[str | None] = []
    after: tuple[int, str] | None = None        # (line, name) of the first diverging difference
    for d in diffs:
        k = explain(d, lines) if d.known is None else None
        if d.known is not None:
            out.append("marked in the script")
        elif k is not None:
            out.append(k.name)
            if k.diverges and after is None:
                after = (d.line, k.name)
        elif after is not None and d.line > after[0]:
            out.append(f"after: {after[1]}")
        else:
            out.append(None)
    return out
