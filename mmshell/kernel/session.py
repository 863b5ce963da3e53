"""One script's state on the live kernel, and the live kernel as the language's Backend.

`LiveSession` holds what a live run keeps (the current pid, region names, the
shadow of page contents, the devices and tunables through its `LiveMachine`)
and implements lang/backend.py's Backend, so the language's own commands
(lang/control.py) run on it as they do in the simulator.  `execute(cmd)` runs
one command as a step: the counters it moved are read around it unless it
only looks.  The handlers of the commands that act on the machine are the
language's (lang/operations.py), registered in :data:`HANDLERS` over
kernel/backend.py's primitives; what the live kernel cannot do is refused
before any handler runs (`live_handler`, with the registry's reason), and a
refused command raises `Refused` with the one-line reason in the kernel's terms.

A live run keeps the simulator's limits (docs/limits.md), and a command that
names addresses acts only inside the script's own regions of its process
(`own_range`): the rest of the worker's address space (its heap, its stack)
is the runner's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..lang import registry
from ..lang.backend import Handler, Handlers, Reading, StepOutput
from ..lang.errors import ExpectError
from ..lang.expect_paths import read_path
from ..lang.parser import Command
from ..lang.registry import only_looks
from ..lang.regions import RegionNames
from ..mm.constants import MAX_MAPPED
from . import percpu, procfs, tunables as tun
from .devices import DeviceError, SwapDevices
from .machine import LiveMachine
from .observer import LiveObserver
from .process import WorkerError
from .shadow import Shadow

PAGE = 4096
HPAGE = 2 << 20


class Refused(Exception):
    """A refused command: `ERRNO: why` (or `not supported on the live kernel: why`)."""


class Unsupported(Refused):
    def __init__(self, why: str) -> None:
        super().__init__(f"not supported on the live kernel: {why}")


HANDLERS: Handlers["LiveSession"] = Handlers()
handler = HANDLERS.register


def live_handler(cmd: Command) -> Handler["LiveSession"]:
    """The live handler of `cmd`, or `Unsupported` with the reason the registry gives
    (registry.live_refusal: the command's, the setting's or the view's)."""
    why = registry.live_refusal(cmd)
    if why is not None:
        raise Unsupported(why)
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
        #: nothing is pinned on the live kernel (compare pins settings in the simulator)
        self.pinned: dict[str, str] = {}
        self.timing = False             # `timing on|off` (lang/control.py)
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

    # -- the language's Backend (lang/backend.py) ------------------------------------------------
    refusals: tuple[type[Exception], ...] = (Refused, ExpectError)

    def refuse(self, errno: str, op: str, why: str) -> Exception:
        return Refused(f"{errno}: {why}")

    def check_pid(self, pid: int) -> None:
        try:
            self.machine.procs.get(pid)
        except KeyError:
            raise Refused(f"ESRCH: no process {pid}") from None

    def parent_of(self, pid: int) -> int | None:
        return self.machine.procs.get(pid).parent

    def alive(self) -> set[int]:
        return {p for p, _ in self.live_pids()}

    def setting_value(self, name: str, point: str | None = None) -> Any:
        """The value the running kernel has: the series is built in or not, MemTotal, a knob's."""
        spec = registry.setting(name)
        if spec.display:                # the live runner keeps them at their defaults
            return spec.default
        if name == "deposit":           # the running kernel deposits eagerly
            return "eager"
        if name == "pmd_swap":
            return self.machine.has_series
        if name == "ram":
            return procfs.meminfo()["MemTotal"] * 1024
        if not spec.knob or not Path(spec.knob).exists():
            return None
        return spec.from_knob(tun.read_knob(Path(spec.knob)))

    def run(self, cmd: Command) -> StepOutput:
        return live_handler(cmd)(self, cmd)

    def observe(self, path: str) -> Reading:
        return read_path(LiveObserver(self), path)

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

    def may_expand(self, op: str, grow: int) -> None:
        """The simulator's RLIMIT_AS (MAX_MAPPED per process) over the script's mappings."""
        total = sum(hi - lo for lo, hi in self.scan_ranges(self.pid)) + grow
        if total > MAX_MAPPED:
            raise Refused(f"ENOMEM: {total >> 30}G would be mapped in pid {self.pid}: beyond the "
                          f"simulation's limit of {MAX_MAPPED >> 40}T of address space per process")

    def call(self, op: str, *args: Any) -> Any:
        try:
            return self.machine.procs.call(self.pid, op, *args)
        except WorkerError as e:
            raise Refused(f"{e.errno_name}: {e.message}") from None

    # -- executing -----------------------------------------------------------------------------------
    def execute(self, cmd: Command) -> StepOutput:
        fn = live_handler(cmd)
        if only_looks(cmd):
            return fn(self, cmd)
        if cmd.name == "reclaim" and self.machine.cgroup is not None:
            # Outside the step's counters: the flush and the wait are no part of the step
            # (memcg_flush.py).  After the flush the wait ends at once.
            self.machine.cgroup.flush_stats()
            self.machine.cgroup.await_refault_stats()
        before = Counters.take(self)
        try:
            out = fn(self, cmd)
        except Refused:
            # The kernel may have done part of it before its error (madvise or mprotect across
            # a hole): its batched counts must not land in a later step.
            self.drain()
            raise
        if out.changed:
            self.drain()
            out.changes = Counters.take(self).delta(before)
            if out.changes["vmstat"].get("pswpin", 0) > 0 and self.async_swap_on():
                # Reads from an asynchronous device: a fault that finds a readahead page still
                # under I/O waits and is retried (one more pgmajfault, one fewer swap_ra_hit),
                # so those counts depend on I/O timing.
                out.changes["async_swapin"] = True
        return out

    def drain(self) -> None:
        """Flush the workers' per-CPU folio batches (they all run on one CPU), so that counters
        the kernel counts at a batch flush (pglazyfree) are counted by the step that caused them;
        with a disk or file device on, also every CPU's, theirs included, once the swap writes
        have ended (percpu.py: the folios their completion rotated would keep a reference past
        the step)."""
        spid = self.pid if self.pid in {p for p, _ in self.live_pids()} else 1
        self.machine.procs.call(spid, "drain")
        if self.async_swap_on():
            percpu.settle()

    def async_swap_on(self) -> bool:
        """Whether an asynchronous swap device (a disk or a swap file) of the run is on."""
        return any(d.active and d.kind in ("disk", "file") for d in self.devices.devices.values())

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


