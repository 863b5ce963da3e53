"""Where a live run keeps its lock and its undo journal: a directory only root can write.

A live run is root.  Every file it opens by a fixed name must be one nobody
else can plant or replace: a symbolic link at the lock or the journal would
make root create, truncate or read any file; a lock file someone else made
would hold every run off.  So both live in one directory, ``/run/mmshell-kernel``
(mode 0700), and:

* the directory and every directory above it must belong to root and be
  writable by nobody else (a sticky directory above it is fine: nobody can
  rename root's entries there); otherwise the run is refused with one line;
* the directory is opened once (O_DIRECTORY | O_NOFOLLOW) and every file in it
  is opened relative to that descriptor with O_NOFOLLOW, created with
  O_CREAT | O_EXCL, and checked with fstat (a regular root-owned file with one
  link) before it is used;
* the journal is written to a fresh ``journal.new`` and renamed over
  ``journal`` (a rename replaces a planted symbolic link, never its target).

Nothing here follows a link or waits on a file it did not make: a planted
FIFO or device is refused by fstat, opened with O_NONBLOCK.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import stat
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["STATE_DIR", "StateDir", "UnsafeState", "boot_id"]

STATE_DIR = Path("/run/mmshell-kernel")
LOCK_NAME = "lock"
JOURNAL_NAME = "journal"
#: How long a run waits for another live run to finish before giving up.
LOCK_WAIT = 600.0
#: A journal is a few hundred bytes per step; anything larger was not written by a live run.
JOURNAL_MAX = 1 << 20
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


class UnsafeState(RuntimeError):
    """The state directory, the lock or the journal is not what a live run made (one line: why)."""


def boot_id() -> str:
    """This boot's random id: a journal from another boot describes devices and knobs long gone."""
    return BOOT_ID.read_text().strip()


def _owned_by_root_only(st: os.stat_result, what: str, sticky_ok: bool) -> None:
    if st.st_uid != 0:
        raise UnsafeState(f"{what} belongs to uid {st.st_uid}, not root")
    if st.st_mode & 0o022 and not (sticky_ok and st.st_mode & stat.S_ISVTX):
        raise UnsafeState(f"{what} is writable by others (mode {stat.S_IMODE(st.st_mode):04o})")


def _regular_file(fd: int, what: str) -> os.stat_result:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeState(f"{what} is not a regular file")
    if st.st_nlink != 1:
        raise UnsafeState(f"{what} has {st.st_nlink} links (a hard link to another file?)")
    _owned_by_root_only(st, what, sticky_ok=False)
    return st


class _LockTimeout(Exception):
    """SIGALRM ended a blocking flock() (see `_flock_wait`)."""


def _raise_lock_timeout(_signum: int, _frame: object) -> None:
    raise _LockTimeout


def _flock_wait(fd: int, wait: float) -> bool:
    """Take an exclusive flock on `fd`, blocking up to `wait` seconds; False when the time ran out.

    In the main thread the wait sleeps in flock() and an interval timer ends it (the handler
    raises, so the retried call does not resume); elsewhere signals cannot be used and it
    polls, as fast as is reasonable."""
    if threading.current_thread() is not threading.main_thread() or wait <= 0:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.01)
    old_handler = signal.signal(signal.SIGALRM, _raise_lock_timeout)
    old_timer = signal.setitimer(signal.ITIMER_REAL, wait)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return True
    except _LockTimeout:
        return False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_timer[0]:
            signal.setitimer(signal.ITIMER_REAL, *old_timer)


@dataclass
class StateDir:
    """The directory of the lock and the journal, opened once and checked."""

    path: Path = STATE_DIR

    def __post_init__(self) -> None:
        self._fd: int | None = None

    # -- the directory ---------------------------------------------------------------------------
    def fd(self) -> int:
        """The directory's descriptor: created (0700) if missing, refused if anyone else could write it."""
        if self._fd is not None:
            return self._fd
        path = Path(os.path.abspath(self.path))
        for parent in reversed(path.parents):
            st = os.lstat(parent)
            if stat.S_ISLNK(st.st_mode):
                raise UnsafeState(f"{parent} (above the state directory {path}) is a symbolic link")
            _owned_by_root_only(st, f"{parent} (above the state directory {path})", sticky_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeState(f"the state directory {path} is not a directory "
                                  "(a symbolic link?)") from None
            raise
        try:
            _owned_by_root_only(os.fstat(fd), f"the state directory {path}", sticky_ok=False)
        except UnsafeState:
            os.close(fd)
            raise
        self._fd = fd
        return fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self, name: str, flags: int) -> int:
        try:
            return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600,
                           dir_fd=self.fd())
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise UnsafeState(f"{self.path / name} is a symbolic link") from None
            raise

    # -- the lock ------------------------------------------------------------------------------------
    def lock(self, wait: float = LOCK_WAIT) -> int:
        """One live run at a time on a machine (they share the THP knobs and khugepaged): an
        flock on the lock file, waited for (with a note on stderr) up to `wait` seconds.

        The wait blocks in flock(), so the kernel wakes the waiter the moment the holder lets
        go; a run that polled would lose every time to one that takes the lock again at once
        (`kernel fuzz` does, between its scripts)."""
        try:
            fd = self._open(LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            fd = self._open(LOCK_NAME, os.O_RDWR)
        try:
            _regular_file(fd, f"the lock {self.path / LOCK_NAME}")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                pass
            print(f"mmshell kernel: waiting for another live run to finish "
                  f"({self.path / LOCK_NAME})", file=sys.stderr)
            if not _flock_wait(fd, wait):
                raise UnsafeState(f"another live run has held {self.path / LOCK_NAME} for "
                                  f"{wait:.0f} s")
            return fd
        except BaseException:
            os.close(fd)
            raise

    # -- the journal -----------------------------------------------------------------------------------
    @property
    def journal_path(self) -> Path:
        return self.path / JOURNAL_NAME

    def read_journal(self) -> bytes | None:
        """The journal's bytes, or None when there is none; refused when it is not a journal file."""
        try:
            fd = self._open(JOURNAL_NAME, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            st = _regular_file(fd, f"the journal {self.journal_path}")
            if st.st_size > JOURNAL_MAX:
                raise UnsafeState(f"the journal {self.journal_path} is {st.st_size} bytes: larger than "
                                  f"any live run writes ({JOURNAL_MAX})")
            return os.read(fd, JOURNAL_MAX + 1)
        finally:
            os.close(fd)

    def write_journal(self, data: bytes) -> None:
        """Replace the journal atomically: a fresh journal.new (O_EXCL), fsync, rename, fsync the
        directory."""
        tmp = JOURNAL_NAME + ".new"
        try:
            fd = self._open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except (FileExistsError, UnsafeState):
            os.unlink(tmp, dir_fd=self.fd())         # a leftover (or a planted link): the name, not a target
            fd = self._open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, JOURNAL_NAME, src_dir_fd=self.fd(), dst_dir_fd=self.fd())
        os.fsync(self.fd())

    def remove_journal(self) -> None:
        try:
            os.unlink(JOURNAL_NAME, dir_fd=self.fd())
        except FileNotFoundError:
            pass
