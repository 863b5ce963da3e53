"""The script's processes on the live kernel: forked workers driven over sockets.

pid 1 of a script is a process forked from the runner; every memory command
of a script process runs *in* that process (its mm is the one the kernel
acts on), sent as a small request over a UNIX socket pair.  `fork` asks the
current worker to fork itself: the child keeps a fresh socket of its own and
the parent passes the other end back to the runner (SCM_RIGHTS), so a child
can fork again.  Workers ignore SIGCHLD (the kernel reaps their children) and
leave when their socket closes; pid 1 also dies with the runner
(PR_SET_PDEATHSIG).

Every worker lives in the run's memory cgroup (cgroup.py) with
``oom_score_adj`` 1000, so that the OOM killer, should a script exhaust the
machine or the cgroup's limit, takes a worker before any other process.  A
new worker joins the cgroup's `stage` first, copies every page it shares
with its parent outside the script's regions (`unshare_pages`), and only then
joins `work` (a forking worker waits in `stage` until its child has done
so): so `work` is charged for the script's memory, not the interpreter's,
and `reclaim` swaps out what the script mapped.

Accesses follow kernel-semantics §0.4: a write is a plain ``memmove`` of a
fresh 8-byte value to the start of each page (one write fault, no read
first); a read is a load of those 8 bytes.  The runner, not the worker, keeps
what each page should hold.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass
from typing import Any

from . import procfs, syscalls as sc

PAGE = 4096
_HDR = struct.Struct("<I")


class WorkerError(Exception):
    """A request failed in the worker: ``errno_name`` and a message in the kernel's terms."""

    def __init__(self, errno_name: str, message: str, detail: Any = None) -> None:
        super().__init__(f"{errno_name}: {message}")
        self.errno_name = errno_name
        self.message = message
        self.detail = detail


class WorkerDied(Exception):
    """The worker process went away (a signal, or an internal error)."""


# -- framing -----------------------------------------------------------------------------------------

def _send(sock: socket.socket, obj: Any, fds: list[int] | None = None) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    msg = _HDR.pack(len(data)) + data
    if fds:
        socket.send_fds(sock, [msg[:1]], fds)
        sock.sendall(msg[1:])
    else:
        sock.sendall(msg)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def _recv(sock: socket.socket, want_fds: bool = False) -> tuple[Any, list[int]]:
    fds: list[int] = []
    if want_fds:
        first, fds, _flags, _addr = socket.recv_fds(sock, 1, 4)
        if not first:
            raise EOFError
        head = first + _recv_exact(sock, _HDR.size - 1)
    else:
        head = _recv_exact(sock, _HDR.size)
    (n,) = _HDR.unpack(head)
    return pickle.loads(_recv_exact(sock, n)), fds


# -- the worker side -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Placement:
    """Where workers live: the cgroup.procs files of the memory cgroup's `stage` and `work`."""

    stage: str
    work: str


OOM_SCORE_ADJ = 1000


def _join(procs_file: str) -> None:
    with open(procs_file, "w") as f:
        f.write(str(os.getpid()))


def _subtract(lo: int, hi: int, holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """[lo, hi) without the (start, length) ranges in holes."""
    parts = [(lo, hi)]
    for start, length in holes:
        end = start + length
        parts = [q for a, b in parts for q in ((a, min(b, start)), (max(a, end), b)) if q[0] < q[1]]
    return parts


#: An anonymous mapping smaller than this that has a page present is filled whole before a
#: worker joins `work`: the interpreter's small-object arenas (1 MiB each) and its stack.
#: Smaller than a PMD, so the fill can take no THP, whatever the script's `thp` setting.
FILL_BELOW = 2 << 20


def _fill_whole(lo: int, hi: int, path: str) -> bool:
    """Whether unshare_pages() writes every page of this mapping, present or not."""
    return path in ("", "[stack]", "[heap]") and hi - lo < FILL_BELOW


def unshare_pages(exclude: list[tuple[int, int]]) -> None:
    """Copy every page this process shares with its parent (copy-on-write after fork), outside
    the `exclude` (start, length) ranges: MADV_POPULATE_WRITE of each run of present pages that
    are not exclusively mapped (pagemap bit 56), in every private writable mapping.  Its later
    writes then copy nothing, so nothing of the interpreter is charged where it goes next.

    A small anonymous mapping in use (a page present) is filled whole too: the interpreter's
    object allocator hands out fresh pages of its 1 MiB arenas as it goes, and one first
    touched while a step runs would be charged to `work`, where `reclaim` swaps it out beside
    the script's pages (measured: `pswpout` +1026 for the script's 1,025 pages about one
    `kernel diff` in twenty, the extra page's slot taken from the script's device).  A mapping
    with no page present is left alone, and so is the worker's drain page (which must stay
    untouched) wherever it is."""
    me = os.getpid()
    if _DRAIN_PAGE is not None:
        exclude = [*exclude, (_DRAIN_PAGE, PAGE)]
    for lo, hi, perms, path in procfs.maps(me):
        if perms[1] != "w" or perms[3] != "p":
            continue
        fill = _fill_whole(lo, hi, path)
        for a, b in _subtract(lo, hi, exclude):
            words = list(procfs.pagemap_words(me, a, (b - a) // PAGE))
            whole = fill and any(w >> 63 for w in words)
            run = None
            addr = a
            for w in words:
                present = w >> 63
                # absent in a mapping filled whole, or present and shared with the parent
                todo = (whole and not present) or bool(present and not w >> 56 & 1)
                if todo and run is None:
                    run = addr
                elif not todo and run is not None:
                    _populate_write(run, addr)
                    run = None
                addr += PAGE
            if run is not None:
                _populate_write(run, addr)


def _populate_write(start: int, end: int) -> None:
    try:
        sc.madvise(start, end - start, sc.MADV_POPULATE_WRITE)
    except sc.SysError:
        pass        # best effort: a page left shared only costs a copy charged to `work` later


def _settle(placement: Placement | None, exclude: list[tuple[int, int]]) -> None:
    """A new worker's first steps: stage, copy what it shares with its parent, then work."""
    if placement is None:
        return
    _join(placement.stage)
    _drain_page()                       # mapped before the fill, which leaves it untouched
    unshare_pages(exclude)
    _join(placement.work)


class _Worker:
    """State of one worker process (runs in the forked child)."""

    def __init__(self, sock: socket.socket, placement: Placement | None) -> None:
        self.sock = sock
        self.placement = placement
        self.uffd: int | None = None

    def serve(self) -> None:
        while True:
            try:
                req, _ = _recv(self.sock)
            except (EOFError, OSError):
                os._exit(0)
            op, args = req[0], req[1:]
            try:
                result = getattr(self, "op_" + op)(*args)
                reply: tuple = ("ok", result)
            except sc.SysError as e:
                reply = ("err", e.name, e.strerror, e.moved)
            except _Forked as f:
                # in the child: serve on the new socket from here on
                self.sock = f.sock
                continue
            except Exception as e:  # a bug in the worker: report it, do not die silently
                reply = ("bug", f"{type(e).__name__}: {e}")
            handoff = reply[1].pop("handoff") if op == "fork" and reply[0] == "ok" else None
            _send(self.sock, reply, [handoff.fileno()] if handoff is not None else None)
            if handoff is not None:
                handoff.close()
            if op == "exit":
                os._exit(0)

    # memory
    def op_mmap(self, addr: int, length: int, prot: int, advice: int | None) -> int:
        got = sc.mmap(addr, length, prot, sc.MAP_PRIVATE | (sc.MAP_FIXED_NOREPLACE if addr else 0))
        if addr and got != addr:            # an old kernel ignoring MAP_FIXED_NOREPLACE
            sc.munmap(got, length)
            raise sc.SysError(17, f"mmap({addr:#x}) placed elsewhere")
        if advice is not None:
            sc.madvise(got, length, advice)
        return got

    def op_munmap(self, addr: int, length: int) -> None:
        sc.munmap(addr, length)

    def op_mprotect(self, addr: int, length: int, prot: int) -> None:
        sc.mprotect(addr, length, prot)

    def op_madvise(self, addr: int, length: int, advice: int) -> None:
        sc.madvise(addr, length, advice)

    def op_mremap(self, old: int, old_len: int, new_len: int, new_addr: int) -> int:
        return sc.mremap(old, old_len, new_len, sc.MREMAP_MAYMOVE | sc.MREMAP_FIXED, new_addr)

    def op_write(self, runs: list[tuple[int, int, int]]) -> int:
        """Store value first+i at the start of page i of each (addr, npages, first) run."""
        n = 0
        pack = struct.Struct("<Q").pack
        for addr, npages, first in runs:
            for i in range(npages):
                sc.store(addr + i * PAGE, pack(first + i))
            n += npages
        return n

    def op_read(self, runs: list[tuple[int, int]]) -> list[int]:
        """Load the first 8 bytes of each page of each (addr, npages) run."""
        out: list[int] = []
        unpack = struct.Struct("<Q").unpack
        for addr, npages in runs:
            for i in range(npages):
                out.append(unpack(sc.load(addr + i * PAGE, 8))[0])
        return out

    def op_load(self, runs: list[tuple[int, int]]) -> int:
        """Load the first 8 bytes of each page of each (addr, npages) run; the pages read."""
        n = 0
        for addr, npages in runs:
            for i in range(npages):
                sc.load(addr + i * PAGE, 8)
            n += npages
        return n

    def op_mincore(self, addr: int, length: int) -> bytes:
        return sc.mincore(addr, length)

    # userfaultfd
    def op_uffd_register(self, addr: int, length: int) -> None:
        if self.uffd is None:
            self.uffd = sc.userfaultfd(sc.UFFD_FEATURE_MOVE | sc.UFFD_FEATURE_SIGBUS)
        sc.uffdio_register(self.uffd, addr, length)

    def op_uffd_move(self, src: int, dst: int, length: int) -> int:
        if self.uffd is None:
            raise sc.SysError(22, "UFFDIO_MOVE: no userfaultfd in this process (nothing registered)")
        return sc.uffdio_move(self.uffd, dst, src, length)

    # processes
    def op_fork(self, exclude: list[tuple[int, int]]) -> dict:
        """Fork; the child copies what it shares with this process outside `exclude` (the
        script's regions, which it must share as a forked process does) before it serves.
        This process waits in `stage` until then (`op_settled`): what it copies of the
        interpreter meanwhile (its own writes right after the fork) is not charged to `work`."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.placement is not None:
            _join(self.placement.stage)
        pid = os.fork()
        if pid == 0:
            theirs.close()
            self.sock.close()
            if self.uffd is not None:      # the context belongs to the parent's mm
                os.close(self.uffd)
                self.uffd = None
            _settle(self.placement, exclude)
            raise _Forked(mine)
        mine.close()
        return {"pid": pid, "handoff": theirs}

    def op_settled(self) -> None:
        """The child of the last fork has copied what it shared: back to `work`."""
        if self.placement is not None:
            _join(self.placement.work)

    def op_exit(self) -> None:
        return None

    def op_ping(self) -> int:
        return os.getpid()

    def op_drain(self) -> None:
        """lru_add_drain() on this CPU: MADV_COLD runs it first (madvise_cold), here on a page
        that was never touched, so nothing else happens.  It flushes the per-CPU folio batches,
        whose lazyfree batch is where pglazyfree is counted (31 folios at a time)."""
        sc.madvise(_drain_page(), PAGE, sc.MADV_COLD)


_DRAIN_PAGE: int | None = None


def _drain_page() -> int:
    """The worker's never-touched page for op_drain (mapped once; a forked child inherits it)."""
    global _DRAIN_PAGE
    if _DRAIN_PAGE is None:
        _DRAIN_PAGE = sc.mmap(0, PAGE, sc.PROT_READ | sc.PROT_WRITE, sc.MAP_PRIVATE)
    return _DRAIN_PAGE


class _Forked(Exception):
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock


def _worker_main(sock: socket.socket, cpu: int | None, placement: Placement | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)        # Ctrl-C is the runner's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)       # children are reaped by the kernel
    signal.pthread_sigmask(signal.SIG_SETMASK, set())   # a fork during a deferred tear-down
    with open("/proc/self/oom_score_adj", "w") as f:    # the OOM killer's first choice
        f.write(str(OOM_SCORE_ADJ))
    _settle(placement, [])
    try:
        sc.prctl(sc.PR_SET_THP_DISABLE, 0)               # the runner disables THP for itself only
    except sc.SysError:
        pass
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})                   # one CPU: one set of per-CPU batches
    try:
        _Worker(sock, placement).serve()
    finally:
        os._exit(0)


# -- the runner side -------------------------------------------------------------------------------------

@dataclass
class Proc:
    """A script process: its script pid, kernel pid, socket and parent."""

    spid: int
    pid: int
    sock: socket.socket
    pidfd: int
    parent: int | None
    alive: bool = True


class Processes:
    """Every worker of one run, by script pid (1, 2, ... in fork order, never reused)."""

    def __init__(self, placement: Placement | None = None) -> None:
        self.procs: dict[int, Proc] = {}
        self.next_spid = 1
        self.placement = placement

    def start(self) -> Proc:
        """Fork pid 1 (in the memory cgroup of `placement`, when there is one)."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
                mine.close()
                _worker_main(theirs, min(os.sched_getaffinity(0)), self.placement)
            finally:
                os._exit(0)
        theirs.close()
        proc = Proc(self.next_spid, pid, mine, sc.pidfd_open(pid), None)
        self.procs[proc.spid] = proc
        self.next_spid += 1
        self.call(proc.spid, "ping")
        return proc

    def get(self, spid: int) -> Proc:
        proc = self.procs.get(spid)
        if proc is None or not proc.alive:
            raise KeyError(spid)
        return proc

    def call(self, spid: int, op: str, *args: Any) -> Any:
        proc = self.get(spid)
        try:
            _send(proc.sock, (op, *args))
            reply, fds = _recv(proc.sock, want_fds=(op == "fork"))
        except (EOFError, OSError, BrokenPipeError):
            raise WorkerDied(self._death(proc)) from None
        if reply[0] == "ok":
            if fds:
                reply[1]["fds"] = fds
            return reply[1]
        if reply[0] == "err":
            raise WorkerError(reply[1], reply[2], reply[3])
        raise WorkerDied(f"worker of pid {spid} failed: {reply[1]}")

    def _death(self, proc: Proc) -> str:
        proc.alive = False
        st = None
        for _ in range(100):
            r, _, _ = select.select([proc.pidfd], [], [], 0.01)
            if r:
                break
        try:
            if proc.parent is None:
                _, status = os.waitpid(proc.pid, os.WNOHANG)
                st = status
        except ChildProcessError:
            pass
        if st is not None and os.WIFSIGNALED(st):
            return f"process {proc.spid} (kernel pid {proc.pid}) was killed by signal {os.WTERMSIG(st)}"
        return f"process {proc.spid} (kernel pid {proc.pid}) died"

    def fork(self, parent: int, exclude: list[tuple[int, int]]) -> Proc:
        """The parent forks; `exclude`: the (start, length) ranges the child must keep sharing."""
        res = self.call(parent, "fork", exclude)
        sock = socket.socket(fileno=res["fds"][0])
        child = Proc(self.next_spid, res["pid"], sock, sc.pidfd_open(res["pid"]), parent)
        self.procs[child.spid] = child
        self.next_spid += 1
        try:
            self.call(child.spid, "ping")
        finally:
            self.call(parent, "settled")
        return child

    def exit(self, spid: int, timeout: float = 10.0) -> None:
        """The process exits; returns once its address space is gone (the pidfd polls readable)."""
        proc = self.get(spid)
        try:
            _send(proc.sock, ("exit",))
            _recv(proc.sock)
        except (EOFError, OSError):
            pass
        self._wait_gone(proc, timeout)

    def _wait_gone(self, proc: Proc, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([proc.pidfd], [], [], 0.05)
            if r:
                break
        proc.alive = False
        proc.sock.close()
        os.close(proc.pidfd)
        if proc.parent is None:
            try:
                os.waitpid(proc.pid, 0)
            except ChildProcessError:
                pass

    def close_all(self) -> None:
        """End every worker, children first (their exits tear their address spaces down)."""
        for proc in sorted(self.procs.values(), key=lambda p: -p.spid):
            if proc.alive:
                try:
                    proc.sock.close()
                finally:
                    self._wait_killed(proc)

    def _wait_killed(self, proc: Proc) -> None:
        r, _, _ = select.select([proc.pidfd], [], [], 5.0)
        if not r:
            try:
                os.kill(proc.pid, signal.SIGKILL)     # only our own worker, by its pid
            except ProcessLookupError:
                pass
            select.select([proc.pidfd], [], [], 5.0)
        proc.alive = False
        os.close(proc.pidfd)
        if proc.parent is None:
            try:
                os.waitpid(proc.pid, 0)
            except ChildProcessError:
                pass
