"""PTE-level faults (mmshell/mm/memory.py; mm/memory.c handle_mm_fault, do_swap_page).

kernel-semantics.md §3.3 (mainline do_swap_page, verified numbers): on zram a
slot referenced once bypasses the swap cache and brings back one page, freeing
its slot; a shared slot goes through swap readahead (an 8-slot window: pswpin
+8, swap_ra +7) and stays in the swap cache; a large folio still in the swap
cache (a disk) is mapped by all 512 PTEs in one fault with no I/O.
"""

from __future__ import annotations

from mm_unit import Counters, assert_consistent, pte_at, swapped_thp
from mmshell.mm.folio import PG
from mmshell.mm.fork import sys_fork
from mmshell.mm.memory import Fault, handle_mm_fault
from mmshell.mm.pgtable import F_DIRTY, F_WRITE, F_YOUNG, mk_pte, pte_pfn, pte_present
from mmshell.mm.swap_info import SwapKind


def fault(k, addr: int, write: bool, pid: int = 1) -> Fault:
    mm = k.mm(pid)
    vma = mm.find_vma(addr)
    assert vma is not None
    return handle_mm_fault(k, mm, vma, addr, write)


def test_do_swap_page_on_zram_brings_back_one_page_and_frees_its_slot() -> None:
    """§3.3 (verified): SWP_SYNCHRONOUS_IO and count 1: read straight into a new order-0 folio
    (pswpin +1, pgmajfault +1), map it writable (the entry was exclusive) but clean on a read,
    free the slot (Used -4 kB); the other 511 stay swapped; no THP comes back."""
    k, si, a = swapped_thp(False)
    mm = k.mm(1)
    c = Counters(k)
    assert fault(k, a + 0x5000, False) is Fault.MAJOR
    assert c.moved() == {"pgfault": 1, "pgmajfault": 1, "pswpin": 1}
    pte = pte_at(k, a + 0x5000)
    assert pte & (F_WRITE | F_DIRTY | F_YOUNG) == F_WRITE | F_YOUNG
    assert k.mem.order[pte_pfn(pte)] == 0 and k.mem.test(pte_pfn(pte), PG.ANON_EXCLUSIVE)
    assert (si.inuse_pages, si.swap_map[512 + 5], mm.rss_anon, mm.rss_swapents) == (511, 0, 1, 511)
    assert k.vmstat.nr_swapcached == 0 and k.vmstat.nr_anon_thps == 0
    assert_consistent(k)


def test_do_swap_page_of_a_shared_slot_reads_ahead_into_the_swap_cache() -> None:
    """§3.3 (verified, zram after fork): count 2 -> swapin_readahead: pswpin +8, swap_ra +7,
    pgmajfault +1; the page is mapped read-only (not exclusive) and stays in the swap cache;
    the other process then maps it from the cache with no I/O; a neighbour read ahead is a
    swap_ra_hit."""
    k, si, a = swapped_thp(False)
    sys_fork(k, k.mm(1))
    c = Counters(k)
    assert fault(k, a + 0x5000, False) is Fault.MAJOR
    assert c.moved() == {"pgfault": 1, "pgmajfault": 1, "pswpin": 8, "swap_ra": 7}
    pte = pte_at(k, a + 0x5000)
    assert pte_present(pte) and not pte & F_WRITE
    assert k.mem.test(pte_pfn(pte), PG.SWAPCACHE) and k.vmstat.nr_swapcached == 8
    c = Counters(k)
    assert fault(k, a + 0x5000, False, pid=2) is Fault.DONE
    assert pte_pfn(pte_at(k, a + 0x5000, 2)) == pte_pfn(pte)
    assert fault(k, a + 0x6000, False) is Fault.DONE
    assert c.moved() == {"pgfault": 2, "swap_ra_hit": 1}
    assert_consistent(k)


def test_do_swap_page_maps_a_cached_large_folio_with_all_512_ptes_in_one_fault() -> None:
    """§3.3 (verified on loop): the THP is still in the swap cache and all 512 PTEs hold its
    consecutive entries with the same bits: one fault maps the whole folio (contiguous pfns), no
    I/O; the slots stay allocated (cache only) until the folio leaves the cache; AnonHugePages 0
    (PTE-mapped)."""
    k, si, a = swapped_thp(False, SwapKind.DISK)
    folio = si.cache[512]
    mm = k.mm(1)
    c = Counters(k)
    assert fault(k, a + 0x5000, False) is Fault.DONE
    assert c.moved() == {"pgfault": 1}
    assert [pte_at(k, a + (i << 12)) for i in range(512)] == [mk_pte(folio + i, F_WRITE | F_YOUNG)
                                                             for i in range(512)]
    assert (mm.rss_anon, mm.rss_swapents, si.inuse_pages, k.vmstat.nr_swapcached) == (512, 0, 512, 512)
    assert k.vmstat.nr_anon_thps == 0
    assert_consistent(k)


def test_write_fault_on_a_swapped_page_maps_it_dirty() -> None:
    """do_swap_page() for a write on an exclusive entry: writable and dirty at once, no COW."""
    k, _, a = swapped_thp(False)
    c = Counters(k)
    fault(k, a, True)
    assert pte_at(k, a) & (F_WRITE | F_DIRTY) == F_WRITE | F_DIRTY
    assert "pgreuse" not in c.moved()
    assert_consistent(k)
