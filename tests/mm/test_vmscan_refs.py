"""Reclaim's look at references (mmshell/mm/vmscan_refs.py; mm/vmscan.c
folio_check_references(), mm/rmap.c folio_referenced()), measured on 6.18 through the
memory cgroup: a folio young in two VMAs is activated by the first pass, reclaimed by the
next; fork gives the child old entries."""

from __future__ import annotations

import pytest

from mm_unit import Counters, assert_consistent, boot, mmap_small, mmap_thp, pmd_at, pte_at, swapon
from mmshell.mm.access import access_range
from mmshell.mm.folio import PG
from mmshell.mm.fork import sys_fork
from mmshell.mm.pgtable import F_YOUNG, pte_pfn
from mmshell.mm.vmscan import shrink_lruvec
from mmshell.mm.vmscan_refs import folio_check_references, folio_referenced


@pytest.mark.parametrize("pmd_swap", [True, False], ids=["series", "mainline"])
def test_fork_gives_the_child_old_entries(pmd_swap: bool) -> None:
    k = boot(pmd_swap)
    a = mmap_thp(k)
    b = mmap_small(k, 4)
    sys_fork(k, k.mm(1))
    assert pmd_at(k, a).flags & F_YOUNG and not pmd_at(k, a, pid=2).flags & F_YOUNG
    assert pte_at(k, b) & F_YOUNG and not pte_at(k, b, pid=2) & F_YOUNG


@pytest.mark.parametrize("pmd_swap", [True, False], ids=["series", "mainline"])
def test_a_thp_young_in_two_processes_is_activated_then_reclaimed(pmd_swap: bool) -> None:
    k = boot(pmd_swap)
    swapon(k)
    a = mmap_thp(k)
    sys_fork(k, k.mm(1))
    head = pmd_at(k, a).pfn
    access_range(k, k.mm(2), a, a + 4096, False)
    c = Counters(k)
    assert shrink_lruvec(k, None) == 0
    assert c.moved() == {"pgactivate": 512}
    assert k.mem.test(head, PG.REFERENCED)
    assert not pmd_at(k, a).flags & F_YOUNG and not pmd_at(k, a, pid=2).flags & F_YOUNG
    assert shrink_lruvec(k, None) == 512
    assert_consistent(k)


@pytest.mark.parametrize("pmd_swap", [True, False], ids=["series", "mainline"])
def test_one_reference_is_reclaimed_at_once(pmd_swap: bool) -> None:
    """Young only in the parent (the child never touched it): one reference, FOLIOREF_KEEP,
    which the same memory-cgroup reclaim comes back to and reclaims."""
    k = boot(pmd_swap)
    swapon(k)
    mmap_thp(k)
    sys_fork(k, k.mm(1))
    assert shrink_lruvec(k, None) == 512
    assert_consistent(k)


def test_folio_referenced_counts_vmas_not_ptes() -> None:
    k = boot(False)
    b = mmap_small(k, 1)
    sys_fork(k, k.mm(1))
    pfn = pte_pfn(pte_at(k, b))
    assert folio_referenced(k, pfn) == 1          # the parent's young PTE, now cleared
    assert folio_referenced(k, pfn) == 0
    access_range(k, k.mm(1), b, b + 4096, False)
    access_range(k, k.mm(2), b, b + 4096, False)
    assert folio_check_references(k, pfn)          # two VMAs: activate, PG_referenced set
    assert k.mem.test(pfn, PG.REFERENCED)
    assert not folio_check_references(k, pfn)      # nothing young, PG_referenced: reclaim
    assert not k.mem.test(pfn, PG.REFERENCED)
    access_range(k, k.mm(2), b, b + 4096, False)
    k.mem.set(pfn, PG.REFERENCED)
    assert folio_check_references(k, pfn)          # one young VMA with PG_referenced: activate
