"""The one handler of each command that acts on the machine, over a backend's Operations.

lang/memory.py (memory), lang/setup.py (set, swapon, swapoff),
lang/processes.py (fork, exit) and lang/show.py (show), by ``Command.name``.
Each backend registers these over its adapter (lang/execute.py's simulator,
kernel/backend.py's live kernel), beside lang/control.py's own commands.
"""

from __future__ import annotations

from typing import Callable

from . import memory, processes, setup, show
from .backend import Operations, StepOutput
from .parser import Command

__all__ = ["HANDLERS"]

HANDLERS: dict[str, Callable[[Operations, Command], StepOutput]] = {
    **setup.HANDLERS, **processes.HANDLERS, **memory.HANDLERS, **show.HANDLERS,
}
