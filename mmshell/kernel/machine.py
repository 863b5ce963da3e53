"""One live run's machine: set up before a script, torn down after it, whatever happens.

Set-up, in order (each step's undo is journaled before the next runs):

1. check what is needed (root, zram) and say exactly what is missing;
2. take the run lock and replay a journal a killed run left (state.py, journal.py);
3. disable THP for the runner's own process (prctl PR_SET_THP_DISABLE), so
   its heap never shows up in the THP counters; the workers re-enable it;
4. make the workers' memory cgroup (cgroup.py);
5. bring the THP and khugepaged knobs and zswap to the simulator's defaults
   (`Tunables.simulator_defaults`) and park khugepaged (`park_khugepaged`);
6. fork pid 1 into the cgroup, register it with khugepaged by one throw-away
   THP fault (a process is registered at its first THP fault, §0.4), and let
   khugepaged run the one pass that wakes it, so that it acts only on request;
7. if the script asks for it (it reads ``vmstat.thp_zero_page_alloc``), free
   the huge zero page if nothing maps it (``drop_caches=2`` runs its shrinker,
   and every other slab shrinker of the machine), so that its first huge-zero
   read fault counts ``thp_zero_page_alloc +1`` as on a freshly booted machine;
8. snapshot the counters: every counter a script reads is a delta from here.

Tear-down, with SIGINT, SIGTERM and SIGHUP held until it ends: the workers
exit (their address spaces go), the cgroup is removed, the swap devices the
run created are swapped off and removed, every knob is restored.  Each undo
step is in the journal until it is done: a run killed before its tear-down
(SIGKILL, the OOM killer) is undone by the next run or `mmshell kernel recover`.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from . import procfs, syscalls as sc
from .cgroup import MemoryCgroup, check_cgroup_step, undo_cgroup
from .devices import SwapDevices, check_device_step, missing_requirements, signals_deferred, undo_device_step
from .journal import Journal, Step
from .process import Placement, Processes
from .state import StateDir
from .tunables import Tunables, check_knob_step, undo_knob

PR_GET_THP_DISABLE = 42
HPAGE = 2 << 20
DROP_CACHES = Path("/proc/sys/vm/drop_caches")


class MissingRequirement(RuntimeError):
    """The machine lacks something a live run needs (the message says what)."""


class SetupError(RuntimeError):
    """Setting up the live machine failed (everything done so far was undone)."""


class Snapshot:
    """Counters at one moment: /proc/vmstat, the 2 MiB mTHP stats, /proc/meminfo."""

    def __init__(self) -> None:
        self.vmstat = procfs.vmstat(refresh=True)
        self.mthp = procfs.mthp_stats()
        self.meminfo = procfs.meminfo()


class LiveMachine:
    """The live machine of one run.  `free_huge_zero`: free the huge zero page before the script
    (drop_caches=2), which only a script that reads vmstat.thp_zero_page_alloc asks for."""

    def __init__(self, state: StateDir | None = None, free_huge_zero: bool = False) -> None:
        self.state = state if state is not None else StateDir()
        self.journal = Journal(self.state)
        self.tunables = Tunables(self.journal)
        self.devices: SwapDevices | None = None
        self.cgroup: MemoryCgroup | None = None
        self.procs = Processes()
        self.baseline: Snapshot | None = None
        self.has_series = False
        self.free_huge_zero = free_huge_zero
        self._thp_disable: int | None = None
        self._lock: int | None = None
        self._journal_ours = False       # set once a journal left behind has been dealt with
        self.warnings: list[str] = []

    def __enter__(self) -> "LiveMachine":
        missing = missing_requirements()
        if missing:
            raise MissingRequirement("; ".join(missing))
        try:
            self._lock = self.state.lock()
            with signals_deferred():
                self.warnings += recover(self.journal)
            self._journal_ours = True
            self._setup()
        except BaseException as e:
            errors = self.close()
            if isinstance(e, (OSError, RuntimeError)) and not isinstance(e, MissingRequirement):
                raise SetupError(str(e) + ("; undo: " + "; ".join(errors) if errors else "")) from e
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _setup(self) -> None:
        self.has_series = "thp_swpout_pmd" in procfs.vmstat(refresh=False)
        self._thp_disable = sc.prctl(PR_GET_THP_DISABLE)
        sc.prctl(sc.PR_SET_THP_DISABLE, 1)
        self.devices = SwapDevices(self.journal)
        if self.devices.others:
            self.warnings.append("swap devices active before the run (never touched; the run's own "
                                 "devices get higher priorities): " + ", ".join(self.devices.others))
        self.cgroup = MemoryCgroup.create(self.journal)
        self.procs = Processes(Placement(self.cgroup.procs(self.cgroup.stage),
                                         self.cgroup.procs(self.cgroup.work)))
        self.tunables.simulator_defaults()
        self.tunables.park_khugepaged()
        self.procs.start()
        # one throw-away THP fault registers pid 1 with khugepaged (the registration wakes it)
        addr = self.procs.call(1, "mmap", 0, 2 * HPAGE, sc.PROT_READ | sc.PROT_WRITE, sc.MADV_HUGEPAGE)
        aligned = (addr + HPAGE - 1) & ~(HPAGE - 1)
        self.procs.call(1, "write", [(aligned, 1, 1)])
        self.procs.call(1, "munmap", addr, 2 * HPAGE)
        self.tunables.khugepaged_pass()
        if self.free_huge_zero:
            try:
                DROP_CACHES.write_text("2")
            except OSError as e:
                self.warnings.append(f"could not free the huge zero page (drop_caches): {e.strerror}")
        self.baseline = Snapshot()

    def close(self) -> list[str]:
        """Tear everything down, with SIGINT/SIGTERM/SIGHUP held until the end (a signal that
        came meanwhile is delivered then); the errors.  Calling it again does nothing."""
        with signals_deferred():
            return self._close()

    def _close(self) -> list[str]:
        errors: list[str] = []
        try:
            self.procs.close_all()
        except Exception as e:          # keep going: devices and knobs must still be undone
            errors.append(f"ending the worker processes: {e}")
        if self.cgroup is not None:
            errors += self.cgroup.remove()
            self.cgroup = None
        if self.devices is not None:
            errors += self.devices.teardown()
        errors += self.tunables.restore()
        if self._thp_disable is not None:
            try:
                sc.prctl(sc.PR_SET_THP_DISABLE, self._thp_disable)
            except OSError as e:
                errors.append(f"restoring PR_SET_THP_DISABLE: {e}")
            self._thp_disable = None
        if self._lock is not None:
            if self.journal.steps:      # what could not be undone: the next run tries again
                errors.append(f"left in {self.state.journal_path} for the next live run "
                              "(or mmshell kernel recover) to undo")
            elif self._journal_ours:    # (a journal that could not be read is left as it is)
                self.journal.close()
            os.close(self._lock)        # releases the flock
            self._lock = None
        self.state.close()
        return errors


#: Step kind -> (check its arguments, undo it given whether the journal is from this boot).
STEP_KINDS: dict[str, tuple[Any, Any]] = {
    "knob": (check_knob_step, undo_knob),
    "cgroup rmdir": (check_cgroup_step, undo_cgroup),
    **{what: (lambda args, what=what: check_device_step(what, args), undo_device_step)
       for what in ("swapoff", "zram reset", "zram remove", "loop detach", "unlink", "rmdir")},
}


def check_step(item: Any) -> Step:
    """A journal item as a Step, if it is one a live run writes (ValueError otherwise)."""
    if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
            and isinstance(item[1], dict)):
        raise ValueError("not a [what, arguments] pair")
    if item[0] not in STEP_KINDS:
        raise ValueError(f"unknown step {item[0]!r}")
    STEP_KINDS[item[0]][0](item[1])
    return Step(item[0], item[1])


def recover(journal: Journal) -> list[str]:
    """Replay a journal a killed run left (the caller holds the run lock); one line each for
    what was put back and for every step left alone, refused or kept to be tried again.

    The steps that failed are carried into `journal` (the running run's), to be tried again.
    Raises UnsafeState when the journal file is not one a run wrote (a link, another owner).
    """
    assert journal.state is not None
    left = Journal.left_behind(journal.state)
    if left is None:
        return []
    same_boot = left.same_boot

    def undo(step: Step) -> str | None:
        return STEP_KINDS[step.what][1](step, same_boot)
    done, notes, failed = Journal.replay(left.steps, undo, check_step)
    if left.pid is None and not left.steps:
        notes.append("it could not be read as a live run's journal; removed")
    journal.close()
    for step in failed:
        journal.add(step)
    who = f"a live run (pid {left.pid})" if left.pid is not None else "a live run"
    lines = [f"{who} ended without tearing down (killed?); its journal {journal.state.journal_path} "
             f"was replayed" + ("" if same_boot else " (it is from an earlier boot)") + ": "
             + ("; ".join(done) if done else "nothing was left to undo")]
    return lines + notes


def recover_now(state: StateDir | None = None) -> tuple[int, list[str]]:
    """`mmshell kernel recover`: take the run lock, replay a journal left behind, release.
    (exit status: 0 all undone or nothing to do, 1 something left in the journal; lines)."""
    state = state if state is not None else StateDir()
    journal = Journal(state)
    lock = state.lock()
    try:
        with signals_deferred():
            lines = recover(journal)
        if not lines:
            return 0, [f"nothing to recover: no journal in {state.path}"]
        return (1 if journal.steps else 0), lines
    finally:
        os.close(lock)
        state.close()


def raise_on_sigterm() -> Any:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt (so every `finally` tears down); returns the old
    handlers."""
    def handler(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    for s in old:
        signal.signal(s, handler)
    return old


def restore_signals(old: dict) -> None:
    for s, h in old.items():
        signal.signal(s, h)


def kernel_release() -> str:
    return os.uname().release
