"""Reverse mapping and unmapping for reclaim (mmshell/mm/rmap.py; mm/rmap.c and the series).

kernel-semantics.md §3.2 step 5: try_to_unmap() with TTU_SPLIT_HUGE_PMD (mainline)
splits the PMD and turns each PTE into a swap PTE; without it (the series,
patch 12) try_to_unmap_one's PMD branch calls set_pmd_swap_entry(): one PMD
swap entry over the folio's 512 slots, exclusive if the folio was, the deposit
kept.  Decision 1: thp_swpout_pmd counts once per PMD swap entry installed.
Lazyfree (MADV_FREE) folios are discarded without swap (§3.10, measured).
"""

from __future__ import annotations

import pytest

from mm_unit import M, THP, Counters, assert_consistent, boot, mmap_thp, pmd_at, swapon
from mmshell.mm.access import access_range
from mmshell.mm.constants import HPAGE_PMD_NR, SWAP_HAS_CACHE
from mmshell.mm.folio import PG
from mmshell.mm.fork import sys_fork
from mmshell.mm.madvise import sys_madvise
from mmshell.mm.mman import Madv
from mmshell.mm.mmap import sys_munmap
from mmshell.mm.mremap import sys_mremap
from mmshell.mm.pgtable import (F_SOFT_DIRTY, F_SWP_EXCLUSIVE, F_UFFD_WP, PmdKind, pmd_pgtable,
                                swp_entry_to_pte)
from mmshell.mm.rmap import Mapping, rmap_walk_anon, try_to_unmap
from mmshell.mm.swap import free_folio
from mmshell.mm.swap_slots import folio_alloc_swap
from mmshell.mm.swapops import SwpEntry


def thp_in_swap_cache(pmd_swap: bool):
    """One written THP that folio_alloc_swap() put in the swap cache: (kernel, device, addr, pfn)."""
    k = boot(pmd_swap)
    si = swapon(k)
    a = mmap_thp(k)
    pfn = pmd_at(k, a).pfn
    assert folio_alloc_swap(k, pfn)
    return k, si, a, pfn


def test_rmap_walk_anon_finds_every_pmd_mapping_in_pid_order() -> None:
    """rmap_walk_anon(): the parent's and the forked child's PMD mappings of one THP."""
    k = boot()
    a = mmap_thp(k)
    sys_fork(k, k.mm(1))
    maps = rmap_walk_anon(k, pmd_at(k, a).pfn)
    assert [(m.mm.pid, m.addr, m.pmd) for m in maps] == [(1, a, True), (2, a, True)]
    assert all(isinstance(m, Mapping) for m in maps)


def test_try_to_unmap_without_split_installs_a_pmd_swap_entry() -> None:
    """Patch 12 set_pmd_swap_entry(): the PMD becomes swap entry folio->swap (0:0x200) with
    pmd_swp_exclusive (the folio was PageAnonExclusive, which is dropped); each of the 512 slots
    gets count 1 next to its cache bit; MM_ANONPAGES -512, MM_SWAPENTS +512; the deposit stays;
    the mm goes on the swapoff list; thp_swpout_pmd +1 and no thp_split_pmd."""
    k, si, a, pfn = thp_in_swap_cache(True)
    mm = k.mm(1)
    c = Counters(k)
    assert try_to_unmap(k, pfn, split_huge_pmd=False)
    pmd = pmd_at(k, a)
    assert (pmd.kind, pmd.entry, pmd.flags, pmd.deposited) == (PmdKind.SWAP, SwpEntry(0, 512), F_SWP_EXCLUSIVE, True)
    assert set(si.swap_map[512:1024]) == {SWAP_HAS_CACHE | 1}
    assert (mm.rss_anon, mm.rss_swapents, mm.nr_ptes, mm.on_mmlist) == (0, 512, 1, True)
    mem = k.mem
    assert mem.folio_mapcount(pfn) == 0 and not mem.test(pfn, PG.ANON_EXCLUSIVE) and mem.test(pfn, PG.DIRTY)
    assert (k.vmstat.nr_anon_thps, k.vmstat.nr_anon_pages) == (0, 0)
    assert c.moved() == {"thp_swpout_pmd": 1}
    assert_consistent(k)


def test_try_to_unmap_with_split_gives_512_pte_swap_entries() -> None:
    """Mainline TTU_SPLIT_HUGE_PMD: the PMD is split (thp_split_pmd +1) and each PTE becomes
    swap entry folio->swap + i, exclusive; counts 1 each; the deposit became the PTE table."""
    k, si, a, pfn = thp_in_swap_cache(False)
    mm = k.mm(1)
    c = Counters(k)
    assert try_to_unmap(k, pfn, split_huge_pmd=True)
    pmd = pmd_at(k, a)
    assert pmd.kind is PmdKind.TABLE
    assert pmd_pgtable(pmd).ptes.tolist() == [swp_entry_to_pte(0, 512 + i, F_SWP_EXCLUSIVE)
                                              for i in range(HPAGE_PMD_NR)]
    assert set(si.swap_map[512:1024]) == {SWAP_HAS_CACHE | 1}
    assert (mm.rss_anon, mm.rss_swapents, mm.nr_ptes, mm.on_mmlist) == (0, 512, 1, True)
    assert set(k.mem.mapcount[pfn:pfn + HPAGE_PMD_NR]) == {0}
    assert c.moved() == {"thp_split_pmd": 1}
    assert_consistent(k)


@pytest.mark.parametrize("pmd_swap", [True, False], ids=["series", "mainline"])
def test_swap_entries_keep_soft_dirty_and_uffd_wp(pmd_swap: bool) -> None:
    """§3.16: swap-out copies soft-dirty and uffd-wp into the swap entry, PMD or PTE
    (pmd_swp_mksoft_dirty / pte_swp_mkuffd_wp)."""
    k, _, a, pfn = thp_in_swap_cache(pmd_swap)
    pmd_at(k, a).flags |= F_SOFT_DIRTY | F_UFFD_WP
    try_to_unmap(k, pfn, split_huge_pmd=not pmd_swap)
    want = F_SWP_EXCLUSIVE | F_SOFT_DIRTY | F_UFFD_WP
    if pmd_swap:
        assert pmd_at(k, a).flags == want
    else:
        assert {p & 0x1FC for p in pmd_pgtable(pmd_at(k, a)).ptes} == {want}
    assert_consistent(k)


@pytest.mark.parametrize("pmd_swap, moved", [
    (True, {"thp_swpout_pmd": 2}),
    (False, {"thp_split_pmd": 2}),
], ids=["series", "mainline"])
def test_unmap_of_a_thp_shared_with_a_child_gives_each_its_entry(pmd_swap: bool, moved: dict[str, int]) -> None:
    """§3.2 series: a THP PMD-mapped in k processes gives k PMD swap entries with the same base
    offset, each slot at count k, none exclusive (fork cleared PageAnonExclusive); decision 1:
    thp_swpout_pmd +k.  Mainline: k split PMDs."""
    k, si, a, pfn = thp_in_swap_cache(pmd_swap)
    sys_fork(k, k.mm(1))
    c = Counters(k)
    assert try_to_unmap(k, pfn, split_huge_pmd=not pmd_swap)
    assert c.moved() == moved
    assert set(si.swap_map[512:1024]) == {SWAP_HAS_CACHE | 2}
    for pid in (1, 2):
        pmd = pmd_at(k, a, pid)
        if pmd_swap:
            assert (pmd.kind, pmd.entry, pmd.flags) == (PmdKind.SWAP, SwpEntry(0, 512), 0)
        else:
            assert pmd_pgtable(pmd).ptes[7] == swp_entry_to_pte(0, 519)
    assert_consistent(k)


def test_partial_unmap_of_a_thp_queues_it_for_deferred_split() -> None:
    """§3.6 (verified): munmap of half a PMD-mapped THP: thp_split_pmd +1, then the folio is
    partially mapped: thp_deferred_split_page +1, mthp split_deferred +1 and
    nr_anon_partially_mapped +1 (deferred_split_folio)."""
    k = boot()
    a = mmap_thp(k)
    c = Counters(k)
    sys_munmap(k, k.mm(1), a, M)
    assert c.moved() == {"thp_split_pmd": 1, "thp_deferred_split_page": 1, "mthp.split_deferred": 1,
                         "mthp.nr_anon_partially_mapped": 1}
    assert pmd_at(k, a).kind is PmdKind.TABLE
    assert k.mem.test(0x200, PG.PARTIALLY_MAPPED) and k.vmstat.nr_anon_thps == 0
    assert_consistent(k)


def test_rmap_walk_follows_the_anon_vma_tree_order() -> None:
    """anon_vma_interval_tree_foreach(): at one vm_pgoff, VMAs in the order they were linked
    in.  fork links the child's VMA behind the parent's; mremap's copy_vma() links the
    moved VMA behind the child's; a split links both parts anew (the child's, now behind)."""
    k = boot()
    a = mmap_thp(k)
    pfn = pmd_at(k, a).pfn
    parent = k.mm(1)
    child = sys_fork(k, parent)
    assert [m.mm.pid for m in rmap_walk_anon(k, pfn)] == [1, child.pid]
    b = sys_mremap(k, parent, a, THP, THP, None)
    assert [(m.mm.pid, m.vma.start, m.pmd) for m in rmap_walk_anon(k, pfn)] == \
        [(child.pid, a, True), (1, b, True)]
    sys_madvise(k, child, a + THP - 4096, 4096, Madv.MADV_NOHUGEPAGE)    # splits the child's VMA
    assert [(m.mm.pid, m.vma.start, m.pmd) for m in rmap_walk_anon(k, pfn)] == \
        [(1, b, True), (child.pid, a, False), (child.pid, a + THP - 4096, False)]
    assert_consistent(k)


@pytest.mark.parametrize("pmd_swap", [True, False], ids=["series", "mainline"])
def test_try_to_unmap_reaches_a_thp_mapped_across_a_vma_edge(pmd_swap: bool) -> None:
    """Issue 9, defect 6: half of a THP mremapped away leaves one folio PTE-mapped in two VMAs;
    the rmap walk visits both and try_to_unmap_one() unmaps each VMA's part (it skipped a PTE
    run not wholly inside one VMA, so the folio stayed mapped): 256 swap PTEs in each, the
    folio's slots in order."""
    k = boot(pmd_swap)
    swapon(k)
    a = mmap_thp(k)
    mm = k.mm(1)
    b = sys_mremap(k, mm, a + M, M, M, None)
    assert folio_alloc_swap(k, 0x200)
    # the anon_vma tree's order: by vm_pgoff, so a (the folio's first half) before b
    assert [(m.vma.start, m.pmd) for m in rmap_walk_anon(k, 0x200)] == [(a, False), (b, False)]
    assert try_to_unmap(k, 0x200, split_huge_pmd=True)
    assert pmd_pgtable(pmd_at(k, a)).ptes[:256].tolist() == \
        [swp_entry_to_pte(0, 512 + i, F_SWP_EXCLUSIVE) for i in range(256)]
    first = (b >> 12) & 511
    assert pmd_pgtable(pmd_at(k, b)).ptes[first:first + 256].tolist() == \
        [swp_entry_to_pte(0, 768 + i, F_SWP_EXCLUSIVE) for i in range(256)]
    assert not k.mem.folio_mapped(0x200) and mm.rss_swapents == HPAGE_PMD_NR
    assert_consistent(k)


def test_clean_lazyfree_thp_is_discarded_without_swap() -> None:
    """§3.10 + 46_lazyfree_thp_reclaim (measured): MADV_FREE marks the THP lazyfree; unmapping it
    for reclaim splits the PMD (thp_split_pmd +1), clears the 512 PTEs in one batch (no deferred
    split) and keeps the PTE table; no swap is used and the pages read zero."""
    k = boot()
    si = swapon(k)
    a = mmap_thp(k)
    mm = k.mm(1)
    pfn = pmd_at(k, a).pfn
    sys_madvise(k, mm, a, THP, Madv.MADV_FREE)
    assert not k.mem.test(pfn, PG.SWAPBACKED)
    c = Counters(k)
    assert try_to_unmap(k, pfn, split_huge_pmd=True, discard=True)
    assert c.moved() == {"thp_split_pmd": 1}
    pmd = pmd_at(k, a)
    assert pmd.kind is PmdKind.TABLE and pmd_pgtable(pmd).is_empty()
    assert (mm.rss_anon, mm.nr_ptes, si.inuse_pages, k.mem.folio_mapcount(pfn)) == (0, 1, 0, 0)
    assert k.shadow.get(1, a) == 0
    free_folio(k, pfn)              # what shrink_folio_list does next
    assert_consistent(k)


def test_redirtied_lazyfree_thp_is_kept_and_swap_backed_again() -> None:
    """§3.10: a write after MADV_FREE dirties the mapping; the discard finds it dirty, marks the
    folio swap-backed again and keeps it (PTE-mapped after the split, data intact)."""
    k = boot()
    swapon(k)
    a = mmap_thp(k)
    mm = k.mm(1)
    pfn = pmd_at(k, a).pfn
    sys_madvise(k, mm, a, THP, Madv.MADV_FREE)
    access_range(k, mm, a, a + 4096, True)
    assert not try_to_unmap(k, pfn, split_huge_pmd=True, discard=True)
    assert k.mem.test(pfn, PG.SWAPBACKED) and k.mem.folio_mapcount(pfn) == HPAGE_PMD_NR
    assert mm.rss_anon == HPAGE_PMD_NR
    assert_consistent(k)


@pytest.mark.parametrize("seed", range(4))
def test_swap_ptes_of_a_table_run_carry_each_ptes_bits(seed: int) -> None:
    """try_to_unmap_one builds a table's run of swap PTEs at once (lane arithmetic over the
    run's bytes): each entry is still folio->swap + its index, with its own PTE's soft-dirty
    and uffd-wp and its own page's PageAnonExclusive, and a dirty PTE anywhere dirties the folio."""
    import random

    from mmshell.mm.huge_split import split_huge_pmd_locked
    from mmshell.mm.pgtable import F_DIRTY

    rng = random.Random(seed)
    k, _, a, pfn = thp_in_swap_cache(False)
    mm = k.mm(1)
    vma = mm.find_vma(a)
    assert vma is not None
    split_huge_pmd_locked(k, mm, vma, a)
    ptes = pmd_pgtable(pmd_at(k, a)).ptes
    for i in range(HPAGE_PMD_NR):
        ptes[i] = (ptes[i] & ~F_DIRTY) | rng.choice([0, F_SOFT_DIRTY, F_UFFD_WP, F_SOFT_DIRTY | F_UFFD_WP])
        if rng.random() < 0.3:
            k.mem.flags[pfn + i] &= ~PG.ANON_EXCLUSIVE
    dirty = seed % 2 == 1
    ptes[rng.randrange(HPAGE_PMD_NR)] |= F_DIRTY if dirty else 0
    k.mem.clear(pfn, PG.DIRTY)
    want = [swp_entry_to_pte(0, 512 + i, (w & (F_SOFT_DIRTY | F_UFFD_WP))
                             | (F_SWP_EXCLUSIVE if k.mem.flags[pfn + i] & PG.ANON_EXCLUSIVE else 0))
            for i, w in enumerate(ptes)]
    assert try_to_unmap(k, pfn, split_huge_pmd=True)
    assert ptes.tolist() == want
    assert k.mem.test(pfn, PG.DIRTY) == dirty
    assert not any(k.mem.flags[pfn + i] & PG.ANON_EXCLUSIVE for i in range(HPAGE_PMD_NR))
    assert list(k.mem.mapcount[pfn:pfn + HPAGE_PMD_NR]) == [0] * HPAGE_PMD_NR
