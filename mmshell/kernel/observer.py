"""The live kernel as an Observer: each path of the contract, read from what the kernel exports.

lang/expect_paths.py walks the path (once for both backends); this reads:

| path | read from |
|---|---|
| `vmstat.NAME` | /proc/vmstat (after vm.stat_refresh), minus its value at the script's start |
| `mthp.NAME` | hugepages-2048kB/stats/NAME, minus its value at the start |
| `smaps.NAME.FIELD` | /proc/PID/smaps: the VMAs inside the region summed.  A VMA that reaches |
|   | beyond the region (adjacent mappings merged) contributes its part inside, computed |
|   | from PAGEMAP_SCAN and pagemap (Size, Rss, Anonymous, AnonHugePages, Swap, SwapPss); |
|   | the other fields of part of a VMA are not observable |
| `pmd.ADDR` | PAGEMAP_SCAN of the 2 MiB block: a PMD-level mapping reports PAGE_IS_HUGE; a PTE |
|   | table reports every entry (an empty one as written); no table reports nothing |
| `pte.ADDR` | pagemap bits 63/62 when the PMD is a table, else `none` |
| `pagemap.ADDR.FIELD` | /proc/PID/pagemap (as root: PFNs and swap offsets visible); over |
|   | `ADDR:LEN`, the pages with a 0/1 FIELD set |
| `swap.NAME.used` | /proc/swaps Used / 4 kB |
| `swapmap.NAME.OFF` | PROXY: the number of page-table entries of the script's processes that hold |
|   | the slot (a pagemap scan of every region).  swap_map itself is not exported; the |
|   | proxy equals it when only this script's page tables reference the device |
| `swapcache.NAME.OFF` | mincore() in a process whose page table holds the slot (for a swap |
|   | entry mincore reports whether the swap cache has it); with no such entry: not observable |
| `meminfo.FIELD` | /proc/meminfo minus its value at the start (MemTotal: as is) |
| `pid` | the script's current pid |
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lang.backend import NotObservable, Reading, OnSession
from ..lang.expect_values import PathError
from ..mm.task_mmu import PagemapEntry
from . import procfs
from .devices import SwapDevice, SwapDevices
from .observe import PAGE, pmd_kind, slot_holders, smaps_field

if TYPE_CHECKING:
    from .session import LiveSession


class LiveObserver(OnSession):
    """Readings of one live session's processes; counters as moved since the script began."""

    def __init__(self, s: "LiveSession") -> None:
        self.s = s
        assert s.machine.baseline is not None
        self.base = s.machine.baseline

    def vmstat(self, name: str) -> int:
        now = procfs.vmstat()
        if name not in now:
            if name == "thp_swpout_pmd":
                raise PathError("vmstat counter 'thp_swpout_pmd' exists only with the PMD swap entry "
                                f"series: this kernel ({self.s.release}) does not have it")
            raise PathError(f"no vmstat counter {name!r} in this kernel's /proc/vmstat")
        if name == "nr_free_pages":
            return now[name]
        return now[name] - self.base.vmstat.get(name, 0)

    def mthp(self, name: str) -> int:
        now = procfs.mthp_stats()
        if name not in now:
            raise PathError(f"no hugepages-2048kB stat {name!r} ({', '.join(now)})")
        return now[name] - self.base.mthp.get(name, 0)

    def smaps(self, name: str, start: int, end: int, fld: str) -> Reading:
        return smaps_field(self.s, self.s.kpid(), start, end, name, fld)

    def pmd_kind(self, addr: int) -> str:
        return pmd_kind(self.s.kpid(), addr)

    def pte_kind(self, addr: int) -> str:
        if self.pmd_kind(addr) != "table":
            return "none"
        entry = PagemapEntry(procfs.pagemap(self.s.kpid(), addr))
        return "present" if entry.present else "swap" if entry.swapped else "none"

    def pagemap(self, addr: int, npages: int) -> list[PagemapEntry]:
        if npages == 1:
            return [PagemapEntry(procfs.pagemap(self.s.kpid(), addr))]
        return [PagemapEntry(w) for w in procfs.pagemap_words(self.s.kpid(), addr, npages)]

    def _device(self, name: str) -> tuple[SwapDevices, SwapDevice]:
        devices = self.s.machine.devices
        dev = devices.get(name) if devices else None
        if devices is None or dev is None:
            raise PathError(f"no swap device {name!r}")
        return devices, dev

    def swap_pages(self, name: str) -> int:
        return self._device(name)[1].size // PAGE

    def swap_used(self, name: str) -> int:
        devices, _ = self._device(name)
        return devices.used_pages(name)

    def swap_count(self, name: str, off: int) -> Reading:
        dev = self._device(name)[1]
        holders = slot_holders(self.s, dev.type, off)
        return Reading(len(holders), proxy=f"swap_map is not exported: counted the page-table entries "
                       f"of the script's processes that hold slot {dev.name}:{off:#x} (pagemap)")

    def swapcache(self, name: str, off: int) -> Reading:
        dev = self._device(name)[1]
        holders = slot_holders(self.s, dev.type, off)
        if not holders:
            raise NotObservable(f"swapcache.{dev.name}.{off:#x}: no page table of the script holds that "
                                "slot, and mincore() can only ask about a slot through a mapping of it")
        spid, addr = holders[0]
        vec = self.s.machine.procs.call(spid, "mincore", addr, PAGE)
        return Reading(vec[0] & 1, proxy=f"mincore() of pid {spid} page {self.s.describe(addr, spid)}, "
                       "whose swap entry holds the slot")

    def meminfo(self, fld: str) -> int:
        now = procfs.meminfo()
        if fld not in now:
            raise PathError(f"no meminfo field {fld!r} in /proc/meminfo")
        if fld == "MemTotal":
            return now[fld]
        return now[fld] - self.base.meminfo.get(fld, 0)
