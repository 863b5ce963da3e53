"""Commands that make and end processes, written once: `fork`, `exit`.

The language's half: the child inherits the parent's region names, pid 1
cannot exit, and after an exit the current process is the exited one's parent
(or pid 1).  The backend forks and tears down its own way (mm/fork.py and
mm/exit.py; a worker process on the live kernel).
"""

from __future__ import annotations

from typing import Callable

from .backend import Operations, StepOutput
from .parser import Command

__all__ = ["HANDLERS"]


def do_fork(b: Operations, cmd: Command) -> StepOutput:
    child = b.fork()
    b.names(child).update(b.names())
    return StepOutput(lines=[f"child pid {child}"])


def do_exit(b: Operations, cmd: Command) -> StepOutput:
    pid = cmd.args["pid"] if cmd.args["pid"] is not None else b.pid
    if pid == 1:
        raise b.refuse("EPERM", "exit", "pid 1 cannot exit")
    b.check_pid(pid)
    parent = b.parent_of(pid)
    b.exit(pid)
    b.forget(pid)
    if b.pid == pid:
        b.pid = parent if parent is not None and parent in b.alive() else 1
    return StepOutput(lines=[f"pid {pid} exited; current pid {b.pid}"])


HANDLERS: dict[str, Callable[[Operations, Command], StepOutput]] = {"fork": do_fork, "exit": do_exit}
