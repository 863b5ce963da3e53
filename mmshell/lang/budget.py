"""The host memory the simulated machine takes, and the budget it stays within (docs/limits.md).

mmshell keeps every frame, swap slot, page table and page's contents in Python
objects, and each command runs on a checkpoint (so a refusal can put it back): the
machine-wide state copied whole and the processes the command reaches, so while a
command runs up to about twice the state is in host memory.  So
the state is costed, item by item, at the host bytes each item takes (`COST`,
measured with tracemalloc on CPython 3.11), and kept within HOST_BUDGET:

- a command whose growth can be bounded from the state before it (fork, touch,
  check RANGE, uffd move, and in mainline madvise pageout and reclaim, which split
  every PMD-mapped THP they reach into a table of swap PTEs) is refused before it
  starts when the state plus that bound would pass the budget;
- every command is refused, and undone, when the state after it is over budget.

The refusal is ENOMEM and names the budget and what would take it.  Per-process
costs (PMD entries, page tables, the shadow of page contents, VMAs) are what grow
with forks and mappings; frames and swap slots are fixed by `set ram` and `swapon`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from ..mm.constants import HOST_BUDGET, HPAGE_PMD_NR, PAGE_SHIFT, PMD_SHIFT, PMD_SIZE
from ..mm.errors import MmError
from ..mm.pgtable import PmdKind

if TYPE_CHECKING:
    from ..mm.kernel import Kernel
    from ..mm.mm_types import MmStruct

__all__ = ["COST", "Footprint", "ProcessTally", "footprint", "process_cost", "process_tally", "range_bound",
           "reclaim_bound", "refuse_over"]

#: Host bytes per item of state (measured; rounded up).
COST = {
    "frames": 47,           # one simulated 4 KiB frame: its mem_map entries and LRU links (mm/lru.py)
    "swap slots": 11,       # one swap slot: swap_map, zeromap, zswap and contents bytes
    "cached slots": 80,     # a slot held by a folio in the swap cache
    "PMD entries": 160,     # one populated PMD slot of one process
    "page tables": 4608,    # one PTE table: 512 encoded entries
    "contents blocks": 4608,  # 2 MiB of one process's page contents that were written (the shadow)
    "VMAs": 384,
}


@dataclass(frozen=True, slots=True)
class Footprint:
    """How many of each costed item the state holds."""

    counts: dict[str, int]

    @property
    def bytes(self) -> int:
        return sum(COST[item] * n for item, n in self.counts.items())


def _tables(mm: "MmStruct") -> int:
    """PTE tables that exist (a THP's deposited table is counted in nr_ptes but is no array here)."""
    return sum(1 for pmd in mm.pmds.values() if pmd.kind is PmdKind.TABLE)


#: The costed items each process holds.
_PROCESS_ITEMS = ("PMD entries", "page tables", "contents blocks", "VMAs")


@dataclass(slots=True)
class ProcessTally:
    """process_counts of every pid, their sums, and PTE tables (nr_ptes) per pid and in all,
    kept up to date a command at a time: a pid is counted again only when it was reached
    (mm/pidtable.py) since the last count, or by the command counted then (which may have
    changed it after), so a command pays for the processes it reached."""

    per_pid: dict[int, tuple[dict[str, int], int]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_PROCESS_ITEMS, 0))
    nr_ptes: int = 0
    clocks: tuple[int, int] = (-1, -1)
    unsettled: set[int] = field(default_factory=set)
    #: the pids counted again by the last update
    recounted: list[int] = field(default_factory=list)

    def update(self, k: "Kernel") -> None:
        mms, procs = k.mms, k.shadow.procs
        if self.clocks == (-1, -1):
            changed = set(mms)
        else:
            changed = (set(mms.stamped_since(self.clocks[0])) | set(procs.stamped_since(self.clocks[1]))
                       | self.unsettled)
        self.unsettled = mms.unsettled() | procs.unsettled()
        changed |= self.unsettled
        totals = self.totals
        for pid in changed:
            old = self.per_pid.pop(pid, None)
            if old is not None:
                for item, n in old[0].items():
                    totals[item] -= n
                self.nr_ptes -= old[1]
            mm = mms.peek(pid)
            if mm is not None:
                counts = process_counts(k, pid)
                self.per_pid[pid] = (counts, mm.nr_ptes)
                for item, n in counts.items():
                    totals[item] += n
                self.nr_ptes += mm.nr_ptes
        self.recounted = sorted(changed)
        self.clocks = (mms.clock, procs.clock)

#: Per kernel: its processes' tally.
_TALLIES: "WeakKeyDictionary[Kernel, ProcessTally]" = WeakKeyDictionary()


def process_tally(k: "Kernel") -> ProcessTally:
    """The tally of k's processes, brought up to date (from scratch outside a command)."""
    if not k.mms.levels or not k.shadow.procs.levels:
        _TALLIES.pop(k, None)
        tally = ProcessTally()
        tally.update(k)
        return tally
    tally = _TALLIES.get(k) or _TALLIES.setdefault(k, ProcessTally())
    tally.update(k)
    return tally


def footprint(k: "Kernel") -> Footprint:
    """The items of the whole state: the machine's, and every process's."""
    tally = process_tally(k)
    counts = {
        "frames": k.mem.nr_frames,
        "swap slots": sum(si.pages for si in k.active_swap()),
        "cached slots": sum(len(si.cache) for si in k.active_swap()),
    }
    counts.update(tally.totals)
    return Footprint(counts)


def process_counts(k: "Kernel", pid: int) -> dict[str, int]:
    """The items one process holds."""
    mm = k.mms.peek(pid)
    if mm is None:
        raise KeyError(pid)
    return {"PMD entries": len(mm.pmds), "page tables": _tables(mm),
            "contents blocks": len(k.shadow.procs.peek(pid) or ()), "VMAs": len(mm.vmas)}


def process_cost(k: "Kernel", pid: int) -> int:
    """What a copy of process pid costs (what fork adds)."""
    return sum(COST[item] * n for item, n in process_counts(k, pid).items())


def range_bound(k: "Kernel", pid: int, start: int, end: int, write: bool) -> int:
    """The most a walk over [start, end) of pid can add (touch, check, uffd move's
    destination), per 2 MiB slot: a PMD entry where there is none yet; a page table
    unless there is one, or the slot holds a THP that the access leaves whole (a read, or
    a write to a THP this process alone maps); and a contents block where a write finds
    none (a folio's frame and LRU links are there from `set ram`).  In mainline, when the
    walk may need more frames than are free, what its direct reclaim may split too
    (reclaim_bound)."""
    mm = k.mms[pid]
    chunks = k.shadow.procs.get(pid, {})
    total = 0
    frames = 0                              # pages the walk may need a frame for
    for idx in range(start >> PMD_SHIFT, ((end - 1) >> PMD_SHIFT) + 1):
        pmd = mm.pmds.get(idx)
        if pmd is not None and pmd.kind in (PmdKind.HUGE, PmdKind.ZERO):
            shared = pmd.kind is PmdKind.ZERO or k.mem.entire_mapcount[pmd.pfn] > 1
            if write and shared:            # COW of a shared THP, or a write over the huge zero page
                total += COST["page tables"]
                frames += HPAGE_PMD_NR
            if write and idx not in chunks:
                total += COST["contents blocks"]
            continue
        if pmd is None:
            total += COST["PMD entries"]
        if pmd is None or pmd.kind is not PmdKind.TABLE:
            total += COST["page tables"]
        if write and idx not in chunks:
            total += COST["contents blocks"]
        base = idx << PMD_SHIFT
        lo, hi = max(start, base), min(end, base + PMD_SIZE)
        frames += (hi - lo) >> PAGE_SHIFT
    if frames > k.mem.alloc.nr_free and not k.config.pmd_swap:
        # a fault that finds no free frame runs direct reclaim, which in mainline may split
        # the PMD of every PMD-mapped THP it reaches
        total += reclaim_bound(k, None)
    return total


def reclaim_bound(k: "Kernel", pid: int | None, start: int = 0, end: int = 0) -> int:
    """Mainline reclaim splits the PMD of every mapping of a THP it swaps out into a
    table of 512 swap PTEs.  Global reclaim (pid None) may reach every PMD-mapped THP of
    every process; MADV_PAGEOUT of pid's [start, end) only those pid alone maps (it
    skips a folio mapped by another process)."""
    tables = 0
    for mm in [k.mms[pid]] if pid is not None else list(k.mms.peek_values()):
        for idx, pmd in mm.pmds.items():
            if pmd.kind is PmdKind.HUGE and (pid is None or (
                    start < (idx + 1) << PMD_SHIFT and idx << PMD_SHIFT < end
                    and k.mem.entire_mapcount[pmd.pfn] <= 1)):
                tables += 1
    return tables * COST["page tables"]


def refuse_over(k: "Kernel", op: str, growth: int = 0, what: str = "") -> None:
    """ENOMEM when the state (plus `growth`, what the command may add) passes HOST_BUDGET."""
    now = footprint(k)
    total = now.bytes + growth
    if total <= HOST_BUDGET:
        return
    big = max(now.counts, key=lambda item: COST[item] * now.counts[item])
    if growth:
        why = f"{what} could add {_mib(growth)} of host memory to the {_mib(now.bytes)} the simulation holds"
    else:
        why = f"the simulation would hold {_mib(total)} of host memory"
    raise MmError("ENOMEM", op, f"{why}: beyond its budget of {_mib(HOST_BUDGET)} "
                  f"(the most is {now.counts[big]} {big}, {_mib(COST[big] * now.counts[big])})")


def _mib(n: int) -> str:
    """`1467 MiB`, `2.3 MiB`, `0.1 MiB`."""
    return f"{n >> 20} MiB" if n >= 100 << 20 else f"{n / (1 << 20):.1f} MiB"
