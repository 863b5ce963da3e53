"""A running .mmsh session: one booted machine, the current process, region names.

The session is the language's view of the machine: it keeps the region names
each `mmap`/`mremap` bound and resolves names and addresses (regions.py), and
owns the trace switch.  The kernel underneath knows nothing of names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..mm.config import Config
from ..mm.errors import MmError
from ..mm.kernel import Kernel
from .regions import RegionNames


@dataclass(slots=True)
class Session(RegionNames):
    """Machine state plus what the language adds on top of it."""

    kernel: Kernel = field(default_factory=Kernel)
    pid: int = 1
    regions: dict[int, dict[str, tuple[int, int]]] = field(default_factory=lambda: {1: {}})
    debug_vm: bool = False
    #: settings a script's `set` may not change here, with why (compare pins pmd_swap)
    pinned: dict[str, str] = field(default_factory=dict)

    @classmethod
    def boot(cls, config: Config | None = None, debug_vm: bool = False) -> "Session":
        return cls(kernel=Kernel(config), debug_vm=debug_vm)

    def refuse(self, errno: str, op: str, why: str) -> Exception:
        return MmError(errno, op, why)
