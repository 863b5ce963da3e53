"""The live kernel as a backend: the primitives the language's handlers ask of it.

The counterpart of lang/execute.py's simulator: each primitive of
lang/backend.py's Operations does through the worker processes' system calls
(kernel/process.py), the swap devices, the sysfs knobs and the memory cgroup
what the simulator's does through mm/, and keeps the shadow of page contents
that `check` compares with.  The handlers themselves are the language's, once
for both backends: lang/control.py's own commands and lang/operations.py's
commands that act on the machine, registered here over :class:`_Live`.
"""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable

from ..lang import control, operations
from ..lang.backend import Handler, OnSession, StepOutput, Verified
from ..lang.parser import Command
from ..lang.settings import SettingSpec
from ..lang.values import pages
from ..mm.constants import MMAP_BASE, TASK_SIZE
from ..mm.mman import Madv
from ..mm.swap_info import SwapKind
from ..mm.vma import VM
from . import percpu, procfs, syscalls as sc, tunables as tun
from .devices import DeviceError
from .process import WorkerError
from .session import HPAGE, PAGE, LiveSession, Refused, Unsupported, handler
from .syscalls import PAGE_IS_PRESENT, PAGE_IS_SWAPPED


# -- helpers of the primitives ---------------------------------------------------------------------

def _wait_scans(before: int) -> bool:
    deadline = time.monotonic() + tun.PASS_TIMEOUT
    while time.monotonic() < deadline:
        if tun.full_scans() > before:
            return True
        time.sleep(0.001)
    return False


def get_unmapped_area(s: LiveSession, length: int) -> int:
    """The simulator's placement (mm/mmap.py get_unmapped_area) over this process's VMAs."""
    align = HPAGE if length >= HPAGE else PAGE
    top = MMAP_BASE
    for lo, hi, _p, _n in sorted(procfs.maps(s.kpid()), key=lambda v: v[0], reverse=True):
        if lo >= top:
            top = min(top, lo)
            continue
        start = (top - length) & ~(align - 1)
        if start >= hi:
            return start
        top = lo
    start = (top - length) & ~(align - 1)
    if start < (1 << 32):
        raise Refused("ENOMEM: no free address range of that size")
    return start


def _pages(length: int) -> int:
    return (length + PAGE - 1) // PAGE


#: Bytes of one read request of `check` (one reply holds a value per page).
CHECK_CHUNK = 64 << 20


def _fixed(addr: int, length: int) -> None:
    """A fixed address (mmap or mremap `at`) is page aligned and the range inside the user address space."""
    if addr % PAGE:
        raise Refused(f"EINVAL: address {addr:#x} not page aligned")
    if addr + length > TASK_SIZE:
        raise Refused("EINVAL: range beyond the user address space")


def _free_or_own(s: LiveSession, start: int, length: int, op: str) -> None:
    """A fixed destination may replace the script's own mappings (MREMAP_FIXED unmaps what is
    there) but nothing else of the worker's: every VMA there must lie in the script's regions."""
    for lo, hi, _perms, _path in procfs.maps(s.kpid()):
        if lo < start + length and start < hi:
            s.own_range(max(lo, start), min(hi, start + length) - max(lo, start), op)


def _check_access(s: LiveSession, start: int, end: int, write: bool) -> None:
    """Refuse before touching anything if some page would raise SIGSEGV, or a userfault."""
    vmas = sorted(procfs.maps(s.kpid()))
    addr = start
    for lo, hi, perms, _path in vmas:
        if hi <= addr:
            continue
        if lo > addr:
            break
        need = "w" if write else "r"
        if need not in perms:
            kind = "write to read-only" if write else "read of inaccessible"
            raise Refused(f"SIGSEGV: {kind} mapping at {addr:#x}")
        addr = hi
        if addr >= end:
            break
    if addr < end:
        raise Refused(f"SIGSEGV: no mapping at {addr:#x}")
    for v in procfs.smaps(s.kpid()):
        if "um" in v.flags and v.start < end and v.end > start:
            lo, hi = max(start, v.start), min(end, v.end)
            for i, w in enumerate(procfs.pagemap_words(s.kpid(), lo, (hi - lo) // PAGE)):
                if not w >> 62:
                    raise Unsupported(f"page {s.describe(lo + i * PAGE)} lies in a userfaultfd-registered "
                                      "range and is missing: the access would raise a userfault that no "
                                      "thread handles (the simulator does not model missing-page userfaults)")


def _check_all(s: LiveSession) -> list[str]:
    """Every present page of every process reads what was written; swapped pages are not faulted in."""
    present = swapped = unreadable = 0
    problems: list[str] = []
    bad = 0
    for spid, kpid in s.live_pids():
        readable = [(lo, hi) for lo, hi, perms, _ in procfs.maps(kpid) if "r" in perms]
        for lo, hi in s.scan_ranges(spid):
            runs = list(procfs.page_runs(kpid, lo, hi, PAGE_IS_PRESENT))
            n_present = sum(b - a for a, b in runs) // PAGE
            if not any(a <= lo and hi <= b for a, b in readable):      # PROT_NONE: a load would fault
                unreadable += n_present
                continue
            swapped += sum(b - a for a, b in procfs.page_runs(kpid, lo, hi, PAGE_IS_SWAPPED)) // PAGE
            for a, b in runs:                  # a run at a time: a read of every page in one reply
                for chunk in range(a, b, CHECK_CHUNK):
                    n = min(CHECK_CHUNK, b - chunk) // PAGE
                    vals = s.machine.procs.call(spid, "read", [(chunk, n)])
                    present += n
                    for i, v in enumerate(vals):
                        p = chunk + i * PAGE
                        if v not in s.shadow.expected(spid, p):
                            bad += 1
                            if len(problems) < 10:
                                problems.append(f"pid {spid} page {s.describe(p, spid)} reads {v:#x}, last "
                                                f"written {s.shadow.expected(spid, p)[0]:#x}")
    if bad:
        raise Refused(f"EFAULT: {bad} problem(s): " + "; ".join(problems))
    return [
        f"check: {pages(present)} present read back what was written; {pages(swapped)} swapped out "
        "not read (that would fault them in)" + (f", {unreadable} in PROT_NONE mappings not read"
                                                  if unreadable else "")
        + "; the simulator's invariant checker has no live counterpart"]


def _foreign_swap(s: LiveSession, start: int, end: int) -> list[str]:
    """Warn when pages went to a swap device the script did not create (§0.4)."""
    kpid = s.kpid()
    types = {w & 0x1F for a, b in procfs.page_runs(kpid, start, end, PAGE_IS_SWAPPED)
             for w in procfs.pagemap_words(kpid, a, (b - a) // PAGE) if w >> 62 == 1}
    foreign = sorted(t for t in types if s.devices.by_type(t) is None)
    if foreign:
        return [f"warning: pages went to swap type(s) {foreign}, not a device this script created"]
    return []


# -- the live kernel as the language's Operations --------------------------------------------------

class _Live(OnSession):
    """The live kernel as lang/backend.py's Operations, over one LiveSession."""

    def __init__(self, s: LiveSession) -> None:
        self.s = s

    def check_pid(self, pid: int) -> None:
        self.s.check_pid(pid)

    def parent_of(self, pid: int) -> int | None:
        return self.s.parent_of(pid)

    def alive(self) -> set[int]:
        return self.s.alive()

    # -- set-up ------------------------------------------------------------------------------------
    def keep(self, name: str, value: Any) -> list[str]:
        # `set display` is refused live (registry.live_refusal); the display settings are not
        return [f"set {name}: the live runner always lists the counters it watches, and never pages"]

    def set(self, spec: SettingSpec, value: Any, point: str | None) -> StepOutput:
        s, name = self.s, spec.name
        t = s.machine.tunables
        out = StepOutput(changed=False)
        if name == "pmd_swap":
            if value and not s.machine.has_series:
                raise Refused(f"EOPNOTSUPP: this kernel ({s.release}) lacks the PMD swap entry series "
                              "(/proc/vmstat has no thp_swpout_pmd), so pmd_swap cannot be on")
            if not value and s.machine.has_series:
                raise Unsupported("the running kernel has the PMD swap entry series built in; "
                                  "it cannot be switched off")
        elif name == "thp":
            was_running = tun.khugepaged_running()
            before = tun.full_scans()
            try:
                t.set(Path(spec.knob), value)
            except tun.TunableError as e:
                raise Refused(f"EIO: {e}") from None
            if not was_running and tun.khugepaged_running():
                # start_stop_khugepaged() starts the khugepaged thread again, and a new thread
                # scans at once (a running one is only woken, and goes back to its parked sleep)
                if not _wait_scans(before):
                    out.notes.append(f"warning: the khugepaged pass did not end within "
                                     f"{tun.PASS_TIMEOUT:.0f} s; it may still act on the script's memory")
                out.notes.append("turning THP on again started khugepaged, which scanned at once "
                                 "(start_stop_khugepaged)")
                out.changed = True
        elif name == "zswap":
            if not Path(spec.knob).exists():
                raise Unsupported("this kernel has no zswap (CONFIG_ZSWAP=n)")
            t.set(Path(spec.knob), spec.knob_text(value))
            if value:
                out.notes.append("zswap was enabled: zswap_never_enabled() is false on this machine "
                                 "until it reboots")
        elif name == "deposit":
            if value == "lazy":
                raise Unsupported("the running kernel deposits a PTE table with every PMD-level entry; "
                                  "'set deposit lazy' is a what-if of the simulator")
        else:
            t.set(Path(spec.knob), spec.knob_text(value))
        return out

    def swapon(self, name: str, size: int, kind: SwapKind, prio: int | None) -> list[str]:
        s = self.s
        if prio is not None and not -1 <= prio <= 32767:
            raise Refused(f"EINVAL: priority {prio} outside -1..32767")
        script_prio = prio if prio is not None else s.next_default_prio()
        top = s.devices.top_foreign_priority()
        live_prio = s.prios.get(script_prio)
        if live_prio is None or (top is not None and live_prio <= top):
            live_prio = max([top if top is not None else -1] + [d.prio for d in s.devices.devices.values()
                                                                if d.active]) + 1
            s.warnings.append(f"swapon {name}: priority {script_prio} not planned; live priority {live_prio}")
        if live_prio > sc.SWAP_FLAG_PRIO_MASK:
            raise Refused("EINVAL: no swap priority left above the active devices")
        try:
            dev = s.devices.swapon(name, size, kind.value, live_prio)
        except DeviceError as e:
            raise Refused(f"{e.errno_name}: {e}") from None
        except OSError as e:
            raise Refused(f"{sc.errno_name(e.errno or 0)}: swapon {name}: {e.strerror or e}") from None
        return [f"swap {dev.name}: {kind.value} {dev.path}, {dev.size >> 10} kB, priority "
                f"{live_prio} (script {script_prio}), swap type {dev.type}"]

    def swapoff(self, name: str) -> None:
        s = self.s
        if s.devices.get(name) is None:
            raise Refused(f"ENOENT: no swap device {name!r}")
        try:
            s.devices.swapoff(name)
        except DeviceError as e:
            raise Refused(f"{e.errno_name}: {e}") from None
        except OSError as e:
            raise Refused(f"{sc.errno_name(e.errno or 0)}: swapoff {name}: {e.strerror or e}") from None

    # -- processes --------------------------------------------------------------------------------------
    def fork(self) -> int:
        s = self.s
        child = s.machine.procs.fork(s.pid, list(s.names().values()))
        s.shadow.copy_process(s.pid, child.spid)
        return int(child.spid)

    def exit(self, pid: int) -> None:
        self.s.machine.procs.exit(pid)
        self.s.shadow.drop_process(pid)

    # -- memory --------------------------------------------------------------------------------------------
    def mmap(self, size: int, flags: VM, advice: Madv | None, at: int | None) -> tuple[int, int]:
        s = self.s
        if size <= 0:
            raise Refused("EINVAL: length must be positive")
        length = (size + PAGE - 1) & ~(PAGE - 1)
        s.may_expand("mmap", length)
        if at is not None:
            addr = at
            _fixed(addr, length)
            if addr < (1 << 16):
                raise Refused(f"EPERM: address {addr:#x} is below mmap_min_addr")
        else:
            addr = get_unmapped_area(s, length)
        try:
            s.machine.procs.call(s.pid, "mmap", addr, length, sc.prot_of(flags),
                                 int(advice) if advice is not None else None)
        except WorkerError as e:
            if e.errno_name == "EEXIST":
                raise Refused(f"EEXIST: {addr:#x}+{length:#x} overlaps an existing mapping") from None
            raise Refused(f"{e.errno_name}: {e.message}") from None
        return addr, length

    def touch(self, start: int, length: int, write: bool) -> int:
        s = self.s
        s.own_range(start, length, "touch")
        n = _pages(length)
        _check_access(s, start, start + n * PAGE, write)
        if write:
            first = s.fresh_values(n)
            s.call("write", [(start, n, first)])
            s.shadow.write(s.pid, start, n, first)
        else:
            s.call("load", [(start, n)])
        return n

    def check_range(self, start: int, length: int) -> Verified:
        s = self.s
        s.own_range(start, length, "check")
        n = _pages(length)
        _check_access(s, start, start + n * PAGE, False)
        got = Verified(n)
        for chunk in range(start, start + n * PAGE, CHECK_CHUNK):     # one reply per chunk
            k = min(CHECK_CHUNK, start + n * PAGE - chunk) // PAGE
            for i, v in enumerate(s.call("read", [(chunk, k)])):
                addr = chunk + i * PAGE
                if v not in s.shadow.expected(s.pid, addr):
                    got.bad += 1
                    got.first = got.first or (addr, v, s.shadow.expected(s.pid, addr)[0])
        return got

    def check_all(self) -> list[str]:
        return _check_all(self.s)

    def madvise(self, start: int, length: int, advice: Madv) -> list[str]:
        s = self.s
        s.own_range(start, length, "madvise")
        end = start + _pages(length) * PAGE
        present = list(procfs.page_runs(s.kpid(), start, end, PAGE_IS_PRESENT)) \
            if advice is Madv.MADV_FREE else []
        try:
            s.call("madvise", start, length, int(advice))
        finally:
            if advice is Madv.MADV_DONTNEED:
                s.shadow.zero(s.pid, start, end)
            elif advice is Madv.MADV_FREE:
                s.shadow.madv_free(s.pid, start, end, present)
        if advice in (Madv.MADV_PAGEOUT, Madv.MADV_COLD):
            return _foreign_swap(s, start, end)
        return []

    def munmap(self, start: int, length: int) -> None:
        s = self.s
        s.own_range(start, length, "munmap")
        s.call("munmap", start, length)
        s.shadow.zero(s.pid, start, start + _pages(length) * PAGE)

    def mprotect(self, start: int, length: int, flags: VM) -> None:
        self.s.own_range(start, length, "mprotect")
        self.s.call("mprotect", start, length, sc.prot_of(flags))

    def mremap(self, start: int, length: int, new_len: int, at: int | None) -> tuple[int, int]:
        s = self.s
        s.own_range(start, length, "mremap")
        if new_len <= 0:
            raise Refused("EINVAL: new size must be positive")
        old_len = _pages(length) * PAGE
        new_len = _pages(new_len) * PAGE
        s.may_expand("mremap", new_len - old_len)
        if at is not None:
            new = at
            _fixed(new, new_len)
            if new < start + old_len and start < new + new_len:
                raise Refused("EINVAL: old and new ranges overlap")
            _free_or_own(s, new, new_len, "mremap")
        else:
            # A plain MREMAP_MAYMOVE needs the range inside one VMA (EFAULT otherwise); the
            # MREMAP_FIXED the runner moves it with would move several (6.17+ remap_move()).
            if not any(lo <= start and start + old_len <= hi for lo, hi, _p, _n in procfs.maps(s.kpid())):
                raise Refused(f"EFAULT: {start:#x}-{start + old_len:#x} is not inside one VMA (mremap "
                              "without `at` is MREMAP_MAYMOVE)")
            new = get_unmapped_area(s, new_len)
        got = s.call("mremap", start, old_len, new_len, new)
        moved = min(old_len, new_len)
        s.shadow.zero(s.pid, got, got + new_len)
        s.shadow.move(s.pid, start, got, moved)
        s.shadow.zero(s.pid, start, start + old_len)
        return got, new_len

    def uffd_register(self, start: int, length: int) -> None:
        self.s.own_range(start, length, "uffd register")
        self.s.call("uffd_register", start, length)

    def uffd_move(self, src: int, dst: int, length: int) -> int:
        s = self.s
        s.own_range(src, length, "uffd move")
        s.own_range(dst, length, "uffd move")
        try:
            moved = s.machine.procs.call(s.pid, "uffd_move", src, dst, length)
        except WorkerError as e:
            done = e.detail if isinstance(e.detail, int) and e.detail > 0 else 0
            if done:
                s.shadow.move(s.pid, src, dst, done)
            raise Refused(f"{e.errno_name}: {e.message} (moved {done} of {length} bytes)") from None
        s.shadow.move(s.pid, src, dst, moved)
        return int(moved)

    def reclaim(self, size: int | None) -> tuple[int, str]:
        """Reclaim in the workers' memory cgroup (cgroup.py): the script's pages, never the machine's."""
        cg = self.s.machine.cgroup
        if cg is None:
            raise Unsupported("the workers have no memory cgroup to reclaim in")
        # The workers run on the lowest CPU allowed (process.py); memory.force_empty and
        # memory.reclaim reclaim in the writer's context, so the runner writes them from that CPU
        # too: one set of per-CPU state, as the simulation has (the per-CPU swap cluster that
        # swap_alloc_fast() takes first, the folio batches).
        allowed = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(allowed)})
        try:
            # between passes with a disk or file on: the next pass sees the folios the writes
            # rotated where the simulation's does, with no batch's reference on them
            freed, passes = cg.reclaim(size, partial(percpu.settle, allowed) if self.s.async_swap_on()
                                       else (lambda: None))
        except OSError as e:
            raise Refused(f"{sc.errno_name(e.errno or 0)}: reclaim in the workers' memory cgroup {cg.work}: "
                          f"{e.strerror or e}") from None
        finally:
            os.sched_setaffinity(0, allowed)
        how = ("memory.force_empty" if size is None else "a lowered memory.limit_in_bytes") \
            if cg.version == 1 else "memory.reclaim"
        return max(freed, 0) // PAGE, (f" in the workers' memory cgroup ({how}, {passes} "
                                       f"pass{'es' if passes != 1 else ''})")

    def khugepaged(self) -> str:
        if not tun.khugepaged_running():
            return "not running (PMD-size THP is disabled): nothing scanned"
        self.s.machine.tunables.khugepaged_pass()
        return "one full pass over every registered process"

    # -- views ----------------------------------------------------------------------------------------------
    def show(self, view: str, opts: dict[str, Any]) -> StepOutput:
        """The view is drawn after the step by the step printer, through the simulator's views
        (views/source.py over kernel/live_views.py)."""
        if view == "swap" and opts["name"] is not None and self.s.devices.get(opts["name"]) is None:
            raise Refused(f"ENOENT: no swap device {opts['name']!r}")
        return StepOutput(views=[(view, opts)], changed=False)


def _on_live(fn: Callable[[_Live, Command], StepOutput]) -> Handler[LiveSession]:
    return lambda s, cmd: fn(_Live(s), cmd)


for _name, _fn in control.HANDLERS.items():         # the language's own commands
    handler(_name)(_fn)
for _name, _op in operations.HANDLERS.items():      # the commands that act on the machine
    handler(_name)(_on_live(_op))
