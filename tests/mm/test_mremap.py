"""mremap(2) (mmshell/mm/mremap.py; mm/mremap.c move_page_tables, move_huge_pmd).

kernel-semantics.md §3.8: an aligned, whole PMD-level entry moves as one with
its deposited table (move_huge_pmd; the series adds the PMD swap entry, v1
`mremap` test): no split, same slots, same counts.  A misaligned move splits it
first (decision 6: thp_split_pmd +1) and moves the PTEs one by one.
"""

from __future__ import annotations

import pytest

from mm_unit import RW, THP, Counters, assert_consistent, boot, mmap_thp, pmd_at, swapped_thp
from mmshell.mm.errors import MmError
from mmshell.mm.memory import handle_mm_fault
from mmshell.mm.mmap import sys_mmap
from mmshell.mm.mremap import sys_mremap
from mmshell.mm.pgtable import F_SWP_EXCLUSIVE, PmdKind, pmd_pgtable, swp_entry_to_pte
from mmshell.mm.swapops import SwpEntry

MISALIGNED = 0x6000_0000_1000


def swapped():
    k, si, a = swapped_thp()
    return k, si, a


def test_mremap_moves_a_pmd_swap_entry_whole() -> None:
    """move_huge_pmd() of a swap PMD: the entry (0:0x200, exclusive) and its deposit move to the
    new 2 MiB-aligned address; nothing is left at the old one; no counter moves."""
    k, si, a = swapped()
    mm = k.mm(1)
    k.tracing = True
    c = Counters(k)
    new = sys_mremap(k, mm, a, THP, THP, None)
    assert new != a and new % THP == 0
    assert "move_huge_pmd" in k.trace_log and c.moved() == {}
    pmd = pmd_at(k, new)
    assert (pmd.kind, pmd.entry, pmd.flags, pmd.deposited) == (PmdKind.SWAP, SwpEntry(0, 512), F_SWP_EXCLUSIVE, True)
    assert a >> 21 not in mm.pmds
    assert (mm.nr_ptes, mm.rss_swapents, set(si.swap_map[512:1024])) == (1, 512, {1})
    assert_consistent(k)


def test_moved_pmd_swap_entry_faults_back_as_a_thp() -> None:
    """The folio's rmap index follows the VMA's pgoff: the fault at the new place maps a THP."""
    k, _, a = swapped()
    mm = k.mm(1)
    new = sys_mremap(k, mm, a, THP, THP, None)
    vma = mm.find_vma(new)
    assert vma is not None
    handle_mm_fault(k, mm, vma, new + 0x1000, False)
    assert pmd_at(k, new).kind is PmdKind.HUGE and k.vmstat.nr_anon_thps == 1
    assert_consistent(k)


def test_misaligned_mremap_splits_the_pmd_swap_entry_and_moves_ptes() -> None:
    """§3.8: a destination that is not 2 MiB aligned: split first (thp_split_pmd +1), then
    move_ptes moves the 512 swap PTEs as they are, across two destination tables."""
    k, si, a = swapped()
    mm = k.mm(1)
    c = Counters(k)
    new = sys_mremap(k, mm, a, THP, THP, MISALIGNED)
    assert new == MISALIGNED and c.moved() == {"thp_split_pmd": 1}
    first = pmd_pgtable(pmd_at(k, new)).ptes
    second = pmd_pgtable(pmd_at(k, new + THP)).ptes
    assert first[1:].tolist() == [swp_entry_to_pte(0, 512 + i, F_SWP_EXCLUSIVE) for i in range(511)]
    assert second[0] == swp_entry_to_pte(0, 1023, F_SWP_EXCLUSIVE)
    assert (sorted(mm.pmds), mm.nr_ptes) == ([new >> 21, (new >> 21) + 1], 2)
    assert set(si.swap_map[512:1024]) == {1}
    assert_consistent(k)


@pytest.mark.parametrize("pmd_swap", [True, False], ids=["series", "mainline"])
def test_mremap_moves_a_present_thp_whole(pmd_swap: bool) -> None:
    """§3.8 (verified): aligned move of a present THP: no split, same folio."""
    k = boot(pmd_swap)
    a = mmap_thp(k)
    c = Counters(k)
    new = sys_mremap(k, k.mm(1), a, THP, THP, None)
    assert c.moved() == {} and (pmd_at(k, new).kind, pmd_at(k, new).pfn) == (PmdKind.HUGE, 0x200)
    assert_consistent(k)


@pytest.mark.parametrize("new, errno", [(0x6000_3700_0000, "EINVAL"), (0x6000_3710_0000, "EFAULT")])
def test_mremap_checks_the_new_address_before_the_source(new: int, errno: str) -> None:
    """check_mremap_params() refuses a new range overlapping the old one (EINVAL) before
    do_mremap() looks up the source VMA (EFAULT when none is there): kernel fuzz seed 22222
    script 2344, measured EINVAL on 6.18.44."""
    k = boot(False)
    mm = k.mm(1)
    old = 0x6000_3700_1000
    sys_mmap(k, mm, 8 * 1024, RW, None, old)
    sys_mremap(k, mm, old, 8 * 1024, 1 << 20, None)       # moved away: nothing at old now
    before = [(v.start, v.end) for v in mm.vmas]
    with pytest.raises(MmError) as e:
        sys_mremap(k, mm, old, 8 * 1024, 8 * 1024, new)
    assert e.value.errno == errno
    assert [(v.start, v.end) for v in mm.vmas] == before
