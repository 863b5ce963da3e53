"""What the language needs of a machine that runs it: the contract each backend keeps.

Two backends run .mmsh: the simulator (lang/execute.py over mm/) and the live
kernel (kernel/backend.py over worker processes and procfs).  The language's
own commands (`@PID`, `if`, `switch`, `expect`, `expect fails`, nested
`source`, `help`: lang/control.py) are written once against :class:`Backend`;
the commands that act on the machine (lang/memory.py, lang/setup.py,
lang/processes.py, lang/show.py) are written once against
:class:`Operations`, the small primitives each backend implements.

One output type serves both (:class:`StepOutput`), and a reading that the
backend cannot make raises :class:`NotObservable` (one clear line why); a
reading made through a proxy says which (:class:`Reading`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Container, Protocol, TypeVar

from ..mm.mman import Madv
from ..mm.swap_info import SwapKind
from ..mm.vma import VM
from .parser import Command
from .settings import SettingSpec

if TYPE_CHECKING:
    from ..mm.task_mmu import PagemapEntry

__all__ = ["StepOutput", "Reading", "NotObservable", "Observer", "OnSession", "Backend", "Operations",
           "Verified", "Handler", "Handlers"]


@dataclass(slots=True)
class StepOutput:
    """What one step produced, in either backend.

    ``views`` to render after the step and ``lines`` of text; ``failed_expect``
    an unmet expectation; ``not_observable`` why an expectation could not be
    read (live kernel); ``changed`` whether the step may have changed the
    machine; ``trace`` the kernel functions it went through (simulator,
    `trace on`); ``calls`` the same, recorded for `explain` even when `trace` is off
    (simulator); ``notes`` what is worth knowing about how it ran (a proxy
    reading, a warning); ``changes`` the counters it moved (live kernel);
    ``value`` an expectation's observed value (`kernel diff` compares them).
    """

    views: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    failed_expect: str | None = None
    changed: bool = True
    trace: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    changes: dict[str, Any] | None = None
    not_observable: str | None = None
    value: Any = None


class NotObservable(Exception):
    """The backend cannot read this (the message says why): swap_map counts are not
    visible from user space, for one."""


class Reading:
    """An observed value and, when a proxy was used, which one."""

    __slots__ = ("value", "proxy")

    def __init__(self, value: int | str, proxy: str | None = None) -> None:
        self.value = value
        self.proxy = proxy


class Observer(Protocol):
    """What `expect` reads (lang/expect_paths.py walks the path, once for both backends).

    Each method answers for the current process (``pid``) where it is per
    process; a name or field the backend does not have raises PathError with
    the backend's words for it, and a reading it cannot make NotObservable.
    """

    @property
    def pid(self) -> int:
        """The current process."""
        ...

    def names(self, pid: int | None = None) -> dict[str, tuple[int, int]]:
        """The region names of a process: name -> (start, length)."""
        ...

    def path_addr(self, text: str) -> int:
        """The address an ADDR of a path names."""
        ...

    def vmstat(self, name: str) -> int:
        ...

    def mthp(self, name: str) -> int:
        ...

    def smaps(self, name: str, start: int, end: int, fld: str) -> Reading:
        """smaps FIELD of region `name`, [start, end) of the current process."""
        ...

    def pmd_kind(self, addr: int) -> str:
        """none, table, huge, swap ... of the PMD that maps addr."""
        ...

    def pte_kind(self, addr: int) -> str:
        """none, present or swap of the PTE that maps addr."""
        ...

    def pagemap(self, addr: int, npages: int) -> list[PagemapEntry]:
        """The pagemap entries of npages pages from the page-aligned addr."""
        ...

    def swap_pages(self, name: str) -> int:
        """The size in pages of the swap device `name`."""
        ...

    def swap_used(self, name: str) -> int:
        ...

    def swap_count(self, name: str, off: int) -> Reading:
        """swap_map count of slot `off` of the device."""
        ...

    def swapcache(self, name: str, off: int) -> Reading:
        """1 when the swap cache holds slot `off` of the device, else 0."""
        ...

    def meminfo(self, fld: str) -> int:
        ...


class OnSession:
    """What a backend's adapter (an Observer, the Operations of each backend) answers from its
    session ``s`` alone: the current pid and the region names (lang/regions.py)."""

    s: Any

    @property
    def pid(self) -> int:
        return int(self.s.pid)

    @pid.setter
    def pid(self, pid: int) -> None:
        self.s.pid = pid

    @property
    def timing(self) -> bool:
        return bool(self.s.timing)

    @timing.setter
    def timing(self, on: bool) -> None:
        self.s.timing = on

    @property
    def pinned(self) -> dict[str, str]:
        return dict(self.s.pinned)

    def refuse(self, errno: str, op: str, why: str) -> Exception:
        return self.s.refuse(errno, op, why)

    def names(self, pid: int | None = None) -> dict[str, tuple[int, int]]:
        return self.s.names(pid)

    def describe(self, addr: int, pid: int | None = None) -> str:
        return str(self.s.describe(addr, pid))

    def forget(self, pid: int) -> None:
        self.s.forget(pid)

    def path_addr(self, text: str) -> int:
        return int(self.s.path_addr(text))

    def new_name(self, name: str, op: str) -> str:
        return str(self.s.new_name(name, op))

    def resolve_addr(self, addr: Any, op: str) -> int:
        return int(self.s.resolve_addr(addr, op))

    def resolve_range(self, rng: Any, op: str) -> tuple[int, int]:
        start, length = self.s.resolve_range(rng, op)
        return start, length


class Backend(Protocol):
    """A machine the language's own commands run on (lang/control.py).

    ``pid`` is the current process.  Each method refuses in the backend's own
    terms: the exception :meth:`refuse` makes, which :attr:`refusals` lists
    with ExpectError (what `expect fails` counts as a refusal).
    """

    pid: int
    refusals: tuple[type[Exception], ...]
    #: `timing on|off`: each step's wall time printed after it
    timing: bool

    def refuse(self, errno: str, op: str, why: str) -> Exception:
        """The exception a refused command raises."""
        ...

    def check_pid(self, pid: int) -> None:
        """Refuse (ESRCH) when there is no process `pid`."""
        ...

    def parent_of(self, pid: int) -> int | None:
        """The parent of a live process (None for pid 1)."""
        ...

    def alive(self) -> Container[int]:
        """The pids of the processes alive now."""
        ...

    def setting_value(self, name: str, point: str | None = None) -> Any:
        """A setting's value as `set` writes it (`if SETTING VALUE` compares with it), or None
        when the backend cannot read it."""
        ...

    def run(self, cmd: Command) -> StepOutput:
        """Run the handler of one command inside the current step (no step boundary)."""
        ...

    def execute(self, cmd: Command) -> StepOutput:
        """Run one command as a whole step: refused whole, or done."""
        ...

    def observe(self, path: str) -> Reading:
        """The value of an expect PATH; PathError for a wrong path, NotObservable where the
        backend cannot see it."""
        ...


@dataclass(slots=True)
class Verified:
    """What `check RANGE` read back: pages read, how many differ from what was last written,
    and the first that does (address, value read, value last written)."""

    pages: int
    bad: int = 0
    first: tuple[int, int, int] | None = None


class Operations(Protocol):
    """The primitives the handlers of the commands that act on the machine ask a backend for.

    The handlers (lang/memory.py, lang/setup.py, lang/processes.py, lang/show.py)
    resolve the language's names, check what the language checks the same way on
    both backends, and call one primitive in the kernel's terms (addresses, lengths,
    ``VM`` flags, ``Madv`` advice, ``SwapKind``).  A primitive refuses in its
    backend's own terms before it changes anything (the simulator also restores its
    checkpoint, lang/execute.py) and returns what the language prints: pages, bytes,
    a pid; the few whose facts differ between the backends return lines or notes.
    What the live kernel cannot do at all is refused before any handler runs, with
    the reason the registry gives (``registry.live_refusal``).
    """

    pid: int

    @property
    def pinned(self) -> dict[str, str]:
        """Settings a script's `set` may not change here, with why (compare pins pmd_swap)."""
        ...

    def refuse(self, errno: str, op: str, why: str) -> Exception:
        ...

    def names(self, pid: int | None = None) -> dict[str, tuple[int, int]]:
        ...

    def describe(self, addr: int, pid: int | None = None) -> str:
        ...

    def forget(self, pid: int) -> None:
        """Drop the region names of a process that exited."""
        ...

    def new_name(self, name: str, op: str) -> str:
        ...

    def resolve_addr(self, addr: Any, op: str) -> int:
        ...

    def resolve_range(self, rng: Any, op: str) -> tuple[int, int]:
        ...

    def check_pid(self, pid: int) -> None:
        ...

    def parent_of(self, pid: int) -> int | None:
        ...

    def alive(self) -> Container[int]:
        ...

    # -- memory (lang/memory.py) --
    def mmap(self, size: int, flags: VM, advice: Madv | None, at: int | None) -> tuple[int, int]:
        """Map `size` bytes at `at` (or where the kernel places it): the start and the length."""
        ...

    def munmap(self, start: int, length: int) -> None:
        ...

    def touch(self, start: int, length: int, write: bool) -> int:
        """Access every page of the range: how many pages."""
        ...

    def check_range(self, start: int, length: int) -> Verified:
        ...

    def check_all(self) -> list[str]:
        """Verify every process without faulting anything in: what was verified (refused when
        something does not hold)."""
        ...

    def madvise(self, start: int, length: int, advice: Madv) -> list[str]:
        """Notes worth knowing about what the advice did (a warning)."""
        ...

    def mprotect(self, start: int, length: int, flags: VM) -> None:
        ...

    def mremap(self, start: int, length: int, new_len: int, at: int | None) -> tuple[int, int]:
        """Move [start, start+length) to `at` (or where the kernel places it) with new_len:
        the new start and the new length in whole pages."""
        ...

    def uffd_register(self, start: int, length: int) -> None:
        ...

    def uffd_move(self, src: int, dst: int, length: int) -> int:
        """UFFDIO_MOVE: the bytes moved."""
        ...

    def reclaim(self, size: int | None) -> tuple[int, str]:
        """Reclaim `size` bytes (None: everything reclaimable): the pages freed and where
        (empty, or how the live kernel reclaimed)."""
        ...

    def khugepaged(self) -> str:
        """One full khugepaged pass: what it did."""
        ...

    # -- set-up (lang/setup.py) --
    def keep(self, name: str, value: Any) -> list[str]:
        """Keep a setting of what is printed (`set display`, a display setting): notes."""
        ...

    def set(self, spec: SettingSpec, value: Any, point: str | None) -> StepOutput:
        """Set a machine setting (its value checked against the registry already)."""
        ...

    def swapon(self, name: str, size: int, kind: SwapKind, prio: int | None) -> list[str]:
        """Add a swap device: what the backend says of it."""
        ...

    def swapoff(self, name: str) -> None:
        ...

    # -- processes (lang/processes.py) --
    def fork(self) -> int:
        """Fork the current process: the child's pid."""
        ...

    def exit(self, pid: int) -> None:
        """Tear down process `pid` (not pid 1; it exists)."""
        ...

    # -- views (lang/show.py) --
    def show(self, view: str, opts: dict[str, Any]) -> StepOutput:
        """Draw VIEW (the simulator after the step, the live kernel now)."""
        ...


S = TypeVar("S")
#: A command's handler in a backend: the backend's session and the parsed command.
Handler = Callable[[S, Command], StepOutput]


class Handlers(dict[str, Handler[S]]):
    """A backend's handler table, by ``Command.name``; ``@table.register(name)`` fills it."""

    def register(self, name: str) -> Callable[[Handler[S]], Handler[S]]:
        def add(fn: Handler[S]) -> Handler[S]:
            self[name] = fn
            return fn
        return add
