"""Batched do_anonymous_page (mmshell/mm/anon_batch.py), against mm/memory.c.

access_range() takes a run of none PTEs in an existing PTE table in one batch:
the zero page on a read, fresh exclusive order-0 folios on a write, stopping
where the free frames run out.  The module's contract is "exactly the state of
the separate faults".  Each case runs the same machine twice, once with the
batch and once with it switched off (every page its own handle_mm_fault), and
requires the whole machine (mem_map, allocator, LRU, counters, page tables,
rss, swap devices, the record of contents, the trace) to come out the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mm_unit import K, M, RW, assert_consistent, boot, pageout, swapon
from mmshell.mm import access
from mmshell.mm.access import access_range
from mmshell.mm.exit import exit_mmap
from mmshell.mm.config import FailMode, FaultPoint, ThpMode
from mmshell.mm.folio import MemMap
from mmshell.mm.fork import sys_fork
from mmshell.mm.kernel import Kernel
from mmshell.mm.mman import Madv
from mmshell.mm.mmap import sys_mmap
from mmshell.mm.swap_info import SwapKind
from mmshell.mm.userfaultfd import sys_uffd_register


def machine_state(k: Kernel) -> dict[str, Any]:
    """Everything the simulation holds, as plain comparable values."""
    mem = k.mem
    return {
        "mem_map": {name: bytes(getattr(mem, name)) for name in MemMap.ARRAYS},
        "hwm": mem.hwm,
        "free": (bytes(mem.alloc.free_map()), mem.alloc.nr_free),
        "lru": (k.lru.inactive(), k.lru.active()),
        "vmstat": (dict(k.vmstat.events), dict(k.vmstat.mthp), k.vmstat.nr_anon_pages, k.vmstat.nr_anon_thps,
                   k.vmstat.nr_swapcached),
        "mms": {pid: ([(v.start, v.end, int(v.flags), v.pgoff, v.anon_vma, v.anon_vma_chain)
                       for v in mm.vmas],
                      {i: (p.kind, p.flags, p.pfn, p.swp_type, p.swp_offset, p.deposited,
                           p.table.ptes.tolist() if p.table else None) for i, p in mm.pmds.items()},
                      mm.rss_anon, mm.rss_swapents, mm.nr_ptes, mm.on_mmlist)
                for pid, mm in k.mms.items()},
        "swap": [None if si is None else (bytes(si.swap_map), bytes(si.zeromap), bytes(si.zswap),
                                          bytes(si.data), bytes(si.cluster_used))
                 for si in k.swap_info],
        "folio_swap": dict(k.folio_swap),
        "shadow": {pid: {i: c.tolist() for i, c in chunks.items()} for pid, chunks in k.shadow.procs.items()},
        "trace": list(k.trace_log),
        "seq": (k.write_seq, k.next_anon_vma, k.next_pid, k.pte_tables_allocated, dict(k.walk_visits)),
    }


def _thp_never(ram: int = 64 * M) -> Kernel:
    return boot(False, ram=ram, thp=ThpMode.NEVER)


def _mmap(k: Kernel, size: int, pid: int = 1, advice: Madv | None = None) -> int:
    return sys_mmap(k, k.mm(pid), size, RW, advice, None)


def _touch(k: Kernel, start: int, end: int, write: bool, pid: int = 1) -> None:
    access_range(k, k.mm(pid), start, end, write)


def plain(k: Kernel, write: bool) -> None:
    a = _mmap(k, 4 * M)
    _touch(k, a, a + 4 * M, write)


def partial_tables(k: Kernel, write: bool) -> None:
    """Tables partly present (written, zero page), partly swapped out; an unaligned range."""
    swapon(k)
    a = _mmap(k, 6 * M)
    for off in (0, 40 * K, 44 * K, 2 * M + 100 * K, 4 * M - 4 * K):
        _touch(k, a + off, a + off + 8 * K, True)
    _touch(k, a + 1 * M, a + 1 * M + 64 * K, False)
    pageout(k, a + 2 * M, 64 * K)
    _touch(k, a + 12 * K, a + 5 * M + 20 * K, write)
    _touch(k, a, a + 6 * M, not write)


def memory_pressure(k: Kernel, write: bool) -> None:
    """8 MiB of RAM for 12 MiB of pages: the free frames run out in the middle of a run."""
    swapon(k, size=32 * M)
    b = _mmap(k, 100 * K)
    _touch(k, b, b + 100 * K, True)
    a = _mmap(k, 12 * M)
    _touch(k, a + 4 * K, a + 12 * M, write)
    _touch(k, a, a + 12 * M, True)


def processes(k: Kernel, write: bool) -> None:
    """A parent and a child (fork after a partial touch), each touching the other's untouched pages."""
    a = _mmap(k, 4 * M)
    _touch(k, a, a + 1 * M, True)
    _touch(k, a + 1 * M, a + 1 * M + 200 * K, False)
    child = sys_fork(k, k.mm(1)).pid
    b = _mmap(k, 2 * M, pid=child)
    _touch(k, a + 512 * K, a + 3 * M, write, pid=child)
    _touch(k, a, a + 4 * M, write)
    _touch(k, b, b + 2 * M, not write, pid=child)


def zero_page_then_stores(k: Kernel, write: bool) -> None:
    """Loads map the zero page, then stores copy it (do_wp_page), with too few frames for all."""
    swapon(k, size=32 * M)
    b = _mmap(k, 100 * K)
    _touch(k, b, b + 100 * K, True)
    a = _mmap(k, 12 * M)
    _touch(k, a, a + 12 * M, False)
    _touch(k, a + 8 * K, a + 12 * M, write)
    _touch(k, a, a + 12 * M, True)


def fork_then_stores(k: Kernel, write: bool) -> None:
    """Stores to pages shared with a child (copied) or no longer shared (reused), the frames
    running out part-way, pages in the swap cache (a disk device) among them."""
    swapon(k, "disk0", 32 * M, SwapKind.DISK)
    a = _mmap(k, 6 * M)
    _touch(k, a, a + 6 * M, True)
    pageout(k, a + 1 * M, 40 * K)
    _touch(k, a + 1 * M, a + 1 * M + 40 * K, False)      # back through the swap cache
    _touch(k, a + 5 * M, a + 6 * M, False)
    child = sys_fork(k, k.mm(1))
    _touch(k, a + 12 * K, a + 3 * M, write, pid=child.pid)
    _touch(k, a, a + 2 * M, True)
    exit_mmap(k, child)
    _touch(k, a, a + 6 * M, True)


def uffd_registered(k: Kernel, write: bool) -> None:
    a = _mmap(k, 4 * M)
    _touch(k, a + 2 * M, a + 4 * M, False)
    sys_uffd_register(k, k.mm(1), a + 1 * M, 2 * M)
    _touch(k, a, a + 4 * M, write)
    _touch(k, a, a + 4 * M, True)


def thp_fallback(k: Kernel, write: bool) -> None:
    """THP allowed but not used: the allocation fails (fault point), an unaligned VMA, one too small."""
    a = _mmap(k, 6 * M, advice=Madv.MADV_HUGEPAGE)
    k.config.fail[FaultPoint.THP_ALLOC] = FailMode.ON
    _touch(k, a, a + 4 * M, write)
    k.config.fail[FaultPoint.THP_ALLOC] = FailMode.OFF
    _mmap(k, 12 * K)
    b = _mmap(k, 3 * M, advice=Madv.MADV_HUGEPAGE)
    c = _mmap(k, 1 * M, advice=Madv.MADV_HUGEPAGE)
    _touch(k, b, b + 3 * M, write)
    _touch(k, c, c + 1 * M, write)
    _touch(k, a, a + 6 * M, write)


CASES: dict[str, tuple[Callable[[Kernel, bool], None], Callable[[], Kernel]]] = {
    "plain": (plain, _thp_never),
    "partial tables": (partial_tables, _thp_never),
    "memory pressure": (memory_pressure, lambda: _thp_never(ram=8 * M)),
    "processes": (processes, _thp_never),
    "zero page then stores": (zero_page_then_stores, lambda: _thp_never(ram=8 * M)),
    "fork then stores": (fork_then_stores, lambda: _thp_never(ram=8 * M)),
    "uffd registered": (uffd_registered, _thp_never),
    "THP fallback": (thp_fallback, lambda: boot(False)),
}


@pytest.mark.parametrize("write", [False, True], ids=["read", "write"])
@pytest.mark.parametrize("case", list(CASES))
def test_batched_anonymous_faults_equal_one_fault_per_page(case: str, write: bool,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    steps, make = CASES[case]
    batches: list[tuple[int, int]] = []     # (pages, free frames after)
    batch = access.anon_fault_run

    def counting(k: Kernel, *args: Any) -> int:
        n = batch(k, *args)
        batches.append((n, k.mem.alloc.nr_free))
        return n

    monkeypatch.setattr(access, "anon_fault_run", counting)
    batched = make()
    batched.tracing = True
    steps(batched, write)
    assert sum(n for n, _ in batches) > 0
    if case in ("memory pressure", "zero page then stores", "fork then stores"):
        # a batch stopped in the middle of a table where the frames ran out
        assert any(n not in (510, 511) and free == 0 for n, free in batches)

    monkeypatch.setattr(access, "anon_fault_run", lambda *args: 0)
    one_by_one = make()
    one_by_one.tracing = True
    steps(one_by_one, write)
    assert machine_state(batched) == machine_state(one_by_one)
    assert_consistent(batched)
    assert_consistent(one_by_one)
