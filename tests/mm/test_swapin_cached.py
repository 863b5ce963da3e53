"""A read of order-0 folios still in the swap cache, batched (mm/swapin_cached.py), leaves
exactly what the separate do_swap_page faults leave."""

from __future__ import annotations

import pytest

from mm_unit import K, M, assert_consistent, boot, pageout, swapon
from mmsh_state import diff_dumps, kernel_dump
from mmshell.mm import access
from mmshell.mm.access import access_range
from mmshell.mm.fork import sys_fork
from mmshell.mm.kernel import Kernel
from mmshell.mm.mman import Madv
from mmshell.mm.mmap import sys_mmap, sys_munmap
from mmshell.mm.swap_info import SwapKind
from mmshell.mm.vma import VM

RW = VM.READ | VM.WRITE


def _small(k: Kernel, size: int) -> int:
    mm = k.mm(1)
    a = sys_mmap(k, mm, size, RW, Madv.MADV_NOHUGEPAGE, None)
    access_range(k, mm, a, a + size, True)
    return a


def _read_back(k: Kernel) -> None:
    swapon(k, kind=SwapKind.DISK)
    a = _small(k, 2 * M)
    pageout(k, a, 2 * M)
    access_range(k, k.mm(1), a + 64 * K, a + 2 * M, False)     # cache hits, from mid-table
    access_range(k, k.mm(1), a, a + 2 * M, True)                # then writes (per fault)


def _shared(k: Kernel) -> None:
    swapon(k, kind=SwapKind.FILE)
    a = _small(k, 1 * M)
    sys_fork(k, k.mm(1))
    pageout(k, a, 1 * M)
    pageout(k, a, 1 * M, pid=2)
    access_range(k, k.mm(2), a, a + 1 * M, False)               # slots referenced twice: per fault
    sys_munmap(k, k.mm(1), a, 1 * M)
    access_range(k, k.mm(2), a, a + 1 * M, False)


def _nearly_full(k: Kernel) -> None:
    swapon(k, kind=SwapKind.DISK, size=3 * M)
    a = _small(k, 2 * M)
    pageout(k, a, 2 * M)                                        # vm_swap_full(): per fault
    access_range(k, k.mm(1), a, a + 2 * M, False)


@pytest.mark.parametrize("mode", [True, False], ids=["series", "mainline"])
@pytest.mark.parametrize("steps", [_read_back, _shared, _nearly_full], ids=lambda f: f.__name__.strip("_"))
def test_cached_swapin_run_leaves_what_the_faults_leave(mode: bool, steps, monkeypatch) -> None:
    fast = boot(mode)
    steps(fast)
    monkeypatch.setattr(access, "swapin_cached_run", lambda *args: 0)
    slow = boot(mode)
    steps(slow)
    a, b = kernel_dump(fast), kernel_dump(slow)
    assert a == b, "; ".join(diff_dumps(b, a))
    assert_consistent(fast)
