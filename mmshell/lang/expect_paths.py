"""`expect PATH OP VALUE`: the paths of the contract, read through a backend's Observer.

:func:`read_path` is the one evaluator of expect paths, for both backends: it
splits PATH, checks its names and fields, and asks the
:class:`~.backend.Observer` for the reading: the simulator's is
lang/sim_observer.py, the live kernel's kernel/observer.py.
"""

from __future__ import annotations

from ..mm.task_mmu import SMAPS_FIELDS
from .backend import Observer, Reading
from .expect_values import PAGEMAP_FIELDS, PathError, pagemap_count, pagemap_span
from .parser import split_path
from .values import PAGE_SIZE, BadValue, parse_size

__all__ = ["read_path", "PathError"]


def read_path(o: Observer, path: str) -> Reading:
    """The reading at PATH: an int, or a word for pmd./pte.; PathError for a wrong path."""
    try:
        parts = split_path(path)
    except ValueError as e:
        raise PathError(str(e)) from None
    head, rest = parts[0], parts[1:]
    if head == "pid" and not rest:
        return Reading(o.pid)
    if head == "vmstat" and len(rest) == 1:
        return Reading(o.vmstat(rest[0]))
    if head == "mthp" and len(rest) == 1:
        return Reading(o.mthp(rest[0]))
    if head == "smaps" and len(rest) == 2:
        name, fld = rest
        region = o.names().get(name)
        if region is None:
            raise PathError(f"no region named {name!r} in pid {o.pid}")
        if fld not in SMAPS_FIELDS:
            raise PathError(f"no smaps field {fld!r} ({', '.join(SMAPS_FIELDS)})")
        return o.smaps(name, region[0], region[0] + region[1], fld)
    if head in ("pmd", "pte") and len(rest) == 1:
        addr = o.path_addr(rest[0])
        return Reading(o.pmd_kind(addr) if head == "pmd" else o.pte_kind(addr))
    if head == "pagemap" and len(rest) == 2:
        if rest[1] not in PAGEMAP_FIELDS:
            raise PathError(f"no pagemap field {rest[1]!r} ({', '.join(PAGEMAP_FIELDS)})")
        span = pagemap_span(rest[0], rest[1])
        page = o.path_addr(rest[0] if span is None else span[0]) & ~(PAGE_SIZE - 1)
        if span is not None:
            return Reading(pagemap_count(o.pagemap(page, span[1]), rest[1]))
        return Reading(getattr(o.pagemap(page, 1)[0], rest[1]))
    if head in ("swap", "swapmap", "swapcache") and len(rest) == 2:
        pages = o.swap_pages(rest[0])
        if head == "swap":
            if rest[1] != "used":
                raise PathError(f"no swap field {rest[1]!r} (used)")
            return Reading(o.swap_used(rest[0]))
        try:
            off = parse_size(rest[1])
        except BadValue as e:
            raise PathError(str(e)) from None
        if not 0 < off < pages:
            raise PathError(f"offset {off:#x} outside swap device {rest[0]} (1..{pages - 1:#x})")
        return o.swap_count(rest[0], off) if head == "swapmap" else o.swapcache(rest[0], off)
    if head == "meminfo" and len(rest) == 1:
        return Reading(o.meminfo(rest[0]))
    raise PathError(f"unknown path {path!r} (vmstat.NAME, mthp.NAME, smaps.NAME.FIELD, pmd.ADDR, "
                    "pte.ADDR, pagemap.ADDR.FIELD, swap.NAME.used, swapmap.NAME.OFF, "
                    "swapcache.NAME.OFF, meminfo.FIELD, pid)")
