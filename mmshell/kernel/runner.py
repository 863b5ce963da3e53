"""Running .mmsh commands on the live kernel: one command -> one step, as `mmshell run` does.

`LiveSession.execute(cmd)` runs one parsed command in the script's current
process (or the process `@PID` names) through real system calls and returns
a `LiveOutput`; a refused command raises `Refused` with the one-line reason
in the kernel's terms.  `run_live_text` parses a script whole, runs it step
by step, and tallies the outcome with the exit statuses of `mmshell run`.

What the live kernel cannot do is refused by name (`set fail`, `set ram`,
`trace`, `set pmd_swap on` on a kernel without the series).  A live run keeps
the simulator's limits (docs/limits.md), and a command that names addresses
acts only inside the script's own regions of its process (`own_range`): the
rest of the worker's address space (its heap, its stack) is the runner's.  An
expectation whose path userspace cannot see is *not observable*: it never
passes, and counts as a failed expectation.  Where a proxy is used (see
observe.py), the step says which.

Placement: a mapping is put where the simulator would put it (its top-down
get_unmapped_area below MMAP_BASE, 2 MiB-aligned from 2 MiB up), with
MAP_FIXED_NOREPLACE, and `mremap` without `at` moves to the simulator's
choice with MREMAP_FIXED; so region addresses, and which VMAs merge, are the
same in both, and a same-size mremap really moves (plain MREMAP_MAYMOVE
would leave it where it is).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

from ..lang.parser import Command
from ..lang.registry import only_looks, unwrap
from ..lang.steps import Observer, Outcome, StepRecord, format_error, op_name, run_commands
from ..lang.regions import RegionNames
from ..mm.constants import MAX_ACCESS, MAX_MAPPED, MMAP_BASE
from . import procfs, tunables as tun
from .devices import DeviceError, SwapDevices
from .machine import LiveMachine
from .process import WorkerDied, WorkerError
from .shadow import Shadow

PAGE = 4096
HPAGE = 2 << 20


class Refused(Exception):
    """A refused command: `ERRNO: why` (or `not supported on the live kernel: why`)."""


class ExpectError(Exception):
    """An expectation whose PATH or VALUE is wrong."""


class Unsupported(Refused):
    def __init__(self, why: str) -> None:
        super().__init__(f"not supported on the live kernel: {why}")


@dataclass(slots=True)
class LiveOutput:
    lines: list[str] = field(default_factory=list)
    failed_expect: str | None = None
    not_observable: str | None = None
    notes: list[str] = field(default_factory=list)
    changed: bool = True
    changes: dict[str, Any] | None = None
    value: Any = None                  # an expect's observed value (for `kernel diff`)


Handler = Callable[["LiveSession", Command], LiveOutput]
HANDLERS: dict[str, Handler] = {}


def handler(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        return fn
    return register


def live_handler(cmd: Command) -> Handler:
    """The live handler of `cmd`, or `Unsupported` with the reason its registry entry gives."""
    live = cmd.spec.live
    if live is not True:
        raise Unsupported(str(live))
    return HANDLERS[cmd.name]


class LiveSession(RegionNames):
    """One script's state on the live machine: current pid, region names, page contents."""

    def __init__(self, machine: LiveMachine, prios: dict[int, int] | None = None) -> None:
        self.machine = machine
        self.pid = 1
        self.regions: dict[int, dict[str, tuple[int, int]]] = {1: {}}
        self.shadow = Shadow()
        self.next_value = (os.getpid() << 32) | 1
        self.release = os.uname().release
        self.prios = prios or {}
        self.warnings: list[str] = []
        self._least_priority = -1

    def next_default_prio(self) -> int:
        """The priority the kernel gives a swapon without one: -2, -3, ... (--least_priority)."""
        self._least_priority -= 1
        return self._least_priority

    # -- names and pids ------------------------------------------------------------------------
    @property
    def devices(self) -> SwapDevices:
        assert self.machine.devices is not None
        return self.machine.devices

    def kpid(self, spid: int | None = None) -> int:
        return self.machine.procs.get(self.pid if spid is None else spid).pid

    def live_pids(self) -> list[tuple[int, int]]:
        return [(p.spid, p.pid) for p in self.machine.procs.procs.values() if p.alive]

    def scan_ranges(self, spid: int) -> list[tuple[int, int]]:
        """The VMAs of spid that overlap one of its regions (where its script pages live)."""
        regions = list(self.names(spid).values())
        out = []
        for lo, hi, _perms, _path in procfs.maps(self.kpid(spid)):
            if any(lo < s + n and s < hi for s, n in regions):
                out.append((lo, hi))
        return out

    def refuse(self, errno: str, op: str, why: str) -> Exception:
        return Refused(f"{errno}: {why}")

    # -- what a command may touch ----------------------------------------------------------------
    def own_range(self, start: int, length: int, op: str) -> None:
        """Refuse a range that reaches outside the script's regions of the current process: the
        rest of the worker's address space (its heap, its stack) is the runner's, never touched."""
        end = start + length
        addr = start
        for lo, n in sorted(self.names().values()):
            if lo <= addr < lo + n:
                addr = lo + n
            if addr >= end:
                return
        raise Refused(f"EPERM: {op} of {start:#x}-{end:#x} reaches {addr:#x}, outside the script's regions "
                      f"of pid {self.pid}: on the live kernel a command acts only on what the script "
                      "mapped (the rest is the worker process's own memory)")

    def walk_limit(self, op: str, length: int) -> None:
        """A command that walks a range page by page takes at most MAX_ACCESS of it (as the simulator)."""
        if length > MAX_ACCESS:
            raise Refused(f"EINVAL: a range of {length >> 20}M: beyond the simulation's limit of "
                          f"{MAX_ACCESS >> 30}G per {op}")

    def may_expand(self, op: str, grow: int) -> None:
        """The simulator's RLIMIT_AS (MAX_MAPPED per process) over the script's mappings."""
        total = sum(hi - lo for lo, hi in self.scan_ranges(self.pid)) + grow
        if total > MAX_MAPPED:
            raise Refused(f"ENOMEM: {total >> 30}G would be mapped in pid {self.pid}: beyond the simulation's "
                          f"limit of {MAX_MAPPED >> 40}T of address space per process")

    def call(self, op: str, *args: Any) -> Any:
        try:
            return self.machine.procs.call(self.pid, op, *args)
        except WorkerError as e:
            raise Refused(f"{e.errno_name}: {e.message}") from None

    # -- executing -----------------------------------------------------------------------------------
    def execute(self, cmd: Command) -> LiveOutput:
        fn = live_handler(cmd)
        if only_looks(cmd):
            return fn(self, cmd)
        before = Counters.take(self)
        out = fn(self, cmd)
        if out.changed:
            self.drain()
            out.changes = Counters.take(self).delta(before)
            if out.changes["vmstat"].get("pswpin", 0) > 0 and any(
                    d.active and d.kind in ("disk", "file") for d in self.devices.devices.values()):
                # Reads from an asynchronous device: a fault that finds a readahead page still
                # under I/O waits and is retried (one more pgmajfault, one fewer swap_ra_hit),
                # so those counts depend on I/O timing.
                out.changes["async_swapin"] = True
        return out

    def drain(self) -> None:
        """Flush the workers' per-CPU folio batches (they all run on one CPU), so that counters
        the kernel counts at a batch flush (pglazyfree) are counted by the step that caused them."""
        spid = self.pid if self.pid in {p for p, _ in self.live_pids()} else 1
        self.machine.procs.call(spid, "drain")

    def fresh_values(self, n: int) -> int:
        first = self.next_value
        self.next_value += n
        return first


#: The /proc/vmstat counters a step reports as changed: the anon-THP and swap events and the
#: gauges the simulator models.  The rest (pgfault, pgfree, nr_free_pages, nr_anon_pages ...)
#: move with every process on the machine, the runner's own included; `expect vmstat.NAME`
#: still reads any of them.
STEP_VMSTAT = (
    "nr_anon_transparent_hugepages", "nr_swapcached",
    "pswpin", "pswpout", "pglazyfree", "pgmajfault", "pglazyfreed",
    "thp_fault_alloc", "thp_fault_fallback", "thp_fault_fallback_charge", "thp_collapse_alloc",
    "thp_collapse_alloc_failed", "thp_split_page", "thp_split_page_failed", "thp_deferred_split_page",
    "thp_underused_split_page", "thp_split_pmd", "thp_scan_exceed_none_pte", "thp_scan_exceed_swap_pte",
    "thp_scan_exceed_share_pte", "thp_zero_page_alloc", "thp_zero_page_alloc_failed", "thp_swpout",
    "thp_swpout_fallback", "thp_swpout_pmd", "swap_ra", "swap_ra_hit", "swpin_zero", "swpout_zero",
    "zswpin", "zswpout", "zswpwb",
)


class Counters:
    """The counters a step shows as changed: /proc/vmstat, the mTHP stats, swap Used."""

    def __init__(self, vmstat: dict[str, int], mthp: dict[str, int], swap: dict[str, int]) -> None:
        self.vmstat, self.mthp, self.swap = vmstat, mthp, swap

    @classmethod
    def take(cls, s: LiveSession) -> "Counters":
        swap = {}
        for name, dev in s.devices.devices.items():
            if dev.active:
                try:
                    swap[name] = s.devices.used_pages(name)
                except DeviceError:
                    pass
        vm = procfs.vmstat()
        return cls({k: vm[k] for k in STEP_VMSTAT if k in vm}, procfs.mthp_stats(), swap)

    def delta(self, before: "Counters") -> dict[str, Any]:
        vm = {k: v - before.vmstat.get(k, 0) for k, v in self.vmstat.items() if v != before.vmstat.get(k, 0)}
        mthp = {k: v - before.mthp.get(k, 0) for k, v in self.mthp.items() if v != before.mthp.get(k, 0)}
        swap = [{"name": n, "before": before.swap.get(n), "after": u,
                 "delta": u - (before.swap.get(n) or 0)}
                for n, u in self.swap.items() if before.swap.get(n) != u]
        return {"vmstat": vm, "mthp": mthp, "swap": swap}


# -- running text ---------------------------------------------------------------------------------------

def run_live_text(s: LiveSession, text: str, source: str, observer: Observer | None = None,
                  keep_going: bool = False, outcome: Outcome | None = None, depth: int = 0,
                  base: Path | None = None) -> Outcome:
    """Parse all of `text` first, then run it step by step on the live kernel (steps.py's loop)."""
    return run_commands(text, source, partial(_live_step, s), observer, keep_going, outcome, depth, base)


def _live_step(s: LiveSession, cmd: Command, source: str) -> StepRecord:
    """One command on the live kernel: a refusal, a failed live run (the workers, a device,
    a tunable) or an expectation userspace cannot see becomes the record's one error line."""
    rec = StepRecord(source, cmd.line, cmd)
    try:
        rec.output = s.execute(cmd)
    except Refused as e:
        rec.kind, rec.error = "refused", format_error(source, cmd.line, op_name(cmd), str(e))
    except ExpectError as e:
        rec.kind, rec.error = "refused", format_error(source, cmd.line, "expect", str(e))
    except (WorkerDied, DeviceError, tun.TunableError, OSError) as e:
        rec.kind, rec.error = "bug", format_error(source, cmd.line, op_name(cmd), f"live run failed: {e}")
    if rec.kind != "ok" or rec.output is None:
        return rec
    if rec.output.not_observable:
        rec.kind = "not-observable"
        rec.error = format_error(source, cmd.line, "expect", "not observable on the live kernel: "
                                 + rec.output.not_observable)
    elif rec.output.failed_expect:
        rec.kind = "expect-failed"
        rec.error = format_error(source, cmd.line, "expect", rec.output.failed_expect)
    return rec


# -- swap priorities -----------------------------------------------------------------------------------

def script_priorities(commands: list[Command]) -> list[int]:
    """The priority each `swapon` of the script asks for, in order (defaults as the kernel: -2, -3 ...)."""
    out: list[int] = []
    least = -1
    for c in map(partial(unwrap, into_refusal=True), commands):
        if c.name == "swapon":
            if c.args["prio"] is not None:
                out.append(c.args["prio"])
            else:
                least -= 1
                out.append(least)
    return out


def asks_for_huge_zero(commands: list[Command]) -> bool:
    """Whether the script reads vmstat.thp_zero_page_alloc (in an expect, also under @PID, `if`
    or `expect fails`): only then is the huge zero page freed before it (drop_caches=2, which
    also shrinks every slab cache of the machine), so that its first huge-zero read fault counts
    +1 as on a freshly booted machine.  Otherwise that count depends on the machine's past."""
    return any(c.name == "expect" and str(c.args["path"]).startswith(HUGE_ZERO_COUNTERS)
               for c in map(partial(unwrap, into_refusal=True), commands))


#: vmstat counters of the huge zero page, which is allocated once and kept until freed.
HUGE_ZERO_COUNTERS = ("vmstat.thp_zero_page_alloc", "vmstat.thp_zero_page_alloc_failed")


def live_priorities(script_prios: list[int], floor: int) -> dict[int, int]:
    """Script priority -> live priority: the same order, all above `floor` (every other device)."""
    distinct = sorted(set(script_prios))
    return {p: floor + 1 + i for i, p in enumerate(distinct)}


from . import handlers  # noqa: E402,F401  (registers the command handlers)
