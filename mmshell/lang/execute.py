"""One command -> one step: the handlers that turn parsed commands into kernel calls.

`execute(session, command)` runs one command and returns its `StepOutput`.  A
refused command raises `MmError` (or `ExpectError`) and leaves the machine as
it was: handlers validate before they change anything, and commands whose
failure can only show mid-way run on a snapshot that is restored on error.
The one exception is a partial effect the kernel itself has (madvise over a
hole), where the error says what was changed.
"""

from __future__ import annotations

import errno
from enum import Enum
from typing import Any, Callable, Container

from ..mm.config import Deposit, FailMode, FaultPoint
from ..mm.constants import MAX_ACCESS, MAX_MAP_COUNT, MAX_PAGE_TABLES, MAX_RAM, PAGE_SHIFT, PAGE_SIZE
from ..mm.errors import MmError, VmBug
from ..mm.kernel import Kernel
from ..mm.access import access_range
from ..mm.madvise import sys_madvise
from ..mm.mmap import sys_munmap, sys_mmap
from ..mm.pgtable import PmdKind
from ..mm.swap_info import SwapKind
from ..mm.swapfile import sys_swapon
from ..mm.vma import VM
from ..mm.vmscan import shrink_lruvec
from . import budget, control, memory, registry
from .backend import Handler, Handlers, OnSession, Reading, StepOutput
from .display import check_display, display_words
from .errors import ExpectError
from .expect import read_path
from .sim_observer import SimObserver
from .parser import Command
from .session import Session
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
    saved = Checkpoint(session)
    k.trace_log = []
    explaining = session.explain and not k.tracing      # record the path for explain, print no trace
    k.tracing = k.tracing or explaining
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
    tables = tally.nr_ptes
    if tables > MAX_PAGE_TABLES:
        raise MmError("ENOMEM", _op(cmd), f"{tables} page tables would exist: beyond the simulation's limit "
                      f"of {MAX_PAGE_TABLES} ({MAX_PAGE_TABLES * 2 >> 10}G of populated address space)")
    for mm in filter(None, map(k.mms.peek, tally.recounted)):
        if len(mm.vmas) > MAX_MAP_COUNT:
            raise MmError("ENOMEM", _op(cmd), f"pid {mm.pid} would have {len(mm.vmas)} VMAs: more than "
                          f"vm.max_map_count ({MAX_MAP_COUNT})")
    budget.refuse_over(k, _op(cmd))


def _walk_limit(op: str, length: int) -> None:
    """A command that walks a range page by page takes at most MAX_ACCESS of it."""
    if length > MAX_ACCESS:
        raise MmError("EINVAL", op, f"a range of {length >> 20}M: beyond the simulation's limit of "
                      f"{MAX_ACCESS >> 30}G per {op}")


# -- machine set-up -----------------------------------------------------------------------------

@handler("set")
def do_set(s: Session, cmd: Command) -> StepOutput:
    name, value = cmd.args["setting"], cmd.args["value"]
    if name in s.pinned:
        return StepOutput(changed=False, lines=[f"skipped: {name} {s.pinned[name]}"])
    if name == "display":                   # a grammar case of `set`, not a setting
        s.display = check_display(display_words(cmd.args))
        return StepOutput(changed=False)
    spec = registry.setting(name)
    if spec.display:
        setattr(s, spec.name, value)
        return StepOutput(changed=False)
    if spec.name in _SETTERS:
        _SETTERS[spec.name](s, cmd)
        return StepOutput(changed=False)
    why = spec.out_of_range(value)
    if why:
        raise MmError("EINVAL", "set", why)
    cfg = s.kernel.config
    old = getattr(cfg, spec.field)
    setattr(cfg, spec.field, type(old)(value) if isinstance(old, Enum) else value)
    return StepOutput(changed=False)


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


def _set_pmd_swap(s: Session, cmd: Command) -> None:
    k = s.kernel
    if cmd.args["value"] != k.config.pmd_swap and any(p.kind is PmdKind.SWAP for mm in k.mms.values()
                                                      for p in mm.pmds.values()):
        raise MmError("EBUSY", "set", "PMD swap entries exist: switch pmd_swap before swapping out")
    k.config.pmd_swap = cmd.args["value"]


def _set_zswap(s: Session, cmd: Command) -> None:
    s.kernel.config.zswap = cmd.args["value"]
    s.kernel.zswap_ever_enabled |= cmd.args["value"]


def _set_fail(s: Session, cmd: Command) -> None:
    s.kernel.config.fail[FaultPoint(cmd.args["point"])] = FailMode(cmd.args["value"])


def _set_ram(s: Session, cmd: Command) -> None:
    k = s.kernel
    size = cmd.args["value"]
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


#: The settings whose `set` does more than store the value in its Config field.
def _set_deposit(s: Session, cmd: Command) -> None:
    k = s.kernel
    deposit = Deposit(cmd.args["value"])
    if deposit is not k.config.deposit and any(p.kind is not PmdKind.TABLE for mm in k.mms.values()
                                               for p in mm.pmds.values()):
        raise MmError("EBUSY", "set", "PMD-level entries exist: set deposit before the first THP is mapped")
    k.config.deposit = deposit


_SETTERS: dict[str, Callable[[Session, Command], None]] = {
    "pmd_swap": _set_pmd_swap, "zswap": _set_zswap, "ram": _set_ram, "fail": _set_fail,
    "deposit": _set_deposit}


@handler("swapon")
def do_swapon(s: Session, cmd: Command) -> StepOutput:
    a = cmd.args
    sys_swapon(s.kernel, a["name"], a["size"], SwapKind(a["kind"] or "zram"), a["prio"])
    return StepOutput()


# -- processes ---------------------------------------------------------------------------------------

@handler("fork")
def do_fork(s: Session, cmd: Command) -> StepOutput:
    from ..mm.fork import sys_fork

    budget.refuse_over(s.kernel, "fork", budget.process_cost(s.kernel, s.pid), f"a copy of pid {s.pid}")
    child = sys_fork(s.kernel, _mm(s))
    s.regions[child.pid] = dict(s.names())
    return StepOutput(lines=[f"child pid {child.pid}"])


@handler("exit")
def do_exit(s: Session, cmd: Command) -> StepOutput:
    from ..mm.exit import exit_mmap

    pid = cmd.args["pid"] if cmd.args["pid"] is not None else s.pid
    if pid == 1:
        raise MmError("EPERM", "exit", "pid 1 cannot exit")
    mm = s.kernel.mm(pid)
    exit_mmap(s.kernel, mm)
    s.regions.pop(pid, None)
    if s.pid == pid:
        s.pid = mm.parent if mm.parent in s.kernel.mms else 1
    return StepOutput(lines=[f"pid {pid} exited; current pid {s.pid}"])


# -- memory ----------------------------------------------------------------------------------------------

def _mm(s: Session):
    return s.kernel.mm(s.pid)


@handler("mmap")
def do_mmap(s: Session, cmd: Command) -> StepOutput:
    a = cmd.args
    name = s.new_name(a["name"], "mmap")
    at = s.resolve_addr(a["at"], "mmap") if a["at"] is not None else None
    advice = registry.ADVICE[a["advice"]] if a["advice"] else None
    start = sys_mmap(s.kernel, _mm(s), a["size"], registry.PROT_FLAGS[a["prot"] or "rw"], advice, at)
    length = (a["size"] + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    s.names()[name] = (start, length)
    return StepOutput(lines=[f"{name} = {start:#x}-{start + length:#x}"])


@handler("touch")
def do_touch(s: Session, cmd: Command) -> StepOutput:
    start, length = s.resolve_range(cmd.args["range"], "touch")
    _walk_limit("touch", length)
    write = (cmd.args["access"] or "write") == "write"
    budget.refuse_over(s.kernel, "touch", budget.range_bound(s.kernel, s.pid, start, start + length, write),
                       f"touching {format_size(length)}")
    res = access_range(s.kernel, _mm(s), start, start + length, write)
    return StepOutput(lines=[f"{pages(res.pages)} {'written' if write else 'read'}"])


@handler("check")
def do_check(s: Session, cmd: Command) -> StepOutput:
    k = s.kernel
    if cmd.args.get("range") is None:
        problems = vm_problems(k)
        if problems:
            # Every problem, one to a line under the error line: this is the simulator
            # reporting on itself, not a refusal of what the user typed.
            raise MmError("EFAULT", "check", f"{len(problems)} problem(s) found by the invariant checker "
                          "(a simulator bug):\n" + "\n".join(f"  {p}" for p in problems))
        nr_pmds = sum(len(mm.pmds) for mm in k.mms.peek_values())
        return StepOutput(changed=False, lines=["check: data and invariants hold"
                                                 f" ({len(k.mms)} process(es), {nr_pmds} PMD slots)"])
    start, length = s.resolve_range(cmd.args["range"], "check")
    _walk_limit("check", length)
    budget.refuse_over(k, "check", budget.range_bound(k, s.pid, start, start + length, False),
                       f"reading {format_size(length)}")
    res = access_range(k, _mm(s), start, start + length, False, verify=True)
    if res.mismatches:
        m = res.mismatches[0]
        raise MmError("EIO", "check", f"page {s.describe(m.addr)} reads {m.actual:#x}, last written "
                      f"{m.expected:#x} ({len(res.mismatches)} bad page(s))")
    return StepOutput(lines=[f"check: {pages(res.pages)} read back what was written"])


@handler("madvise")
def do_madvise(s: Session, cmd: Command) -> StepOutput:
    start, length = s.resolve_range(cmd.args["range"], "madvise")
    if cmd.args["advice"] == "pageout" and not s.kernel.config.pmd_swap:
        budget.refuse_over(s.kernel, "madvise", budget.reclaim_bound(s.kernel, s.pid, start, start + length),
                           "splitting the PMDs of the THPs it swaps out")
    sys_madvise(s.kernel, _mm(s), start, length, registry.ADVICE[cmd.args["advice"]])
    return StepOutput()


@handler("uffd_move")
def do_uffd_move(s: Session, cmd: Command) -> StepOutput:
    from ..mm.userfaultfd import sys_uffd_move

    start, length = s.resolve_range(cmd.args["src"], "uffd move")
    _walk_limit("uffd move", length)
    dst = s.resolve_addr(cmd.args["dst"], "uffd move")
    budget.refuse_over(s.kernel, "uffd move", budget.range_bound(s.kernel, s.pid, dst, dst + length, True),
                       f"moving {format_size(length)}")
    moved = sys_uffd_move(s.kernel, _mm(s), start, dst, length)
    return StepOutput(lines=[f"moved {moved} bytes"])


@handler("swapoff")
def do_swapoff(s: Session, cmd: Command) -> StepOutput:
    from ..mm.swapoff import sys_swapoff

    sys_swapoff(s.kernel, cmd.args["name"])
    return StepOutput()


@handler("khugepaged")
def do_khugepaged(s: Session, cmd: Command) -> StepOutput:
    from ..mm.khugepaged import khugepaged_scan

    tally = khugepaged_scan(s.kernel)
    summary = ", ".join(f"{n} {r}" for r, n in sorted(tally.items())) or "nothing to scan"
    return StepOutput(lines=[f"khugepaged: {summary}"])


@handler("reclaim")
def do_reclaim(s: Session, cmd: Command) -> StepOutput:
    size = cmd.args["size"]
    if not s.kernel.config.pmd_swap:
        budget.refuse_over(s.kernel, "reclaim", budget.reclaim_bound(s.kernel, None),
                           "splitting the PMDs of the THPs it swaps out")
    freed = shrink_lruvec(s.kernel, None if size is None else (size + PAGE_SIZE - 1) >> PAGE_SHIFT)
    return StepOutput(lines=[f"reclaimed {pages(freed)} ({freed * 4} kB)"])


# -- views and scripts -----------------------------------------------------------------------------------

@handler("show")
def do_show(s: Session, cmd: Command) -> StepOutput:
    a = cmd.args
    view = a["view"]
    # the process is recorded: under @PID the view is of PID, though it is drawn after the step
    opts: dict[str, Any] = {"all": a.get("all", False), "name": a.get("name"), "pid": s.pid,
                            "map": a.get("map", False)}
    if a.get("range") is not None:
        opts["range"] = s.resolve_range(a["range"], "show")
        if view == "pagemap":
            _walk_limit("show pagemap", opts["range"][1])
    if view == "smaps" and opts["name"] is not None and opts["name"] not in s.names():
        raise MmError("EINVAL", "show", f"no region named {opts['name']!r} in pid {s.pid}")
    if view == "swap" and opts["name"] is not None:
        s.kernel.swap_device(opts["name"])          # ENOENT when there is none
    return StepOutput(views=[(view, opts)], changed=False)


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


# -- the language's own commands -----------------------------------------------------------------------

class _Simulator(OnSession):
    """The simulator as the language's Backend (lang/backend.py), over one Session."""

    refusals: tuple[type[Exception], ...] = (MmError, ExpectError)

    def __init__(self, s: Session) -> None:
        self.s = s

    def refuse(self, errno: str, op: str, why: str) -> Exception:
        return self.s.refuse(errno, op, why)

    @property
    def timing(self) -> bool:
        return bool(self.s.timing)

    @timing.setter
    def timing(self, on: bool) -> None:
        self.s.timing = on

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

    # -- lang/memory.py's operations, through mm/ --------------------------------------------
    def munmap(self, start: int, length: int) -> None:
        sys_munmap(self.s.kernel, _mm(self.s), start, length)

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


def _on_simulator(fn: Callable[[_Simulator, Command], StepOutput]) -> Handler[Session]:
    return lambda s, cmd: fn(_Simulator(s), cmd)


for _name, _fn in control.HANDLERS.items():
    handler(_name)(_on_simulator(_fn))
for _name, _mem in memory.HANDLERS.items():
    handler(_name)(_on_simulator(_mem))
