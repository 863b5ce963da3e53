"""UFFDIO_MOVE (mmshell/mm/userfaultfd.py; mm/userfaultfd.c move_pages, the series' patch 10).

kernel-semantics.md §3.11 and decision 5: an aligned 2 MiB PMD swap entry moves
whole through move_swap_pmd(), the exclusive bit required (else EBUSY); a
PMD-size folio still in the swap cache moves with it (rmap and index); after
the read fault the destination is a PMD-mapped THP (v1 uffdio_move test).
"""

from __future__ import annotations

import pytest

from mm_unit import (RW, THP, Counters, assert_consistent, boot, mmap_small, mmap_thp, pageout, pmd_at,
                     swapon, vma_at)
from mmshell.mm.access import access_range
from mmshell.mm.constants import SWAP_HAS_CACHE
from mmshell.mm.errors import MmError
from mmshell.mm.fork import sys_fork
from mmshell.mm.madvise import sys_madvise
from mmshell.mm.memory import handle_mm_fault
from mmshell.mm.mman import Madv
from mmshell.mm.mmap import sys_mmap
from mmshell.mm.pgtable import F_SWP_EXCLUSIVE, PmdKind
from mmshell.mm.swap_info import SwapKind
from mmshell.mm.swapops import SwpEntry
from mmshell.mm.userfaultfd import sys_uffd_move, sys_uffd_register


def swapped_with_destination(kind: SwapKind = SwapKind.ZRAM):
    """A THP paged out, and a registered, unpopulated 2 MiB destination: (k, si, src, dst)."""
    k = boot(True)
    si = swapon(k, kind=kind)
    a = mmap_thp(k)
    pageout(k, a)
    mm = k.mm(1)
    d = sys_mmap(k, mm, THP, RW, Madv.MADV_HUGEPAGE, None)
    sys_uffd_register(k, mm, d, THP)
    return k, si, a, d


@pytest.mark.parametrize("kind", [SwapKind.ZRAM, SwapKind.DISK])
def test_uffd_move_moves_a_pmd_swap_entry_whole(kind: SwapKind) -> None:
    """move_swap_pmd(): moved == 2 MiB; the destination holds the same entry (0:0x200, exclusive),
    the source nothing; no counter moves; the read fault at the destination maps a THP."""
    k, si, a, d = swapped_with_destination(kind)
    mm = k.mm(1)
    k.tracing = True
    c = Counters(k)
    assert sys_uffd_move(k, mm, a, d, THP) == THP
    assert "move_swap_pmd" in k.trace_log and c.moved() == {}
    pmd = pmd_at(k, d)
    assert (pmd.kind, pmd.entry, pmd.flags) == (PmdKind.SWAP, SwpEntry(0, 512), F_SWP_EXCLUSIVE)
    cached = SWAP_HAS_CACHE if kind is SwapKind.DISK else 0
    assert a >> 21 not in mm.pmds and set(si.swap_map[512:1024]) == {cached | 1}
    assert_consistent(k)
    vma = mm.find_vma(d)
    assert vma is not None
    handle_mm_fault(k, mm, vma, d, False)
    assert pmd_at(k, d).kind is PmdKind.HUGE
    assert_consistent(k)


def test_uffd_move_takes_the_cached_thp_along() -> None:
    """Decision 5: the PMD-size folio in the swap cache gets the destination's anon_vma and index
    (folio_move_anon_rmap), so the rmap walk finds it at its new place."""
    k, si, a, d = swapped_with_destination(SwapKind.DISK)
    mm = k.mm(1)
    folio = si.cache[512]
    sys_uffd_move(k, mm, a, d, THP)
    dvma = mm.find_vma(d)
    assert dvma is not None
    assert (k.mem.anon_vma[folio], k.mem.index[folio]) == (dvma.anon_vma, dvma.linear_page_index(d))
    assert_consistent(k)


def test_uffd_move_of_a_non_exclusive_pmd_swap_entry_is_ebusy_and_moves_nothing() -> None:
    """§3.11 (verified for PTEs after fork; decision 5 for the PMD entry): EBUSY, nothing moved."""
    k, si, a, d = swapped_with_destination()
    mm = k.mm(1)
    sys_fork(k, mm)
    with pytest.raises(MmError) as e:
        sys_uffd_move(k, mm, a, d, THP)
    assert e.value.errno == "EBUSY"
    assert pmd_at(k, a).kind is PmdKind.SWAP and d >> 21 not in mm.pmds
    assert_consistent(k)


@pytest.mark.parametrize("where", ["unaligned", "part"])
def test_uffd_move_of_a_split_pmd_swap_entry_with_its_thp_cached_is_ebusy(where: str) -> None:
    """Issue 9, defect 2: a PMD swap entry whose PMD-size folio is still in the swap cache (disk)
    cannot move whole to an unaligned destination, nor in part: it would be split and moved PTE
    by PTE, and move_swap_pte() refuses a slot cached in a large folio (EBUSY, as mainline's
    swap PTEs of the same folio).  It used to move and rewrite the folio's index page by page,
    so the rmap walk no longer found its pages.  Nothing moves; the destination VMA got its
    anon_vma before anything was looked at (uffd_move_lock()), and the refusal says so."""
    k, si, a, _ = swapped_with_destination(SwapKind.DISK)
    mm = k.mm(1)
    d = sys_mmap(k, mm, 2 * THP, RW, Madv.MADV_NOHUGEPAGE, None)
    sys_uffd_register(k, mm, d, 2 * THP)
    src, dst, length = (a, d + 0x1000, THP) if where == "unaligned" else (a, d, THP // 2)
    with pytest.raises(MmError) as e:
        sys_uffd_move(k, mm, src, dst, length)
    assert e.value.errno == "EBUSY" and "cached in a large folio" in e.value.detail
    assert e.value.partial == "the destination VMA got its anon_vma first, as the kernel does"
    assert pmd_at(k, a).kind is PmdKind.SWAP and mm.vmas_in(d, d + 2 * THP)[0].anon_vma
    assert all(d >> 21 not in mm.pmds for d in (d, d + THP))
    assert_consistent(k)


def test_uffd_move_splits_a_pmd_swap_entry_without_a_cached_folio() -> None:
    """Without a cached folio (zram) an unaligned move splits the entry (thp_split_pmd +1) and
    moves the 512 swap PTEs as they are; the data follows."""
    k, si, a, _ = swapped_with_destination()
    mm = k.mm(1)
    d = sys_mmap(k, mm, 2 * THP, RW, Madv.MADV_NOHUGEPAGE, None)
    sys_uffd_register(k, mm, d, 2 * THP)
    c = Counters(k)
    sys_uffd_move(k, mm, a, d + 0x1000, THP)
    assert c.moved() == {"thp_split_pmd": 1}
    assert pmd_at(k, d).kind is pmd_at(k, d + THP).kind is PmdKind.TABLE
    handle_mm_fault(k, mm, vma_at(k, d + 0x1000), d + 0x1000, False)
    assert_consistent(k)


def test_uffd_move_needs_a_registered_destination() -> None:
    k = boot(True)
    swapon(k)
    a = mmap_thp(k)
    mm = k.mm(1)
    d = sys_mmap(k, mm, THP, RW, Madv.MADV_NOHUGEPAGE, None)
    with pytest.raises(MmError) as e:
        sys_uffd_move(k, mm, a, d, THP)
    assert e.value.errno == "EINVAL"
    assert pmd_at(k, a).kind is PmdKind.HUGE
    assert_consistent(k)


@pytest.mark.parametrize("which", ["source", "destination"])
def test_uffd_move_past_a_vma_end_is_einval_and_from_no_vma_enoent(which: str) -> None:
    """uffd_move_lock() looks up the VMA of each start address (ENOENT when there is none);
    move_pages() then refuses a range that runs past its VMA's end with EINVAL (measured on
    6.18: both sides)."""
    k = boot(False)
    mm = k.mm(1)
    a = mmap_thp(k)
    d = sys_mmap(k, mm, THP, RW, Madv.MADV_NOHUGEPAGE, None)
    sys_uffd_register(k, mm, d, THP)
    src, dst = (a + THP // 2, d) if which == "source" else (a, d + THP // 2)
    with pytest.raises(MmError) as e:
        sys_uffd_move(k, mm, src, dst, THP)
    assert e.value.errno == "EINVAL"
    with pytest.raises(MmError) as e:
        sys_uffd_move(k, mm, *((a + 8 * THP, d) if which == "source" else (a, d + 8 * THP)), 4096)
    assert e.value.errno == "ENOENT"
    assert pmd_at(k, a).kind is PmdKind.HUGE
    assert_consistent(k)


@pytest.mark.parametrize("pmd_swap", [False, True])
@pytest.mark.parametrize("source, errno", [("shared THP", "EBUSY"), ("no PMD entry", "ENOENT"),
                                           ("PTE none", "EEXIST")])
def test_uffd_move_into_a_populated_page_refuses_in_move_pages_order(pmd_swap: bool, source: str,
                                                                      errno: str) -> None:
    """move_pages(): a source THP that is not PageAnonExclusive (shared after fork) is EBUSY, and
    a source PMD that is none ENOENT, before move_pages_pte() looks at the destination PTE
    (EEXIST); a source PTE that is none is looked at after it (kernel fuzz seed 16161 script
    2541: the simulation said EEXIST first, and split the shared THP).  Nothing is split."""
    k = boot(pmd_swap)
    mm = k.mm(1)
    filled = mmap_small(k, 1)
    thp = mmap_thp(k)
    hole = sys_mmap(k, mm, THP, RW, Madv.MADV_NOHUGEPAGE, None)
    table = mmap_small(k, 2)
    sys_madvise(k, mm, table + 0x1000, 0x1000, Madv.MADV_DONTNEED)
    d = sys_mmap(k, mm, THP, RW, Madv.MADV_NOHUGEPAGE, None)
    sys_uffd_register(k, mm, d, THP)
    sys_uffd_move(k, mm, filled, d, 0x1000)
    sys_fork(k, mm)
    src = {"shared THP": thp + 0x1000, "no PMD entry": hole, "PTE none": table + 0x1000}[source]
    c = Counters(k)
    with pytest.raises(MmError) as e:
        sys_uffd_move(k, mm, src, d, 0x1000)
    assert e.value.errno == errno
    assert pmd_at(k, thp).kind is PmdKind.HUGE and "thp_split_pmd" not in c.moved()
    assert_consistent(k)


@pytest.mark.parametrize("pmd_swap", [False, True])
@pytest.mark.parametrize("where, errno", [("1 GiB with no PMD table", "ENOENT"),
                                          ("1 GiB with a PMD table", "EEXIST")])
def test_uffd_move_from_a_1g_with_no_pmd_table_is_enoent_first(pmd_swap: bool, where: str,
                                                               errno: str) -> None:
    """move_pages(): mm_find_pmd() of a source whose 1 GiB has no PMD table page is ENOENT before
    the destination is looked at, even one mapped by a THP; where the table is there (another
    block of the 1 GiB has an entry), the huge destination is EEXIST first (kernel fuzz seed
    17171 script 3331: the simulation said EEXIST for both)."""
    k = boot(pmd_swap)
    mm = k.mm(1)
    d = mmap_thp(k)
    sys_uffd_register(k, mm, d, THP)
    far = 0x600026000000
    src = sys_mmap(k, mm, THP, RW, Madv.MADV_NOHUGEPAGE, far)
    if where == "1 GiB with a PMD table":
        near = sys_mmap(k, mm, 0x1000, RW, Madv.MADV_NOHUGEPAGE, far + 2 * THP)
        access_range(k, mm, near, near + 0x1000, True)
    with pytest.raises(MmError) as e:
        sys_uffd_move(k, mm, src, d, THP)
    assert e.value.errno == errno
    assert pmd_at(k, d).kind is PmdKind.HUGE
    assert_consistent(k)
