"""Swap devices for live runs: zram, a loop device over a file ("disk"), a swap file.

`SwapDevices` sets up what a script's `swapon NAME SIZE kind K` asks for and
tears down exactly what it set up (and nothing else), also after an error or
Ctrl-C/SIGTERM: every step that creates something records how to undo it
before the next step runs.

* ``zram``: ``/sys/class/zram-control/hot_add`` gives a fresh ``/dev/zramN``;
  disksize, swap header, swapon.  Undo: swapoff, reset, hot_remove.
* ``disk``: a sparse file on a disk filesystem bound to a free loop device
  (LOOP_CTL_GET_FREE, LOOP_SET_FD), swap header, swapon of ``/dev/loopN``
  (an asynchronous, rotational block device).  Undo: swapoff, LOOP_CLR_FD, unlink.
* ``file``: a zero-filled file on a disk filesystem (ext4, xfs), swap header,
  swapon of the file itself (not a block device: no 2 MiB swap clusters).
  Undo: swapoff, unlink.

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

import fcntl
import os
import signal
import struct
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from . import syscalls
from .journal import Journal, Step

ZRAM_CONTROL = Path("/sys/class/zram-control")
PROC_SWAPS = Path("/proc/swaps")
MAX_SWAP_PRIO = 32767
PAGE_SIZE = 4096
#: Filesystems a swap file (and the loop device's backing file) can live on.
_DISK_FS = ("ext4", "ext3", "ext2", "xfs")


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
    """Block SIGINT/SIGTERM/SIGHUP for the duration, so an undo step cannot be cut in half."""
    sigs = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    except (ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


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


def missing_requirements() -> list[str]:
    """What a live run needs and this machine lacks (empty: all there)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (running as uid %d): swapon, /proc/PID/pagemap swap offsets and the "
                       "THP sysfs knobs need it" % os.geteuid())
    if not (ZRAM_CONTROL / "hot_add").exists():
        missing.append(f"zram: {ZRAM_CONTROL}/hot_add does not exist (zram module not loaded? "
                       "try: modprobe zram)")
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
                 and not s.filename.removesuffix(" (deleted)") in mine]
        return max(prios) if prios else None

    def used_pages(self, name: str) -> int:
        dev = self.get(name)
        assert dev is not None
        for s in active_swaps():
            if s.filename.removesuffix(" (deleted)") == dev.path:
                return s.used_kb // 4
        raise DeviceError(f"swap device {name} ({dev.path}) is not in {PROC_SWAPS}")

    # -- swapon / swapoff --------------------------------------------------------------------------
    def swapon(self, name: str, size: int, kind: str, prio: int) -> SwapDevice:
        if self.get(name) is not None:
            raise DeviceError(f"swap device {name!r} is already active", "EBUSY")
        if size % PAGE_SIZE or size < 10 * PAGE_SIZE:
            raise DeviceError(f"size {size} must be a multiple of 4K and at least 40K", "EINVAL")
        dev = SwapDevice(name, kind, size, "", prio, -1)
        try:
            {"zram": self._zram, "disk": self._disk, "file": self._file}[kind](dev)
            write_swap_header(dev.path, dev.size)
            with signals_deferred():
                self._record(dev, Step("swapoff", (dev.path,)))
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
        if self._dir is not None:
            try:
                self._dir.rmdir()
            except OSError:
                pass
            if self._dir_step is not None:
                self.journal.drop(self._dir_step)
            self._dir = self._dir_step = None
        return errors

    def _record(self, dev: SwapDevice, step: Step) -> None:
        """Note how to undo what is about to be made: in the device and in the run's journal."""
        dev.undo.append(self.journal.add(step))

    def _undo(self, dev: SwapDevice) -> list[str]:
        errors: list[str] = []
        with signals_deferred():
            while dev.undo:
                step = dev.undo.pop()
                try:
                    undo_step(step)
                except (OSError, DeviceError) as e:
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
            self._record(dev, Step("zram remove", (num, dev.size)))
        block = Path(f"/sys/block/zram{num}")
        self._record(dev, Step("zram reset", (num, dev.size)))
        _write(block / "disksize", str(dev.size))
        dev.path = f"/dev/zram{num}"
        _wait_for(Path(dev.path))

    def _workdir(self) -> Path:
        if self._dir is None:
            base = swap_dir()
            if base is None:
                raise DeviceError("no writable directory on a disk filesystem (ext4/xfs) for the swap "
                                  "file; set MMSHELL_SWAP_DIR", "ENOENT")
            with signals_deferred():
                self._dir = Path(tempfile.mkdtemp(prefix="mmshell-swap-", dir=base))
                self._dir_step = self.journal.add(Step("rmdir", (str(self._dir),)))
        return self._dir

    def _disk(self, dev: SwapDevice) -> None:
        if not LOOP_CONTROL.exists():
            raise DeviceError(f"{LOOP_CONTROL} does not exist (loop driver missing): needed for "
                              "'kind disk'", "ENODEV")
        backing = self._workdir() / f"{dev.name}.disk"
        with signals_deferred():
            self._record(dev, Step("unlink", (str(backing),)))
            fd = os.open(backing, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.ftruncate(fd, dev.size)
            with signals_deferred():
                loop = _loop_attach(fd)
                self._record(dev, Step("loop detach", (loop, str(backing))))
        finally:
            os.close(fd)
        dev.path = loop
        _wait_for(Path(loop))

    def _file(self, dev: SwapDevice) -> None:
        path = self._workdir() / f"{dev.name}.swap"
        with signals_deferred():
            self._record(dev, Step("unlink", (str(path),)))
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            chunk = bytes(1 << 20)
            left = dev.size
            while left:
                left -= os.write(fd, chunk[:min(left, len(chunk))])
            os.fsync(fd)
        finally:
            os.close(fd)
        dev.path = str(path)


def undo_step(step: Step) -> str | None:
    """Undo one step of setting up a device; what was done, or None if nothing was left to do.

    Each checks first that the thing is still what the run made and is no longer an
    active swap area, so a journal replayed by a later run never touches anything else.
    """
    match step.what, step.args:
        case "swapoff", (path,):
            if not _swap_active(path):
                return None
            syscalls.swapoff(path)
            return f"swapoff {path}"
        case "zram reset", (num, size):
            block = Path(f"/sys/block/zram{num}")
            if not block.exists() or _swap_active(f"/dev/zram{num}") or _zram_disksize(block) != size:
                return None
            _write(block / "reset", "1")
            return f"reset /dev/zram{num}"
        case "zram remove", (num, size):
            block = Path(f"/sys/block/zram{num}")
            if not block.exists() or _swap_active(f"/dev/zram{num}") or _zram_disksize(block) not in (0, size):
                return None
            _zram_remove(num)
            return f"removed /dev/zram{num}"
        case "loop detach", (loop, backing):
            if _loop_backing(loop) != backing or _swap_active(loop):
                return None
            _loop_detach(loop)
            return f"detached {loop}"
        case "unlink", (path,):
            if not os.path.exists(path) or _swap_active(path):
                return None
            os.unlink(path)
            return f"removed {path}"
        case "rmdir", (path,):
            if not os.path.isdir(path):
                return None
            os.rmdir(path)
            return f"removed {path}"
    raise DeviceError(f"unknown undo step {step.what!r}")


def _swap_active(path: str) -> bool:
    return any(s.filename.removesuffix(" (deleted)") == path for s in active_swaps())


def _zram_disksize(block: Path) -> int | None:
    try:
        return int((block / "disksize").read_text())
    except (OSError, ValueError):
        return None


def _loop_backing(loop: str) -> str | None:
    try:
        return (Path("/sys/block") / Path(loop).name / "loop" / "backing_file").read_text().strip()
    except OSError:
        return None


LOOP_CONTROL = Path("/dev/loop-control")
LOOP_SET_FD, LOOP_CLR_FD, LOOP_CTL_GET_FREE = 0x4C00, 0x4C01, 0x4C82


def _loop_attach(backing_fd: int) -> str:
    """Bind a free loop device to backing_fd (LOOP_CTL_GET_FREE, LOOP_SET_FD); its path."""
    ctl = os.open(LOOP_CONTROL, os.O_RDWR)
    try:
        num = fcntl.ioctl(ctl, LOOP_CTL_GET_FREE)
    finally:
        os.close(ctl)
    path = f"/dev/loop{num}"
    _wait_for(Path(path))
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.ioctl(fd, LOOP_SET_FD, backing_fd)
    finally:
        os.close(fd)
    return path


def _loop_detach(path: str) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.ioctl(fd, LOOP_CLR_FD, 0)
    finally:
        os.close(fd)


def write_swap_header(path: str, size: int) -> None:
    """What mkswap writes: a version-1 swap header in the first page (include/linux/swap.h).

    bootbits[1024]; u32 version = 1; u32 last_page; u32 nr_badpages = 0;
    uuid[16]; label[16]; ...; and "SWAPSPACE2" in the last 10 bytes of the page.
    Written here rather than by running mkswap, so that no program is exec'd
    (and no page cache read in, no pgmajfault counted) while a script runs.
    """
    page = bytearray(PAGE_SIZE)
    struct.pack_into("<III", page, 1024, 1, size // PAGE_SIZE - 1, 0)
    page[1036:1052] = os.urandom(16)               # the uuid
    page[PAGE_SIZE - 10:] = b"SWAPSPACE2"
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, bytes(page), 0)
        os.fsync(fd)
    finally:
        os.close(fd)


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
