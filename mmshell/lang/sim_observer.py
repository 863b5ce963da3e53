"""The simulated kernel as the Observer `expect` reads (lang/backend.py, lang/expect_paths.py).

Every reading is exact (the simulation sees its own swap_map and swap cache),
none through a proxy.  :func:`evaluate` is the simulator's value at a path, for
the shell's completion and `kernel diff`.
"""

from __future__ import annotations

from ..mm.errors import MmError
from ..mm.pgtable import PmdKind, is_swap_pte, pmd_pgtable, pte_present
from ..mm.constants import PAGE_SHIFT, PMD_SHIFT, PTRS_PER_PTE
from ..mm.swap_info import SwapInfo
from ..mm.task_mmu import PagemapEntry, meminfo, pagemap_read, smaps_range, vmstat_snapshot
from ..mm.vmstat import MTHP_STATS, SERIES_ONLY
from .backend import Reading, OnSession
from .expect_paths import read_path
from .expect_values import PathError
from .session import Session

__all__ = ["SimObserver", "evaluate"]


def evaluate(session: Session, path: str) -> int | str:
    """The simulator's current value at PATH."""
    return read_path(SimObserver(session), path).value


class SimObserver(OnSession):
    """The simulated kernel as an Observer: every reading exact, none through a proxy."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.k = session.kernel

    def vmstat(self, name: str) -> int:
        if name in SERIES_ONLY and not self.k.config.pmd_swap:
            raise PathError(f"vmstat counter {name!r} exists only with the PMD swap entry series "
                            "(pmd_swap is off: a mainline kernel has no such counter)")
        snap = vmstat_snapshot(self.k)
        if name not in snap:
            raise PathError(f"no vmstat counter {name!r} in the simulation")
        return snap[name]

    def mthp(self, name: str) -> int:
        if name not in MTHP_STATS:
            raise PathError(f"no hugepages-2048kB stat {name!r} ({', '.join(MTHP_STATS)})")
        return self.k.vmstat.mthp[name]

    def smaps(self, name: str, start: int, end: int, fld: str) -> Reading:
        return Reading(smaps_range(self.k, self.k.mm(self.pid), start, end)[fld])

    def pmd_kind(self, addr: int) -> str:
        pmd = self.k.mm(self.pid).pmds.get(addr >> PMD_SHIFT)
        return "none" if pmd is None else pmd.kind.report

    def pte_kind(self, addr: int) -> str:
        pmd = self.k.mm(self.pid).pmds.get(addr >> PMD_SHIFT)
        if pmd is None or pmd.kind is not PmdKind.TABLE:
            return "none"
        pte = pmd_pgtable(pmd).ptes[(addr >> PAGE_SHIFT) & (PTRS_PER_PTE - 1)]
        if pte_present(pte):
            return "present"
        return "swap" if is_swap_pte(pte) else "none"

    def pagemap(self, addr: int, npages: int) -> list[PagemapEntry]:
        words = pagemap_read(self.k, self.k.mm(self.pid), addr, addr + (npages << PAGE_SHIFT))
        return [PagemapEntry(w) for w in words]

    def _device(self, name: str) -> SwapInfo:
        try:
            return self.k.swap_device(name)
        except MmError as e:
            raise PathError(e.detail) from None

    def swap_pages(self, name: str) -> int:
        return self._device(name).pages

    def swap_used(self, name: str) -> int:
        return self._device(name).inuse_pages

    def swap_count(self, name: str, off: int) -> Reading:
        return Reading(self._device(name).swap_count(off))

    def swapcache(self, name: str, off: int) -> Reading:
        return Reading(int(self._device(name).has_cache(off)))

    def meminfo(self, fld: str) -> int:
        info = meminfo(self.k)
        if fld not in info:
            raise PathError(f"no meminfo field {fld!r} ({', '.join(info)})")
        return info[fld]
