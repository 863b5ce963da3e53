"""The shell's history file: checked before use, read within a bound, created private.

The path ($MMSHELL_HISTORY, else ~/.mmshell_history) must be a regular file of at
most MAX_HISTORY_BYTES that can be read and written, or a file that does not exist
yet in a directory where it can be created (0600, as bash creates its own).  Anything
else (a missing directory, a directory, a device such as /dev/zero, a file too large)
gives one warning line and a history kept in memory for the session.  A write that
fails later (the disk full, the file made read-only) warns once and stops writing.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from prompt_toolkit.history import FileHistory, History, InMemoryHistory

__all__ = ["MAX_HISTORY_BYTES", "CheckedFileHistory", "open_history", "history_path"]

#: The largest history file read (as the largest script: 16 MiB).
MAX_HISTORY_BYTES = 16 << 20


def history_path() -> Path:
    """Where history is kept: $MMSHELL_HISTORY, else ~/.mmshell_history."""
    return Path(os.environ.get("MMSHELL_HISTORY", Path.home() / ".mmshell_history"))


def _unusable(path: Path) -> str | None:
    """Why an existing path cannot hold the history, or None."""
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_size > MAX_HISTORY_BYTES:
        return f"larger than {MAX_HISTORY_BYTES >> 20} MiB"
    if not os.access(path, os.R_OK | os.W_OK):
        return "cannot be read and written"
    return None


def open_history(path: Path) -> tuple[History, str | None]:
    """The history to use at `path`, and the warning to print when it is kept in memory."""
    try:
        why = _unusable(path)
    except FileNotFoundError:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
            why = None
        except OSError as e:
            why = f"cannot be created: {e.strerror or e}"
    except OSError as e:
        why = e.strerror or str(e)
    if why is not None:
        return InMemoryHistory(), f"mmshell: history file {path}: {why}; history is kept in memory only"
    return CheckedFileHistory(path), None


class CheckedFileHistory(FileHistory):
    """FileHistory that reads at most MAX_HISTORY_BYTES of a regular file and never raises:
    a failed write is kept in `failure` (for one warning) and writing stops."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path
        self.failure: str | None = None
        self._told = False

    def warning(self) -> str | None:
        """The warning of a failed write, the first time it is asked for after one."""
        if self.failure is None or self._told:
            return None
        self._told = True
        return self.failure

    def load_history_strings(self) -> Iterable[str]:
        try:
            if _unusable(self.path) is not None:       # changed since it was checked
                return []
            with open(self.path, "rb") as f:
                data = f.read(MAX_HISTORY_BYTES)
        except OSError:
            return []
        strings: list[str] = []
        lines: list[str] = []
        for raw in data.splitlines(keepends=True):
            line = raw.decode("utf-8", errors="replace")
            if line.startswith("+"):
                lines.append(line[1:])
            elif lines:
                strings.append("".join(lines)[:-1])
                lines = []
        if lines:
            strings.append("".join(lines)[:-1])
        return reversed(strings)

    def store_string(self, string: str) -> None:
        if self.failure is not None:
            return
        try:
            super().store_string(string)
        except OSError as e:
            self.failure = (f"mmshell: history file {self.path}: {e.strerror or e}; history is kept in memory "
                            "from now on")
