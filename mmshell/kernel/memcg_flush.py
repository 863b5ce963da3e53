"""Before `reclaim`: wait until the workers' memory cgroup's statistics show the pages faulted in again.

What the kernel does (6.18, classic LRU): a page swapped out and faulted in again soon is
activated by workingset_refault() (mm/workingset.c), which counts WORKINGSET_ACTIVATE_ANON
in the faulting cgroup.  The cgroup's reclaim deactivates its active anon list only when
prepare_scan_control() (mm/vmscan.c) sees that count differ from the one snapshot_refaults()
took at the end of the cgroup's last reclaim ("refaults are being observed"), or when the
inactive list is low; otherwise shrink_lruvec() never scans the active anon list, and the
refaulted page stays resident.  Both are read from the cgroup's *flushed* statistics, which
6.18 brings up to date only when enough updates are pending (64 x the CPUs online,
mem_cgroup_flush_stats(): reading memory.stat is one such flush) or every 2 s
(flush_memcg_stats_dwork()); prepare_scan_control()'s own flush is rate-limited to when that
periodic one is late.  So whether a `reclaim` takes a page faulted in again depends on
whether a flush came between the refault and the reclaim: on when the periodic flusher ran,
and on how many updates were pending since the last flush.  Measured on 6.18.44 (kernel fuzz
seed 13131, script 1352, by hand to `swapon z0 16M kind zram; mmap a 64K hugepage; reclaim;
touch a; madvise a+60K:4K pageout; touch a read; reclaim`): the refaulted page is
activated (`workingset_activate_anon` +1, kpageflags LRU|ACTIVE) and the last reclaim swaps
out 15 pages of 16 in 6 replays of 6; with 2.5 s between the refault and the reclaim, 16 in
3 of 3.  Without the first (empty) reclaim, whose memory.stat read flushes what the runner's
set-up left pending, 16 in 5 runs of 6 and 15 in the rest.

The simulation has no statistics to lag: its reclaim takes the refaulted page.  So the runner
waits, before a reclaim, when a page was read back from swap since the last one (/proc/vmstat
pswpin, zswpin or swpin_zero moved): until the workers' cgroup's flushed
workingset_refault_anon moves too, at most FLUSH_WAIT (the periodic flusher's 2 s and its work
queue's delay: with other processes busy on the machine's 2 CPUs the flush came up to 2.47 s
after the previous one).  The wait comes before the step's counters are taken (session.py), so
machine-wide counters do not count it.  A swap-in that was no refault (no shadow entry) waits
the whole FLUSH_WAIT.  With the wait, the script above swaps out 16 of 16 (5 replays of 5), as
does the fuzz script it came from.

The runner now also flushes the statistics itself before each reclaim and each of its passes
(flush_subtree(): a page activated without a refault waits for no flush otherwise, kernel fuzz
seed 17171 script 2139), so the wait ends at once after that flush.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import syscalls

__all__ = ["CHURN_PER_CPU", "FLUSH_WAIT", "RefaultStats", "churn_bytes", "flush_subtree", "swapins",
           "swapouts", "thp_splits"]

#: The longest wait for the periodic memcg statistics flush (FLUSH_TIME is 2 s).
FLUSH_WAIT = 4.0
#: How often the wait reads the cgroup's memory.stat.
POLL = 0.02
#: The /proc/vmstat events of a page read back from swap (a device, zswap, the zero map).
SWAPIN_EVENTS = ("pswpin", "zswpin", "swpin_zero")


#: What flush_subtree() maps, fills and unmaps in the runner's own memory cgroup, per CPU (and
#: for 4 CPUs at least): 64 pages, each at least 4 statistics updates (its NR_ANON_MAPPED and
#: its LRU list's count, in and out), four times the 64 per CPU online that make a flush due.
CHURN_PER_CPU = 256 << 10


def churn_bytes() -> int:
    """How much flush_subtree() faults in and out: CHURN_PER_CPU for each CPU, 4 at least."""
    return CHURN_PER_CPU * max(os.cpu_count() or 1, 4)


def flush_subtree(ancestor: Path) -> bool:
    """Bring the flushed statistics of `ancestor`'s memory cgroup and all below it up to date now;
    whether it could (False: `ancestor` has no memory.stat, as the cgroup v2 root).

    Reading a memory.stat flushes the cgroup's subtree only when more updates are pending in it
    than 64 x the CPUs online (mem_cgroup_flush_stats()).  So this process, which is charged to
    `ancestor` or a cgroup below it, first makes that many: it faults churn_bytes() of anonymous
    memory in and unmaps them (each page moves NR_ANON_MAPPED and its LRU list's count twice),
    and then reads `ancestor`'s memory.stat, whose flush (css_rstat_flush()) takes every
    cgroup below it that has updates pending: the workers' `work` too.

    Why a reclaim needs it (6.18, classic LRU, mm/vmscan.c): shrink_lruvec() scans the lists
    only while the inactive anon or a file list has pages left to scan; the active anon list
    is aged after that loop, by shrink_active_list(), only when inactive_is_low() says the
    inactive anon list is short -- by the cgroup's *flushed* statistics.  A cgroup whose only
    evictable folio was activated a moment ago (MADV_PAGEOUT with no swap space activates it)
    still counts it inactive there until the next flush (every 2 s, flush_memcg_stats_dwork()),
    so a `reclaim` before that flush leaves it resident and one after it swaps it out
    (measured on 6.18.44, kernel fuzz seed 17171 script 2139: +0 pages without a pause,
    +1 after 3 s or after this flush).  The simulation has no statistics to lag."""
    stat = ancestor / "memory.stat"
    if not stat.exists():
        return False
    size = churn_bytes()
    addr = syscalls.mmap(0, size, syscalls.PROT_READ | syscalls.PROT_WRITE, syscalls.MAP_PRIVATE)
    try:
        syscalls.madvise(addr, size, syscalls.MADV_POPULATE_WRITE)
    finally:
        syscalls.munmap(addr, size)
    stat.read_text()
    return True


#: The /proc/vmstat events of a page written to swap (a device, zswap, the zero map).
SWAPOUT_EVENTS = ("pswpout", "zswpout", "swpout_zero")


def _events(names: tuple[str, ...], vmstat: Path) -> int:
    fields = dict(line.split() for line in vmstat.read_text().splitlines() if len(line.split()) == 2)
    return sum(int(fields.get(name, 0)) for name in names)


def swapins(vmstat: Path = Path("/proc/vmstat")) -> int:
    """Pages read back from swap on the machine so far (exact: event counters are summed at read)."""
    return _events(SWAPIN_EVENTS, vmstat)


def swapouts(vmstat: Path = Path("/proc/vmstat")) -> int:
    """Pages written to swap on the machine so far (exact, as swapins())."""
    return _events(SWAPOUT_EVENTS, vmstat)


def thp_splits(vmstat: Path = Path("/proc/vmstat")) -> int:
    """THPs split on the machine so far (thp_split_page; exact, as swapins())."""
    return _events(("thp_split_page",), vmstat)


@dataclass
class RefaultStats:
    """What the last reclaim saw: the machine's swap-ins and the cgroup's flushed refaults."""

    swapins: int
    refaults: int | None          # None: the cgroup's memory.stat has no workingset_refault_anon

    def await_flush(self, now_swapins: int, read_refaults: Callable[[], int | None],
                    clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep) -> float:
        """Wait, when something was swapped in since the last reclaim, until the cgroup's flushed
        refault count moves (at most FLUSH_WAIT); the seconds waited."""
        if now_swapins == self.swapins or self.refaults is None:
            return 0.0
        start = clock()
        while clock() - start < FLUSH_WAIT:
            if read_refaults() != self.refaults:
                break
            sleep(POLL)
        return clock() - start
