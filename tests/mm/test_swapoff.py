"""swapoff(2) (mmshell/mm/swapoff.py; mm/swapfile.c try_to_unuse, unuse_pte_range, and the
series' unuse_pmd, patch 8).

kernel-semantics.md §3.12 and §4 F7: a PMD swap entry of the device goes to
unuse_pmd(), which takes the PMD-size folio from the swap cache or reads all
512 slots into a new one and maps the whole PMD (old, read-only, exclusive as
the entry says), so AnonHugePages survives swapoff (v1 `swapoff` test); when
the folio cannot be had, or the cached one is no longer PMD-size, the entry is
split and unuse_pte_range() brings the pages back at order 0.
"""

from __future__ import annotations

import pytest

from mm_unit import Counters, assert_consistent, mmap_thp, pmd_at, swapped_thp
from mmshell.mm.config import FailMode, FaultPoint
from mmshell.mm.constants import HPAGE_PMD_NR
from mmshell.mm.errors import MmError
from mmshell.mm.folio import PG
from mmshell.mm.fork import sys_fork
from mmshell.mm.pgtable import PmdKind, pmd_pgtable, pte_present
from mmshell.mm.swap_info import SwapKind
from mmshell.mm.swapoff import sys_swapoff


def test_unuse_pmd_reads_the_thp_back_whole_and_maps_it_by_pmd() -> None:
    """Patch 8: pswpin +512 and mthp swpin +1 in one read, no fault counted; the PMD is mapped
    old and read-only, the folio exclusive as the entry was; MM_SWAPENTS -512,
    MM_ANONPAGES +512; the device goes away."""
    k, si, a = swapped_thp()
    mm = k.mm(1)
    c = Counters(k)
    sys_swapoff(k, si.name)
    assert c.moved() == {"pswpin": 512, "mthp.swpin": 1, "mthp.nr_anon": 1}
    pmd = pmd_at(k, a)
    assert (pmd.kind, pmd.flags, pmd.deposited) == (PmdKind.HUGE, 0, True)
    assert k.mem.test(pmd.pfn, PG.ANON_EXCLUSIVE) and not k.mem.test(pmd.pfn, PG.SWAPCACHE)
    assert (mm.rss_anon, mm.rss_swapents, k.vmstat.nr_anon_thps, k.vmstat.nr_swapcached) == (512, 0, 1, 0)
    assert k.active_swap() == [] and k.swap_info[0] is None
    assert_consistent(k)


def test_unuse_pmd_maps_the_cached_thp_without_io() -> None:
    """On a disk the THP is still in the swap cache: mapped as it is, no I/O; it leaves the cache."""
    k, si, a = swapped_thp(kind=SwapKind.DISK)
    folio = si.cache[512]
    c = Counters(k)
    sys_swapoff(k, si.name)
    assert c.moved() == {}
    assert (pmd_at(k, a).kind, pmd_at(k, a).pfn) == (PmdKind.HUGE, folio)
    assert k.vmstat.nr_swapcached == 0 and k.mem.test(folio, PG.DIRTY)
    assert_consistent(k)


def test_unuse_pmd_without_pmd_order_memory_falls_back_to_ptes() -> None:
    """F7 (`thp_alloc`): the entry is split (thp_split_pmd +1) and unuse_pte_range() reads the 512
    pages at order 0 with readahead (8-slot windows: swap_ra +7 a window); AnonHugePages 0."""
    k, si, a = swapped_thp()
    k.config.fail[FaultPoint.THP_ALLOC] = FailMode.ONCE
    c = Counters(k)
    sys_swapoff(k, si.name)
    assert c.moved() == {"pswpin": 512, "swap_ra": 448, "thp_split_pmd": 1}
    ptes = pmd_pgtable(pmd_at(k, a)).ptes
    assert all(pte_present(p) for p in ptes)
    assert {k.mem.order[p >> 12] for p in ptes} == {0}
    assert k.vmstat.nr_anon_thps == 0 and k.mm(1).rss_anon == HPAGE_PMD_NR
    assert_consistent(k)


def test_unuse_pmd_falls_back_when_the_cached_folio_is_no_longer_pmd_size() -> None:
    """F5/F7 (`split_race`): the cached THP was split; the entry is split too and each PTE maps
    its own small folio from the cache (no I/O)."""
    k, si, a = swapped_thp(kind=SwapKind.DISK)
    k.config.fail[FaultPoint.SPLIT_RACE] = FailMode.ONCE
    c = Counters(k)
    sys_swapoff(k, si.name)
    moved = c.moved()
    assert moved["thp_split_pmd"] == 1 and moved["thp_split_page"] == 1
    assert "pswpin" not in moved
    assert pmd_at(k, a).kind is PmdKind.TABLE
    assert_consistent(k)


@pytest.mark.parametrize("pmd_swap", [True, False], ids=["series", "mainline"])
def test_swapoff_brings_back_entries_shared_with_a_child(pmd_swap: bool) -> None:
    """try_to_unuse walks every mm on the mmlist; entries shared after fork come back
    non-exclusive in both processes and the device ends with no slot in use."""
    k, si, a = swapped_thp(pmd_swap)
    sys_fork(k, k.mm(1))
    sys_swapoff(k, si.name)
    assert k.mm(1).rss_swapents == k.mm(2).rss_swapents == 0
    assert k.mm(1).rss_anon == k.mm(2).rss_anon == HPAGE_PMD_NR
    assert_consistent(k)


def test_swapoff_without_room_for_the_pages_is_refused() -> None:
    """swapoff_needs(): the swapped-out pages must fit in free memory, else ENOMEM before any
    change (the kernel returns ENOMEM after a partial effect; the simulation refuses first)."""
    k, si, a = swapped_thp(ram=8 << 20)
    b = mmap_thp(k, 6 << 20)                    # three THPs: 511 frames stay free
    assert k.nr_free_frames() < HPAGE_PMD_NR
    with pytest.raises(MmError) as e:
        sys_swapoff(k, si.name)
    assert e.value.errno == "ENOMEM"
    assert pmd_at(k, a).kind is PmdKind.SWAP and k.active_swap() == [si]
    assert pmd_at(k, b).kind is PmdKind.HUGE
    assert_consistent(k)
