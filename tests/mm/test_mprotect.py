"""mprotect(2) (mmshell/mm/mprotect.py; mm/mprotect.c change_protection, mm/huge_memory.c
change_huge_pmd and the series' change_non_present_huge_pmd, patch 9).

kernel-semantics.md §3.7: protection lives in the VMA for swap entries, PTE or
PMD: mprotect over a whole PMD swap entry changes neither the entry nor any
count, and the later fault maps a read-only PMD; a range edge cutting the entry
splits it (patch 6) with every page still swapped.  Present THPs are rewritten
in place (change_huge_pmd); an exclusive one becomes writable at once.
"""

from __future__ import annotations

from mm_unit import (M, THP, Counters, assert_consistent, boot, mmap_thp, pageout, pmd_at, swapon,
                     swapped_thp, vma_at)
from mmshell.mm.memory import handle_mm_fault
from mmshell.mm.constants import PAGE_SIZE
from mmshell.mm.mmap import sys_mmap
from mmshell.mm.mprotect import sys_mprotect
from mmshell.mm.pgtable import F_SWP_EXCLUSIVE, F_WRITE, F_YOUNG, PmdKind, is_swap_pte, pmd_pgtable
from mmshell.mm.swapops import SwpEntry
from mmshell.mm.vma import VM


def test_mprotect_over_a_whole_pmd_swap_entry_leaves_it_alone() -> None:
    """change_non_present_huge_pmd() for a swap PMD: no split, same entry and exclusive bit, same
    counts; only the VMA changes (a new VMA for the first 2 MiB)."""
    k = boot()
    si = swapon(k)
    a = mmap_thp(k, 2 * THP)
    pageout(k, a, 2 * THP)
    mm = k.mm(1)
    before = bytes(si.swap_map)
    c = Counters(k)
    sys_mprotect(k, mm, a, THP, VM.READ)
    assert c.moved() == {}
    pmd = pmd_at(k, a)
    assert (pmd.kind, pmd.entry, pmd.flags) == (PmdKind.SWAP, SwpEntry(0, 512), F_SWP_EXCLUSIVE)
    assert bytes(si.swap_map) == before
    assert [(v.start - a, v.end - a, bool(v.flags & VM.WRITE)) for v in mm.vmas] == [(0, THP, False),
                                                                                    (THP, 2 * THP, True)]
    assert_consistent(k)


def test_read_fault_after_mprotect_read_maps_a_read_only_pmd() -> None:
    """§3.7 series: the PMD swap entry comes back whole (exclusive) but read-only, as the VMA says;
    mprotect(rw) then makes the exclusive THP writable at once (change_huge_pmd)."""
    k, _, a = swapped_thp()
    mm = k.mm(1)
    sys_mprotect(k, mm, a, THP, VM.READ)
    vma = mm.find_vma(a)
    assert vma is not None
    handle_mm_fault(k, mm, vma, a, False)
    assert (pmd_at(k, a).kind, pmd_at(k, a).flags) == (PmdKind.HUGE, F_YOUNG)
    sys_mprotect(k, mm, a, THP, VM.READ | VM.WRITE)
    assert pmd_at(k, a).flags == F_YOUNG | F_WRITE
    assert_consistent(k)


def test_partial_mprotect_splits_the_pmd_swap_entry_and_every_page_stays_swapped() -> None:
    """v2+ split_mprotect test: an edge inside the entry splits it (thp_split_pmd +1, decision 6)
    into 512 swap PTEs, exclusive bits kept, counts unchanged; two VMAs."""
    k, si, a = swapped_thp()
    mm = k.mm(1)
    c = Counters(k)
    sys_mprotect(k, mm, a, M, VM.READ)
    assert c.moved() == {"thp_split_pmd": 1}
    ptes = pmd_pgtable(pmd_at(k, a)).ptes
    assert all(is_swap_pte(p) and p & F_SWP_EXCLUSIVE for p in ptes)
    assert set(si.swap_map[512:1024]) == {1} and mm.rss_swapents == 512
    assert len(mm.vmas) == 2
    assert_consistent(k)


def test_mprotect_over_pte_swap_entries_changes_nothing() -> None:
    """§3.7 (verified, mainline): mprotect RO over swapped PTEs changes no counter and no entry."""
    k, _, a = swapped_thp(False)
    before = pmd_pgtable(pmd_at(k, a)).ptes.tolist()
    c = Counters(k)
    sys_mprotect(k, k.mm(1), a, THP, VM.READ)
    assert c.moved() == {} and pmd_pgtable(pmd_at(k, a)).ptes.tolist() == before
    assert_consistent(k)


def test_mprotect_read_of_a_present_thp_write_protects_it_in_place() -> None:
    """change_huge_pmd(): full PMD, no split (verified); half the PMD: the VMA edge splits the
    PMD (thp_split_pmd +1) but not the folio."""
    k = boot()
    a = mmap_thp(k)
    mm = k.mm(1)
    c = Counters(k)
    sys_mprotect(k, mm, a, THP, VM.READ)
    assert c.moved() == {} and pmd_at(k, a).kind is PmdKind.HUGE and not pmd_at(k, a).pmd_write()
    sys_mprotect(k, mm, a, M, VM.READ | VM.WRITE)
    assert c.moved() == {"thp_split_pmd": 1}
    assert k.mem.order[0x200] == 9
    ptes = pmd_pgtable(pmd_at(k, a)).ptes
    assert ptes[0] & F_WRITE and not ptes[256] & F_WRITE
    assert_consistent(k)


def test_vm_account_keeps_a_faulted_once_writable_piece_apart() -> None:
    """mprotect_fixup(): making a private mapping writable sets VM_ACCOUNT; making it read-only
    again clears it only while the VMA has no anon_vma.  A faulted piece keeps it, so it does
    not merge with a never-writable neighbour; an unfaulted one merges (kernel measured:
    tests/kernel/128_mprotect_keeps_vm_account.mmsh)."""
    for fault, vmas in ((True, 2), (False, 1)):
        k = boot(pmd_swap=False)
        mm = k.mm(1)
        a = sys_mmap(k, mm, 16 * PAGE_SIZE, VM(0), None, None)
        sys_mprotect(k, mm, a + 15 * PAGE_SIZE, PAGE_SIZE, VM.READ | VM.WRITE)
        assert vma_at(k, a + 15 * PAGE_SIZE).flags & VM.ACCOUNT
        if fault:
            handle_mm_fault(k, mm, vma_at(k, a + 15 * PAGE_SIZE), a + 15 * PAGE_SIZE, write=True)
        sys_mprotect(k, mm, a, 16 * PAGE_SIZE, VM.READ)
        assert len(mm.vmas) == vmas
        assert bool(vma_at(k, a + 15 * PAGE_SIZE).flags & VM.ACCOUNT) == fault
        assert not vma_at(k, a).flags & VM.ACCOUNT
        assert_consistent(k)
