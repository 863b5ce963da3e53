"""Commands that act on memory, written once: the language's half of each.

Each handler resolves the language's names (regions, ranges, addresses), asks
the backend for one operation in the kernel's terms (addresses, lengths, VM
flags) and says what it did.  The backend does the rest its own way: the
simulator through mm/ (lang/execute.py), the live kernel through a worker's
system calls (kernel/backend.py), each refusing in its own terms before it
changes anything.  :data:`HANDLERS` lists them by ``Command.name``; the other
memory commands (mmap, touch, check, madvise, uffd move, fork, exit ...) are
still written per backend.
"""

from __future__ import annotations

from typing import Callable, Protocol

from ..mm.vma import VM
from . import registry
from .backend import StepOutput
from .parser import Command
from .values import Addr, Range

__all__ = ["Memory", "HANDLERS"]


class Memory(Protocol):
    """The operations these handlers need of a backend, and the names they resolve."""

    pid: int

    def names(self, pid: int | None = None) -> dict[str, tuple[int, int]]:
        ...

    def new_name(self, name: str, op: str) -> str:
        ...

    def resolve_addr(self, addr: Addr, op: str) -> int:
        ...

    def resolve_range(self, rng: Range, op: str) -> tuple[int, int]:
        ...

    def munmap(self, start: int, length: int) -> None:
        ...

    def mprotect(self, start: int, length: int, flags: VM) -> None:
        ...

    def mremap(self, start: int, length: int, new_len: int, at: int | None) -> tuple[int, int]:
        """Move [start, start+length) to `at` (or where the kernel places it) with new_len:
        the new start and the new length in whole pages."""
        ...

    def uffd_register(self, start: int, length: int) -> None:
        ...


def do_munmap(b: Memory, cmd: Command) -> StepOutput:
    b.munmap(*b.resolve_range(cmd.args["range"], "munmap"))
    return StepOutput()


def do_mprotect(b: Memory, cmd: Command) -> StepOutput:
    start, length = b.resolve_range(cmd.args["range"], "mprotect")
    b.mprotect(start, length, registry.PROT_FLAGS[cmd.args["prot"]])
    return StepOutput()


def do_mremap(b: Memory, cmd: Command) -> StepOutput:
    a = cmd.args
    name = b.new_name(a["newname"], "mremap")
    start, length = b.resolve_range(a["range"], "mremap")
    at = b.resolve_addr(a["at"], "mremap") if a["at"] is not None else None
    new, new_len = b.mremap(start, length, a["size"] if a["size"] is not None else length, at)
    b.names()[name] = (new, new_len)
    return StepOutput(lines=[f"{name} = {new:#x}-{new + new_len:#x}"])


def do_uffd_register(b: Memory, cmd: Command) -> StepOutput:
    b.uffd_register(*b.resolve_range(cmd.args["range"], "uffd register"))
    return StepOutput()


HANDLERS: dict[str, Callable[[Memory, Command], StepOutput]] = {
    "munmap": do_munmap, "mprotect": do_mprotect, "mremap": do_mremap, "uffd_register": do_uffd_register,
}
