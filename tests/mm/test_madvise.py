"""madvise(2) (mmshell/mm/madvise.py; mm/madvise.c and the series' patch 9).

kernel-semantics.md §3.2 (PAGEOUT / COLD: a partly covered THP is split, a
non-present PMD is skipped), §3.9 (DONTNEED frees emptied PTE tables:
CONFIG_PT_RECLAIM), §3.10 (MADV_FREE: swap entries released; with the series a
whole PMD swap entry is cleared with its deposit, so the next read maps the
huge zero page, where mainline maps 4 KiB zero pages under the kept table).
"""

from __future__ import annotations

import pytest

from mm_unit import M, THP, Counters, assert_consistent, boot, mmap_thp, pmd_at, swapon, swapped_thp
from mmshell.mm.errors import MmError
from mmshell.mm.madvise import sys_madvise
from mmshell.mm.memory import handle_mm_fault
from mmshell.mm.mman import Madv
from mmshell.mm.pgtable import PmdKind, pmd_pgtable


def read(k, addr: int) -> None:
    mm = k.mm(1)
    vma = mm.find_vma(addr)
    assert vma is not None
    handle_mm_fault(k, mm, vma, addr, False)


@pytest.mark.parametrize("pmd_swap", [True, False], ids=["series", "mainline"])
def test_pageout_of_half_a_thp_splits_it_and_swaps_256_pages(pmd_swap: bool) -> None:
    """§3.2 (verified): PAGEOUT of the first 1 MiB: split_folio() (thp_split_pmd +1,
    thp_split_page +1, mthp split +1), pswpout +256 at order 0, no thp_swpout, both worlds."""
    k = boot(pmd_swap)
    si = swapon(k)
    a = mmap_thp(k)
    c = Counters(k)
    sys_madvise(k, k.mm(1), a, M, Madv.MADV_PAGEOUT)
    assert c.moved() == {"thp_split_pmd": 1, "thp_split_page": 1, "mthp.split": 1, "mthp.nr_anon": -1,
                         "pswpout": 256, "pgfree": 256}
    assert si.inuse_pages == 256 and pmd_at(k, a).kind is PmdKind.TABLE
    assert_consistent(k)


def test_cold_deactivates_a_whole_thp_without_splitting_and_splits_a_partial_one() -> None:
    """§3.2 (verified): COLD of the whole THP: no split; COLD of half: thp_split_pmd +1,
    thp_split_page +1."""
    k = boot()
    a = mmap_thp(k)
    k.lru.activate(0x200)
    c = Counters(k)
    sys_madvise(k, k.mm(1), a, THP, Madv.MADV_COLD)
    assert c.moved() == {"pgdeactivate": 512}
    assert pmd_at(k, a).kind is PmdKind.HUGE and k.lru.is_inactive(0x200)
    sys_madvise(k, k.mm(1), a, M, Madv.MADV_COLD)
    assert {n: v for n, v in c.moved().items() if n.startswith("thp_")} == {"thp_split_pmd": 1, "thp_split_page": 1}
    assert_consistent(k)


def test_pageout_and_cold_skip_a_pmd_swap_entry() -> None:
    """Patch 9 lists madvise_cold_or_pageout_pte_range among the walkers that skip a swap PMD."""
    k, _, a = swapped_thp()
    c = Counters(k)
    sys_madvise(k, k.mm(1), a, THP, Madv.MADV_PAGEOUT)
    sys_madvise(k, k.mm(1), a, THP, Madv.MADV_COLD)
    assert c.moved() == {} and pmd_at(k, a).kind is PmdKind.SWAP
    assert_consistent(k)


def test_free_of_a_whole_pmd_swap_entry_clears_it_and_the_next_read_maps_the_huge_zero_page() -> None:
    """§3.10 series (patch 9, v1 madvise_free test): the 512 slots are released, the PMD and its
    deposit go; the next read maps the huge zero page."""
    k, si, a = swapped_thp(True)
    mm = k.mm(1)
    c = Counters(k)
    sys_madvise(k, mm, a, THP, Madv.MADV_FREE)
    assert c.moved() == {}
    assert (a >> 21 in mm.pmds, si.inuse_pages, mm.nr_ptes, mm.rss_swapents) == (False, 0, 0, 0)
    read(k, a)
    assert pmd_at(k, a).kind is PmdKind.ZERO
    assert_consistent(k)


def test_free_of_pte_swap_entries_keeps_the_table_and_reads_4k_zero_pages() -> None:
    """§3.10 mainline (verified): slots released, PTEs cleared, the PTE table stays, so the next
    read maps the 4 KiB zero page, not the huge zero page."""
    k, si, a = swapped_thp(False)
    mm = k.mm(1)
    sys_madvise(k, mm, a, THP, Madv.MADV_FREE)
    assert (si.inuse_pages, mm.nr_ptes) == (0, 1) and pmd_pgtable(pmd_at(k, a)).is_empty()
    read(k, a)
    assert pmd_at(k, a).kind is PmdKind.TABLE and k.huge_zero_pfn is None
    assert_consistent(k)


@pytest.mark.parametrize("pmd_swap", [True, False], ids=["series", "mainline"])
def test_dontneed_of_a_swapped_thp_frees_the_slots_and_the_table(pmd_swap: bool) -> None:
    """§3.9 + CONFIG_PT_RECLAIM (verified): the slots are freed and the emptied PTE table too, so
    the PMD is none and the next read maps the huge zero page."""
    k, si, a = swapped_thp(pmd_swap)
    mm = k.mm(1)
    sys_madvise(k, mm, a, THP, Madv.MADV_DONTNEED)
    assert (a >> 21 in mm.pmds, si.inuse_pages, mm.nr_ptes) == (False, 0, 0)
    read(k, a)
    assert pmd_at(k, a).kind is PmdKind.ZERO
    assert_consistent(k)


def test_madvise_refusals() -> None:
    """An unaligned start is EINVAL; a range with nothing mapped is ENOMEM.  (An advice the
    simulation does not implement has no Madv value: the language refuses its word.)"""
    k = boot()
    a = mmap_thp(k)
    mm = k.mm(1)
    for start, length, errno in [(a + 1, 4096, "EINVAL"), (a + THP, 4096, "ENOMEM")]:
        with pytest.raises(MmError) as e:
            sys_madvise(k, mm, start, length, Madv.MADV_COLD)
        assert e.value.errno == errno
    assert_consistent(k)
