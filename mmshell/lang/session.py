"""A running .mmsh session: one booted machine, the current process, region names.

The session is the language's view of the machine: it resolves names and
addresses, keeps the region names each `mmap`/`mremap` bound, and owns the
trace switch.  The kernel underneath knows nothing of names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..mm.config import Config
from ..mm.constants import PAGE_SIZE
from ..mm.errors import MmError
from ..mm.kernel import Kernel
from .values import Addr, Range


@dataclass(slots=True)
class Session:
    """Machine state plus what the language adds on top of it."""

    kernel: Kernel = field(default_factory=Kernel)
    pid: int = 1
    regions: dict[int, dict[str, tuple[int, int]]] = field(default_factory=lambda: {1: {}})
    debug_vm: bool = False

    @classmethod
    def boot(cls, config: Config | None = None, debug_vm: bool = False) -> "Session":
        return cls(kernel=Kernel(config), debug_vm=debug_vm)

    # -- names ------------------------------------------------------------------------------
    def names(self, pid: int | None = None) -> dict[str, tuple[int, int]]:
        return self.regions.setdefault(self.pid if pid is None else pid, {})

    def resolve_addr(self, addr: Addr, op: str) -> int:
        if addr.name is None:
            return addr.offset
        region = self.names().get(addr.name)
        if region is None:
            raise MmError("EINVAL", op, f"no region named {addr.name!r} in pid {self.pid}")
        return region[0] + addr.offset

    def resolve_range(self, rng: Range, op: str) -> tuple[int, int]:
        """(start, length) of a range: ADDR:LEN, a whole region, or the page holding ADDR."""
        start = self.resolve_addr(rng.start, op)
        if rng.length is not None:
            if start % PAGE_SIZE:
                raise MmError("EINVAL", op, f"start {start:#x} not page aligned")
            if rng.length == 0:
                raise MmError("EINVAL", op, "length 0")
            return start, rng.length
        if rng.start.name is not None and rng.start.offset == 0:
            return self.names()[rng.start.name]
        return start - start % PAGE_SIZE, PAGE_SIZE

    def describe(self, addr: int, pid: int | None = None) -> str:
        """addr as NAME+OFF when it lies in a named region, else hex."""
        for name, (start, length) in self.names(pid).items():
            if start <= addr < start + length:
                off = addr - start
                return name if off == 0 else f"{name}+{off:#x}"
        return f"{addr:#x}"
