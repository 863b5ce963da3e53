"""Mappings (mmshell/mm/mmap.py; mm/mmap.c, mm/vma.c, mm/memory.c unmap_page_range).

mmap places a private anonymous mapping top-down below mmap_base, 2 MiB-aligned
when it is 2 MiB or more (thp_get_unmapped_area), sets VM_HUGEPAGE or
VM_NOHUGEPAGE for the advice, and merges with a neighbour of the same flags
(vma_merge).  munmap splits the VMAs at the range's edges (a PMD-level entry
cut by an edge is split first), zaps the page tables (kernel-semantics.md §3.6:
zap_huge_pmd for whole PMD-level entries, zap_pte_range for PTEs, one batch per
large folio so a wholly unmapped THP is never queued for deferred split) and
frees the PTE tables no VMA covers any more (free_pgtables).
"""

from __future__ import annotations

import pytest

from mm_unit import (K, M, RW, THP, Counters, assert_consistent, boot, mmap_small, mmap_thp, pageout, pmd_at, swapon,
                     swapped_thp, vma_at)
from mmshell.mm.access import access_range
from mmshell.mm.constants import MAX_MAPPED, MMAP_BASE, PAGE_SIZE, TASK_SIZE
from mmshell.mm.errors import MmError
from mmshell.mm.huge_split import split_huge_pmd_locked
from mmshell.mm.mman import Madv
from mmshell.mm.mmap import sys_mmap, sys_munmap, vma_range
from mmshell.mm.pgtable import PmdKind, is_swap_pte, pmd_pgtable
from mmshell.mm.vma import VM


def test_mmap_places_mappings_top_down_below_mmap_base() -> None:
    """get_unmapped_area(): the first mapping ends at mmap_base, the next below it; 2 MiB or more
    is 2 MiB-aligned, so 3 MiB leaves a 1 MiB gap, which the first small mapping takes, right
    under the one above it (the highest gap that fits)."""
    k = boot()
    mm = k.mm(1)
    a = sys_mmap(k, mm, 4 * M, RW, None, None)
    b = sys_mmap(k, mm, 3 * M, RW, None, None)
    c = sys_mmap(k, mm, 8 * K, RW, Madv.MADV_NOHUGEPAGE, None)
    assert a == MMAP_BASE - 4 * M
    assert b % THP == 0 and b + 3 * M <= a and a - b < 6 * M
    assert c == a - 8 * K
    assert [(v.start, v.end) for v in mm.vmas] == [(b, b + 3 * M), (c, c + 8 * K), (a, a + 4 * M)]


def test_mmap_sets_the_flags_of_a_private_anonymous_mapping() -> None:
    """The VMA gets prot, VM_MAYREAD|VM_MAYWRITE, VM_SOFTDIRTY, the advice's VM_(NO)HUGEPAGE and
    pgoff = addr >> PAGE_SHIFT; the length is rounded up to pages; nothing is faulted in."""
    k = boot()
    mm = k.mm(1)
    a = sys_mmap(k, mm, 5000, VM.READ, Madv.MADV_HUGEPAGE, None)
    vma = vma_at(k, a)
    assert vma.end - vma.start == 2 * PAGE_SIZE
    assert vma.flags == VM.READ | VM.MAYREAD | VM.MAYWRITE | VM.SOFTDIRTY | VM.HUGEPAGE
    assert vma.pgoff == a >> 12 and vma.anon_vma == 0
    assert not mm.pmds and mm.rss_anon == 0
    b = sys_mmap(k, mm, THP, RW, Madv.MADV_NOHUGEPAGE, None)
    assert vma_at(k, b).flags & (VM.HUGEPAGE | VM.NOHUGEPAGE) == VM.NOHUGEPAGE


def test_mmap_at_a_fixed_address_and_its_refusals() -> None:
    """MAP_FIXED_NOREPLACE: the mapping goes where asked; an overlap is EEXIST, an address below
    mmap_min_addr EPERM, an unaligned one EINVAL, a zero length EINVAL; a refused mmap maps nothing."""
    k = boot()
    mm = k.mm(1)
    at = 0x4000_0000
    assert sys_mmap(k, mm, THP, RW, None, at) == at
    for length, where, errno in [(THP, at + PAGE_SIZE, "EEXIST"), (PAGE_SIZE, 0x1000, "EPERM"),
                                 (PAGE_SIZE, at - 0x800, "EINVAL"), (0, None, "EINVAL")]:
        with pytest.raises(MmError) as e:
            sys_mmap(k, mm, length, RW, None, where)
        assert e.value.errno == errno
    assert [(v.start, v.end) for v in mm.vmas] == [(at, at + THP)]


def test_mmap_refuses_advice_a_new_mapping_does_not_take() -> None:
    k = boot()
    with pytest.raises(MmError) as e:
        sys_mmap(k, k.mm(1), THP, RW, Madv.MADV_PAGEOUT, None)
    assert e.value.errno == "EINVAL" and not k.mm(1).vmas


def test_mapped_address_space_is_limited() -> None:
    """may_expand_vm(): past the simulation's RLIMIT_AS (MAX_MAPPED per process), ENOMEM."""
    k = boot()
    mm = k.mm(1)
    sys_mmap(k, mm, MAX_MAPPED - THP, RW, None, None)
    with pytest.raises(MmError) as e:
        sys_mmap(k, mm, 2 * THP, RW, None, None)
    assert e.value.errno == "ENOMEM" and len(mm.vmas) == 1


def test_adjacent_mappings_with_the_same_flags_merge() -> None:
    """vma_merge(): a mapping placed right under one with the same flags and a following pgoff
    becomes one VMA; different flags stay two."""
    k = boot()
    mm = k.mm(1)
    a = sys_mmap(k, mm, THP, RW, None, 0x4020_0000)
    b = sys_mmap(k, mm, THP, RW, None, 0x4000_0000)
    assert (b, a) == (0x4000_0000, 0x4020_0000)
    assert [(v.start, v.end) for v in mm.vmas] == [(b, a + THP)]
    sys_mmap(k, mm, THP, VM.READ, None, 0x4040_0000)
    assert len(mm.vmas) == 2


def test_vma_range_splits_at_both_edges_and_splits_a_cut_thp() -> None:
    """__split_vma(): the range becomes whole VMAs, the upper part keeps the pgoff of its start;
    a present THP the cut goes through is split first (thp_split_pmd +1)."""
    k = boot()
    a = mmap_thp(k, 2 * THP)
    mm = k.mm(1)
    c = Counters(k)
    vmas = vma_range(k, mm, a + 1 * M, a + THP)
    assert [(v.start - a, v.end - a) for v in vmas] == [(1 * M, THP)]
    assert [(v.start - a, v.end - a) for v in mm.vmas] == [(0, 1 * M), (1 * M, THP), (THP, 2 * THP)]
    assert vma_at(k, a + 1 * M).pgoff == (a + 1 * M) >> 12
    assert pmd_at(k, a).kind is PmdKind.TABLE and pmd_at(k, a + THP).kind is PmdKind.HUGE
    assert c.moved() == {"thp_split_pmd": 1}
    assert_consistent(k)


def test_munmap_of_whole_thps_frees_them_and_their_tables() -> None:
    """zap_huge_pmd(): the folios are freed with their deposited tables; the VMA goes; the range
    reads zero afterwards (the shadow forgets it)."""
    k = boot()
    a = mmap_thp(k, 2 * THP)
    mm = k.mm(1)
    free = k.nr_free_frames()
    c = Counters(k)
    sys_munmap(k, mm, a, 2 * THP)
    assert not mm.vmas and not mm.pmds and (mm.nr_ptes, mm.rss_anon) == (0, 0)
    assert k.nr_free_frames() == free + 2 * 512
    assert c.moved() == {"pgfree": 1024, "mthp.nr_anon": -2}
    assert k.vmstat.nr_anon_thps == 0 and not k.shadow.procs[1]
    assert_consistent(k)


def test_munmap_of_part_of_a_thp_splits_it_and_queues_a_deferred_split() -> None:
    """§3.6: a partial munmap splits the PMD (thp_split_pmd +1); the folio, now partially
    mapped, goes on the deferred split queue (thp_deferred_split_page +1)."""
    k = boot()
    a = mmap_thp(k)
    c = Counters(k)
    sys_munmap(k, k.mm(1), a, 1 * M)
    assert c.moved() == {"thp_split_pmd": 1, "thp_deferred_split_page": 1, "mthp.split_deferred": 1,
                         "mthp.nr_anon_partially_mapped": 1}
    assert k.mm(1).rss_anon == 256
    assert_consistent(k)


def test_munmap_of_a_whole_pte_mapped_thp_frees_it_without_a_deferred_split() -> None:
    """zap_present_ptes(): the 512 PTEs of one large folio go in one batch, so the folio is never
    seen partially mapped (tests/kernel/47_unmap_ptemapped_thp.mmsh)."""
    k = boot()
    a = mmap_thp(k)
    mm = k.mm(1)
    split_huge_pmd_locked(k, mm, vma_at(k, a), a)       # PTE-mapped, the folio whole
    c = Counters(k)
    sys_munmap(k, mm, a, THP)
    assert c.moved() == {"pgfree": 512, "mthp.nr_anon": -1}
    assert_consistent(k)


@pytest.mark.parametrize("pmd_swap", [True, False], ids=["series", "mainline"])
def test_munmap_of_a_swapped_thp_frees_its_slots(pmd_swap: bool) -> None:
    """§3.6: the PMD swap entry (patch 9) or its 512 swap PTEs drop every slot reference."""
    k, si, a = swapped_thp(pmd_swap)
    sys_munmap(k, k.mm(1), a, THP)
    assert si.inuse_pages == 0 and k.mm(1).rss_swapents == 0 and not k.mm(1).pmds
    assert_consistent(k)


def test_munmap_of_half_a_swapped_range_keeps_the_other_half_swapped() -> None:
    """§3.6 (v2+ split_munmap): 256 swap PTEs remain, the table stays for the VMA that is left."""
    k, si, a = swapped_thp()
    sys_munmap(k, k.mm(1), a, 1 * M)
    ptes = pmd_pgtable(pmd_at(k, a)).ptes
    assert sum(map(is_swap_pte, ptes)) == 256 and si.inuse_pages == 256
    assert k.mm(1).rss_swapents == 256
    assert_consistent(k)


def test_free_pgtables_keeps_a_table_another_vma_still_uses() -> None:
    """free_pgtables(): a PTE table is freed only when no VMA covers any of its 2 MiB."""
    k = boot()
    a = mmap_small(k, 4)
    mm = k.mm(1)
    sys_munmap(k, mm, a, PAGE_SIZE)
    assert mm.nr_ptes == 1 and pmd_at(k, a + PAGE_SIZE).kind is PmdKind.TABLE
    sys_munmap(k, mm, a + PAGE_SIZE, 3 * PAGE_SIZE)
    assert mm.nr_ptes == 0 and not mm.pmds
    assert_consistent(k)


def test_munmap_of_a_range_with_nothing_mapped_changes_nothing() -> None:
    k = boot()
    mm = k.mm(1)
    sys_munmap(k, mm, 0x4000_0000, THP)
    assert not mm.vmas and not mm.pmds


@pytest.mark.parametrize("addr, length", [(0x4000_0800, PAGE_SIZE), (0x4000_0000, 0),
                                          (TASK_SIZE - PAGE_SIZE, 2 * PAGE_SIZE)])
def test_munmap_refusals_are_einval(addr: int, length: int) -> None:
    """An unaligned start, a zero length, a range past the user address space."""
    k = boot()
    with pytest.raises(MmError) as e:
        sys_munmap(k, k.mm(1), addr, length)
    assert e.value.errno == "EINVAL"


def test_munmap_of_swapped_pages_in_runs_frees_every_slot() -> None:
    """zap_pte_range() gives swap entries back in runs of consecutive slots
    (free_swap_and_cache_nr); order-0 pages are freed together."""
    k = boot()
    si = swapon(k)
    a = mmap_small(k, 64)
    pageout(k, a, 32 * PAGE_SIZE)
    assert si.inuse_pages == 32
    c = Counters(k)
    sys_munmap(k, k.mm(1), a, 64 * PAGE_SIZE)
    assert si.inuse_pages == 0 and c.moved() == {"pgfree": 32}
    assert_consistent(k)


def test_write_after_munmap_and_mmap_again_reads_what_was_written() -> None:
    """The same range mapped again reads zeros, then what is written."""
    k = boot()
    mm = k.mm(1)
    a = mmap_thp(k)
    sys_munmap(k, mm, a, THP)
    b = sys_mmap(k, mm, THP, RW, Madv.MADV_HUGEPAGE, a)
    assert b == a
    res = access_range(k, mm, a, a + THP, False, verify=True)
    assert res.pages == 512 and not res.mismatches
    access_range(k, mm, a, a + THP, True)
    assert not access_range(k, mm, a, a + THP, False, verify=True).mismatches
    assert_consistent(k)


ZAP_CASES = {
    "swapped in page by page": "set thp never\nswapon z 16M\nmmap a 1M\ntouch a\nmadvise a pageout\ntouch a read\n"
                               "munmap a\n",
    "swapped in, one page still cached, dirty PTEs": "set thp never\nswapon d 16M kind disk\nmmap a 1M\ntouch a\n"
                                                     "reclaim\ntouch a read\ntouch a+8K:64K\nmunmap a+4K:512K\n",
    "faulted order-0, shared after fork": "set thp never\nmmap a 1M\ntouch a\nfork\n@2 touch a+64K:64K\n"
                                          "munmap a+512K:256K\n@2 touch a\n@2 munmap a+32K:200K\nmunmap a\n",
    "split THP": "set pmd_swap off\nmmap a 2M hugepage\ntouch a\nmunmap a+4K:4K\nmunmap a\n",
}


@pytest.mark.parametrize("case", list(ZAP_CASES))
def test_zap_of_an_order0_run_at_once_equals_the_per_pte_loop(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """zap_pte_range() unmaps a table's run of consecutive order-0 frames, each mapped once, in
    one pass (_zap_order0_run); the machine it leaves is the one the per-PTE loop leaves."""
    from mmsh_helpers import run
    from mmsh_state import diff_dumps, kernel_dump
    from mmshell.mm import mmap as mmap_module

    taken = []
    fast = mmap_module._zap_order0_run

    def counting(k, mm, words):
        done = fast(k, mm, words)
        taken.append(done)
        return done

    with monkeypatch.context() as m:
        m.setattr(mmap_module, "_zap_order0_run", counting)
        batched = run(ZAP_CASES[case]).ok()
    with monkeypatch.context() as m:
        m.setattr(mmap_module, "_zap_order0_run", lambda k, mm, words: False)
        reference = run(ZAP_CASES[case]).ok()
    assert any(taken) == (case != "split THP"), taken
    a, b = kernel_dump(batched.k), kernel_dump(reference.k)
    assert a == b, diff_dumps(a, b)
