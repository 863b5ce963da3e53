"""Set-up shared by the unit tests of mmshell/mm/ (tests/mm/test_<module>.py).

A machine is `Kernel(Config(...))`, driven through the sys_* functions and the
fault handler directly, as scripts/bench does: no .mmsh text in between, so a
test names the kernel function whose contract it pins.
"""

from __future__ import annotations

from mmshell.mm.access import access_range
from mmshell.mm.check import check_invariants
from mmshell.mm.check_data import check_data
from mmshell.mm.config import Config
from mmshell.mm.constants import PAGE_SHIFT, PAGE_SIZE, PMD_SHIFT, PTRS_PER_PTE
from mmshell.mm.kernel import Kernel
from mmshell.mm.madvise import sys_madvise
from mmshell.mm.mman import Madv
from mmshell.mm.mmap import sys_mmap
from mmshell.mm.pgtable import Pmd, pmd_pgtable
from mmshell.mm.swap_info import SwapInfo, SwapKind
from mmshell.mm.swapfile import sys_swapon
from mmshell.mm.vma import VM, VmArea

K = 1 << 10
M = 1 << 20
THP = 2 * M
RW = VM.READ | VM.WRITE


def boot(pmd_swap: bool = True, ram: int = 64 * M, **config: object) -> Kernel:
    """A fresh machine: pid 1, frame 0 the zero page, THP `madvise`, no swap yet."""
    return Kernel(Config(pmd_swap=pmd_swap, ram=ram, **config))  # type: ignore[arg-type]


def swapon(k: Kernel, name: str = "zram0", size: int = 16 * M, kind: SwapKind = SwapKind.ZRAM,
           prio: int | None = None) -> SwapInfo:
    return sys_swapon(k, name, size, kind, prio)


def mmap_thp(k: Kernel, size: int = THP, pid: int = 1, write: bool = True) -> int:
    """mmap(size, MADV_HUGEPAGE) and, by default, write every page (one THP per 2 MiB)."""
    mm = k.mm(pid)
    addr = sys_mmap(k, mm, size, RW, Madv.MADV_HUGEPAGE, None)
    if write:
        access_range(k, mm, addr, addr + size, True)
    return addr


def pageout(k: Kernel, addr: int, size: int = THP, pid: int = 1) -> None:
    sys_madvise(k, k.mm(pid), addr, size, Madv.MADV_PAGEOUT)


def swapped_thp(pmd_swap: bool = True, kind: SwapKind = SwapKind.ZRAM,
                **config: object) -> tuple[Kernel, SwapInfo, int]:
    """A machine (`boot(pmd_swap, **config)`) with one THP written and paged out:
    (kernel, swap device, address)."""
    k = boot(pmd_swap, **config)
    si = swapon(k, kind=kind)
    a = mmap_thp(k)
    pageout(k, a)
    return k, si, a


def pmd_at(k: Kernel, addr: int, pid: int = 1) -> Pmd:
    return k.mm(pid).pmds[addr >> PMD_SHIFT]


def vma_at(k: Kernel, addr: int, pid: int = 1) -> VmArea:
    """The VMA that holds addr (vma_lookup), which must exist."""
    vma = k.mm(pid).find_vma(addr)
    assert vma is not None, f"no VMA at {addr:#x} in pid {pid}"
    return vma


def pte_at(k: Kernel, addr: int, pid: int = 1) -> int:
    """The PTE word mapping addr (its PMD must be a table)."""
    return pmd_pgtable(pmd_at(k, addr, pid)).ptes[(addr >> PAGE_SHIFT) & (PTRS_PER_PTE - 1)]


def mmap_small(k: Kernel, pages: int, pid: int = 1) -> int:
    """mmap(pages * 4 KiB, MADV_NOHUGEPAGE) and write every page: order-0 folios under PTEs."""
    mm = k.mm(pid)
    addr = sys_mmap(k, mm, pages * PAGE_SIZE, RW, Madv.MADV_NOHUGEPAGE, None)
    access_range(k, mm, addr, addr + pages * PAGE_SIZE, True)
    return addr


def free_clusters(si: SwapInfo) -> int:
    """Clusters with no slot in use: where a 2 MiB allocation can go on a block device."""
    return list(si.cluster_used).count(0)


class Counters:
    """/proc/vmstat events and hugepages-2048kB stats, as deltas from when it was made."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.events = dict(k.vmstat.events)
        self.mthp = dict(k.vmstat.mthp)

    def moved(self) -> dict[str, int]:
        """Every event counter that changed, by how much (mTHP stats prefixed `mthp.`)."""
        out = {n: v - self.events[n] for n, v in self.k.vmstat.events.items() if v != self.events[n]}
        out.update({f"mthp.{n}": v - self.mthp[n] for n, v in self.k.vmstat.mthp.items() if v != self.mthp[n]})
        return out


def assert_consistent(k: Kernel) -> None:
    """CONFIG_DEBUG_VM: every invariant holds and every page reads what was written."""
    assert check_invariants(k) == []
    assert check_data(k) == []
