"""The workers' memory cgroup: a bound on what a live run may use, and `reclaim` without global reclaim.

Every worker process of a run lives in a memory cgroup of the run's own, made
under the runner's own memory cgroup (cgroup v1 if the memory controller is
there, else cgroup v2; in v2 under the root when the runner's cgroup cannot
have children with the controller):

    <runner's cgroup>/mmshell-kernel.<pid>.<8 hex>        the limit: worker_memory_limit()
        stage/                                            a worker copying its shared pages
        work/                                             the workers while they serve the script

Charges follow the process that faults a page in.  A worker starts (or is
forked) sharing the pages of the interpreter with its parent; its first
writes to them would copy them, charged to `work`, and reclaim of `work` would
then swap the interpreter out with the script's pages.  So a new worker first
joins `stage`, copies every page it shares outside the script's regions
(MADV_POPULATE_WRITE of its present, not exclusively mapped pages: process.py),
and only then joins `work`.  What `work` is charged for is then the script's
memory and the little the interpreter allocates afresh.

`reclaim [SIZE]` on the live kernel asks `work` to reclaim (v2
`memory.reclaim`; v1 `memory.force_empty` for everything, a lowered
`memory.limit_in_bytes` for SIZE), pass after pass until SIZE is reclaimed or
a pass frees nothing: the kernel's LRU keeps a folio with referenced PTEs
active on its first look, and reclaim balances the lists by the memcg's
statistics, which the runner brings up to date before each pass
(memcg_flush.flush_subtree()), and after a page was read back from swap
it waits until they show its refault (memcg_flush.py; at once after the flush).

The cgroup directories are journaled (journal.py) before they are made, with
their inode once made, and removed at the tear-down after the workers are
gone; recovery removes only a directory with the recorded inode and no tasks.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..mm.constants import MAX_RAM
from .devices import memtotal, signals_deferred
from .journal import Journal, NotProven, Step
from .memcg_flush import RefaultStats, flush_subtree, swapins, swapouts, thp_splits

__all__ = ["CgroupError", "MemoryCgroup", "check_cgroup_step", "undo_cgroup", "worker_memory_limit"]

PREFIX = "mmshell-kernel."
_NAME_RE = re.compile(re.escape(PREFIX) + r"[0-9]{1,10}\.[0-9a-f]{8}")
#: Passes of `reclaim` before it stops (each reclaims what the LRU lets go at that point).
RECLAIM_PASSES = 8
#: How long the tear-down waits for exited workers to leave the cgroup.
EMPTY_WAIT = 5.0


def worker_memory_limit() -> int:
    """What the workers together may use: half the machine, at most the simulator's largest machine."""
    return min(MAX_RAM, memtotal() // 2)


class CgroupError(RuntimeError):
    """The workers' memory cgroup could not be made or used (one line: why)."""


def _mounts() -> list[tuple[str, str, str, str]]:
    """(mount point, root within the hierarchy, fs type, super options) of each cgroup mount."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        f, r = left.split(), right.split()
        if len(f) >= 5 and len(r) >= 3 and r[0] in ("cgroup", "cgroup2"):
            out.append((f[4].replace("\\040", " "), f[3], r[0], r[2]))
    return out


def _own_cgroups() -> dict[str, str]:
    """This process's cgroup per v1 controller list ("memory", ...), and "" for v2."""
    out = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _num, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            out[c] = path
    return out


def _under(mount: str, root: str, path: str) -> Path:
    rel = path[len(root):] if root != "/" and path.startswith(root) else path
    return Path(mount) / rel.lstrip("/")


def memory_hierarchy() -> tuple[int, Path, Path]:
    """(version, the mount point, the directory of this process's memory cgroup)."""
    mounts = _mounts()
    own = _own_cgroups()
    for mnt, root, fstype, opts in mounts:
        if fstype == "cgroup" and "memory" in opts.split(",") and "memory" in own:
            return 1, Path(mnt), _under(mnt, root, own["memory"])
    for mnt, root, fstype, _opts in mounts:
        if fstype == "cgroup2" and "memory" in (Path(mnt) / "cgroup.controllers").read_text().split():
            return 2, Path(mnt), _under(mnt, root, own.get("", "/"))
    raise CgroupError("no memory cgroup controller is mounted (cgroup v1 'memory' or cgroup v2 with "
                      "'memory' in cgroup.controllers): the live runner keeps its workers in one")


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _enable_memory(parent: Path) -> bool:
    """v2: let parent's children have the memory controller; False when it cannot (EBUSY: parent
    has processes of its own, the "no internal processes" rule)."""
    if "memory" in (parent / "cgroup.subtree_control").read_text().split():
        return True
    try:
        _write(parent / "cgroup.subtree_control", "+memory")
        return True
    except OSError:
        return False


@dataclass
class MemoryCgroup:
    """The run's cgroup, its `stage` and `work` children, and their journal steps."""

    version: int
    top: Path
    journal: Journal = field(default_factory=Journal)
    steps: list[Step] = field(default_factory=list)
    #: what the last reclaim (or the cgroup's making) saw: swap-ins since then make a reclaim
    #: wait for the statistics to show their refaults (memcg_flush.py)
    seen: RefaultStats | None = None

    @property
    def stage(self) -> Path:
        return self.top / "stage"

    @property
    def work(self) -> Path:
        return self.top / "work"

    @classmethod
    def create(cls, journal: Journal) -> "MemoryCgroup":
        version, mount, own = memory_hierarchy()
        parent = own
        if version == 2 and not _enable_memory(parent):
            parent = mount
            if not _enable_memory(parent):
                raise CgroupError(f"cannot enable the memory controller below {own} or {mount}")
        cg = cls(version, parent / f"{PREFIX}{os.getpid()}.{os.urandom(4).hex()}", journal)
        try:
            cg._mkdir(cg.top)
            if version == 2:
                _write(cg.top / "cgroup.subtree_control", "+memory")
                _write(cg.top / "memory.max", str(worker_memory_limit()))
            else:
                _write(cg.top / "memory.limit_in_bytes", str(worker_memory_limit()))
            cg._mkdir(cg.stage)
            cg._mkdir(cg.work)
            cg.seen = RefaultStats(swapins(), 0)
        except BaseException as e:
            cg.remove()
            if isinstance(e, OSError):
                raise CgroupError(f"making the workers' memory cgroup {cg.top}: {e.strerror or e}") from None
            raise
        return cg

    def _mkdir(self, path: Path) -> None:
        with signals_deferred():
            step = self.journal.add(Step("cgroup rmdir", {"path": str(path), "ino": None}))
            self.steps.append(step)
            os.mkdir(path, 0o755)
            new = self.journal.replace(step, step.with_args(ino=os.lstat(path).st_ino))
            self.steps[-1] = new

    def procs(self, which: Path) -> str:
        """The cgroup.procs file a worker writes its pid to, to join `which`."""
        return str(which / "cgroup.procs")

    def remove(self) -> list[str]:
        """Remove the directories, newest first, once their tasks are gone; the errors."""
        errors: list[str] = []
        with signals_deferred():
            for step in reversed(self.steps):
                try:
                    undo_cgroup(step)
                    self.journal.drop(step)
                except (OSError, NotProven, CgroupError) as e:
                    errors.append(f"removing {step.args['path']}: {e}")
            self.steps.clear()
        return errors

    # -- reclaim ---------------------------------------------------------------------------------------
    def _stat(self) -> dict[str, int]:
        """`work`'s memory.stat (reading it also flushes the memcg's statistics, which reclaim's
        LRU balancing reads, when enough updates are pending)."""
        return {k: int(v) for k, v in (line.split() for line in
                                       (self.work / "memory.stat").read_text().splitlines()
                                       if len(line.split()) == 2)}

    def charged(self) -> int:
        """Bytes of anon, file and swap-cache memory charged to `work`, as its flushed statistics say.

        A folio in the swap cache that no page table maps any more is in neither "rss" ("anon",
        NR_ANON_MAPPED) nor "cache" ("file"): 6.18 counts the swap cache in NR_FILE_PAGES of the
        node only, and in the memcg as NR_SWAPCACHE, "swapcached".  So a pass that frees only such
        folios (written by an earlier MADV_PAGEOUT or pass to a disk) is progress only with
        "swapcached" counted (kernel fuzz seed 16161 script 2321: without it the runner stopped
        after that pass, before the pass that reclaims a THP the first one activated)."""
        fields = self._stat()
        keys = ("rss", "cache") if self.version == 1 else ("anon", "file")
        return sum(fields.get(k, 0) for k in (*keys, "swapcached"))

    def refaults(self) -> int | None:
        """`work`'s flushed workingset_refault_anon (None where memory.stat has none)."""
        return self._stat().get("workingset_refault_anon")

    def flush_stats(self) -> bool:
        """Before a reclaim: bring `work`'s flushed statistics, by which reclaim balances the
        active and inactive lists, up to date (memcg_flush.flush_subtree(), from the cgroup the
        run's cgroup was made in); whether it could."""
        return flush_subtree(self.top.parent)

    def await_refault_stats(self) -> float:
        """Before a reclaim: when a page was read back from swap since the last one, wait until
        `work`'s flushed statistics show a refault (memcg_flush.py); the seconds waited."""
        return 0.0 if self.seen is None else self.seen.await_flush(swapins(), self.refaults)

    def reclaim(self, size: int | None, settle: Callable[[], None] = lambda: None) -> tuple[int, int]:
        """Reclaim `size` bytes charged to the workers (None: all that can be); (bytes reclaimed, passes).
        The runner calls await_refault_stats() first, outside the step's counters.

        Passes go on while one makes progress: the charge fell, or it wrote pages to swap
        (/proc/vmstat, exact; memory.stat's figures are flushed only when enough updates are
        pending, so a pass whose written folios are still in the swap cache looks fruitless).
        After each pass `settle()` (the runner's: wait for the swap writes to end, then flush
        every CPU's folio batches, percpu.py), so the next
        pass frees the folios whose writes ended, as the simulation's next pass does (kernel fuzz
        seed 15151 script 1100: the run stopped with 11 of 16 written folios still cached).  A
        pass that only activates (two references) makes none, as in the simulation; one that split
        a THP (the deferred split shrinker, whose small folios the next pass sees) makes some, as
        in the simulation (kernel fuzz seed 17171 script 3107: a partly unmapped THP activated,
        then split; the next pass takes its pages).  Before each
        pass but the first (the runner's session flushes before that one, outside the step's
        counters) the cgroup's statistics are flushed, so that the pass deactivates an active
        anon list left alone (memcg_flush.flush_subtree())."""
        before = last = now = self.charged()
        target = None if size is None else max(before - size, 0)
        passes = 0
        for passes in range(1, RECLAIM_PASSES + 1):
            if passes > 1:
                self.flush_stats()
            written, split = swapouts(), thp_splits()
            if target is None:
                self._reclaim_all(now)
            else:
                self._reclaim_to(now, target)
            settle()
            now = self.charged()
            if (target is not None and now <= target) or (now >= last and swapouts() == written
                                                           and thp_splits() == split):
                break
            last = now
        self.seen = RefaultStats(swapins(), self.refaults())
        return before - now, passes

    def _reclaim_all(self, charged: int) -> None:
        if self.version == 1:
            _write(self.work / "memory.force_empty", "0")
        else:
            self._memory_reclaim(max(charged, 4096))

    def _reclaim_to(self, charged: int, target: int) -> None:
        if self.version == 2:
            self._memory_reclaim(charged - target)
            return
        usage = int((self.work / "memory.usage_in_bytes").read_text())
        limit = max(usage - (charged - target), 0)
        try:
            _write(self.work / "memory.limit_in_bytes", str(limit))
        except OSError as e:
            if e.errno != errno.EBUSY:         # EBUSY: not all of it could be reclaimed
                raise
        finally:
            _write(self.work / "memory.limit_in_bytes", "-1")

    def _memory_reclaim(self, nbytes: int) -> None:
        try:
            _write(self.work / "memory.reclaim", str(nbytes))
        except OSError as e:
            if e.errno != errno.EAGAIN:        # EAGAIN: less than asked could be reclaimed
                raise


# -- the journal step ----------------------------------------------------------------------------------

def check_cgroup_step(args: dict[str, Any]) -> None:
    """Raise ValueError unless args name a cgroup directory a live run makes, on a cgroup filesystem."""
    path = args.get("path")
    if not isinstance(path, str) or not path.startswith("/") or "/../" in path + "/" or "//" in path:
        raise ValueError(f"path {path!r} is not one a live run makes")
    p = Path(path)
    name_ok = _NAME_RE.fullmatch(p.name) or (p.name in ("stage", "work")
                                             and _NAME_RE.fullmatch(p.parent.name))
    if not name_ok:
        raise ValueError(f"{path} is not a directory a live run makes")
    mounts = [m for m, _r, _t, _o in _mounts() if path.startswith(m.rstrip("/") + "/")]
    if not mounts:
        raise ValueError(f"{path} is not on a cgroup filesystem")
    if args.get("ino") is not None and not isinstance(args["ino"], int):
        raise ValueError("ino is not a number")


def undo_cgroup(step: Step, same_boot: bool = True) -> str | None:
    """Remove one of the run's cgroup directories: only with the recorded inode, in the same boot,
    once no task is left in it (waited for up to EMPTY_WAIT: exiting workers leave it last)."""
    path = Path(step.args["path"])
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not same_boot:
        raise NotProven(f"{path}: the journal is from an earlier boot")
    if step.args["ino"] is None:
        raise NotProven(f"{path}: the run died while making it, before noting its inode")
    if not stat.S_ISDIR(st.st_mode) or st.st_ino != step.args["ino"]:
        raise NotProven(f"{path} is not the run's (another cgroup has that name now)")
    deadline = time.monotonic() + EMPTY_WAIT
    while (path / "cgroup.procs").read_text().strip():
        if time.monotonic() > deadline:
            tasks = " ".join((path / "cgroup.procs").read_text().split()[:8])
            raise CgroupError(f"{path} still has tasks: {tasks}")
        time.sleep(0.02)
    for attempt in range(50):
        try:
            os.rmdir(path)
            return f"removed {path}"
        except OSError as e:
            if e.errno != errno.EBUSY or attempt == 49:
                raise
            time.sleep(0.02)          # a task that just left may still be counted
    return None
