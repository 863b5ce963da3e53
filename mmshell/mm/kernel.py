"""The machine: the one state root of the simulated kernel.

`Kernel` owns the configuration, physical memory (mem_map), the swap devices,
the swap cache's folio->swap map, the LRU, every process (mm_struct), the vm
event counters, the trace of kernel functions a step went through, the tallies
of page-table entries each walker visited and of PTE table pages allocated (the
simulation's own counts), and the shadow record of what every page should read.
Operations live in the modules named after the kernel files that implement
them; they all take the Kernel as their first argument.
"""

from __future__ import annotations

from .config import Config
from .constants import HPAGE_PMD_NR, MAX_SWAPFILES, PAGE_SHIFT
from .errors import MmError, VmBug
from .folio import PG, MemMap
from .mm_types import MmStruct
from .pagewalk import Walker
from .pidtable import PidTable
from .shadow import Shadow
from .lru import Lru
from .swap_info import SwapInfo
from .swapops import SwpEntry
from .vmstat import VmStat


class Kernel:
    """A freshly booted machine with one process, pid 1."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config if config is not None else Config()
        self.mem: MemMap
        self.zero_pfn: int
        self.boot_mem()
        self.huge_zero_pfn: int | None = None
        self.vmstat = VmStat()
        self.swap_info: list[SwapInfo | None] = [None] * MAX_SWAPFILES
        self.swap_prio_order: list[int] = []       # swap_avail_head: types by priority
        self.percpu_swap_si: int | None = None     # percpu_swap_cluster.si[0]: swap_slots.py
        self.least_priority = -1
        self.folio_swap: dict[int, SwpEntry] = {}   # folio->swap of swap-cache folios
        self.mms: PidTable[MmStruct] = PidTable({1: MmStruct(pid=1, parent=0)})
        self.next_pid = 2
        self.next_anon_vma = 1
        self.next_avc_seq = 1     # anon_vma_order.py
        self.zswap_ever_enabled = self.config.zswap
        self.write_seq = 0
        self.shadow = Shadow()
        self.tracing = False
        self.trace_log: list[str] = []
        # page-table entries visited, per walker (pagewalk.py): the simulation's own tally
        self.walk_visits: dict[Walker, int] = dict.fromkeys(Walker, 0)
        # PTE table pages allocated, deposits included (pgtable_generic.py): a simulator count
        self.pte_tables_allocated = 0

    def boot_mem(self) -> None:
        """A fresh mem_map of config.ram, frame 0 the shared zero page (empty_zero_page)."""
        self.mem = MemMap(self.config.ram >> PAGE_SHIFT)
        self.lru = Lru(self.mem.nr_frames)
        zero_pfn = self.mem.folio_alloc(0)
        if zero_pfn is None:
            raise VmBug("no frame for the zero page")
        self.zero_pfn = zero_pfn
        self.mem.set(zero_pfn, PG.ZERO)

    # -- helpers shared by every module ----------------------------------------------
    def trace(self, name: str) -> None:
        """Record that the step went through kernel function `name`."""
        if self.tracing:
            self.trace_log.append(name)

    def mm(self, pid: int) -> MmStruct:
        mm = self.mms.get(pid)
        if mm is None:
            raise MmError("ESRCH", "pid", f"no process {pid}")
        return mm

    def swp_info(self, type_: int) -> SwapInfo:
        """__swap_type_to_info() (swp_swap_info()): the device of a swap type in use.

        For callers holding an entry, which pins its device: a type with no
        device is a broken invariant.  Where no device is a real possibility,
        read `swap_info[type_]` and test for None.  Hot paths call this once
        per run, into a local, not once per page.
        """
        si = self.swap_info[type_]
        if si is None:
            raise VmBug(f"swap type {type_} has no device")
        return si

    def swap_device(self, name: str) -> SwapInfo:
        for si in self.swap_info:
            if si is not None and si.name == name:
                return si
        raise MmError("ENOENT", "swap", f"no swap device {name!r}")

    def active_swap(self) -> list[SwapInfo]:
        """Swap devices in allocation order (highest priority first, plist order)."""
        return [si for t in self.swap_prio_order if (si := self.swap_info[t]) is not None]

    def alloc_anon_vma(self) -> int:
        self.next_anon_vma += 1
        return self.next_anon_vma - 1

    def next_write_values(self, nr: int) -> range:
        """Fresh page values for nr page writes (never 0, never repeated)."""
        start = self.write_seq + 1
        self.write_seq += nr
        return range(start, start + nr)

    def nr_free_frames(self) -> int:
        return self.mem.alloc.nr_free

    def huge_zero_nr(self) -> int:
        return HPAGE_PMD_NR if self.huge_zero_pfn is not None else 0
