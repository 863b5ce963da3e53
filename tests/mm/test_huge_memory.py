"""PMD-level THP operations (mmshell/mm/huge_memory.py; mm/huge_memory.c and the series).

kernel-semantics.md §3.1 (THP fault, huge zero page), §3.3 (the series'
do_huge_pmd_swap_page, patch 11), §3.4 (do_huge_pmd_wp_page), §3.15 (splitting
a PMD swap entry, patch 6), §4 F3/F5/F9 and decisions 2, 3, 6 and 11-13.
"""

from __future__ import annotations

import pytest

from mm_unit import THP, RW, Counters, assert_consistent, boot, mmap_thp, pageout, pmd_at, pte_at, swapon, vma_at, swapped_thp
from mmshell.mm.config import FailMode, FaultPoint, ThpMode
from mmshell.mm.constants import HPAGE_PMD_NR, SWAP_HAS_CACHE
from mmshell.mm.folio import PG
from mmshell.mm.exit import exit_mmap
from mmshell.mm.fork import sys_fork
from mmshell.mm.huge_memory import thp_vma_allowable
from mmshell.mm.huge_split import split_huge_pmd_locked
from mmshell.mm.memory import Fault, handle_mm_fault
from mmshell.mm.mman import Madv
from mmshell.mm.mmap import sys_mmap, sys_munmap
from mmshell.mm.pgtable import (F_DIRTY, F_SOFT_DIRTY, F_SPECIAL, F_SWP_EXCLUSIVE, F_UFFD_WP, F_WRITE, F_YOUNG,
                                PmdKind, mk_pte, pmd_pgtable, pte_present, swp_entry_to_pte)
from mmshell.mm.swap_info import SwapKind
from mmshell.mm.vma import VM


def fault(k, addr: int, write: bool, pid: int = 1) -> Fault:
    """handle_mm_fault() at addr in pid, in the VMA that holds it."""
    return handle_mm_fault(k, k.mm(pid), vma_at(k, addr, pid), addr, write)


# -- do_huge_pmd_anonymous_page / huge zero page / do_huge_pmd_wp_page --------------------------------

def test_thp_write_fault_maps_an_exclusive_writable_dirty_thp() -> None:
    """§3.1 (verified): thp_fault_alloc +1, mthp anon_fault_alloc +1 and nr_anon +1,
    nr_anon_transparent_hugepages +1, MM_ANONPAGES +512, one deposited table."""
    k = boot()
    mm = k.mm(1)
    a = sys_mmap(k, mm, THP, RW, Madv.MADV_HUGEPAGE, None)
    c = Counters(k)
    assert fault(k, a + 0x5000, True) is Fault.DONE
    pmd = pmd_at(k, a)
    assert (pmd.kind, pmd.pfn, pmd.flags, pmd.deposited) == (PmdKind.HUGE, 0x200, F_WRITE | F_DIRTY | F_YOUNG, True)
    assert c.moved() == {"pgfault": 1, "thp_fault_alloc": 1, "mthp.anon_fault_alloc": 1, "mthp.nr_anon": 1}
    assert (mm.rss_anon, mm.nr_ptes, k.vmstat.nr_anon_thps, k.vmstat.nr_anon_pages) == (512, 1, 1, 512)
    assert k.mem.test(0x200, PG.ANON_EXCLUSIVE) and k.mem.entire_mapcount[0x200] == 1
    assert_consistent(k)


def test_thp_read_fault_maps_the_huge_zero_page_allocated_once() -> None:
    """§3.1: a read fault with use_zero_page maps the huge zero page (young, not writable)
    with a deposit; thp_zero_page_alloc counts only the first allocation since boot."""
    k = boot()
    mm = k.mm(1)
    a = sys_mmap(k, mm, THP, RW, Madv.MADV_HUGEPAGE, None)
    b = sys_mmap(k, mm, THP, RW, Madv.MADV_HUGEPAGE, None)
    c = Counters(k)
    fault(k, a, False)
    fault(k, b, False)
    assert c.moved() == {"pgfault": 2, "thp_zero_page_alloc": 1}
    assert pmd_at(k, a).kind is PmdKind.ZERO and pmd_at(k, a).pfn == pmd_at(k, b).pfn == k.huge_zero_pfn
    assert pmd_at(k, a).flags == F_YOUNG and mm.rss_anon == 0 and mm.nr_ptes == 2
    assert_consistent(k)


def test_write_to_the_huge_zero_page_allocates_a_thp() -> None:
    """§3.4: do_huge_zero_wp_pmd() replaces the huge zero PMD by a new THP (thp_fault_alloc +1);
    the zero PMD's deposit goes with it."""
    k = boot()
    mm = k.mm(1)
    a = sys_mmap(k, mm, THP, RW, Madv.MADV_HUGEPAGE, None)
    fault(k, a, False)
    c = Counters(k)
    fault(k, a, True)
    assert pmd_at(k, a).kind is PmdKind.HUGE and mm.nr_ptes == 1
    assert c.moved() == {"pgfault": 1, "thp_fault_alloc": 1, "mthp.anon_fault_alloc": 1, "mthp.nr_anon": 1}
    assert_consistent(k)


@pytest.mark.parametrize("point, moved", [
    (FaultPoint.THP_ALLOC, {"thp_fault_fallback": 1, "mthp.anon_fault_fallback": 1}),
    (FaultPoint.MEMCG_CHARGE, {"thp_fault_fallback": 1, "thp_fault_fallback_charge": 1,
                               "mthp.anon_fault_fallback": 1, "mthp.anon_fault_fallback_charge": 1}),
])
def test_thp_fault_fallback_maps_one_small_page(point: FaultPoint, moved: dict[str, int]) -> None:
    """§3.1: a failed PMD-order allocation (or its charge) counts the fallback, then
    do_anonymous_page maps one 4 KiB page under a new PTE table."""
    k = boot()
    mm = k.mm(1)
    a = sys_mmap(k, mm, THP, RW, Madv.MADV_HUGEPAGE, None)
    k.config.fail[point] = FailMode.ONCE
    c = Counters(k)
    fault(k, a + 0x5000, True)
    assert c.moved() == {"pgfault": 1, **moved}
    assert pmd_at(k, a).kind is PmdKind.TABLE and pte_present(pte_at(k, a + 0x5000))
    assert mm.rss_anon == 1 and k.vmstat.nr_anon_thps == 0
    assert_consistent(k)


def test_ineligible_vma_takes_the_pte_path_without_a_fallback_count() -> None:
    """§3.1: THP `madvise` and no MADV_HUGEPAGE: not PMD-THP eligible; no thp_fault_fallback."""
    k = boot(thp=ThpMode.MADVISE)
    mm = k.mm(1)
    a = sys_mmap(k, mm, THP, RW, None, None)
    assert not thp_vma_allowable(k, vma_at(k, a), a)
    c = Counters(k)
    fault(k, a, True)
    assert c.moved() == {"pgfault": 1}
    assert pmd_at(k, a).kind is PmdKind.TABLE
    assert_consistent(k)


def test_write_after_the_child_exited_reuses_the_thp() -> None:
    """§3.4 (verified): fork write-protected the parent's PMD and cleared PageAnonExclusive; once
    the child exited the parent's write finds the folio mapped once, makes it exclusive again
    and reuses it: no split, pgreuse +1."""
    k = boot()
    a = mmap_thp(k)
    exit_mmap(k, sys_fork(k, k.mm(1)))
    assert not pmd_at(k, a).flags & F_WRITE and not k.mem.test(0x200, PG.ANON_EXCLUSIVE)
    c = Counters(k)
    fault(k, a, True)
    assert pmd_at(k, a).flags & (F_WRITE | F_DIRTY) == F_WRITE | F_DIRTY
    assert k.mem.test(0x200, PG.ANON_EXCLUSIVE)
    assert c.moved() == {"pgfault": 1, "pgreuse": 1}
    assert_consistent(k)


def test_write_to_a_thp_shared_with_a_child_splits_the_pmd_and_copies_4k() -> None:
    """§3.4 (verified): after fork a child write splits the child's PMD (thp_split_pmd +1) and
    wp_page_copy() copies one 4 KiB page; the parent keeps its PMD; 2 MiB copies never happen."""
    k = boot()
    a = mmap_thp(k)
    sys_fork(k, k.mm(1))
    c = Counters(k)
    fault(k, a + 0x5000, True, pid=2)
    assert c.moved() == {"pgfault": 1, "thp_split_pmd": 1}
    assert pmd_at(k, a, 2).kind is PmdKind.TABLE and pmd_at(k, a, 1).kind is PmdKind.HUGE
    assert pte_at(k, a + 0x5000, 2) >> 12 != 0x205 and pte_at(k, a + 0x4000, 2) >> 12 == 0x204
    assert k.vmstat.nr_anon_thps == 1
    assert_consistent(k)


# -- the series: do_huge_pmd_swap_page ---------------------------------------------------------------

def test_pmd_swap_fault_brings_back_2mib_in_one_fault_on_zram() -> None:
    """Patch 11 + decision 2: a read fault anywhere in a PMD swap entry on zram reads all 512
    slots into one THP (pswpin +512, mthp swpin +1, pgmajfault +1), maps it by PMD, writable
    because the entry was exclusive (clean: a read), and frees the 512 slots at once."""
    k, si, a = swapped_thp()
    mm = k.mm(1)
    c = Counters(k)
    assert fault(k, a + 0x5000, False) is Fault.MAJOR
    pmd = pmd_at(k, a)
    assert (pmd.kind, pmd.flags, pmd.deposited) == (PmdKind.HUGE, F_WRITE | F_YOUNG, True)
    assert c.moved() == {"pgfault": 1, "pgmajfault": 1, "pswpin": 512, "mthp.swpin": 1, "mthp.nr_anon": 1}
    assert (mm.rss_anon, mm.rss_swapents, mm.nr_ptes) == (512, 0, 1)
    assert (si.inuse_pages, k.vmstat.nr_swapcached, k.vmstat.nr_anon_thps) == (0, 0, 1)
    assert k.mem.test(pmd.pfn, PG.ANON_EXCLUSIVE) and not k.mem.test(pmd.pfn, PG.SWAPCACHE)
    assert_consistent(k)


def test_pmd_swap_write_fault_maps_the_thp_dirty() -> None:
    k, _, a = swapped_thp()
    fault(k, a, True)
    assert pmd_at(k, a).flags == F_WRITE | F_DIRTY | F_YOUNG
    assert_consistent(k)


def test_pmd_swap_fault_on_a_disk_maps_the_cached_thp_and_keeps_it_cached() -> None:
    """Decision 2: on an asynchronous device the THP is still in the swap cache: no I/O, no
    major fault; the slots stay allocated, cache only, until reclaim frees the folio."""
    k, si, a = swapped_thp(kind=SwapKind.DISK)
    folio = k.mem.folio_of(si.cache[512])
    c = Counters(k)
    assert fault(k, a, False) is Fault.DONE
    assert c.moved() == {"pgfault": 1}
    assert pmd_at(k, a).kind is PmdKind.HUGE and pmd_at(k, a).pfn == folio
    assert set(si.swap_map[512:1024]) == {SWAP_HAS_CACHE} and si.inuse_pages == 512
    assert k.vmstat.nr_swapcached == 512
    assert_consistent(k)


def test_pmd_swap_fault_frees_the_cache_when_swap_is_full() -> None:
    """should_try_to_free_swap(): vm_swap_full() (512 of 1023 slots used) frees the cached THP's
    slots as soon as it is mapped (folio_free_swap), even on a disk."""
    k = boot()
    si = swapon(k, "disk0", 4 << 20, SwapKind.DISK)
    a = mmap_thp(k)
    pageout(k, a)
    fault(k, a, False)
    assert (si.inuse_pages, k.vmstat.nr_swapcached) == (0, 0)
    assert k.mem.test(pmd_at(k, a).pfn, PG.DIRTY)
    assert_consistent(k)


def test_pmd_swap_fault_keeps_uffd_wp_and_maps_read_only() -> None:
    """§3.16 series: do_huge_pmd_swap_page restores uffd-wp (and soft-dirty) from the swap PMD and
    maps the THP read-only while uffd-wp is armed, exclusive or not."""
    k, _, a = swapped_thp()
    pmd_at(k, a).flags |= F_UFFD_WP | F_SOFT_DIRTY
    fault(k, a, False)
    assert (pmd_at(k, a).kind, pmd_at(k, a).flags) == (PmdKind.HUGE, F_UFFD_WP | F_SOFT_DIRTY | F_YOUNG)
    assert k.mem.test(pmd_at(k, a).pfn, PG.ANON_EXCLUSIVE)
    assert_consistent(k)


@pytest.mark.parametrize("point, stats", [
    (FaultPoint.THP_ALLOC, {"mthp.swpin_fallback": 1}),
    (FaultPoint.MEMCG_CHARGE, {"mthp.swpin_fallback": 1, "mthp.swpin_fallback_charge": 1}),
])
def test_pmd_swap_fault_falls_back_to_ptes_when_the_pmd_folio_cannot_be_had(point: FaultPoint,
                                                                             stats: dict[str, int]) -> None:
    """F3 + decisions 3 (revised) and 6: the PMD-order folio (or its charge) fails: the entry is
    split into 512 exclusive swap PTEs (thp_split_pmd +1, mthp swpin_fallback +1, and for a
    charge failure swpin_fallback_charge +1 as well, as mainline's alloc_swap_folio() counts
    both), then do_swap_page brings back only the faulting page (zram bypass: pswpin +1)."""
    k, si, a = swapped_thp()
    mm = k.mm(1)
    k.config.fail[point] = FailMode.ONCE
    c = Counters(k)
    assert fault(k, a + 0x5000, False) is Fault.MAJOR
    assert c.moved() == {"pgfault": 1, "pgmajfault": 1, "pswpin": 1, "thp_split_pmd": 1, **stats}
    ptes = pmd_pgtable(pmd_at(k, a)).ptes
    assert pte_present(ptes[5])
    assert [ptes[i] for i in range(HPAGE_PMD_NR) if i != 5] == \
        [swp_entry_to_pte(0, 512 + i, F_SWP_EXCLUSIVE) for i in range(HPAGE_PMD_NR) if i != 5]
    assert (mm.rss_anon, mm.rss_swapents, mm.nr_ptes, si.inuse_pages) == (1, 511, 1, 511)
    assert_consistent(k)


def test_pmd_swap_fault_splits_when_the_cached_folio_is_no_longer_pmd_size() -> None:
    """F5: the cached THP was split (deferred_split_scan / memory_failure: `split_race`) before
    the fault locked it: split the entry, then the PTE path finds its small folio in the cache
    (no I/O)."""
    k, si, a = swapped_thp(kind=SwapKind.DISK)
    k.config.fail[FaultPoint.SPLIT_RACE] = FailMode.ONCE
    c = Counters(k)
    assert fault(k, a + 0x5000, False) is Fault.DONE
    moved = c.moved()
    assert {n: moved[n] for n in ("pgfault", "thp_split_pmd", "thp_split_page")} == \
        {"pgfault": 1, "thp_split_pmd": 1, "thp_split_page": 1}
    assert "pswpin" not in moved and "pgmajfault" not in moved
    assert pmd_at(k, a).kind is PmdKind.TABLE and pte_present(pte_at(k, a + 0x5000))
    assert k.mem.order[pte_at(k, a + 0x5000) >> 12] == 0
    assert_consistent(k)


def test_pmd_swap_fault_split_race_counts_mthp_swpin_fallback() -> None:
    """Decision 3 (kernel-semantics.md, 'PMD swap-in fallback (F3, F5)'): mthp swpin_fallback +1."""
    k, _, a = swapped_thp(kind=SwapKind.DISK)
    k.config.fail[FaultPoint.SPLIT_RACE] = FailMode.ONCE
    c = Counters(k)
    fault(k, a + 0x5000, False)
    assert c.moved().get("mthp.swpin_fallback") == 1


def _takes_the_pte_path(k, a: int) -> None:
    """Decision 3's fallback seen from one read fault at a+0x5000 on zram: the entry split
    (thp_split_pmd +1), mthp swpin_fallback +1, one 4 KiB swap-in; 511 swap PTEs stay."""
    c = Counters(k)
    assert fault(k, a + 0x5000, False) is Fault.MAJOR
    assert c.moved() == {"pgfault": 1, "pgmajfault": 1, "pswpin": 1, "thp_split_pmd": 1, "mthp.swpin_fallback": 1}
    assert pmd_at(k, a).kind is PmdKind.TABLE and pte_present(pte_at(k, a + 0x5000))
    assert k.mm(1).rss_swapents == HPAGE_PMD_NR - 1
    assert_consistent(k)


@pytest.mark.parametrize("policy", ["nohugepage", "never"])
def test_pmd_swap_fault_where_a_thp_is_no_longer_allowed_falls_back(policy: str) -> None:
    """Decision 11: MADV_NOHUGEPAGE (or `thp never`) after the swap-out: the kernel allocates no
    THP where its policy forbids one (thp_vma_allowable_orders() before a large swap-in folio)."""
    k, _, a = swapped_thp()
    if policy == "never":
        k.config.thp = ThpMode.NEVER
    else:
        vma_at(k, a).flags = (vma_at(k, a).flags | VM.NOHUGEPAGE) & ~VM.HUGEPAGE
    _takes_the_pte_path(k, a)


def test_pmd_swap_fault_maps_a_cached_thp_whatever_the_policy() -> None:
    """Decisions 11 and 12 stop only a new PMD-size folio: a THP still in the swap cache (disk)
    needs no allocation and no read, and is mapped by the PMD as it is."""
    k, _, a = swapped_thp(kind=SwapKind.DISK)
    k.config.thp = ThpMode.NEVER
    k.zswap_ever_enabled = True
    c = Counters(k)
    fault(k, a + 0x5000, False)
    assert c.moved() == {"pgfault": 1}
    assert pmd_at(k, a).kind is PmdKind.HUGE
    assert_consistent(k)


def test_pmd_swap_fault_after_zswap_was_enabled_falls_back() -> None:
    """Decision 12 (issue 9, defect 4): zswap enabled after the entry was installed makes
    zswap_never_enabled() false; zswap_load() cannot fill a large folio: split, one 4 KiB read."""
    k, _, a = swapped_thp()
    k.config.zswap = k.zswap_ever_enabled = True
    _takes_the_pte_path(k, a)


def test_pmd_swap_fault_with_slots_cached_as_small_folios_falls_back() -> None:
    """Decision 13 (issue 9, defect 1): a child's split copy read a page of the entry, and
    readahead cached 8 of its slots as order-0 folios; the parent's fault must not cache a
    PMD-size folio over them (it did, with only the first slot looked up): split, PTE path,
    which finds its page in the cache (no I/O, swap_ra_hit when readahead brought it)."""
    k, si, a = swapped_thp()
    sys_fork(k, k.mm(1))
    sys_munmap(k, k.mm(2), a + (1 << 20), 1 << 20)
    fault(k, a + 0x10000, False, pid=2)            # slot 0x210: readahead caches 0x210..0x217
    assert sorted(si.cache) == list(range(0x210, 0x218))
    c = Counters(k)
    fault(k, a + 0x11000, False)                     # the parent's page at slot 0x211
    assert c.moved() == {"pgfault": 1, "thp_split_pmd": 1, "mthp.swpin_fallback": 1, "swap_ra_hit": 1}
    assert pmd_at(k, a).kind is PmdKind.TABLE and k.mem.order[pte_at(k, a + 0x11000) >> 12] == 0
    assert k.vmstat.nr_swapcached == 8
    assert_consistent(k)


def test_write_fault_on_a_shared_pmd_swap_entry_splits_and_copies_4k() -> None:
    """F9: after fork both PMD swap entries are non-exclusive; a child write brings the THP back
    read-only (pswpin +512), then do_huge_pmd_wp_page cannot reuse it (the parent still holds
    the slots, the folio stays cached) and splits (thp_split_pmd +1) for a 4 KiB copy."""
    k, si, a = swapped_thp()
    sys_fork(k, k.mm(1))
    c = Counters(k)
    fault(k, a + 0x5000, True, pid=2)
    assert c.moved() == {"pgfault": 1, "pgmajfault": 1, "pswpin": 512, "mthp.swpin": 1, "mthp.nr_anon": 1,
                         "thp_split_pmd": 1}
    assert pmd_at(k, a, 1).kind is PmdKind.SWAP and pmd_at(k, a, 2).kind is PmdKind.TABLE
    assert pte_at(k, a + 0x5000, 2) & (F_WRITE | F_DIRTY) == F_WRITE | F_DIRTY
    assert not pte_at(k, a + 0x4000, 2) & F_WRITE
    assert k.vmstat.nr_swapcached == 512 and set(si.swap_map[512:1024]) == {SWAP_HAS_CACHE | 1}
    assert_consistent(k)


# -- __split_huge_pmd_locked ---------------------------------------------------------------------------

def test_split_of_a_pmd_swap_entry_gives_512_pte_swap_entries() -> None:
    """§3.15 (patch 6) + decision 6: the deposited table is withdrawn and filled with (type,
    base+i) carrying the entry's exclusive, soft-dirty and uffd-wp bits; no count, rss or folio
    changes; thp_split_pmd +1; nr_anon_transparent_hugepages unchanged."""
    k, si, a = swapped_thp()
    mm = k.mm(1)
    pmd_at(k, a).flags |= F_SOFT_DIRTY | F_UFFD_WP
    before = bytes(si.swap_map)
    c = Counters(k)
    split_huge_pmd_locked(k, mm, vma_at(k, a), a)
    pmd = pmd_at(k, a)
    assert (pmd.kind, pmd.deposited) == (PmdKind.TABLE, False)
    bits = F_SWP_EXCLUSIVE | F_SOFT_DIRTY | F_UFFD_WP
    assert pmd_pgtable(pmd).ptes.tolist() == [swp_entry_to_pte(0, 512 + i, bits) for i in range(HPAGE_PMD_NR)]
    assert c.moved() == {"thp_split_pmd": 1}
    assert bytes(si.swap_map) == before
    assert (mm.rss_swapents, mm.nr_ptes, k.vmstat.nr_anon_thps) == (512, 1, 0)
    assert_consistent(k)


def test_split_of_a_present_thp_pmd_gives_512_ptes_of_the_same_folio() -> None:
    """§3.2 step 5: __split_huge_pmd_locked() on a present THP: 512 PTEs inheriting
    write/dirty/young, PageAnonExclusive copied to every page, entire mapcount -> per-page
    mapcounts, nr_anon_transparent_hugepages -1; the folio itself stays order 9."""
    k = boot()
    a = mmap_thp(k)
    mm = k.mm(1)
    c = Counters(k)
    split_huge_pmd_locked(k, mm, vma_at(k, a), a)
    ptes = pmd_pgtable(pmd_at(k, a)).ptes
    assert ptes.tolist() == [mk_pte(0x200 + i, F_WRITE | F_DIRTY | F_YOUNG) for i in range(HPAGE_PMD_NR)]
    mem = k.mem
    assert mem.entire_mapcount[0x200] == 0 and set(mem.mapcount[0x200:0x400]) == {1}
    assert all(mem.flags[p] & PG.ANON_EXCLUSIVE for p in range(0x200, 0x400))
    assert mem.order[0x200] == 9
    assert c.moved() == {"thp_split_pmd": 1}
    assert (k.vmstat.nr_anon_thps, k.vmstat.nr_anon_pages, mm.rss_anon, mm.nr_ptes) == (0, 512, 512, 1)
    assert_consistent(k)


def test_split_of_the_huge_zero_pmd_maps_the_small_zero_page() -> None:
    k = boot()
    mm = k.mm(1)
    a = sys_mmap(k, mm, THP, RW, Madv.MADV_HUGEPAGE, None)
    fault(k, a, False)
    split_huge_pmd_locked(k, mm, vma_at(k, a), a)
    assert set(pmd_pgtable(pmd_at(k, a)).ptes) == {mk_pte(k.zero_pfn, F_SPECIAL | F_YOUNG)}
    assert mm.nr_ptes == 1 and mm.rss_anon == 0
    assert_consistent(k)


# -- zap_huge_pmd ------------------------------------------------------------------------------------

def test_zap_of_a_pmd_swap_entry_releases_512_slots_without_a_folio() -> None:
    """§3.6 (patch 9): munmap clears the PMD swap entry, drops its 512 slot references without
    looking up a folio (no swap-in), frees the deposit, MM_SWAPENTS -512."""
    k, si, a = swapped_thp()
    mm = k.mm(1)
    k.tracing = True
    c = Counters(k)
    sys_munmap(k, mm, a, THP)
    assert "zap_huge_pmd(swap)" in k.trace_log
    assert c.moved() == {}
    assert (si.inuse_pages, mm.rss_swapents, mm.nr_ptes, mm.pmds) == (0, 0, 0, {})
    assert_consistent(k)


def test_zap_of_a_pmd_swap_entry_reclaims_its_cached_thp() -> None:
    """§3.6: on a disk the counts reach 0 with the THP still cached: __try_to_reclaim_swap frees
    it (nr_swapcached -512, mthp nr_anon -1) and the slots."""
    k, si, a = swapped_thp(kind=SwapKind.DISK)
    c = Counters(k)
    sys_munmap(k, k.mm(1), a, THP)
    assert c.moved() == {"pgfree": 512, "mthp.nr_anon": -1}
    assert (si.inuse_pages, k.vmstat.nr_swapcached, k.folio_swap) == (0, 0, {})
    assert_consistent(k)
