"""`expect PATH OP VALUE`: the paths of the contract, evaluated against a session."""

from __future__ import annotations

from ..mm.errors import MmError
from ..mm.pgtable import PmdKind, is_swap_pte, pmd_pgtable, pte_present
from ..mm.constants import PAGE_SHIFT, PMD_SHIFT, PTRS_PER_PTE
from ..mm.task_mmu import SMAPS_FIELDS, PagemapEntry, meminfo, pagemap_read, smaps_range, vmstat_snapshot
from ..mm.vmstat import MTHP_STATS, SERIES_ONLY
from .expectation import PAGEMAP_FIELDS, PathError, pagemap_count, pagemap_span
from .parser import split_path
from .session import Session
from .values import BadValue, parse_size

def evaluate(session: Session, path: str) -> int | str:
    """The current value at PATH (an int, or a word for pmd./pte.)."""
    try:
        parts = split_path(path)
    except ValueError as e:
        raise PathError(str(e)) from None
    k = session.kernel
    head, rest = parts[0], parts[1:]
    if head == "pid" and not rest:
        return session.pid
    if head == "vmstat" and len(rest) == 1:
        name = rest[0]
        if name in SERIES_ONLY and not k.config.pmd_swap:
            raise PathError(f"vmstat counter {name!r} exists only with the PMD swap entry series "
                            "(pmd_swap is off: a mainline kernel has no such counter)")
        snap = vmstat_snapshot(k)
        if name not in snap:
            raise PathError(f"no vmstat counter {name!r} in the simulation")
        return snap[name]
    if head == "mthp" and len(rest) == 1:
        if rest[0] not in MTHP_STATS:
            raise PathError(f"no hugepages-2048kB stat {rest[0]!r} ({', '.join(MTHP_STATS)})")
        return k.vmstat.mthp[rest[0]]
    if head == "smaps" and len(rest) == 2:
        name, fld = rest
        region = session.names().get(name)
        if region is None:
            raise PathError(f"no region named {name!r} in pid {session.pid}")
        if fld not in SMAPS_FIELDS:
            raise PathError(f"no smaps field {fld!r} ({', '.join(SMAPS_FIELDS)})")
        return smaps_range(k, k.mm(session.pid), region[0], region[0] + region[1])[fld]
    if head in ("pmd", "pte") and len(rest) == 1:
        return _entry_kind(session, head, session.path_addr(rest[0]))
    if head == "pagemap" and len(rest) == 2:
        if rest[1] not in PAGEMAP_FIELDS:
            raise PathError(f"no pagemap field {rest[1]!r} ({', '.join(PAGEMAP_FIELDS)})")
        span = pagemap_span(rest[0], rest[1])
        addr = session.path_addr(rest[0] if span is None else span[0])
        page = addr & ~((1 << PAGE_SHIFT) - 1)
        if span is not None:
            entries = pagemap_read(k, k.mm(session.pid), page, page + (span[1] << PAGE_SHIFT))
            return pagemap_count([PagemapEntry(e) for e in entries], rest[1])
        return getattr(PagemapEntry(pagemap_read(k, k.mm(session.pid), page, page + 4096)[0]), rest[1])
    if head in ("swap", "swapmap", "swapcache") and len(rest) == 2:
        try:
            si = k.swap_device(rest[0])
        except MmError as e:
            raise PathError(e.detail) from None
        if head == "swap":
            if rest[1] != "used":
                raise PathError(f"no swap field {rest[1]!r} (used)")
            return si.inuse_pages
        try:
            off = parse_size(rest[1])
        except BadValue as e:
            raise PathError(str(e)) from None
        if not 0 < off < si.pages:
            raise PathError(f"offset {off:#x} outside swap device {si.name} (1..{si.pages - 1:#x})")
        return si.swap_count(off) if head == "swapmap" else int(si.has_cache(off))
    if head == "meminfo" and len(rest) == 1:
        info = meminfo(k)
        if rest[0] not in info:
            raise PathError(f"no meminfo field {rest[0]!r} ({', '.join(info)})")
        return info[rest[0]]
    raise PathError(f"unknown path {path!r} (vmstat.NAME, mthp.NAME, smaps.NAME.FIELD, pmd.ADDR, "
                    "pte.ADDR, pagemap.ADDR.FIELD, swap.NAME.used, swapmap.NAME.OFF, "
                    "swapcache.NAME.OFF, meminfo.FIELD, pid)")


def _entry_kind(session: Session, level: str, addr: int) -> str:
    mm = session.kernel.mm(session.pid)
    pmd = mm.pmds.get(addr >> PMD_SHIFT)
    if level == "pmd":
        return "none" if pmd is None else pmd.kind.report
    if pmd is None or pmd.kind is not PmdKind.TABLE:
        return "none"
    pte = pmd_pgtable(pmd).ptes[(addr >> PAGE_SHIFT) & (PTRS_PER_PTE - 1)]
    if pte_present(pte):
        return "present"
    return "swap" if is_swap_pte(pte) else "none"
