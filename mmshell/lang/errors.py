"""Errors of the .mmsh language front end.

:class:`LangError` lives here (the text could not be parsed), and the message
of an `expect fails` whose command was not refused, shared by the simulator's
and the live kernel's runners.  The
kernel's own refusals (``MmError``) and simulator bugs (``VmBug``) belong to
``mmshell.mm``; one formatter elsewhere renders all three as
``demo.mmsh:12: madvise: EINVAL: ...``.
"""

from __future__ import annotations

__all__ = ["LangError", "ExpectError", "SOURCE_NESTED", "not_refused", "switch_under_at"]


class LangError(Exception):
    """A line of .mmsh text that does not parse.

    ``line`` and ``column`` are 1-based and point at the offending token (or,
    for a missing word, just past the last word given).  ``str()`` gives
    ``column N: message``; the caller prefixes the file and line.
    """

    line: int
    column: int
    message: str

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(line, column, message)
        self.line = line
        self.column = column
        self.message = message

    def __str__(self) -> str:
        return f"column {self.column}: {self.message}"

    def __repr__(self) -> str:
        return f"LangError(line={self.line}, column={self.column}, message={self.message!r})"


class ExpectError(Exception):
    """An `expect` whose PATH or VALUE is itself wrong (not merely unmet), in either backend."""


#: Why `source` is refused inside `@PID`, `if` (and `expect fails` within them).
SOURCE_NESTED = ("source runs a file at the top level only (or as 'expect fails source FILE'), "
                 "not inside @PID or if")


def not_refused(command_text: str, failed_expect: str | None) -> str:
    """Why `expect fails COMMAND` failed: COMMAND ran.  An inner `expect` whose
    comparison merely did not hold ran too (`failed_expect` says how): only an error
    is a refusal."""
    how = (f"but it ran: the comparison merely did not hold ({failed_expect})" if failed_expect
           else "but it succeeded")
    return f"expected '{command_text}' to be refused, {how}"


def switch_under_at(pid: int, current: int) -> str:
    """Why `@PID switch ...` is refused: @PID never changes which process is current."""
    return (f"@{pid} runs one command in pid {pid} and comes back to pid {current}, so a switch "
            "there would change nothing: write 'switch PID'")
