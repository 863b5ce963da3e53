"""A running .mmsh session: one booted machine, the current process, region names.

The session is the language's view of the machine: it keeps the region names
each `mmap`/`mremap` bound and resolves names and addresses (regions.py), and
owns the trace switch.  The kernel underneath knows nothing of names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..mm.config import Config
from ..mm.errors import MmError
from ..mm.kernel import Kernel
from .display import DEFAULT_DISPLAY
from .regions import RegionNames


@dataclass(slots=True)
class Session(RegionNames):
    """Machine state plus what the language adds on top of it."""

    kernel: Kernel = field(default_factory=Kernel)
    pid: int = 1
    regions: dict[int, dict[str, tuple[int, int]]] = field(default_factory=lambda: {1: {}})
    debug_vm: bool = False
    #: What is drawn after each step (`set display`, lang/display.py).
    display: tuple[str, ...] = DEFAULT_DISPLAY
    #: Writes `export WHAT FILE` (what the printer drew); None where nothing records the steps.
    exporter: Callable[[str, str], str] | None = None
    #: What is printed, not the machine (a refused command, undo and back leave them be):
    #: `explain on|off`, and the display settings `set counters key|all`, `set pager on|off`.
    explain: bool = False
    #: `timing on|off`: print each step's wall time after it (lang/control.py)
    timing: bool = False
    counters: str = "key"
    pager: bool = True
    #: settings a script's `set` may not change here, with why (compare pins pmd_swap)
    pinned: dict[str, str] = field(default_factory=dict)

    @classmethod
    def boot(cls, config: Config | None = None, debug_vm: bool = False) -> "Session":
        return cls(kernel=Kernel(config), debug_vm=debug_vm)

    def refuse(self, errno: str, op: str, why: str) -> Exception:
        return MmError(errno, op, why)
