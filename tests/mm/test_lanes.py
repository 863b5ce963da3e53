"""Whole-table arithmetic on int lanes (mm/pte_masks.py) and the batches built on it.

`progression` must be exactly `array(code, range(...))`; `present_run_of` exactly the
per-entry test; and the PMD split's fast paths (mapcounts of a THP no PTE maps, the
PageAnonExclusive bit set by translate) leave exactly what the per-page loop leaves.
"""

from __future__ import annotations

from array import array

import pytest
from hypothesis import given, strategies as st

from mm_unit import K, M, THP, assert_consistent, boot, mmap_thp, pageout, swapon
from mmsh_state import diff_dumps, kernel_dump
from mmshell.mm import huge_split, mmap, pte_masks as bm, swap
from mmshell.mm.constants import HPAGE_PMD_NR
from mmshell.mm.fork import sys_fork
from mmshell.mm.kernel import Kernel
from mmshell.mm.lanes import is_run, progression
from mmshell.mm.swap_info import SwapKind
from mmshell.mm.access import access_range
from mmshell.mm.mmap import sys_munmap
from mmshell.mm.mprotect import sys_mprotect
from mmshell.mm.pgtable import KIND_PRESENT, PFN_SHIFT, pte_pfn, pte_present
from mmshell.mm.vma import VM


@given(code=st.sampled_from("Qq"), first=st.integers(0, (1 << 63) - 1), step=st.integers(1, 1 << 40),
       n=st.integers(1, HPAGE_PMD_NR + 3))
def test_progression_is_the_range(code: str, first: int, step: int, n: int) -> None:
    try:
        want = array(code, range(first, first + n * step, step))
    except OverflowError:
        return
    assert progression(code, first, step, n) == want


@given(values=st.one_of(
    st.builds(lambda first, n: list(range(first, first + n)), st.integers(0, 1 << 40), st.integers(1, 600)),
    st.lists(st.integers(-3, 1 << 20), min_size=1, max_size=600)))
def test_is_run_is_the_list_comparison(values: list[int]) -> None:
    assert is_run(values) == (values == list(range(values[0], values[0] + len(values))))


@given(page=st.integers(0, 1 << 34), n=st.integers(1, HPAGE_PMD_NR),
       flips=st.lists(st.tuples(st.integers(0, HPAGE_PMD_NR - 1), st.sampled_from(["pfn", "kind", "flags"])),
                      max_size=3))
def test_present_run_of_is_the_per_entry_test(page: int, n: int, flips: list[tuple[int, str]]) -> None:
    words = array("Q", [((page + j) << PFN_SHIFT) | KIND_PRESENT | 0x40 for j in range(n)])
    for j, what in flips:
        if j < n:
            words[j] ^= {"pfn": 1 << PFN_SHIFT, "kind": KIND_PRESENT, "flags": 0x20}[what]
    want = all(pte_present(w) and pte_pfn(w) == page + j for j, w in enumerate(words))
    assert bm.present_run_of(words.tobytes(), page) == want


def _exclusive(k: Kernel) -> None:
    a = mmap_thp(k)
    sys_munmap(k, k.mm(1), a + 4 * K, 4 * K)


def _shared_then_pte_mapped(k: Kernel) -> None:
    a = mmap_thp(k)
    sys_fork(k, k.mm(1))
    sys_munmap(k, k.mm(1), a + 4 * K, 4 * K)        # the parent's split: mapcounts 0 -> 1
    sys_munmap(k, k.mm(2), a + 8 * K, 4 * K)        # the child's: some pages PTE-mapped already


def _reclaimed(k: Kernel) -> None:
    swapon(k)
    a = mmap_thp(k, 2 * THP)
    sys_fork(k, k.mm(1))
    pageout(k, a, 2 * THP)
    pageout(k, a, THP, pid=2)


def _mprotected(k: Kernel) -> None:
    a = mmap_thp(k)
    sys_mprotect(k, k.mm(1), a + M, 4 * K, VM.READ)


@pytest.mark.parametrize("mode", [True, False], ids=["series", "mainline"])
@pytest.mark.parametrize("steps", [_exclusive, _shared_then_pte_mapped, _reclaimed, _mprotected],
                         ids=lambda f: f.__name__.strip("_"))
def test_pmd_split_leaves_what_the_per_page_loop_leaves(mode: bool, steps, monkeypatch) -> None:
    fast = boot(mode)
    steps(fast)
    monkeypatch.setattr(huge_split, "_map_pages", huge_split._map_pages_per_page)
    monkeypatch.setattr(bm, "NO_MAPS", b"never")
    slow = boot(mode)
    steps(slow)
    a, b = kernel_dump(fast), kernel_dump(slow)
    assert a == b, "; ".join(diff_dumps(b, a))
    assert_consistent(fast)


def _swapped_in_then_unmapped(k: Kernel, kind: SwapKind) -> None:
    swapon(k, kind=kind)
    a = mmap_thp(k, 2 * THP)
    pageout(k, a, 2 * THP)
    mm = k.mm(1)
    access_range(k, mm, a, a + THP + 64 * K, False)      # order-0 pages back, some in the swap cache
    sys_munmap(k, mm, a, 2 * THP)


@pytest.mark.parametrize("mode", [True, False], ids=["series", "mainline"])
@pytest.mark.parametrize("kind", [SwapKind.ZRAM, SwapKind.DISK], ids=["zram", "disk"])
def test_freeing_a_run_leaves_what_the_per_folio_loop_leaves(mode: bool, kind: SwapKind, monkeypatch) -> None:
    fast = boot(mode)
    _swapped_in_then_unmapped(fast, kind)
    monkeypatch.setattr(swap, "_any_swapcache", lambda flags, p0, n: True)     # each folio looked at
    slow = boot(mode)
    _swapped_in_then_unmapped(slow, kind)
    a, b = kernel_dump(fast), kernel_dump(slow)
    assert a == b, "; ".join(diff_dumps(b, a))
    assert_consistent(fast)


def _disk_round_trip(k: Kernel) -> None:
    swapon(k, kind=SwapKind.DISK)
    mine = mmap_thp(k, 2 * THP)
    pageout(k, mine, 2 * THP)
    mm = k.mm(1)
    access_range(k, mm, mine, mine + 2 * THP, False)    # each folio mapped back whole from the cache
    shared = mmap_thp(k, 2 * THP)
    sys_fork(k, mm)
    pageout(k, shared, 2 * THP)
    access_range(k, mm, shared, shared + 2 * THP, False)
    access_range(k, k.mm(2), shared, shared + THP, True)


def _disk_round_trip_unmapped(k: Kernel) -> None:
    _disk_round_trip(k)
    for pid in (2, 1):
        mm = k.mm(pid)
        for vma in list(mm.vmas):
            sys_munmap(k, mm, vma.start, vma.end - vma.start)


@pytest.mark.parametrize("mode", [True, False], ids=["series", "mainline"])
@pytest.mark.parametrize("steps", [_disk_round_trip, _disk_round_trip_unmapped], ids=["mapped", "unmapped"])
def test_a_cached_folio_mapped_back_and_zapped_leaves_what_the_loops_leave(mode: bool, steps,
                                                                           monkeypatch) -> None:
    fast = boot(mode)
    steps(fast)
    monkeypatch.setattr(bm, "NO_MAPS", b"never")        # no mapcount slice matches: page by page
    monkeypatch.setattr(mmap, "_one_folio_run", lambda mem, words: None)    # zap_pte_range's loop
    slow = boot(mode)
    steps(slow)
    a, b = kernel_dump(fast), kernel_dump(slow)
    assert a == b, "; ".join(diff_dumps(b, a))
    assert_consistent(fast)
