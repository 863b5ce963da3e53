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

from mm_unit import RW, Counters, assert_consistent, boot, mmap_thp, pageout, pmd_at, swapon, swapped_thp
from mmshell.mm.access import access_range
from mmshell.mm.config import FailMode, FaultPoint
from mmshell.mm.constants import HPAGE_PMD_NR
from mmshell.mm.errors import MmError
from mmshell.mm.folio import PG
from mmshell.mm.fork import sys_fork
from mmshell.mm.mman import Madv
from mmshell.mm.mmap import sys_mmap, sys_munmap
from mmshell.mm.pgtable import PmdKind, pmd_pgtable, pte_present
from mmshell.mm.swap_info import SWP, SwapKind
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


def fragmented_with_a_swapped_thp(second_device: bool):
    """8 MiB of RAM: a THP paged out to s0, then 6 MiB of small pages below it, one freed, so
    512 frames are free but no 2 MiB block is: (kernel, s0, the THP's address)."""
    k = boot(True, ram=8 << 20)
    si = swapon(k, "s0")
    if second_device:
        swapon(k, "s1")                  # a lower priority than s0
    a = mmap_thp(k)
    pageout(k, a)
    mm = k.mm(1)
    b = sys_mmap(k, mm, 6 << 20, RW, Madv.MADV_NOHUGEPAGE, None)
    access_range(k, mm, b, b + (6 << 20), True)
    sys_munmap(k, mm, b, 4096)
    assert k.nr_free_frames() == HPAGE_PMD_NR and not k.mem.alloc.can_alloc(9)
    return k, si, a


def test_swapoff_never_swaps_out_to_the_device_it_removes() -> None:
    """Issue 9, defect 3: unuse_pmd()'s 2 MiB folio needs direct reclaim, which swapped the small
    pages (already walked past) out to s0 itself: "511 slots still in use".  s0 has lost
    SWP_WRITEOK and left the avail list first, so reclaim finds no swap, the allocation fails
    and the entry falls back to F7 (split, 512 order-0 pages read)."""
    k, si, a = fragmented_with_a_swapped_thp(second_device=False)
    c = Counters(k)
    sys_swapoff(k, si.name)
    moved = c.moved()
    assert (moved["thp_split_pmd"], moved["pswpin"]) == (1, 512) and "pswpout" not in moved
    assert not si.flags & SWP.WRITEOK and k.swap_info[si.type] is None
    assert pmd_at(k, a).kind is PmdKind.TABLE
    assert_consistent(k)


def test_reclaim_during_swapoff_swaps_to_the_other_devices() -> None:
    """With a second device, the reclaim inside unuse_pmd's allocation swaps the small pages out
    to s1 (never to s0, whatever the priorities), a 2 MiB block comes free and the THP is read
    back whole."""
    k, si, a = fragmented_with_a_swapped_thp(second_device=True)
    s1 = k.swap_device("s1")
    c = Counters(k)
    sys_swapoff(k, si.name)
    moved = c.moved()
    assert moved["pswpout"] == s1.inuse_pages > 0 and moved["mthp.swpin"] == 1
    assert pmd_at(k, a).kind is PmdKind.HUGE and k.active_swap() == [s1]
    assert_consistent(k)


def test_unuse_pmd_with_slots_cached_as_small_folios_falls_back() -> None:
    """Decision 13: a child's split copy read a page, readahead cached 8 of the entry's slots as
    order-0 folios: unuse_pmd() must not cache a PMD-size folio over them: F7, each PTE maps
    its page (the cached ones without I/O)."""
    k, si, a = swapped_thp()
    sys_fork(k, k.mm(1))
    sys_munmap(k, k.mm(2), a + (1 << 20), 1 << 20)
    access_range(k, k.mm(2), a + 0x10000, a + 0x11000, False)
    c = Counters(k)
    sys_swapoff(k, si.name)
    moved = c.moved()
    assert moved["thp_split_pmd"] == 1 and "mthp.swpin" not in moved
    assert pmd_at(k, a).kind is PmdKind.TABLE and k.vmstat.nr_swapcached == 0
    assert_consistent(k)
