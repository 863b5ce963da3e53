"""One live run's machine: set up before a script, torn down after it, whatever happens.

Set-up, in order (each step's undo is registered before the next runs):

1. check what is needed (root, zram, mkswap) and say exactly what is missing;
2. disable THP for the runner's own process (prctl PR_SET_THP_DISABLE), so
   its heap never shows up in the THP counters; the workers re-enable it;
3. bring the THP and khugepaged knobs and zswap to the simulator's defaults
   (`Tunables.simulator_defaults`) and park khugepaged (`park_khugepaged`);
4. fork pid 1, register it with khugepaged by one throw-away THP fault (a
   process is registered at its first THP fault, §0.4), and let khugepaged
   run the one pass that wakes it, so that it acts only on request from then on;
5. free the huge zero page if nothing maps it (``drop_caches=2`` runs its
   shrinker), so a script's first huge-zero read fault counts
   ``thp_zero_page_alloc +1`` as on a freshly booted machine;
6. snapshot the counters: every counter a script reads is a delta from here.

Tear-down: the workers exit (their address spaces go), the swap devices the
run created are swapped off and removed, every knob is restored.  Each undo
step is also in a journal on disk (journal.py) until it is done: a run killed
before its tear-down (SIGKILL, the OOM killer) is undone by the next run.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from . import procfs, syscalls as sc
from .devices import SwapDevices, missing_requirements, undo_step
from .journal import Journal, Step, runtime_path
from .process import Processes
from .tunables import Tunables, undo_knob

PR_GET_THP_DISABLE = 42
HPAGE = 2 << 20


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
    def __init__(self) -> None:
        self.journal = Journal()
        self.tunables = Tunables(self.journal)
        self.devices: SwapDevices | None = None
        self.procs = Processes()
        self.baseline: Snapshot | None = None
        self.has_series = False
        self._thp_disable: int | None = None
        self._lock: int | None = None
        self.warnings: list[str] = []

    def __enter__(self) -> "LiveMachine":
        missing = missing_requirements()
        if missing:
            raise MissingRequirement("; ".join(missing))
        self._lock = run_lock()
        try:
            self._recover()
            self._setup()
        except BaseException as e:
            errors = self.close()
            if isinstance(e, (OSError, RuntimeError)) and not isinstance(e, MissingRequirement):
                raise SetupError(str(e) + ("; undo: " + "; ".join(errors) if errors else "")) from e
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _recover(self) -> None:
        """Undo what a run killed before its tear-down left behind (journal.py), then start
        this run's journal; steps that still fail are carried into it, to be tried again."""
        left = Journal.left_behind(self.journal.path)
        if left is None:
            return
        pid, steps = left
        done, errors, failed = Journal.replay(steps, undo_any)
        for step in failed:
            self.journal.add(step)
        if not failed:
            self.journal.close()
        what = "; ".join(done) if done else "nothing was left to undo"
        self.warnings.append(f"a live run (pid {pid}) ended without tearing down (killed?); its journal "
                             f"{self.journal.path} was replayed: {what}"
                             + (f"; could not undo, will retry: {'; '.join(errors)}" if errors else ""))

    def _setup(self) -> None:
        self.has_series = "thp_swpout_pmd" in procfs.vmstat(refresh=False)
        self._thp_disable = sc.prctl(PR_GET_THP_DISABLE)
        sc.prctl(sc.PR_SET_THP_DISABLE, 1)
        self.devices = SwapDevices(self.journal)
        if self.devices.others:
            self.warnings.append("swap devices active before the run (never touched; the run's own "
                                 "devices get higher priorities): " + ", ".join(self.devices.others))
        self.tunables.simulator_defaults()
        self.tunables.park_khugepaged()
        self.procs.start()
        # one throw-away THP fault registers pid 1 with khugepaged (the registration wakes it)
        addr = self.procs.call(1, "mmap", 0, 2 * HPAGE, sc.PROT_READ | sc.PROT_WRITE, sc.MADV_HUGEPAGE)
        aligned = (addr + HPAGE - 1) & ~(HPAGE - 1)
        self.procs.call(1, "write", [(aligned, 1, 1)])
        self.procs.call(1, "munmap", addr, 2 * HPAGE)
        self.tunables.khugepaged_pass()
        try:
            Path("/proc/sys/vm/drop_caches").write_text("2")
        except OSError as e:
            self.warnings.append(f"could not free the huge zero page (drop_caches): {e.strerror}")
        self.baseline = Snapshot()

    def close(self) -> list[str]:
        errors: list[str] = []
        try:
            self.procs.close_all()
        except Exception as e:          # keep going: devices and knobs must still be undone
            errors.append(f"ending the worker processes: {e}")
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
                errors.append(f"left in {self.journal.path} for the next live run to undo")
            else:
                self.journal.close()
            os.close(self._lock)        # releases the flock
            self._lock = None
        return errors


def undo_any(step: Step) -> str | None:
    """Undo one journal step of either kind: a knob, or a piece of a swap device."""
    return undo_knob(step) if step.what == "knob" else undo_step(step)


LOCK_PATHS = ("/run/lock/mmshell-kernel.lock", "/tmp/mmshell-kernel.lock")
LOCK_WAIT = 600.0


def run_lock() -> int:
    """One live run at a time on a machine: they share the THP knobs and khugepaged.

    An flock on a lock file, waited for (with a note on stderr) up to LOCK_WAIT seconds.
    """
    path = str(runtime_path(LOCK_PATHS))
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + LOCK_WAIT
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise SetupError(f"another live run has held {path} for {LOCK_WAIT:.0f} s") from None
            if not told:
                print(f"mmshell kernel: waiting for another live run to finish ({path})", file=sys.stderr)
                told = True
            time.sleep(0.1)


def raise_on_sigterm() -> Any:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt (so every `finally` tears down); returns the old handlers."""
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
