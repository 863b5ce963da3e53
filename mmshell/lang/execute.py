"""One command -> one step in the simulator: the step boundary and the simulator's primitives.

The handlers are the language's, once for both backends (lang/control.py,
lang/operations.py); here they are registered over :class:`_Simulator`, whose
primitives are mm/'s system calls, beside the commands only the simulator has
(`trace`, `explain`, `export`).

`execute(session, command)` runs one command and returns its `StepOutput`.  A
refused command raises `MmError` (or `ExpectError`) and leaves the machine as
it was: handlers validate before they change anything, and a command runs on a
checkpoint (lang/snapshot.py) restored on error, unless every refusal it can
make comes before its first change (registry.checks_first: munmap).
The one exception is a partial effect the kernel itself has (madvise over a
hole), where the error says what was changed.
"""

from __future__ import annotations

import errno
from enum import Enum
from typing import Any, Callable, Container

from ..mm.config import Deposit, FailMode, FaultPoint
from ..mm.constants import MAX_MAP_COUNT, MAX_PAGE_TABLES, MAX_RAM, PAGE_SHIFT, PAGE_SIZE
from ..mm.errors import MmError, VmBug
from ..mm.kernel import Kernel
from ..mm.mman import Madv
from ..mm.mm_types import MmStruct
from ..mm.pgtable import PmdKind
from ..mm.swap_info import SwapKind
from ..mm.vma import VM
from . import budget, control, operations, registry
from .backend import Handler, Handlers, OnSession, Reading, StepOutput, Verified
from .errors import ExpectError
from .expect_paths import read_path
from .held_interrupt import sigint_held
from .sim_observer import SimObserver
from .parser import Command
from .session import Session
from .settings import SettingSpec
from .snapshot import Checkpoint
from .values import format_size, pages


HANDLERS: Handlers[Session] = Handlers()
handler = HANDLERS.register


class _Restored(VmBug):
    """A simulator bug after which the machine was put back as it was (the message says so once)."""


def execute(session: Session, cmd: Command) -> StepOutput:
    """Run one command; refuse it whole (state restored) when it fails.

    Besides the kernel's own refusals: Ctrl-C during a command refuses it (EINTR,
    nothing changed), a command that would pass a limit of the simulation
    (page tables, VMAs per process) is refused ENOMEM, and an exception the
    simulator did not expect is reported as a VmBug, with the machine as it was.
    """
    fn = HANDLERS.get(cmd.name)
    if fn is None:
        raise MmError("ENOSYS", _op(cmd), f"'{cmd.spec.words[0]}' is not simulated yet")
    k = session.kernel
    if registry.only_looks(cmd):
        try:
            return fn(session, cmd)
        except KeyboardInterrupt:
            raise MmError("EINTR", _op(cmd), "interrupted") from None
        except (MmError, ExpectError, VmBug):
            raise
        except Exception as e:
            raise VmBug(f"'{cmd.text or cmd}' failed inside the simulator: {type(e).__name__}: {e}") from e
    k.trace_log = []
    explaining = session.explain and not k.tracing      # record the path for explain, print no trace
    k.tracing = k.tracing or explaining
    out = (_unchecked if registry.checks_first(cmd) else _checked)(session, cmd, fn)
    out.calls = session.kernel.trace_log
    out.trace = [] if explaining else out.calls
    session.kernel.trace_log = []
    if explaining:
        session.kernel.tracing = False
    if session.debug_vm:
        problems = vm_problems(session.kernel)
        if problems:
            raise VmBug(f"after '{cmd.text or cmd}': " + "; ".join(problems[:5]))
    return out


def _checked(session: Session, cmd: Command, fn: Handler[Session]) -> StepOutput:
    """Run a command on a checkpoint: a refusal, Ctrl-C or simulator bug puts the machine back."""
    saved = Checkpoint(session)
    try:
        out = fn(session, cmd)
        _check_limits(session.kernel, cmd)
    except MmError as e:
        if e.partial is None:
            saved.rollback()
        raise
    except ExpectError:
        saved.rollback()
        raise
    except KeyboardInterrupt:
        saved.rollback()
        raise MmError("EINTR", _op(cmd), "interrupted: the machine is as it was before the command") from None
    except _Restored:
        saved.rollback()
        raise                       # a nested command has said so already
    except VmBug as e:
        saved.rollback()
        raise _Restored(f"{e} (the machine is as it was before '{cmd.text or cmd}')") from e
    except Exception as e:
        saved.rollback()
        raise _Restored(f"'{cmd.text or cmd}' failed inside the simulator: {type(e).__name__}: {e} "
                        "(the machine is as it was before the command)") from e
    finally:
        if saved.open:
            saved.commit()
    return out


def _unchecked(session: Session, cmd: Command, fn: Handler[Session]) -> StepOutput:
    """Run a command whose refusals all come before it changes anything (registry.checks_first)
    without a checkpoint, which would cost a copy of all it may change (at munmap of 16G, the
    mem_map of every frame it frees): Ctrl-C is held until it ends (lang/held_interrupt.py); a
    simulator bug leaves the machine as the bug found it, and the error says so."""
    left = f"(the machine is as the failure left it: '{cmd.text or cmd}' takes no checkpoint)"
    with sigint_held():
        try:
            out = fn(session, cmd)
        except (MmError, ExpectError):
            raise                               # a refusal, before any change
        except VmBug as e:
            raise VmBug(f"{e} {left}") from e
        except Exception as e:
            raise VmBug(f"'{cmd.text or cmd}' failed inside the simulator: {type(e).__name__}: {e} "
                        f"{left}") from e
        try:
            _check_limits(session.kernel, cmd)
        except MmError as e:
            raise VmBug(f"'{cmd.text or cmd}' passed a limit after changing the machine, though it "
                        f"is declared to check first: {e} {left}") from e
    return out


def vm_problems(k: Kernel) -> list[str]:
    """What the invariant and data checkers find (loaded when first asked: `check`, --debug-vm)."""
    from ..mm.check import check_invariants
    from ..mm.check_data import check_data

    return check_invariants(k) + check_data(k)


def _op(cmd: Command) -> str:
    return " ".join(cmd.spec.words)


def _check_limits(k: Kernel, cmd: Command) -> None:
    """Limits of the simulation that no single system call checks (docs/limits.md): page
    tables, VMAs per process, and the host memory budget (lang/budget.py)."""
    tally = budget.process_tally(k)     # processes the command did not reach are not counted again
    _check_tables(k, _op(cmd), tally.nr_ptes)
    for mm in filter(None, map(k.mms.peek, tally.recounted)):
        if len(mm.vmas) > MAX_MAP_COUNT:
            raise MmError("ENOMEM", _op(cmd), f"pid {mm.pid} would have {len(mm.vmas)} VMAs: more than "
                          f"vm.max_map_count ({MAX_MAP_COUNT})")
    budget.refuse_over(k, _op(cmd))


def _check_tables(k: Kernel, op: str, tables: int) -> None:
    if tables > MAX_PAGE_TABLES:
        raise MmError("ENOMEM", op, f"{tables} page tables would exist: beyond the simulation's limit "
                      f"of {MAX_PAGE_TABLES} ({MAX_PAGE_TABLES * 2 >> 10}G of populated address space)")


# -- settings --------------------------------------------------------------------------------------

def setting_value(s: Session, name: str, point: str | None = None) -> Any:
    """A setting's value as `set` writes it (`if SETTING VALUE` compares with it)."""
    cfg = s.kernel.config
    if name == "fail":
        return cfg.fail.get(FaultPoint(point), FailMode.OFF).value
    spec = registry.setting(name)
    if spec.display:                        # kept by the session, not the machine
        return getattr(s, name)
    value = getattr(cfg, spec.field)
    return value.value if isinstance(value, Enum) else value


def _set_pmd_swap(s: Session, value: Any, point: str | None) -> None:
    k = s.kernel
    if value != k.config.pmd_swap and any(p.kind is PmdKind.SWAP for mm in k.mms.values()
                                          for p in mm.pmds.values()):
        raise MmError("EBUSY", "set", "PMD swap entries exist: switch pmd_swap before swapping out")
    k.config.pmd_swap = value


def _set_zswap(s: Session, value: Any, point: str | None) -> None:
    s.kernel.config.zswap = value
    s.kernel.zswap_ever_enabled |= value


def _set_fail(s: Session, value: Any, point: str | None) -> None:
    s.kernel.config.fail[FaultPoint(point)] = FailMode(value)


def _set_ram(s: Session, value: Any, point: str | None) -> None:
    k = s.kernel
    size = value
    if size % (2 << 20) or size < (8 << 20):
        raise MmError("EINVAL", "set", "ram must be a multiple of 2M and at least 8M")
    if size > MAX_RAM:
        raise MmError("EINVAL", "set", f"ram larger than the simulation's limit of {MAX_RAM >> 30}G")
    in_use = k.mem.nr_frames - k.mem.alloc.nr_free - 1 - k.huge_zero_nr()
    if in_use:
        raise MmError("EBUSY", "set", f"{pages(in_use)} in use: set ram before the first page is faulted in")
    # Only physical memory is replaced: nothing but the zero pages is in it.  Everything
    # else (processes with their swapped-out pages, swap devices, counters, the shadow
    # of page contents, the write sequence) stays as it is.
    from ..mm.huge_memory import get_huge_zero_folio

    k.config.ram = size
    k.boot_mem()
    if k.huge_zero_pfn is not None:
        k.huge_zero_pfn = None
        k.vmstat.events["thp_zero_page_alloc"] -= 1
        huge_zero = get_huge_zero_folio(k)
        if huge_zero is None:       # 8M at least, and nothing but the zero page in it yet
            raise VmBug("no frame for the huge zero folio in a fresh mem_map")
        for mm in k.mms.values():
            for pmd in mm.pmds.values():
                if pmd.kind is PmdKind.ZERO:
                    pmd.pfn = huge_zero


def _set_deposit(s: Session, value: Any, point: str | None) -> None:
    k = s.kernel
    deposit = Deposit(value)
    if deposit is not k.config.deposit and any(p.kind is not PmdKind.TABLE for mm in k.mms.values()
                                               for p in mm.pmds.values()):
        raise MmError("EBUSY", "set", "PMD-level entries exist: set deposit before the first THP is mapped")
    k.config.deposit = deposit


#: The settings whose `set` does more than store the value in its Config field.
_SETTERS: dict[str, Callable[[Session, Any, str | None], None]] = {
    "pmd_swap": _set_pmd_swap, "zswap": _set_zswap, "ram": _set_ram, "fail": _set_fail,
    "deposit": _set_deposit}


# -- views and scripts ---------------------------------------------------------------------------------

@handler("export")
def do_export(s: Session, cmd: Command) -> StepOutput:
    path = cmd.args["path"]
    if s.exporter is None:
        raise MmError("ENOSYS", "export", "nothing here records the steps drawn")
    try:
        line = s.exporter(cmd.args["what"], path)
    except ValueError as e:
        raise MmError("EINVAL", "export", str(e)) from None
    except OSError as e:
        raise MmError(errno.errorcode.get(e.errno or 0, "EIO"), "export",
                      f"cannot write {path}: {e.strerror or e}") from None
    return StepOutput(changed=False, lines=[line])


@handler("trace")
def do_trace(s: Session, cmd: Command) -> StepOutput:
    s.kernel.tracing = cmd.args["on"]
    return StepOutput(changed=False)


@handler("explain")
def do_explain(s: Session, cmd: Command) -> StepOutput:
    s.explain = cmd.args["on"]
    return StepOutput(changed=False)


# -- the simulator as the language's backend ------------------------------------------------------

def _mm(s: Session) -> MmStruct:
    return s.kernel.mm(s.pid)


class _Simulator(OnSession):
    """The simulator as the language's Backend and Operations (lang/backend.py), over one Session:
    each primitive is the system call of mm/ and the simulation's own limits (lang/budget.py)."""

    refusals: tuple[type[Exception], ...] = (MmError, ExpectError)

    def __init__(self, s: Session) -> None:
        self.s = s

    def check_pid(self, pid: int) -> None:
        self.s.kernel.mm(pid)

    def parent_of(self, pid: int) -> int | None:
        return self.s.kernel.mm(pid).parent

    def alive(self) -> Container[int]:
        return self.s.kernel.mms

    def setting_value(self, name: str, point: str | None = None) -> Any:
        return setting_value(self.s, name, point)

    def run(self, cmd: Command) -> StepOutput:
        return HANDLERS[cmd.name](self.s, cmd)

    def execute(self, cmd: Command) -> StepOutput:
        return execute(self.s, cmd)

    def observe(self, path: str) -> Reading:
        return read_path(SimObserver(self.s), path)

    # -- set-up ------------------------------------------------------------------------------------
    def keep(self, name: str, value: Any) -> list[str]:
        setattr(self.s, name, value)
        return []

    def set(self, spec: SettingSpec, value: Any, point: str | None) -> StepOutput:
        if spec.name in _SETTERS:
            _SETTERS[spec.name](self.s, value, point)
        else:
            cfg = self.s.kernel.config
            old = getattr(cfg, spec.field)
            setattr(cfg, spec.field, type(old)(value) if isinstance(old, Enum) else value)
        return StepOutput(changed=False)

    def swapon(self, name: str, size: int, kind: SwapKind, prio: int | None) -> list[str]:
        from ..mm.swapfile import sys_swapon

        sys_swapon(self.s.kernel, name, size, kind, prio)
        return []

    def swapoff(self, name: str) -> None:
        from ..mm.swapoff import sys_swapoff

        sys_swapoff(self.s.kernel, name)

    # -- processes --------------------------------------------------------------------------------------
    def fork(self) -> int:
        from ..mm.fork import sys_fork

        s = self.s
        budget.refuse_over(s.kernel, "fork", budget.process_cost(s.kernel, s.pid), f"a copy of pid {s.pid}")
        return sys_fork(s.kernel, _mm(s)).pid

    def exit(self, pid: int) -> None:
        from ..mm.exit import exit_mmap

        exit_mmap(self.s.kernel, self.s.kernel.mm(pid))

    # -- memory --------------------------------------------------------------------------------------------
    def mmap(self, size: int, flags: VM, advice: Madv | None, at: int | None) -> tuple[int, int]:
        from ..mm.mmap import sys_mmap

        start = sys_mmap(self.s.kernel, _mm(self.s), size, flags, advice, at)
        return start, (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)

    def munmap(self, start: int, length: int) -> None:
        from ..mm.mmap import munmap_check, munmap_splits, sys_munmap

        k, mm = self.s.kernel, _mm(self.s)
        length = munmap_check(mm, start, length)
        # munmap takes no checkpoint (registry: checks_first), so the limits it may pass are
        # checked first, with what it may add: a table per THP split at its edges (a page-table
        # page too with lazy deposit) and a VMA when it punches a hole in one
        splits = munmap_splits(mm, start, start + length)
        lazy = sum(1 for idx in splits if not mm.pmds[idx].deposited)
        if lazy:
            _check_tables(k, "munmap", budget.process_tally(k).nr_ptes + lazy)
        hole = any(v.start < start and start + length < v.end for v in mm.vmas_in(start, start + length))
        growth = budget.COST["page tables"] * len(splits) + budget.COST["VMAs"] * hole
        if growth:
            budget.refuse_over(k, "munmap", growth, "splitting at its edges")
        sys_munmap(k, mm, start, length)

    def touch(self, start: int, length: int, write: bool) -> int:
        from ..mm.access import access_range

        k, pid = self.s.kernel, self.s.pid
        budget.refuse_over(k, "touch", budget.range_bound(k, pid, start, start + length, write),
                           f"touching {format_size(length)}")
        return access_range(k, _mm(self.s), start, start + length, write).pages

    def check_range(self, start: int, length: int) -> Verified:
        from ..mm.access import access_range

        k, pid = self.s.kernel, self.s.pid
        budget.refuse_over(k, "check", budget.range_bound(k, pid, start, start + length, False),
                           f"reading {format_size(length)}")
        res = access_range(k, _mm(self.s), start, start + length, False, verify=True)
        if not res.mismatches:
            return Verified(res.pages)
        m = res.mismatches[0]
        return Verified(res.pages, len(res.mismatches), (m.addr, m.actual, m.expected))

    def check_all(self) -> list[str]:
        k = self.s.kernel
        problems = vm_problems(k)
        if problems:
            # Every problem, one to a line under the error line: this is the simulator
            # reporting on itself, not a refusal of what the user typed.
            raise MmError("EFAULT", "check", f"{len(problems)} problem(s) found by the invariant checker "
                          "(a simulator bug):\n" + "\n".join(f"  {p}" for p in problems))
        nr_pmds = sum(len(mm.pmds) for mm in k.mms.peek_values())
        return [f"check: data and invariants hold ({len(k.mms)} process(es), {nr_pmds} PMD slots)"]

    def madvise(self, start: int, length: int, advice: Madv) -> list[str]:
        k, pid = self.s.kernel, self.s.pid
        if advice is Madv.MADV_PAGEOUT and not k.config.pmd_swap:
            budget.refuse_over(k, "madvise", budget.reclaim_bound(k, pid, start, start + length),
                               "splitting the PMDs of the THPs it swaps out")
        from ..mm.madvise import sys_madvise

        sys_madvise(k, _mm(self.s), start, length, advice)
        return []

    def mprotect(self, start: int, length: int, flags: VM) -> None:
        from ..mm.mprotect import sys_mprotect

        sys_mprotect(self.s.kernel, _mm(self.s), start, length, flags)

    def mremap(self, start: int, length: int, new_len: int, at: int | None) -> tuple[int, int]:
        from ..mm.mremap import sys_mremap

        new = sys_mremap(self.s.kernel, _mm(self.s), start, length, new_len, at)
        return new, (new_len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)

    def uffd_register(self, start: int, length: int) -> None:
        from ..mm.userfaultfd import sys_uffd_register

        sys_uffd_register(self.s.kernel, _mm(self.s), start, length)

    def uffd_move(self, src: int, dst: int, length: int) -> int:
        from ..mm.userfaultfd import sys_uffd_move

        k = self.s.kernel
        budget.refuse_over(k, "uffd move", budget.range_bound(k, self.s.pid, dst, dst + length, True),
                           f"moving {format_size(length)}")
        return sys_uffd_move(k, _mm(self.s), src, dst, length)

    def reclaim(self, size: int | None) -> tuple[int, str]:
        k = self.s.kernel
        if not k.config.pmd_swap:
            budget.refuse_over(k, "reclaim", budget.reclaim_bound(k, None),
                               "splitting the PMDs of the THPs it swaps out")
        from ..mm.vmscan import shrink_lruvec

        return shrink_lruvec(k, None if size is None else (size + PAGE_SIZE - 1) >> PAGE_SHIFT), ""

    def khugepaged(self) -> str:
        from ..mm.khugepaged import khugepaged_scan

        tally = khugepaged_scan(self.s.kernel)
        return ", ".join(f"{n} {r}" for r, n in sorted(tally.items())) or "nothing to scan"

    # -- views ----------------------------------------------------------------------------------------------
    def show(self, view: str, opts: dict[str, Any]) -> StepOutput:
        if view == "swap" and opts["name"] is not None:
            self.s.kernel.swap_device(opts["name"])          # ENOENT when there is none
        return StepOutput(views=[(view, opts)], changed=False)


def _on_simulator(fn: Callable[[_Simulator, Command], StepOutput]) -> Handler[Session]:
    return lambda s, cmd: fn(_Simulator(s), cmd)


for _name, _fn in control.HANDLERS.items():
    handler(_name)(_on_simulator(_fn))
for _name, _op_fn in operations.HANDLERS.items():
    handler(_name)(_on_simulator(_op_fn))
