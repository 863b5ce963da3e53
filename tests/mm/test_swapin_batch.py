"""Batched synchronous swap-in (mmshell/mm/swapin_batch.py), against mm/memory.c do_swap_page.

access_range() takes a run of swap PTEs on a synchronous device in one batch
when each page would take the same do_swap_page() path (count 1, not cached,
exclusive, frames free without reclaim); the module's contract is "exactly the
counters of the separate faults".  Each case here runs the same machine twice:
once through access_range() and once through one handle_mm_fault() per page,
and requires every counter, page table, swap_map byte, rss counter, LRU list
and free frame to come out the same.
"""

from __future__ import annotations

import pytest

from mm_unit import M, THP, assert_consistent, mmap_thp, swapped_thp
from mmshell.mm.access import access_range
from mmshell.mm.fork import sys_fork
from mmshell.mm.kernel import Kernel
from mmshell.mm.memory import handle_mm_fault


def machine(case: str) -> tuple[Kernel, int]:
    """Mainline: a THP paged out to zram as 512 swap PTEs, in the state the case names."""
    k, _, a = swapped_thp(False, ram=8 * M if case == "tight memory" else 64 * M)
    if case == "tight memory":
        mmap_thp(k, 6 * M)                      # 511 frames left: the last page needs reclaim
    elif case == "shared after fork":
        sys_fork(k, k.mm(1))                    # count 2, not exclusive: readahead, no batch
    return k, a


#: The batches access_range takes in each case (the rest are single faults).
BATCHES = {"plain": ["do_swap_page(SWP_SYNCHRONOUS_IO) x512"],
           "tight memory": ["do_swap_page(SWP_SYNCHRONOUS_IO) x511"],
           "shared after fork": []}


def state(k: Kernel) -> tuple:
    tables = {(pid, i): (p.kind, p.pfn, p.swp_offset, p.flags, p.table.ptes.tolist() if p.table else None)
              for pid, mm in k.mms.items() for i, p in mm.pmds.items()}
    return (dict(k.vmstat.events), dict(k.vmstat.mthp), k.vmstat.nr_anon_pages, k.vmstat.nr_swapcached, tables,
            [(mm.rss_anon, mm.rss_swapents, mm.nr_ptes) for mm in k.mms.values()],
            bytes(k.swap_info[0].swap_map) if k.swap_info[0] else None,
            k.lru.inactive(), k.lru.active(), bytes(k.mem.alloc.free_map()))


@pytest.mark.parametrize("write", [False, True], ids=["read", "write"])
@pytest.mark.parametrize("case", ["plain", "tight memory", "shared after fork"])
def test_batched_swapin_equals_one_do_swap_page_per_page(case: str, write: bool) -> None:
    batched, a = machine(case)
    mm = batched.mm(1)
    batched.tracing = True
    access_range(batched, mm, a, a + THP, write)
    runs = [t for t in batched.trace_log if t.startswith("do_swap_page(SWP_SYNCHRONOUS_IO) x")]
    assert runs == BATCHES[case]
    one_by_one, b = machine(case)
    assert b == a
    mm = one_by_one.mm(1)
    vma = mm.find_vma(a)
    assert vma is not None
    for i in range(512):
        handle_mm_fault(one_by_one, mm, vma, a + (i << 12), write)
    assert state(batched) == state(one_by_one)
    assert_consistent(batched)
    assert_consistent(one_by_one)
