"""Region names: how the language turns `a+2M:4K`, `a` and `0x1000` into address ranges.

A region name is bound per process to the range `mmap` (or `mremap`) gave it
and stays bound after parts of it are unmapped or moved (the contract).  The
simulator's session and the live kernel's both mix this in, so a range means
the same on both; each says how it refuses (`refuse`).  Imports nothing of the
simulator but its constants.
"""

from __future__ import annotations

from ..mm.constants import TASK_SIZE
from .expect_values import PathError
from .values import PAGE_SIZE, Addr, BadValue, Range

#: No address is this large: NAME+OFFSET adds up to at most 2**64 - 1.
ADDR_LIMIT = 1 << 64

__all__ = ["RegionNames"]


class RegionNames:
    """Needs `pid` (the current process) and `regions` (pid -> name -> (start, length))."""

    __slots__ = ()
    pid: int
    regions: dict[int, dict[str, tuple[int, int]]]

    def refuse(self, errno: str, op: str, why: str) -> Exception:
        """The exception a refused command raises (MmError in the simulator)."""
        raise NotImplementedError

    def names(self, pid: int | None = None) -> dict[str, tuple[int, int]]:
        return self.regions.setdefault(self.pid if pid is None else pid, {})

    def forget(self, pid: int) -> None:
        """Drop the names of a process that exited."""
        self.regions.pop(pid, None)

    def new_name(self, name: str, op: str) -> str:
        """`name` for a region `op` makes (mmap, mremap); EEXIST if the process has one."""
        if name in self.names():
            raise self.refuse("EEXIST", op, f"region {name!r} already exists in pid {self.pid}")
        return name

    def resolve_addr(self, addr: Addr, op: str) -> int:
        if addr.name is None:
            return addr.offset
        region = self.names().get(addr.name)
        if region is None:
            raise self.refuse("EINVAL", op, f"no region named {addr.name!r} in pid {self.pid}")
        value = region[0] + addr.offset
        if value >= ADDR_LIMIT:
            raise self.refuse("EINVAL", op, f"{addr.name}+{addr.offset:#x} is {region[0]:#x} + "
                              f"{addr.offset:#x}: past 2**64 - 1, no address at all")
        return value

    def path_addr(self, text: str) -> int:
        """The ADDR of an `expect` path (pmd.ADDR, pte.ADDR, pagemap.ADDR.FIELD): an address
        of the user address space, else a PathError (no page table or pagemap entry maps it)."""
        try:
            addr = Addr.parse(text)
        except BadValue as e:
            raise PathError(str(e)) from None
        if addr.name is not None and addr.name not in self.names():
            raise PathError(f"no region named {addr.name!r} in pid {self.pid}")
        value = addr.offset if addr.name is None else self.names()[addr.name][0] + addr.offset
        if value >= TASK_SIZE:
            where = f"{value:#x}" if addr.name is None else f"{text} ({value:#x})"
            raise PathError(f"{where} is beyond the user address space (TASK_SIZE {TASK_SIZE:#x}): no page "
                            "table or pagemap entry maps it")
        return value

    def resolve_range(self, rng: Range, op: str) -> tuple[int, int]:
        """(start, length) of a range: ADDR:LEN, a whole region, or the page holding ADDR."""
        start = self.resolve_addr(rng.start, op)
        if rng.length is not None:
            if start % PAGE_SIZE:
                raise self.refuse("EINVAL", op, f"start {start:#x} not page aligned")
            if rng.length == 0:
                raise self.refuse("EINVAL", op, "length 0")
            return start, rng.length
        if rng.start.name is not None and rng.start.offset == 0:
            return self.names()[rng.start.name]
        return start - start % PAGE_SIZE, PAGE_SIZE

    def describe(self, addr: int, pid: int | None = None) -> str:
        """addr as NAME+OFF after what is mapped there now (the newest binding that
        covers it: only mmap and mremap map, each under a new name), else hex."""
        for name, (start, length) in reversed(self.names(pid).items()):
            if start <= addr < start + length:
                off = addr - start
                return name if off == 0 else f"{name}+{off:#x}"
        return f"{addr:#x}"
