"""/proc/PID/pagemap and smaps (mmshell/mm/task_mmu.py; fs/proc/task_mmu.c).

kernel-semantics.md §1.4 and §3.17: for a PMD swap entry pagemap_pmd_range
reports page i at offset base+i, exactly what 512 swap PTEs report in mainline
(swapped bit 62, type in bits 0-4, offset from bit 5, no exclusive bit 56);
smaps counts Swap 2048 kB and SwapPss 2048/k kB when k processes share it
(decision 7).
"""

from __future__ import annotations

import pytest

from mm_unit import THP, assert_consistent, swapped_thp
from mmshell.mm.fork import sys_fork
from mmshell.mm.task_mmu import PagemapEntry, pagemap_read, smaps_range


def swapped_pagemap(pmd_swap: bool) -> list[int]:
    k, _, a = swapped_thp(pmd_swap)
    assert_consistent(k)
    return pagemap_read(k, k.mm(1), a, a + THP)


def test_pagemap_of_a_pmd_swap_entry_equals_mainlines_512_swap_ptes() -> None:
    series, mainline = swapped_pagemap(True), swapped_pagemap(False)
    assert series == mainline
    entries = [PagemapEntry(w) for w in series]
    assert [(e.present, e.swapped, e.exclusive, e.swap_type, e.swap_offset) for e in entries] == \
        [(0, 1, 0, 0, 512 + i) for i in range(512)]
    assert series[0] == (1 << 62) | (512 << 5)


@pytest.mark.parametrize("pmd_swap", [True, False], ids=["series", "mainline"])
def test_smaps_swap_pss_of_a_shared_swapped_thp_is_halved(pmd_swap: bool) -> None:
    """§3.5 (verified for PTEs) and decision 7: after fork each process has Swap 2048 kB,
    SwapPss 1024 kB, Rss 0 and AnonHugePages 0."""
    k, _, a = swapped_thp(pmd_swap)
    before = smaps_range(k, k.mm(1), a, a + THP)
    assert (before["Swap"], before["SwapPss"]) == (2048, 2048)
    sys_fork(k, k.mm(1))
    for pid in (1, 2):
        s = smaps_range(k, k.mm(pid), a, a + THP)
        assert (s["Rss"], s["AnonHugePages"], s["Swap"], s["SwapPss"]) == (0, 0, 2048, 1024)
    assert_consistent(k)
