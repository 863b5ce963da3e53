"""The words a live session knows, for the completer: names, pids, counters, fields.

Every list here is read from the session (region names, swap devices, pids)
or from the data the simulator and the language already export (vmstat and
mTHP counter names, smaps, pagemap and meminfo fields, help topics); nothing
is a hand-written copy.  Each function returns :class:`Word` tuples in a
stable order (address order, priority order, pid order, kernel order) and
only reads the session: nothing here changes the machine.
"""

from __future__ import annotations

from typing import NamedTuple

from ..lang.expect_values import PAGEMAP_FIELDS
from ..lang.session import Session
from ..lang.values import pages
from ..mm.constants import PAGE_SIZE
from ..mm.kernel import Kernel
from ..mm.pgtable import PmdKind
from ..mm.task_mmu import SMAPS_FIELDS, meminfo
from ..mm.vmstat import EVENTS, GAUGES, MTHP_GAUGES, MTHP_STATS, SERIES_ONLY

__all__ = [
    "Word",
    "device_words",
    "meminfo_field_words",
    "mthp_words",
    "pagemap_field_words",
    "pid_words",
    "pmd_kind_words",
    "region_words",
    "short_size",
    "smaps_field_words",
    "vmstat_words",
]


class Word(NamedTuple):
    """A completion candidate: the word itself and what the menu says beside it."""

    text: str
    meta: str = ""


def short_size(nbytes: int) -> str:
    """A size for a narrow column: ``2M``, ``1.5G``, ``640K``, ``0`` (binary units).

    Rounded down, so a nearly full 1G never reads as ``1024M`` or ``1G``.
    """
    for shift, letter in ((40, "T"), (30, "G"), (20, "M"), (10, "K")):
        if nbytes >= 1 << shift:
            if nbytes < 10 << shift:
                tenths = nbytes * 10 >> shift
                text = f"{tenths // 10}" if tenths % 10 == 0 else f"{tenths // 10}.{tenths % 10}"
            else:
                text = str(nbytes >> shift)
            return text + letter
    return str(nbytes)


def region_words(session: Session) -> list[Word]:
    """The current process's region names, in address order, with their ranges."""
    names = session.regions.get(session.pid, {})
    ordered = sorted(names.items(), key=lambda item: (item[1][0], item[0]))
    return [Word(name, f"region {start:#x}-{start + length:#x} ({short_size(length)})")
            for name, (start, length) in ordered]


def device_words(session: Session) -> list[Word]:
    """The swap devices, in allocation (priority) order, with kind, size (as given to swapon) and use."""
    words = []
    for si in session.kernel.active_swap():
        size = short_size(si.pages * PAGE_SIZE)
        words.append(Word(si.name, f"{si.kind.value} {size}, {pages(si.inuse_pages)} used"))
    return words


def pid_words(session: Session) -> list[Word]:
    """The live pids in order; the meta says which is current and whose child each is."""
    words = []
    for pid, mm in sorted(session.kernel.mms.items()):
        what = "current" if pid == session.pid else (f"child of {mm.parent}" if mm.parent else "init")
        words.append(Word(str(pid), f"{what}, {len(mm.vmas)} VMAs"))
    return words


def vmstat_words(session: Session) -> list[Word]:
    """The /proc/vmstat counters ``expect vmstat.NAME`` accepts on this kernel.

    The series-only ones (``thp_swpout_pmd``) are left out while ``pmd_swap``
    is off, as a mainline kernel has no such counter.  Events show their
    count; gauges are only named (computing them walks the LRU).
    """
    k = session.kernel
    words = [Word(name, "gauge") for name in GAUGES]
    for name in EVENTS:
        if name in SERIES_ONLY and not k.config.pmd_swap:
            continue
        words.append(Word(name, f"event, now {k.vmstat.events.get(name, 0)}"))
    return words


def mthp_words(session: Session) -> list[Word]:
    """The hugepages-2048kB stats, in directory order, with their current values."""
    stats = session.kernel.vmstat.mthp
    return [Word(name, f"{'gauge' if name in MTHP_GAUGES else 'event'}, now {stats.get(name, 0)}")
            for name in MTHP_STATS]


def smaps_field_words() -> list[Word]:
    """The smaps fields ``expect smaps.NAME.FIELD`` accepts, in /proc order."""
    return [Word(name, "kB" if name != "THPeligible" else "0 or 1") for name in SMAPS_FIELDS]


def pagemap_field_words() -> list[Word]:
    """The pagemap fields ``expect pagemap.ADDR.FIELD`` accepts."""
    return [Word(name, "pagemap field") for name in PAGEMAP_FIELDS]


_meminfo_fields: tuple[str, ...] = ()


def meminfo_field_words(kernel: Kernel) -> list[Word]:
    """The /proc/meminfo fields the simulation reports (read once, then remembered)."""
    global _meminfo_fields
    if not _meminfo_fields:
        _meminfo_fields = tuple(meminfo(kernel))
    return [Word(name, "kB") for name in _meminfo_fields]


def pmd_kind_words() -> list[Word]:
    """The values ``pmd.ADDR`` can take, in PmdKind order (``zero`` reports as ``huge``)."""
    return [Word(w, "pmd kind") for w in dict.fromkeys(kind.report for kind in PmdKind)]

