"""khugepaged and MADV_COLLAPSE (mmshell/mm/khugepaged.py; mm/khugepaged.c).

kernel-semantics.md §3.13 and decision 8: a PMD swap entry is not a collapse
candidate (check_pmd_state: SCAN_PMD_NULL): khugepaged skips it without
counting thp_scan_exceed_swap_pte and MADV_COLLAPSE fails with EINVAL.  In
mainline 512 swap PTEs exceed max_ptes_swap (64) for khugepaged, while
MADV_COLLAPSE ignores the limit and swaps all of them in (verified).
"""

from __future__ import annotations

import pytest

from mm_unit import THP, Counters, assert_consistent, pmd_at, swapped_thp
from mmshell.mm.errors import MmError
from mmshell.mm.khugepaged import khugepaged_scan, madvise_collapse
from mmshell.mm.pgtable import PmdKind


def test_khugepaged_skips_a_pmd_swap_entry_without_counting() -> None:
    k, _, a = swapped_thp(True)
    c = Counters(k)
    assert khugepaged_scan(k) == {"pmd_null": 1}
    assert c.moved() == {} and pmd_at(k, a).kind is PmdKind.SWAP
    assert_consistent(k)


def test_madvise_collapse_of_a_pmd_swap_entry_is_einval() -> None:
    k, _, a = swapped_thp(True)
    c = Counters(k)
    with pytest.raises(MmError) as e:
        madvise_collapse(k, k.mm(1), a, a + THP)
    assert e.value.errno == "EINVAL"
    assert c.moved() == {} and pmd_at(k, a).kind is PmdKind.SWAP
    assert_consistent(k)


def test_khugepaged_refuses_512_swap_ptes_past_max_ptes_swap() -> None:
    """§3.13 (verified): thp_scan_exceed_swap_pte +1 per scan, no collapse."""
    k, _, a = swapped_thp(False)
    c = Counters(k)
    assert khugepaged_scan(k) == {"exceed_swap_pte": 1}
    assert khugepaged_scan(k) == {"exceed_swap_pte": 1}
    assert c.moved() == {"thp_scan_exceed_swap_pte": 2}
    assert pmd_at(k, a).kind is PmdKind.TABLE
    assert_consistent(k)


def test_madvise_collapse_swaps_in_512_ptes_and_installs_a_thp() -> None:
    """§3.13 (verified, zram): pswpin +512, pgmajfault +512, thp_collapse_alloc +1, swap freed,
    a PMD-mapped THP."""
    k, si, a = swapped_thp(False)
    c = Counters(k)
    madvise_collapse(k, k.mm(1), a, a + THP)
    moved = c.moved()
    assert {n: moved[n] for n in ("pswpin", "pgmajfault", "thp_collapse_alloc")} == \
        {"pswpin": 512, "pgmajfault": 512, "thp_collapse_alloc": 1}
    assert pmd_at(k, a).kind is PmdKind.HUGE and si.inuse_pages == 0 and k.vmstat.nr_anon_thps == 1
    assert_consistent(k)
