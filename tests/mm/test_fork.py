"""fork(2) (mmshell/mm/fork.py; kernel/fork.c dup_mmap, mm/memory.c copy_page_range,
mm/huge_memory.c copy_huge_pmd and the series' copy_huge_non_present_pmd, patch 7).

kernel-semantics.md §3.5 and §4 F4 / decision 4: a present THP is shared
(write-protected both sides, PageAnonExclusive cleared, a deposit for the
child); PTE swap entries are duplicated per slot and lose the exclusive bit in
parent and child; with the series a PMD swap entry is duplicated as one unit
(+1 on each of its 512 slots, a failed count continuation retried once with
GFP_KERNEL) and, when that needs PMD-order memory it cannot have, the parent's
entry is split and copied per PTE.
"""

from __future__ import annotations

import pytest

from mm_unit import Counters, assert_consistent, boot, mmap_thp, pmd_at, swapped_thp
from mmshell.mm.config import FailMode, FaultPoint
from mmshell.mm.constants import COUNT_CONTINUED, HPAGE_PMD_NR, SWAP_MAP_MAX
from mmshell.mm.errors import MmError
from mmshell.mm.folio import PG
from mmshell.mm.fork import sys_fork
from mmshell.mm.pgtable import F_UFFD_WP, PmdKind, pmd_pgtable, swp_entry_to_pte
from mmshell.mm.swapops import SwpEntry
from mmshell.mm.vma import VM


def test_fork_shares_a_present_thp_write_protected() -> None:
    """copy_huge_pmd(): entire_mapcount 2, PageAnonExclusive cleared, both PMDs read-only, child
    MM_ANONPAGES +512 and its own deposited table; nr_anon_transparent_hugepages unchanged."""
    k = boot()
    a = mmap_thp(k)
    c = Counters(k)
    child = sys_fork(k, k.mm(1))
    assert c.moved() == {}
    for pid in (1, 2):
        pmd = pmd_at(k, a, pid)
        assert (pmd.kind, pmd.pfn, pmd.deposited, pmd.pmd_write()) == (PmdKind.HUGE, 0x200, True, False)
    assert k.mem.entire_mapcount[0x200] == 2 and not k.mem.test(0x200, PG.ANON_EXCLUSIVE)
    assert (child.rss_anon, child.nr_ptes, k.vmstat.nr_anon_thps) == (512, 1, 1)
    assert_consistent(k)


def test_fork_duplicates_a_pmd_swap_entry_as_one_unit() -> None:
    """Patch 7: one folio_dup_swap() over the 512 slots (count 2 each); parent and child entries
    both non-exclusive (decision 4 mirrors copy_nonpresent_pte); the child gets MM_SWAPENTS
    +512, a deposited table, and goes on the swapoff mmlist.  No split."""
    k, si, a = swapped_thp(True)
    k.tracing = True
    c = Counters(k)
    child = sys_fork(k, k.mm(1))
    assert "copy_huge_non_present_pmd" in k.trace_log and c.moved() == {}
    for pid in (1, 2):
        pmd = pmd_at(k, a, pid)
        assert (pmd.kind, pmd.entry, pmd.flags, pmd.deposited) == (PmdKind.SWAP, SwpEntry(0, 512), 0, True)
    assert set(si.swap_map[512:1024]) == {2} and si.inuse_pages == 512
    assert (child.rss_swapents, child.nr_ptes, child.on_mmlist) == (512, 1, True)
    assert_consistent(k)


def test_fork_duplicates_pte_swap_entries_and_clears_exclusive_both_sides() -> None:
    """copy_nonpresent_pte() (mainline, §3.5 verified): slot count +1 each, the exclusive bit
    cleared in the parent's PTE and left clear in the child's; offsets identical."""
    k, si, a = swapped_thp(False)
    child = sys_fork(k, k.mm(1))
    want = [swp_entry_to_pte(0, 512 + i) for i in range(HPAGE_PMD_NR)]
    assert pmd_pgtable(pmd_at(k, a, 1)).ptes.tolist() == want
    assert pmd_pgtable(pmd_at(k, a, 2)).ptes.tolist() == want
    assert set(si.swap_map[512:1024]) == {2}
    assert (child.rss_swapents, child.on_mmlist) == (512, True)
    assert_consistent(k)


def test_fork_without_pmd_order_memory_splits_the_pmd_swap_entry() -> None:
    """F4 / decision 4 (`thp_alloc`): the parent's PMD swap entry is split (thp_split_pmd +1) and
    copied per PTE; both sides end with 512 non-exclusive swap PTEs at count 2."""
    k, si, a = swapped_thp(True)
    k.config.fail[FaultPoint.THP_ALLOC] = FailMode.ONCE
    c = Counters(k)
    sys_fork(k, k.mm(1))
    assert c.moved() == {"thp_split_pmd": 1}
    want = [swp_entry_to_pte(0, 512 + i) for i in range(HPAGE_PMD_NR)]
    assert pmd_pgtable(pmd_at(k, a, 1)).ptes.tolist() == want
    assert pmd_pgtable(pmd_at(k, a, 2)).ptes.tolist() == want
    assert set(si.swap_map[512:1024]) == {2}
    assert_consistent(k)


def test_fork_retries_a_failed_count_continuation_and_keeps_the_pmd_swap_entry() -> None:
    """Decision 4 (revised; issue 9, defect 5): 62 processes share the entry (slots at
    SWAP_MAP_MAX); the 63rd copy's continuation page cannot be had atomically, so patch 7
    drops the locks, allocates it with GFP_KERNEL and retries, "mirroring copy_pte_range()":
    no split, both sides keep a PMD swap entry, each count continued (63, COUNT_CONTINUED)."""
    k, si, a = swapped_thp(True)
    for _ in range(SWAP_MAP_MAX - 1):
        sys_fork(k, k.mm(1))
    assert set(si.swap_map[512:1024]) == {SWAP_MAP_MAX}
    k.config.fail[FaultPoint.SWAP_CONT] = FailMode.ONCE
    k.tracing = True
    c = Counters(k)
    child = sys_fork(k, k.mm(1))
    assert c.moved() == {}
    assert "copy_huge_non_present_pmd(no count continuation): GFP_KERNEL retry" in k.trace_log
    assert pmd_at(k, a, 1).kind is pmd_at(k, a, child.pid).kind is PmdKind.SWAP
    assert {si.swap_count(s) for s in range(512, 1024)} == {63}
    assert set(si.swap_map[512:1024]) == {COUNT_CONTINUED}
    assert_consistent(k)


@pytest.mark.parametrize("pmd_swap", [True, False], ids=["series", "mainline"])
def test_fork_fails_enomem_when_the_count_continuation_cannot_be_had_at_all(pmd_swap: bool) -> None:
    """A continuation page that the GFP_KERNEL retry cannot have either: copy_pte_range() and
    (decision 4) copy_huge_non_present_pmd() alike give up, and fork fails with ENOMEM."""
    k, si, a = swapped_thp(pmd_swap)
    for _ in range(SWAP_MAP_MAX - 1):
        sys_fork(k, k.mm(1))
    k.config.fail[FaultPoint.SWAP_CONT] = FailMode.ON
    with pytest.raises(MmError) as e:
        sys_fork(k, k.mm(1))
    assert e.value.errno == "ENOMEM"


def test_fork_retries_a_pte_swap_duplicate_once_after_allocating_the_continuation() -> None:
    """copy_pte_range(): swap_duplicate() -ENOMEM -> drop the locks, add_swap_count_continuation
    (GFP_KERNEL) and retry once; the fork goes through with the count continued."""
    k, si, a = swapped_thp(False)
    for _ in range(SWAP_MAP_MAX - 1):
        sys_fork(k, k.mm(1))
    k.config.fail[FaultPoint.SWAP_CONT] = FailMode.ONCE
    sys_fork(k, k.mm(1))
    assert si.swap_count(512) == 63 and si.swap_map[512] == COUNT_CONTINUED
    assert k.config.fail[FaultPoint.SWAP_CONT] is FailMode.OFF
    assert_consistent(k)


@pytest.mark.parametrize("pmd_swap", [True, False], ids=["series", "mainline"])
def test_child_loses_uffd_registration_and_the_uffd_wp_bits(pmd_swap: bool) -> None:
    """§3.5: uffd-wp is kept in the child only if its VMA is uffd-wp registered; without
    UFFD_FEATURE_EVENT_FORK the child's VMA is not, so its swap entries lose the bit."""
    k, _, a = swapped_thp(pmd_swap)
    vma = k.mm(1).find_vma(a)
    assert vma is not None
    vma.flags |= VM.UFFD_WP
    if pmd_swap:
        pmd_at(k, a).flags |= F_UFFD_WP
    else:
        ptes = pmd_pgtable(pmd_at(k, a)).ptes
        for i in range(HPAGE_PMD_NR):
            ptes[i] |= F_UFFD_WP
    child = sys_fork(k, k.mm(1))
    cvma = child.find_vma(a)
    assert cvma is not None and not cvma.flags & (VM.UFFD_WP | VM.UFFD_MISSING)
    if pmd_swap:
        assert pmd_at(k, a, 1).flags & F_UFFD_WP and not pmd_at(k, a, 2).flags & F_UFFD_WP
    else:
        assert pmd_pgtable(pmd_at(k, a, 1)).ptes[9] & F_UFFD_WP
        assert not pmd_pgtable(pmd_at(k, a, 2)).ptes[9] & F_UFFD_WP
    assert_consistent(k)

