"""The live kernel as a backend: the handler of each .mmsh command that acts on memory.

The counterpart of lang/execute.py: each handler does through the worker
processes' system calls (kernel/process.py), the swap devices, the sysfs knobs
and the memory cgroup what the simulator's does through mm/, and keeps the
shadow of page contents that `check` compares with.  The language's own
commands (`@PID`, `if`, `switch`, `expect`, `expect fails`, `source`, `help`)
are lang/control.py's, registered here as they are.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from ..lang import control, memory, registry
from ..lang.backend import Handler, OnSession, StepOutput
from ..lang.parser import Command
from ..lang.values import pages
from ..mm.constants import MMAP_BASE, TASK_SIZE
from ..mm.vma import VM
from . import procfs, syscalls as sc, tunables as tun
from .devices import DeviceError
from .process import WorkerError
from .session import HPAGE, PAGE, LiveSession, Refused, Unsupported, handler
from .syscalls import PAGE_IS_PRESENT, PAGE_IS_SWAPPED

# -- machine set-up ---------------------------------------------------------------------------------

@handler("set")
def do_set(s: LiveSession, cmd: Command) -> StepOutput:
    name, value = cmd.args["setting"], cmd.args["value"]
    if name == "display":                   # a grammar case of `set`, not a setting
        raise Unsupported("'set display' chooses what mmshell run and the shell draw after each step; "
                          "the live runner prints each step's changes")
    spec = registry.setting(name)
    if spec.live is not True:
        raise Unsupported(str(spec.live))
    t = s.machine.tunables
    out = StepOutput(changed=False)
    if spec.display:
        out.notes.append(f"set {name}: the live runner always lists the counters it watches, and never pages")
    elif name == "pmd_swap":
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
        if spec.out_of_range(value):
            raise Refused(f"EINVAL: {spec.out_of_range(value)}")
        t.set(Path(spec.knob), spec.knob_text(value))
    return out


def _wait_scans(before: int) -> bool:
    deadline = time.monotonic() + tun.PASS_TIMEOUT
    while time.monotonic() < deadline:
        if tun.full_scans() > before:
            return True
        time.sleep(0.001)
    return False


@handler("swapon")
def do_swapon(s: LiveSession, cmd: Command) -> StepOutput:
    a = cmd.args
    kind = a["kind"] or "zram"
    if a["prio"] is not None and not -1 <= a["prio"] <= 32767:
        raise Refused(f"EINVAL: priority {a['prio']} outside -1..32767")
    script_prio = a["prio"] if a["prio"] is not None else s.next_default_prio()
    top = s.devices.top_foreign_priority()
    prio = s.prios.get(script_prio)
    if prio is None or (top is not None and prio <= top):
        prio = max([top if top is not None else -1] + [d.prio for d in s.devices.devices.values()
                                                          if d.active]) + 1
        s.warnings.append(f"swapon {a['name']}: priority {script_prio} not planned; live priority {prio}")
    if prio > sc.SWAP_FLAG_PRIO_MASK:
        raise Refused("EINVAL: no swap priority left above the active devices")
    try:
        dev = s.devices.swapon(a["name"], a["size"], kind, prio)
    except DeviceError as e:
        raise Refused(f"{e.errno_name}: {e}") from None
    except OSError as e:
        raise Refused(f"{sc.errno_name(e.errno or 0)}: swapon {a['name']}: {e.strerror or e}") from None
    return StepOutput(lines=[f"swap {dev.name}: {kind} {dev.path}, {dev.size >> 10} kB, priority "
                             f"{prio} (script {script_prio}), swap type {dev.type}"])


@handler("swapoff")
def do_swapoff(s: LiveSession, cmd: Command) -> StepOutput:
    name = cmd.args["name"]
    if s.devices.get(name) is None:
        raise Refused(f"ENOENT: no swap device {name!r}")
    try:
        s.devices.swapoff(name)
    except DeviceError as e:
        raise Refused(f"{e.errno_name}: {e}") from None
    except OSError as e:
        raise Refused(f"{sc.errno_name(e.errno or 0)}: swapoff {name}: {e.strerror or e}") from None
    return StepOutput()


# -- processes ------------------------------------------------------------------------------------------

@handler("fork")
def do_fork(s: LiveSession, cmd: Command) -> StepOutput:
    child = s.machine.procs.fork(s.pid, list(s.names().values()))
    s.regions[child.spid] = dict(s.names())
    s.shadow.copy_process(s.pid, child.spid)
    return StepOutput(lines=[f"child pid {child.spid}"])


@handler("exit")
def do_exit(s: LiveSession, cmd: Command) -> StepOutput:
    pid = cmd.args["pid"] if cmd.args["pid"] is not None else s.pid
    if pid == 1:
        raise Refused("EPERM: pid 1 cannot exit")
    s.check_pid(pid)
    parent = s.parent_of(pid)
    s.machine.procs.exit(pid)
    s.regions.pop(pid, None)
    s.shadow.drop_process(pid)
    if s.pid == pid:
        s.pid = parent if parent is not None and parent in s.alive() else 1
    return StepOutput(lines=[f"pid {pid} exited; current pid {s.pid}"])


# -- memory ------------------------------------------------------------------------------------------------

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


@handler("mmap")
def do_mmap(s: LiveSession, cmd: Command) -> StepOutput:
    a = cmd.args
    name = s.new_name(a["name"], "mmap")
    if a["size"] <= 0:
        raise Refused("EINVAL: length must be positive")
    length = (a["size"] + PAGE - 1) & ~(PAGE - 1)
    s.may_expand("mmap", length)
    if a["at"] is not None:
        addr = s.resolve_addr(a["at"], "mmap")
        if addr % PAGE:
            raise Refused(f"EINVAL: address {addr:#x} not page aligned")
        if addr + length > TASK_SIZE:
            raise Refused("EINVAL: range beyond the user address space")
        if addr < (1 << 16):
            raise Refused(f"EPERM: address {addr:#x} is below mmap_min_addr")
    else:
        addr = get_unmapped_area(s, length)
    advice = int(registry.ADVICE[a["advice"]]) if a["advice"] else None
    try:
        prot = sc.prot_of(registry.PROT_FLAGS[a["prot"] or "rw"])
        s.machine.procs.call(s.pid, "mmap", addr, length, prot, advice)
    except WorkerError as e:
        if e.errno_name == "EEXIST":
            raise Refused(f"EEXIST: {addr:#x}+{length:#x} overlaps an existing mapping") from None
        raise Refused(f"{e.errno_name}: {e.message}") from None
    s.names()[name] = (addr, length)
    return StepOutput(lines=[f"{name} = {addr:#x}-{addr + length:#x}"])


def _pages(length: int) -> int:
    return (length + PAGE - 1) // PAGE


#: Bytes of one read request of `check` (one reply holds a value per page).
CHECK_CHUNK = 64 << 20


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


@handler("touch")
def do_touch(s: LiveSession, cmd: Command) -> StepOutput:
    start, length = s.resolve_range(cmd.args["range"], "touch")
    s.walk_limit("touch", length)
    s.own_range(start, length, "touch")
    n = _pages(length)
    write = (cmd.args["access"] or "write") == "write"
    _check_access(s, start, start + n * PAGE, write)
    if write:
        first = s.fresh_values(n)
        s.call("write", [(start, n, first)])
        s.shadow.write(s.pid, start, n, first)
    else:
        s.call("load", [(start, n)])
    return StepOutput(lines=[f"{pages(n)} {'written' if write else 'read'}"])


@handler("check")
def do_check(s: LiveSession, cmd: Command) -> StepOutput:
    if cmd.args.get("range") is None:
        return _check_all(s)
    start, length = s.resolve_range(cmd.args["range"], "check")
    s.walk_limit("check", length)
    s.own_range(start, length, "check")
    n = _pages(length)
    _check_access(s, start, start + n * PAGE, False)
    first_bad: tuple[int, int] | None = None
    nbad = 0
    for chunk in range(start, start + n * PAGE, CHECK_CHUNK):     # one reply per chunk
        k = min(CHECK_CHUNK, start + n * PAGE - chunk) // PAGE
        for i, v in enumerate(s.call("read", [(chunk, k)])):
            if v not in s.shadow.expected(s.pid, chunk + i * PAGE):
                nbad += 1
                first_bad = first_bad or (chunk + i * PAGE, v)
    if first_bad is not None:
        addr, actual = first_bad
        raise Refused(f"EIO: page {s.describe(addr)} reads {actual:#x}, last written "
                      f"{s.shadow.expected(s.pid, addr)[0]:#x} ({nbad} bad page(s))")
    return StepOutput(lines=[f"check: {pages(n)} read back what was written"])


def _check_all(s: LiveSession) -> StepOutput:
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
    return StepOutput(changed=False, lines=[
        f"check: {pages(present)} present read back what was written; {pages(swapped)} swapped out "
        "not read (that would fault them in)" + (f", {unreadable} in PROT_NONE mappings not read"
                                                  if unreadable else "")
        + "; the simulator's invariant checker has no live counterpart"])


@handler("madvise")
def do_madvise(s: LiveSession, cmd: Command) -> StepOutput:
    start, length = s.resolve_range(cmd.args["range"], "madvise")
    s.own_range(start, length, "madvise")
    advice = cmd.args["advice"]
    end = start + _pages(length) * PAGE
    present = list(procfs.page_runs(s.kpid(), start, end, PAGE_IS_PRESENT)) if advice == "free" else []
    out = StepOutput()
    try:
        s.call("madvise", start, length, int(registry.ADVICE[advice]))
    finally:
        if advice == "dontneed":
            s.shadow.zero(s.pid, start, end)
        elif advice == "free":
            s.shadow.madv_free(s.pid, start, end, present)
    if advice in ("pageout", "cold"):
        out.notes += _foreign_swap(s, start, end)
    return out


def _foreign_swap(s: LiveSession, start: int, end: int) -> list[str]:
    """Warn when pages went to a swap device the script did not create (§0.4)."""
    kpid = s.kpid()
    types = {w & 0x1F for a, b in procfs.page_runs(kpid, start, end, PAGE_IS_SWAPPED)
             for w in procfs.pagemap_words(kpid, a, (b - a) // PAGE) if w >> 62 == 1}
    foreign = sorted(t for t in types if s.devices.by_type(t) is None)
    if foreign:
        return [f"warning: pages went to swap type(s) {foreign}, not a device this script created"]
    return []


@handler("uffd_move")
def do_uffd_move(s: LiveSession, cmd: Command) -> StepOutput:
    start, length = s.resolve_range(cmd.args["src"], "uffd move")
    s.walk_limit("uffd move", length)
    s.own_range(start, length, "uffd move")
    dst = s.resolve_addr(cmd.args["dst"], "uffd move")
    s.own_range(dst, length, "uffd move")
    try:
        moved = s.machine.procs.call(s.pid, "uffd_move", start, dst, length)
    except WorkerError as e:
        done = e.detail if isinstance(e.detail, int) and e.detail > 0 else 0
        if done:
            s.shadow.move(s.pid, start, dst, done)
        raise Refused(f"{e.errno_name}: {e.message} (moved {done} of {length} bytes)") from None
    s.shadow.move(s.pid, start, dst, moved)
    return StepOutput(lines=[f"moved {moved} bytes"])


@handler("khugepaged")
def do_khugepaged(s: LiveSession, cmd: Command) -> StepOutput:
    if not tun.khugepaged_running():
        return StepOutput(lines=["khugepaged: not running (PMD-size THP is disabled): nothing scanned"])
    s.machine.tunables.khugepaged_pass()
    return StepOutput(lines=["khugepaged: one full pass over every registered process"])


@handler("reclaim")
def do_reclaim(s: LiveSession, cmd: Command) -> StepOutput:
    """Reclaim in the workers' memory cgroup (cgroup.py): the script's pages, never the machine's."""
    cg = s.machine.cgroup
    if cg is None:
        raise Unsupported("the workers have no memory cgroup to reclaim in")
    try:
        freed, passes = cg.reclaim(cmd.args["size"])
    except OSError as e:
        raise Refused(f"{sc.errno_name(e.errno or 0)}: reclaim in the workers' memory cgroup {cg.work}: "
                      f"{e.strerror or e}") from None
    n = max(freed, 0) // PAGE
    how = ("memory.force_empty" if cmd.args["size"] is None else "a lowered memory.limit_in_bytes") \
        if cg.version == 1 else "memory.reclaim"
    return StepOutput(lines=[f"reclaimed {pages(n)} ({n * 4} kB) in the workers' memory cgroup "
                             f"({how}, {passes} pass{'es' if passes != 1 else ''})"])


# -- views and scripts ---------------------------------------------------------------------------------

@handler("show")
def do_show(s: LiveSession, cmd: Command) -> StepOutput:
    """The view is drawn after the step by the step printer, through the simulator's views
    (views/source.py over kernel/live_views.py); what the kernel cannot feed is refused with
    the reason the registry gives."""
    a = cmd.args
    view = a["view"]
    live = registry.LIVE_VIEWS["swap map" if view == "swap" and a.get("map") else view]
    if live is not True:
        raise Unsupported(str(live))
    opts: dict[str, Any] = {"all": a.get("all", False), "name": a.get("name"), "pid": s.pid,
                            "map": a.get("map", False)}
    if a.get("range") is not None:
        opts["range"] = s.resolve_range(a["range"], "show")
        if view == "pagemap":
            s.walk_limit("show pagemap", opts["range"][1])
    if view == "smaps" and opts["name"] is not None and opts["name"] not in s.names():
        raise Refused(f"EINVAL: no region named {opts['name']!r} in pid {s.pid}")
    if view == "swap" and opts["name"] is not None and s.devices.get(opts["name"]) is None:
        raise Refused(f"ENOENT: no swap device {opts['name']!r}")
    return StepOutput(views=[(view, opts)], changed=False)


for _name, _fn in control.HANDLERS.items():         # the language's own commands
    handler(_name)(_fn)


# -- lang/memory.py's operations, through the worker's system calls ------------------------------

class _Live(OnSession):
    """The live kernel as lang/memory.py's Memory backend, over one LiveSession."""

    def __init__(self, s: LiveSession) -> None:
        self.s = s

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
            if new % PAGE:
                raise Refused(f"EINVAL: address {new:#x} not page aligned")
            if new + new_len > TASK_SIZE:
                raise Refused("EINVAL: range beyond the user address space")
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


def _on_live(fn: Callable[[_Live, Command], StepOutput]) -> Handler[LiveSession]:
    return lambda s, cmd: fn(_Live(s), cmd)


for _name, _mem in memory.HANDLERS.items():
    handler(_name)(_on_live(_mem))
