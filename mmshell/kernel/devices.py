"""Swap devices for live runs: zram, a loop device over a file ("disk"), a swap file.

`SwapDevices` sets up what a script's `swapon NAME SIZE kind K` asks for and
tears down exactly what it set up (and nothing else), also after an error or
Ctrl-C/SIGTERM: every step that creates something records how to undo it,
and how to recognise it, before the next step runs.

* ``zram``: ``/sys/class/zram-control/hot_add`` gives a fresh ``/dev/zramN``;
  disksize, swap header, swapon.  Undo: swapoff, reset, hot_remove.
* ``disk``: a sparse file on a disk filesystem bound to a free loop device
  (LOOP_CTL_GET_FREE, LOOP_SET_FD), swap header, swapon of ``/dev/loopN``
  (an asynchronous, rotational block device).  Undo: swapoff, LOOP_CLR_FD, unlink.
* ``file``: a zero-filled file on a disk filesystem (ext4, xfs), swap header,
  swapon of the file itself (not a block device: no 2 MiB swap clusters).
  Undo: swapoff, unlink.

Files live in a directory of the run's own (``mmshell-swap-`` and 16 random
hex digits, mode 0700, in ``$MMSHELL_SWAP_DIR`` or ``/var/tmp``), created with
O_EXCL and O_NOFOLLOW.

What identifies each thing, so that an undo step replayed from the journal
(journal.py) touches it only while it is still the run's: a zram or loop
device by its ``diskseq`` (a block device's sequence number, new for every
device the kernel creates and for every file bound to a loop device, never
reused within a boot), a loop device also by its backing file's device and
inode (LOOP_GET_STATUS64), a swap area by the random UUID the run wrote in
its header, a file or directory by device and inode.

Bounds (docs/kernel.md): the simulator's limits on one device and on all of
them (mm/constants.py MAX_SWAP, MAX_SWAP_TOTAL); a zram device no larger than
the machine's memory; a swap file or disk file only if it fits in the space
the filesystem leaves to unprivileged users (statvfs f_bavail: root's
reserved blocks are never used) with SWAP_FREE_MARGIN to spare.

The swap header is written in Python (what mkswap writes) and the loop
device is bound with ioctls, so no program is exec'd while a script runs:
an exec would read its binary back into the page cache and count
``pgmajfault``.

The swap *type* (the index the kernel puts in swap entries, which pagemap
reports) is not exported by the kernel; it is modelled here the way
alloc_swap_info() picks it: the lowest index not in use.  Devices that were
active before the run are assumed to hold the lowest indexes (they cannot
be seen either); the runner cross-checks the model against the swap types it
finds in pagemap after every pageout.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import re
import signal
import stat
import struct
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..mm.constants import MAX_SWAP, MAX_SWAP_TOTAL
from . import syscalls
from .journal import Journal, NotProven, Step

ZRAM_CONTROL = Path("/sys/class/zram-control")
PROC_SWAPS = Path("/proc/swaps")
MAX_SWAP_PRIO = 32767
PAGE_SIZE = 4096
#: Filesystems a swap file (and the loop device's backing file) can live on.
_DISK_FS = ("ext4", "ext3", "ext2", "xfs")
#: Free space a swap file or disk file must leave on its filesystem (of what unprivileged users may use).
SWAP_FREE_MARGIN = 1 << 30
#: The run's own directory for swap and disk files, and the files in it.
RUN_DIR_PREFIX = "mmshell-swap-"
_RUN_DIR_RE = re.compile(r"/(?:[^/\0]+/)*" + RUN_DIR_PREFIX + r"[0-9a-f]{16}")
_RUN_FILE_RE = re.compile(_RUN_DIR_RE.pattern + r"/[A-Za-z_][A-Za-z0-9_]{0,63}\.(?:swap|disk)")
_ZRAM_RE = re.compile(r"/dev/zram[0-9]{1,6}")
_LOOP_RE = re.compile(r"/dev/loop[0-9]{1,6}")
_UUID_RE = re.compile(r"[0-9a-f]{32}")


class DeviceError(RuntimeError):
    """Setting up or tearing down a swap device failed: an errno name and a one-line reason."""

    def __init__(self, why: str, errno_name: str = "EIO") -> None:
        super().__init__(why)
        self.errno_name = errno_name


@dataclass(frozen=True)
class ActiveSwap:
    """One line of /proc/swaps."""

    filename: str
    type: str
    size_kb: int
    used_kb: int
    priority: int


def active_swaps() -> list[ActiveSwap]:
    out = []
    for line in PROC_SWAPS.read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5:
            name = parts[0].replace("\\040", " ")
            out.append(ActiveSwap(name, parts[1], int(parts[2]), int(parts[3]), int(parts[4])))
    return out


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as e:
        raise DeviceError(f"write {value!r} to {path}: {e.strerror or e}") from None


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP for the duration, so an undo step cannot be cut in half;
    a signal that arrives meanwhile is delivered when the block ends.

    Blocking them (pthread_sigmask) holds them for this thread only: in a process with
    other threads the kernel may hand the signal to one of those, and Python then runs the
    handler in the main thread all the same.  So the Python-level handlers are swapped for
    one that only notes the signal, and each noted signal is raised again at the end."""
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    pending: list[int] = []
    try:
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    except (ValueError, OSError):
        old_mask = None
    old_handlers: dict[int, Any] = {}
    try:
        for s in sigs:
            old_handlers[s] = signal.signal(s, lambda signum, _frame: pending.append(signum))
    except ValueError:                  # not the main thread: no Python handler runs here anyway
        pass
    try:
        yield
    finally:
        for held, handler in old_handlers.items():
            signal.signal(held, handler)
        if old_mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)     # a blocked one is delivered now
        for signum in dict.fromkeys(pending):
            signal.raise_signal(signum)


def fs_type(path: Path) -> str:
    """The filesystem type of the mount holding path (longest mount-point match)."""
    path = path.resolve()
    best, kind = "", "?"
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        mnt = parts[1].replace("\\040", " ")
        if (str(path) == mnt or str(path).startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
            best, kind = mnt, parts[2]
    return kind


def swap_dir() -> Path | None:
    """A directory on a disk filesystem for swap files and loop backing files."""
    cands = [os.environ.get("MMSHELL_SWAP_DIR"), "/var/tmp", tempfile.gettempdir(), "/tmp"]
    for c in cands:
        if c and Path(c).is_dir() and os.access(c, os.W_OK) and fs_type(Path(c)) in _DISK_FS:
            return Path(c)
    return None


def free_for_users(path: Path) -> int:
    """Bytes of the filesystem holding path that unprivileged users may still use (root's
    reserved blocks left out: statvfs f_bavail)."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def memtotal() -> int:
    """The machine's memory in bytes (/proc/meminfo MemTotal)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise DeviceError("/proc/meminfo has no MemTotal")


def missing_requirements() -> list[str]:
    """What a live run needs and this machine lacks (empty: all there)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (running as uid %d): swapon, /proc/PID/pagemap swap offsets and the "
                       "THP sysfs knobs need it" % os.geteuid())
    if not (ZRAM_CONTROL / "hot_add").exists():
        missing.append(f"zram: {ZRAM_CONTROL}/hot_add does not exist (zram module not loaded? "
                       "try: modprobe zram)")
    if not any(Path("/sys/block").glob("*/diskseq")):
        missing.append("a kernel that numbers its block devices (/sys/block/*/diskseq, Linux 5.15+): "
                       "the runner recognises the devices it made by that number")
    return missing


@dataclass
class SwapDevice:
    """One device a script swapped on."""

    name: str
    kind: str
    size: int
    path: str
    prio: int
    type: int
    undo: list[Step] = field(default_factory=list)       # how to undo it, oldest first
    active: bool = True
    ident: dict[str, Any] = field(default_factory=dict)   # what identifies its swap area


class SwapDevices:
    """The devices of one run, by script name; only these are ever swapped off or removed."""

    def __init__(self, journal: Journal | None = None) -> None:
        self.journal = journal if journal is not None else Journal(None)
        self.devices: dict[str, SwapDevice] = {}
        self.others = [s.filename for s in active_swaps()]
        self.types_in_use = set(range(len(self.others)))
        self.warnings: list[str] = []
        self._dir: Path | None = None
        self._dir_step: Step | None = None

    # -- queries -------------------------------------------------------------------------------
    def get(self, name: str) -> SwapDevice | None:
        dev = self.devices.get(name)
        return dev if dev is not None and dev.active else None

    def by_type(self, t: int) -> SwapDevice | None:
        return next((d for d in self.devices.values() if d.active and d.type == t), None)

    def top_foreign_priority(self) -> int | None:
        mine = {d.path for d in self.devices.values() if d.active}
        prios = [s.priority for s in active_swaps() if s.filename not in mine
                 and s.filename.removesuffix(" (deleted)") not in mine]
        return max(prios) if prios else None

    def used_pages(self, name: str) -> int:
        dev = self.get(name)
        assert dev is not None
        for s in active_swaps():
            if s.filename.removesuffix(" (deleted)") == dev.path:
                return s.used_kb // 4
        raise DeviceError(f"swap device {name} ({dev.path}) is not in {PROC_SWAPS}")

    # -- swapon / swapoff --------------------------------------------------------------------------
    def check_size(self, size: int, kind: str) -> None:
        """Refuse, before anything is made, what the simulator refuses and what this machine cannot hold."""
        if size % PAGE_SIZE or size < 10 * PAGE_SIZE:
            raise DeviceError(f"size {size} must be a multiple of 4K and at least 40K", "EINVAL")
        if size > MAX_SWAP:
            raise DeviceError(f"swap area larger than the simulation's limit of {MAX_SWAP >> 30}G", "EINVAL")
        active = sum(d.size for d in self.devices.values() if d.active)
        if active + size > MAX_SWAP_TOTAL:
            raise DeviceError(f"{(active + size) >> 20}M of swap in all: beyond the simulation's limit of "
                              f"{MAX_SWAP_TOTAL >> 30}G over every device", "EINVAL")
        if kind == "zram" and size > memtotal():
            raise DeviceError(f"a zram device of {size >> 20}M is larger than this machine's memory "
                              f"({memtotal() >> 20}M, MemTotal): refused on the live kernel", "EINVAL")

    def swapon(self, name: str, size: int, kind: str, prio: int) -> SwapDevice:
        if self.get(name) is not None:
            raise DeviceError(f"swap device {name!r} is already active", "EBUSY")
        self.check_size(size, kind)
        dev = SwapDevice(name, kind, size, "", prio, -1)
        try:
            {"zram": self._zram, "disk": self._disk, "file": self._file}[kind](dev)
            uuid = write_swap_header(dev.path, dev.size)
            dev.ident = {"uuid": uuid, **_swap_area_ident(dev.path)}
            with signals_deferred():
                self._record(dev, Step("swapoff", {"path": dev.path, **dev.ident}))
                syscalls.swapon(dev.path, prio)
        except BaseException:
            errors = self._undo(dev)
            if errors:
                self.warnings.append(f"undoing swapon {name}: " + "; ".join(errors))
            raise
        dev.type = min(t for t in range(33) if t not in self.types_in_use)
        self.types_in_use.add(dev.type)
        self.devices[name] = dev
        return dev

    def swapoff(self, name: str) -> None:
        dev = self.get(name)
        if dev is None:
            raise DeviceError(f"no swap device named {name!r}", "ENOENT")
        with signals_deferred():
            syscalls.swapoff(dev.path)
            for step in [u for u in dev.undo if u.what == "swapoff"]:
                dev.undo.remove(step)
                self.journal.drop(step)
        errors = self._undo(dev)
        dev.active = False
        self.types_in_use.discard(dev.type)
        if errors:
            raise DeviceError(f"swapoff {name}: device removal: " + "; ".join(errors))

    def teardown(self) -> list[str]:
        """Undo every device still set up, newest first; the errors (never raises)."""
        errors: list[str] = []
        for dev in reversed(list(self.devices.values())):
            if dev.undo:
                errors += self._undo(dev)
            dev.active = False
        if self._dir is not None and self._dir_step is not None:
            try:
                undo_device_step(self._dir_step)
                self.journal.drop(self._dir_step)
            except (OSError, DeviceError, NotProven) as e:
                errors.append(f"removing {self._dir}: {e}")
            self._dir = self._dir_step = None
        return errors

    def _record(self, dev: SwapDevice, step: Step) -> Step:
        """Note how to undo what is about to be made: in the device and in the run's journal."""
        dev.undo.append(self.journal.add(step))
        return step

    def _identify(self, device: SwapDevice, step: Step, **ident: Any) -> None:
        """Fill in what identifies a thing just made (its step was journaled before it existed)."""
        new = self.journal.replace(step, step.with_args(**ident))
        device.undo[device.undo.index(step)] = new

    def _undo(self, dev: SwapDevice) -> list[str]:
        errors: list[str] = []
        with signals_deferred():
            while dev.undo:
                step = dev.undo.pop()
                try:
                    undo_device_step(step)
                except (OSError, DeviceError, NotProven) as e:
                    errors.append(f"{dev.name}: {step.what}: {e}")
                    if step.what == "swapoff":   # still in use: removing it would fail or be unsafe
                        dev.undo.clear()         # (left in the journal: the next run tries again)
                        break
                self.journal.drop(step)
        return errors

    # -- kinds ---------------------------------------------------------------------------------

    def _zram(self, dev: SwapDevice) -> None:
        with signals_deferred():
            try:
                num = int((ZRAM_CONTROL / "hot_add").read_text().strip())
            except (OSError, ValueError) as e:
                raise DeviceError(f"zram hot_add failed: {e}") from None
            block = Path(f"/sys/block/zram{num}")
            seq = _diskseq(block)
            self._record(dev, Step("zram remove", {"num": num, "diskseq": seq}))
        self._record(dev, Step("zram reset", {"num": num, "diskseq": seq, "size": dev.size}))
        _write(block / "disksize", str(dev.size))
        dev.path = f"/dev/zram{num}"
        _wait_for(Path(dev.path))

    def _workdir(self) -> Path:
        """The run's own directory for files: a fresh random name (O_EXCL by mkdir), mode 0700."""
        if self._dir is None:
            base = swap_dir()
            if base is None:
                raise DeviceError("no writable directory on a disk filesystem (ext4/xfs) for the swap "
                                  "file; set MMSHELL_SWAP_DIR", "ENOENT")
            base = Path(os.path.realpath(base))
            for _ in range(8):
                path = base / (RUN_DIR_PREFIX + os.urandom(8).hex())
                with signals_deferred():
                    step = self.journal.add(Step("rmdir", {"path": str(path), **NO_IDENT}))
                    try:
                        os.mkdir(path, 0o700)
                    except FileExistsError:
                        self.journal.drop(step)
                        continue
                    self._dir_step = self.journal.replace(step, step.with_args(**file_ident(str(path))))
                    self._dir = path
                break
            else:
                raise DeviceError(f"could not make a fresh directory in {base}", "EEXIST")
        assert self._dir is not None
        return self._dir

    def _check_space(self, size: int, where: Path) -> None:
        free = free_for_users(where)
        if size + SWAP_FREE_MARGIN > free:
            raise DeviceError(f"a {size >> 20}M file does not fit on the filesystem of {where}: "
                              f"{free >> 20}M free for unprivileged users, and {SWAP_FREE_MARGIN >> 20}M "
                              "must stay free (root's reserved blocks are never used)", "ENOSPC")

    def _new_file(self, dev: SwapDevice, suffix: str) -> tuple[int, Step]:
        """A fresh file of the run's own (O_CREAT|O_EXCL|O_NOFOLLOW), journaled before it exists."""
        path = self._workdir() / f"{dev.name}.{suffix}"
        with signals_deferred():
            step = self._record(dev, Step("unlink", {"path": str(path), **NO_IDENT}))
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            self._identify(dev, step, **_fd_ident(fd))
        return fd, dev.undo[-1]

    def _disk(self, dev: SwapDevice) -> None:
        if not LOOP_CONTROL.exists():
            raise DeviceError(f"{LOOP_CONTROL} does not exist (loop driver missing): needed for "
                              "'kind disk'", "ENODEV")
        self._check_space(dev.size, self._workdir())
        fd, file_step = self._new_file(dev, "disk")
        try:
            os.ftruncate(fd, dev.size)
            with signals_deferred():
                loop = _loop_free()
                step = self._record(dev, Step("loop detach", {
                    "loop": loop, "diskseq": None, "backing": file_step.args["path"],
                    "dev": file_step.args["dev"], "ino": file_step.args["ino"]}))
                _loop_attach(loop, fd)
                self._identify(dev, step, diskseq=_diskseq(Path("/sys/block") / Path(loop).name))
        finally:
            os.close(fd)
        dev.path = loop
        _wait_for(Path(loop))

    def _file(self, dev: SwapDevice) -> None:
        self._check_space(dev.size, self._workdir())
        fd, _step = self._new_file(dev, "swap")
        try:
            chunk = bytes(1 << 20)
            left = dev.size
            while left:
                left -= os.write(fd, chunk[:min(left, len(chunk))])
            os.fsync(fd)
        finally:
            os.close(fd)
        dev.path = str(_step.args["path"])


# -- undo steps: each proves the thing is still the run's before touching it ------------------------------

def check_device_step(what: str, args: dict[str, Any]) -> None:
    """Raise ValueError unless `args` are what a live run writes for a `what` step."""
    def opt_int(k: str) -> None:
        if args.get(k) is not None and not isinstance(args[k], int):
            raise ValueError(f"{k} is not a number")

    def match(k: str, rx: re.Pattern[str]) -> None:
        text = args.get(k)
        if not isinstance(text, str) or rx.fullmatch(text) is None or any(
                p in text + "/" for p in ("/../", "/./", "//")):
            raise ValueError(f"{k} {args.get(k)!r} is not one a live run makes")
    if what == "swapoff":
        path = args.get("path")
        match("path", _ZRAM_RE if str(path).startswith("/dev/zram") else
              _LOOP_RE if str(path).startswith("/dev/loop") else _RUN_FILE_RE)
        match("uuid", _UUID_RE)
        for k in ("diskseq", "dev", "ino", "gen"):
            opt_int(k)
    elif what in ("zram reset", "zram remove"):
        if not isinstance(args.get("num"), int):
            raise ValueError("num must be a number")
        opt_int("diskseq")
        if what == "zram reset" and not isinstance(args.get("size"), int):
            raise ValueError("size must be a number")
    elif what == "loop detach":
        match("loop", _LOOP_RE)
        match("backing", _RUN_FILE_RE)
        for k in ("diskseq", "dev", "ino"):
            opt_int(k)
    elif what in ("unlink", "rmdir"):
        match("path", _RUN_FILE_RE if what == "unlink" else _RUN_DIR_RE)
        for k in ("dev", "ino", "gen"):
            opt_int(k)
    else:
        raise ValueError(f"unknown step {what!r}")


def undo_device_step(step: Step, same_boot: bool = True) -> str | None:
    """Undo one step of setting up a device; what was done, or None if nothing was left to do.

    Raises NotProven when the thing cannot be shown to be the one the run made (it is then
    left alone), DeviceError/OSError when undoing it failed.
    """
    a = step.args
    if step.what in ("swapoff", "zram reset", "zram remove", "loop detach") and not same_boot:
        raise NotProven(f"{step.what} {a.get('path') or a.get('loop') or '/dev/zram' + str(a.get('num'))}: "
                        "the journal is from an earlier boot (the kernel state it names is gone)")
    if step.what == "swapoff":
        path = a["path"]
        if not _swap_active(path):
            return None
        if _swap_area_ident(path) != {k: a[k] for k in a if k not in ("path", "uuid")} \
                or _header_uuid(path) != a["uuid"]:
            raise NotProven(f"swap area {path} is not the run's (another device or file has that name now)")
        syscalls.swapoff(path)
        return f"swapoff {path}"
    if step.what in ("zram reset", "zram remove"):
        num = a["num"]
        block = Path(f"/sys/block/zram{num}")
        if not block.exists():
            return None
        if a["diskseq"] is None or _diskseq(block) != a["diskseq"]:
            raise NotProven(f"/dev/zram{num} is not the run's (diskseq {_diskseq(block)}, the run's was "
                            f"{a['diskseq']}: another device got the number)")
        if _swap_active(f"/dev/zram{num}"):
            raise DeviceError(f"/dev/zram{num} is still an active swap area")
        if step.what == "zram reset":
            if _zram_disksize(block) in (0, None):
                return None
            _write(block / "reset", "1")
            return f"reset /dev/zram{num}"
        _zram_remove(num)
        return f"removed /dev/zram{num}"
    if step.what == "loop detach":
        loop = a["loop"]
        status = _loop_status(loop)
        if status is None:
            return None
        seq = _diskseq(Path("/sys/block") / Path(loop).name)
        if status != (a["dev"], a["ino"]) or (a["diskseq"] is not None and seq != a["diskseq"]):
            raise NotProven(f"{loop} is not the run's (it is bound to another file now)")
        if _swap_active(loop):
            raise DeviceError(f"{loop} is still an active swap area")
        _loop_detach(loop)
        return f"detached {loop}"
    if step.what in ("unlink", "rmdir"):
        path = a["path"]
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        kind_ok = stat.S_ISREG(st.st_mode) if step.what == "unlink" else stat.S_ISDIR(st.st_mode)
        if a.get("ino") is None:
            raise NotProven(f"{path}: the run died while making it, before noting its inode")
        if not kind_ok or file_ident(path) != {k: a.get(k) for k in NO_IDENT}:
            raise NotProven(f"{path} is not the run's (another file has that name now)")
        if step.what == "unlink":
            if _swap_active(path):
                raise DeviceError(f"{path} is still an active swap area")
            os.unlink(path)
        else:
            os.rmdir(path)
        return f"removed {path}"
    raise DeviceError(f"unknown undo step {step.what!r}")


def _swap_active(path: str) -> bool:
    return any(s.filename.removesuffix(" (deleted)") == path for s in active_swaps())


def _swap_area_ident(path: str) -> dict[str, Any]:
    """What identifies a swap area besides its header: a block device's diskseq, a file's inode."""
    if _ZRAM_RE.fullmatch(path) or _LOOP_RE.fullmatch(path):
        return {"diskseq": _diskseq(Path("/sys/block") / Path(path).name)}
    return file_ident(path) if stat.S_ISREG(os.lstat(path).st_mode) else dict(NO_IDENT)


#: What identifies a file or directory: its device, inode and the inode's generation (a number
#: the filesystem draws afresh when it reuses an inode number; ext4, xfs, tmpfs keep one).
NO_IDENT: dict[str, Any] = {"dev": None, "ino": None, "gen": None}
FS_IOC_GETVERSION = 0x80087601


def _fd_ident(fd: int) -> dict[str, Any]:
    st = os.fstat(fd)
    try:
        gen: int | None = struct.unpack("<I", fcntl.ioctl(fd, FS_IOC_GETVERSION, bytes(8))[:4])[0]
    except OSError:
        gen = None                     # a filesystem without generations: device and inode only
    return {"dev": st.st_dev, "ino": st.st_ino, "gen": gen}


def file_ident(path: str) -> dict[str, Any]:
    """Device, inode and generation of the file or directory at path (never a link's target)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return _fd_ident(fd)
    finally:
        os.close(fd)


def _header_uuid(path: str) -> str | None:
    """The UUID in the swap header at the start of path (hex), or None when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        page = os.pread(fd, PAGE_SIZE, 0)
    finally:
        os.close(fd)
    if len(page) < PAGE_SIZE or page[PAGE_SIZE - 10:] != b"SWAPSPACE2":
        return None
    return page[1036:1052].hex()


def _diskseq(block: Path) -> int | None:
    """A block device's sequence number (new for each device, and each file bound to a loop device)."""
    try:
        return int((block / "diskseq").read_text())
    except (OSError, ValueError):
        return None


def _zram_disksize(block: Path) -> int | None:
    try:
        return int((block / "disksize").read_text())
    except (OSError, ValueError):
        return None


LOOP_CONTROL = Path("/dev/loop-control")
LOOP_SET_FD, LOOP_CLR_FD, LOOP_GET_STATUS64, LOOP_CTL_GET_FREE = 0x4C00, 0x4C01, 0x4C05, 0x4C82


class _LoopInfo64(ctypes.Structure):
    """struct loop_info64 (include/uapi/linux/loop.h)."""

    _fields_ = [("lo_device", ctypes.c_uint64), ("lo_inode", ctypes.c_uint64),
                ("lo_rdevice", ctypes.c_uint64), ("lo_offset", ctypes.c_uint64),
                ("lo_sizelimit", ctypes.c_uint64), ("lo_number", ctypes.c_uint32),
                ("lo_encrypt_type", ctypes.c_uint32), ("lo_encrypt_key_size", ctypes.c_uint32),
                ("lo_flags", ctypes.c_uint32), ("lo_file_name", ctypes.c_uint8 * 64),
                ("lo_crypt_name", ctypes.c_uint8 * 64), ("lo_encrypt_key", ctypes.c_uint8 * 32),
                ("lo_init", ctypes.c_uint64 * 2)]


def _loop_status(loop: str) -> tuple[int, int] | None:
    """(device, inode) of the file bound to a loop device (LOOP_GET_STATUS64), None when unbound.

    The kernel encodes the device as new_encode_dev(); it is turned into this process's
    st_dev (os.makedev) so that it compares with os.stat()."""
    try:
        fd = os.open(loop, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        info = _LoopInfo64()
        fcntl.ioctl(fd, LOOP_GET_STATUS64, info)
    except OSError:
        return None                     # ENXIO: nothing bound
    finally:
        os.close(fd)
    d = info.lo_device
    major, minor = (d & 0xFFF00) >> 8, (d & 0xFF) | ((d >> 12) & 0xFFF00)
    return os.makedev(major, minor), info.lo_inode


def _loop_free() -> str:
    """A free loop device (LOOP_CTL_GET_FREE); its path."""
    ctl = os.open(LOOP_CONTROL, os.O_RDWR | os.O_CLOEXEC)
    try:
        num = fcntl.ioctl(ctl, LOOP_CTL_GET_FREE)
    finally:
        os.close(ctl)
    path = f"/dev/loop{num}"
    _wait_for(Path(path))
    return path


def _loop_attach(path: str, backing_fd: int) -> None:
    """Bind the loop device at path to backing_fd (LOOP_SET_FD)."""
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, LOOP_SET_FD, backing_fd)
    finally:
        os.close(fd)


def _loop_detach(path: str) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, LOOP_CLR_FD, 0)
    finally:
        os.close(fd)


def write_swap_header(path: str, size: int) -> str:
    """What mkswap writes: a version-1 swap header in the first page (include/linux/swap.h).

    bootbits[1024]; u32 version = 1; u32 last_page; u32 nr_badpages = 0;
    uuid[16]; label[16]; ...; and "SWAPSPACE2" in the last 10 bytes of the page.
    Written here rather than by running mkswap, so that no program is exec'd
    (and no page cache read in, no pgmajfault counted) while a script runs.
    Returns the random UUID written (hex): it identifies the swap area as the run's.
    """
    page = bytearray(PAGE_SIZE)
    struct.pack_into("<III", page, 1024, 1, size // PAGE_SIZE - 1, 0)
    uuid = os.urandom(16)
    page[1036:1052] = uuid
    page[PAGE_SIZE - 10:] = b"SWAPSPACE2"
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.pwrite(fd, bytes(page), 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    return uuid.hex()


def _wait_for(path: Path) -> None:
    for _ in range(100):            # udev/devtmpfs may take a moment to create the node
        if path.exists():
            return
        time.sleep(0.02)
    raise DeviceError(f"{path} did not appear")


def _zram_remove(num: int) -> None:
    for attempt in range(40):
        try:
            (ZRAM_CONTROL / "hot_remove").write_text(str(num))
            return
        except OSError as e:
            if attempt == 39:
                raise DeviceError(f"zram hot_remove {num}: {e.strerror or e}") from None
            time.sleep(0.05)    # EBUSY while udev still has the node open
