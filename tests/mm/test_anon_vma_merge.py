"""find_mergeable_anon_vma() (mmshell/mm/anon_vma_merge.py; mm/vma.c): the anon_vma a VMA's first
fault takes, a compatible neighbour's (the next VMA's first) or a new one.

The live-kernel side of it: tests/kernel/140_first_fault_shares_neighbours_anon_vma.mmsh.
"""

from __future__ import annotations

from mm_unit import M, RW, assert_consistent, boot
from mmshell.mm.access import access_range
from mmshell.mm.fork import sys_fork
from mmshell.mm.kernel import Kernel
from mmshell.mm.mman import Madv
from mmshell.mm.mmap import sys_mmap
from mmshell.mm.mprotect import sys_mprotect
from mmshell.mm.vma import VM, VmArea

BASE = 0x600000000000


def _faulted(k: Kernel, pid: int, addr: int, prot: VM = RW, advice: Madv | None = None) -> VmArea:
    """A 2M mapping at addr, written, then given prot: its VMA."""
    mm = k.mm(pid)
    sys_mmap(k, mm, 2 * M, RW, advice, addr)
    access_range(k, mm, addr, addr + 2 * M, True)
    if prot != RW:
        sys_mprotect(k, mm, addr, 2 * M, prot)
    vma = mm.find_vma(addr)
    assert vma is not None
    return vma


def test_first_fault_takes_the_previous_vmas_anon_vma() -> None:
    k = boot()
    low = _faulted(k, 1, BASE, VM(0))
    high = _faulted(k, 1, BASE + 2 * M)
    assert high.anon_vma == low.anon_vma != 0
    sys_mprotect(k, k.mm(1), BASE + 2 * M, 64 * 1024, VM(0))
    assert [(v.start - BASE, v.end - BASE) for v in k.mm(1).vmas] == [(0, 2 * M + 64 * 1024),
                                                                     (2 * M + 64 * 1024, 4 * M)]
    assert_consistent(k)


def test_the_next_vma_is_asked_first() -> None:
    k = boot()
    low = _faulted(k, 1, BASE, VM(0))
    high = _faulted(k, 1, BASE + 4 * M, VM(0))
    mid = _faulted(k, 1, BASE + 2 * M)
    assert mid.anon_vma == high.anon_vma != low.anon_vma


def test_flags_that_differ_beyond_the_access_bits_lend_nothing() -> None:
    k = boot()
    low = _faulted(k, 1, BASE, VM(0))
    high = _faulted(k, 1, BASE + 2 * M, advice=Madv.MADV_HUGEPAGE)
    assert high.anon_vma not in (0, low.anon_vma)


def test_a_vma_cloned_by_fork_lends_nothing() -> None:
    """reusable_anon_vma(): the neighbour's anon_vma_chain must be singular."""
    k = boot()
    _faulted(k, 1, BASE, VM(0))
    child = sys_fork(k, k.mm(1))
    inherited = child.find_vma(BASE)
    assert inherited is not None and len(inherited.anon_vma_chain) == 2
    new = _faulted(k, child.pid, BASE + 2 * M)
    assert new.anon_vma not in (0, *inherited.anon_vma_chain)
    assert_consistent(k)
