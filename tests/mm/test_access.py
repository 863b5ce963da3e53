"""The simulated CPU's loads and stores (mmshell/mm/access.py): `touch` and `check RANGE`.

Each page is tried against the page table as the MMU would; a miss or a
protection fault goes to handle_mm_fault (kernel-semantics.md §3.1, §3.3, §3.4)
and is tried again.  A store writes a fresh value and sets the entry's dirty and
young bits; a load sets young.  A range that would raise SIGSEGV anywhere is
refused before anything is touched.  Runs of pages that need no fault are taken
a PMD at a time, with exactly the counters of page-by-page access.
"""

from __future__ import annotations

import pytest

from mm_unit import (M, RW, THP, Counters, assert_consistent, boot, mmap_small, mmap_thp, pmd_at, pte_at, swapon,
                     swapped_thp)
from mmshell.mm.access import Mismatch, access_range
from mmshell.mm.constants import PAGE_SIZE
from mmshell.mm.errors import MmError
from mmshell.mm.fork import sys_fork
from mmshell.mm.madvise import sys_madvise
from mmshell.mm.mman import Madv
from mmshell.mm.mmap import sys_mmap
from mmshell.mm.pgtable import F_DIRTY, F_SPECIAL, F_WRITE, F_YOUNG, PmdKind, pte_pfn, pte_present
from mmshell.mm.vma import VM


@pytest.mark.parametrize("prot, write, op, why", [
    (VM.READ, True, "touch", "write to read-only mapping"),
    (VM(0), False, "touch", "read of inaccessible mapping"),
    (VM(0), False, "check", "read of inaccessible mapping"),
])
def test_a_protection_fault_is_sigsegv_and_touches_nothing(prot: VM, write: bool, op: str, why: str) -> None:
    """check_access(): the whole range is checked against vm_flags first; the refusal faults in
    no page, even of the part before the bad VMA."""
    k = boot()
    mm = k.mm(1)
    a = sys_mmap(k, mm, THP, RW, None, 0x4000_0000)
    sys_mmap(k, mm, THP, prot, None, a + THP)
    c = Counters(k)
    with pytest.raises(MmError) as e:
        access_range(k, mm, a, a + 2 * THP, write, verify=op == "check")
    assert (e.value.errno, e.value.op) == ("SIGSEGV", op) and why in e.value.detail
    assert c.moved() == {} and not mm.pmds


def test_an_unmapped_address_is_sigsegv() -> None:
    k = boot()
    a = mmap_small(k, 2)
    with pytest.raises(MmError) as e:
        access_range(k, k.mm(1), a, a + 3 * PAGE_SIZE, False)
    assert e.value.errno == "SIGSEGV" and f"{a + 2 * PAGE_SIZE:#x}" in e.value.detail


def test_a_store_to_a_thp_vma_faults_once_then_writes_the_whole_pmd() -> None:
    """§3.1: the first store maps a new THP (do_huge_pmd_anonymous_page: one fault, writable,
    dirty, young); the other 511 pages need no fault.  Every page gets a fresh value."""
    k = boot()
    mm = k.mm(1)
    a = sys_mmap(k, mm, THP, RW, Madv.MADV_HUGEPAGE, None)
    c = Counters(k)
    res = access_range(k, mm, a, a + THP, True)
    assert res.pages == 512 and not res.mismatches
    assert c.moved() == {"pgfault": 1, "thp_fault_alloc": 1, "mthp.anon_fault_alloc": 1, "mthp.nr_anon": 1}
    pmd = pmd_at(k, a)
    assert pmd.kind is PmdKind.HUGE and pmd.flags == F_WRITE | F_DIRTY | F_YOUNG
    values = k.mem.data[pmd.pfn:pmd.pfn + 512]
    assert len(set(values)) == 512 and 0 not in values
    assert k.shadow.get_run(1, a, 512) == values
    assert_consistent(k)


def test_a_load_from_a_thp_vma_maps_the_huge_zero_page_and_reads_zeros() -> None:
    """§3.1: a read fault maps the huge zero page (thp_zero_page_alloc the first time); every
    page reads 0, which is what was written (nothing)."""
    k = boot()
    mm = k.mm(1)
    a = sys_mmap(k, mm, THP, RW, Madv.MADV_HUGEPAGE, None)
    c = Counters(k)
    res = access_range(k, mm, a, a + THP, False, verify=True)
    assert res.pages == 512 and not res.mismatches
    assert c.moved() == {"pgfault": 1, "thp_zero_page_alloc": 1}
    assert pmd_at(k, a).kind is PmdKind.ZERO and k.mm(1).rss_anon == 0
    assert_consistent(k)


def test_loads_from_small_pages_map_the_zero_page_one_fault_each() -> None:
    """do_anonymous_page() on a read: each page faults once and maps the shared zero page,
    special and read-only; a later store copies it (do_wp_page), one fault a page again."""
    k = boot()
    mm = k.mm(1)
    a = sys_mmap(k, mm, 4 * PAGE_SIZE, RW, Madv.MADV_NOHUGEPAGE, None)
    c = Counters(k)
    assert access_range(k, mm, a, a + 4 * PAGE_SIZE, False).pages == 4
    assert c.moved() == {"pgfault": 4}
    pte = pte_at(k, a)
    assert pte_present(pte) and pte & F_SPECIAL and not pte & F_WRITE and pte_pfn(pte) == k.zero_pfn
    c = Counters(k)
    access_range(k, mm, a, a + 4 * PAGE_SIZE, True)
    assert c.moved() == {"pgfault": 4}
    assert pte_pfn(pte_at(k, a)) != k.zero_pfn and mm.rss_anon == 4
    assert_consistent(k)


def test_pages_that_need_no_fault_are_accessed_without_one() -> None:
    """A second store to mapped writable pages faults nothing, and gives them new values."""
    k = boot()
    a = mmap_small(k, 16)
    mm = k.mm(1)
    before = k.shadow.get_run(1, a, 16)
    c = Counters(k)
    assert access_range(k, mm, a, a + 16 * PAGE_SIZE, True).pages == 16
    assert c.moved() == {}
    after = k.shadow.get_run(1, a, 16)
    assert all(x != y for x, y in zip(before, after))
    assert_consistent(k)


def test_a_store_to_a_page_shared_after_fork_copies_it() -> None:
    """§3.4 at PTE level: fork write-protects both sides; the parent's store faults (do_wp_page:
    the page is mapped twice, so it is copied) and the child still reads the old value."""
    k = boot()
    a = mmap_small(k, 2)
    mm = k.mm(1)
    child = sys_fork(k, mm)
    old = k.shadow.get_run(1, a, 2)
    c = Counters(k)
    access_range(k, mm, a, a + 2 * PAGE_SIZE, True)
    assert c.moved()["pgfault"] == 2
    assert not access_range(k, child, a, a + 2 * PAGE_SIZE, False, verify=True).mismatches
    assert k.shadow.get_run(2, a, 2) == old
    assert_consistent(k)


def test_a_page_that_reads_something_else_is_a_mismatch() -> None:
    """verify: each page is compared with what was last written; a difference names the page,
    the value written and the value read."""
    k = boot()
    a = mmap_small(k, 4)
    pfn = pte_pfn(pte_at(k, a + 2 * PAGE_SIZE))
    want = k.mem.data[pfn]
    k.mem.data[pfn] = 0xBAD
    res = access_range(k, k.mm(1), a, a + 4 * PAGE_SIZE, False, verify=True)
    assert res.pages == 4 and res.mismatches == [Mismatch(1, a + 2 * PAGE_SIZE, want, 0xBAD)]


@pytest.mark.parametrize("pmd_swap", [True, False], ids=["series", "mainline"])
def test_a_load_of_a_swapped_thp_brings_every_page_back(pmd_swap: bool) -> None:
    """§3.3 on zram: with the series one fault brings the 2 MiB back as a THP; in mainline each
    of the 512 swap PTEs takes its own fault (done in one batch, with the same counters)."""
    k, si, a = swapped_thp(pmd_swap)
    c = Counters(k)
    res = access_range(k, k.mm(1), a, a + THP, False, verify=True)
    assert res.pages == 512 and not res.mismatches
    moved = c.moved()
    assert moved["pswpin"] == 512 and moved["pgfault"] == (1 if pmd_swap else 512)
    assert pmd_at(k, a).kind is (PmdKind.HUGE if pmd_swap else PmdKind.TABLE)
    assert si.inuse_pages == 0
    assert_consistent(k)


def test_a_range_across_vmas_and_pmds_is_accessed_in_address_order() -> None:
    """Two adjacent VMAs (different protection, both readable) and a PMD boundary: every page
    is read once; the count is the range's pages."""
    k = boot()
    mm = k.mm(1)
    at = 0x4000_0000 + THP - 2 * PAGE_SIZE
    sys_mmap(k, mm, 2 * PAGE_SIZE, RW, Madv.MADV_NOHUGEPAGE, at)
    sys_mmap(k, mm, 2 * PAGE_SIZE, VM.READ, Madv.MADV_NOHUGEPAGE, at + 2 * PAGE_SIZE)
    res = access_range(k, mm, at, at + 4 * PAGE_SIZE, False, verify=True)
    assert res.pages == 4 and not res.mismatches
    assert len(mm.pmds) == 2
    assert_consistent(k)


def test_pageout_then_touch_reads_back_what_was_written() -> None:
    """A small-page range paged out to a disk and read again: each page reads its value."""
    k = boot()
    swapon(k, "disk0", 8 * M)
    a = mmap_small(k, 32)
    sys_madvise(k, k.mm(1), a, 32 * PAGE_SIZE, Madv.MADV_PAGEOUT)
    assert not access_range(k, k.mm(1), a, a + 32 * PAGE_SIZE, False, verify=True).mismatches
    assert_consistent(k)


def test_bench_round_trip_in_miniature() -> None:
    """scripts/bench's round trip on 8 MiB: fault in, page out, read every page back."""
    k = boot()
    swapon(k)
    a = mmap_thp(k, 4 * THP)
    sys_madvise(k, k.mm(1), a, 4 * THP, Madv.MADV_PAGEOUT)
    res = access_range(k, k.mm(1), a, a + 4 * THP, False, verify=True)
    assert res.pages == 2048 and not res.mismatches
    assert k.vmstat.events["pswpin"] == 2048
    assert_consistent(k)
