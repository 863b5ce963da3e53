"""Commands that act on memory, written once: the language's half of each.

Each handler resolves the language's names (regions, ranges, addresses),
checks what the language checks the same way on both backends (the walk limit
of a command that goes page by page), asks the backend for one primitive in the
kernel's terms (addresses, lengths, VM flags, MADV_* advice) and says what it
did.  The backend does the rest its own way: the simulator through mm/
(lang/execute.py), the live kernel through a worker's system calls
(kernel/backend.py), each refusing in its own terms before it changes anything.
:data:`HANDLERS` lists them by ``Command.name``.
"""

from __future__ import annotations

from typing import Callable

from ..mm.constants import MAX_ACCESS
from . import registry
from .backend import Operations, StepOutput
from .parser import Command
from .values import pages

__all__ = ["HANDLERS", "walk_limit"]

def walk_limit(b: Operations, op: str, length: int) -> None:
    """A command that walks a range page by page takes at most MAX_ACCESS of it (docs/limits.md)."""
    if length > MAX_ACCESS:
        raise b.refuse("EINVAL", op, f"a range of {length >> 20}M: beyond the simulation's limit of "
                       f"{MAX_ACCESS >> 30}G per {op}")


def _bind(b: Operations, name: str, start: int, length: int) -> StepOutput:
    """Name the region mmap or mremap made, and say where it is."""
    b.names()[name] = (start, length)
    return StepOutput(lines=[f"{name} = {start:#x}-{start + length:#x}"])


def do_mmap(b: Operations, cmd: Command) -> StepOutput:
    a = cmd.args
    name = b.new_name(a["name"], "mmap")
    at = b.resolve_addr(a["at"], "mmap") if a["at"] is not None else None
    advice = registry.ADVICE[a["advice"]] if a["advice"] else None
    return _bind(b, name, *b.mmap(a["size"], registry.PROT_FLAGS[a["prot"] or "rw"], advice, at))


def do_munmap(b: Operations, cmd: Command) -> StepOutput:
    b.munmap(*b.resolve_range(cmd.args["range"], "munmap"))
    return StepOutput()


def do_touch(b: Operations, cmd: Command) -> StepOutput:
    start, length = b.resolve_range(cmd.args["range"], "touch")
    walk_limit(b, "touch", length)
    write = (cmd.args["access"] or "write") == "write"
    n = b.touch(start, length, write)
    return StepOutput(lines=[f"{pages(n)} {'written' if write else 'read'}"])


def do_check(b: Operations, cmd: Command) -> StepOutput:
    if cmd.args.get("range") is None:
        return StepOutput(changed=False, lines=b.check_all())
    start, length = b.resolve_range(cmd.args["range"], "check")
    walk_limit(b, "check", length)
    got = b.check_range(start, length)
    if got.first is not None:
        addr, actual, expected = got.first
        raise b.refuse("EIO", "check", f"page {b.describe(addr)} reads {actual:#x}, last written "
                       f"{expected:#x} ({got.bad} bad page(s))")
    return StepOutput(lines=[f"check: {pages(got.pages)} read back what was written"])


def do_madvise(b: Operations, cmd: Command) -> StepOutput:
    start, length = b.resolve_range(cmd.args["range"], "madvise")
    return StepOutput(notes=b.madvise(start, length, registry.ADVICE[cmd.args["advice"]]))


def do_mprotect(b: Operations, cmd: Command) -> StepOutput:
    start, length = b.resolve_range(cmd.args["range"], "mprotect")
    b.mprotect(start, length, registry.PROT_FLAGS[cmd.args["prot"]])
    return StepOutput()


def do_mremap(b: Operations, cmd: Command) -> StepOutput:
    a = cmd.args
    name = b.new_name(a["newname"], "mremap")
    start, length = b.resolve_range(a["range"], "mremap")
    at = b.resolve_addr(a["at"], "mremap") if a["at"] is not None else None
    return _bind(b, name, *b.mremap(start, length, a["size"] if a["size"] is not None else length, at))


def do_uffd_register(b: Operations, cmd: Command) -> StepOutput:
    b.uffd_register(*b.resolve_range(cmd.args["range"], "uffd register"))
    return StepOutput()


def do_uffd_move(b: Operations, cmd: Command) -> StepOutput:
    start, length = b.resolve_range(cmd.args["src"], "uffd move")
    walk_limit(b, "uffd move", length)
    dst = b.resolve_addr(cmd.args["dst"], "uffd move")
    return StepOutput(lines=[f"moved {b.uffd_move(start, dst, length)} bytes"])


def do_reclaim(b: Operations, cmd: Command) -> StepOutput:
    freed, where = b.reclaim(cmd.args["size"])
    return StepOutput(lines=[f"reclaimed {pages(freed)} ({freed * 4} kB){where}"])


def do_khugepaged(b: Operations, cmd: Command) -> StepOutput:
    return StepOutput(lines=[f"khugepaged: {b.khugepaged()}"])


HANDLERS: dict[str, Callable[[Operations, Command], StepOutput]] = {
    "mmap": do_mmap, "munmap": do_munmap, "touch": do_touch, "check": do_check, "madvise": do_madvise,
    "mprotect": do_mprotect, "mremap": do_mremap, "uffd_register": do_uffd_register,
    "uffd_move": do_uffd_move, "reclaim": do_reclaim, "khugepaged": do_khugepaged,
}
