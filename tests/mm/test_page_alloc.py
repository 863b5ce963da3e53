"""The frame allocator (mmshell/mm/page_alloc.py; mm/page_alloc.c, simplified).

Deterministic, lowest free first (design.md "Habits"): frames are grouped in
2 MiB pageblocks of 512; an order-9 request takes the lowest wholly free block
(naturally aligned: a THP's head pfn is a multiple of 512); an order-0 request
takes the lowest free frame of the lowest partly used block, as the buddy
allocator splits the smallest free buddy, else the lowest free block.
"""

from __future__ import annotations

import pytest

from mmshell.mm.constants import HPAGE_PMD_NR, HPAGE_PMD_ORDER
from mm_unit import THP, assert_consistent, boot, mmap_thp, pmd_at
from mmshell.mm.mmap import sys_munmap
from mmshell.mm.page_alloc import PageAllocator


def test_order0_allocations_are_lowest_first() -> None:
    pa = PageAllocator(4 * HPAGE_PMD_NR)
    assert [pa.alloc(0) for _ in range(3)] == [0, 1, 2]
    assert pa.nr_free == 4 * HPAGE_PMD_NR - 3


def test_order9_blocks_are_2mib_aligned_and_lowest_wholly_free_first() -> None:
    """An order-9 allocation skips a partly used block: with frame 0 taken (the zero page),
    the first THP is pfn 0x200, the next 0x400."""
    pa = PageAllocator(4 * HPAGE_PMD_NR)
    assert pa.alloc(0) == 0
    assert [pa.alloc(HPAGE_PMD_ORDER) for _ in range(3)] == [0x200, 0x400, 0x600]
    assert pa.alloc(HPAGE_PMD_ORDER) is None
    assert not pa.can_alloc(HPAGE_PMD_ORDER) and pa.can_alloc(0)


def test_order0_fills_the_partly_used_block_before_breaking_a_whole_one() -> None:
    """Small pages do not fragment free 2 MiB blocks while a partly used block has room."""
    pa = PageAllocator(3 * HPAGE_PMD_NR)
    assert pa.alloc(0) == 0
    assert pa.alloc(HPAGE_PMD_ORDER) == 0x200
    assert pa.alloc_bulk(HPAGE_PMD_NR) == list(range(1, HPAGE_PMD_NR)) + [0x400]
    assert pa.alloc(HPAGE_PMD_ORDER) is None


def test_freed_frames_are_reused_lowest_first() -> None:
    pa = PageAllocator(2 * HPAGE_PMD_NR)
    assert pa.alloc_bulk(8) == list(range(8))
    pa.free_pages(5, 0)
    pa.free_pages(2, 0)
    assert pa.free_map()[2] and pa.free_map()[5] and not pa.free_map()[3]
    assert [pa.alloc(0), pa.alloc(0), pa.alloc(0)] == [2, 5, 8]


def test_a_block_freed_page_by_page_can_hold_a_thp_again() -> None:
    """free_run of the last frames of a block makes it wholly free: order 9 fits there again."""
    pa = PageAllocator(HPAGE_PMD_NR)
    assert pa.alloc_bulk(HPAGE_PMD_NR) == list(range(HPAGE_PMD_NR))
    assert pa.alloc(HPAGE_PMD_ORDER) is None
    pa.free_run(0, HPAGE_PMD_NR)
    assert pa.nr_free == HPAGE_PMD_NR
    assert pa.alloc(HPAGE_PMD_ORDER) == 0


def test_a_freed_thp_block_is_reused_by_the_next_thp() -> None:
    pa = PageAllocator(3 * HPAGE_PMD_NR)
    assert [pa.alloc(HPAGE_PMD_ORDER) for _ in range(3)] == [0, 0x200, 0x400]
    pa.free_pages(0x200, HPAGE_PMD_ORDER)
    assert pa.nr_free == HPAGE_PMD_NR
    assert pa.alloc(HPAGE_PMD_ORDER) == 0x200


def test_a_partial_last_block_serves_small_pages_only() -> None:
    """RAM that is not a whole number of 2 MiB blocks: the tail block is never whole."""
    pa = PageAllocator(HPAGE_PMD_NR + 100)
    assert pa.alloc(HPAGE_PMD_ORDER) == 0
    assert pa.alloc(HPAGE_PMD_ORDER) is None
    assert pa.alloc(0) == HPAGE_PMD_NR
    assert len(pa.alloc_bulk(200)) == 99          # alloc_pages_bulk gives what there is
    assert pa.nr_free == 0 and pa.alloc(0) is None


def test_orders_between_0_and_9_are_not_modelled() -> None:
    """Only PMD-order THPs and order-0 pages (docs/semantics.md: no mTHP orders)."""
    with pytest.raises(ValueError):
        PageAllocator(HPAGE_PMD_NR).alloc(4)


def test_machine_boots_with_the_zero_page_in_frame_0_and_its_first_thp_at_0x200() -> None:
    """Kernel.boot_mem(): frame 0 is empty_zero_page; the first THP fault gets pfn 0x200..0x3ff
    (the README's session); after munmap the same block serves the next THP."""
    k = boot()
    assert k.zero_pfn == 0 and not k.mem.alloc.free_map()[0]
    a = mmap_thp(k)
    assert pmd_at(k, a).pfn == 0x200
    assert k.nr_free_frames() == k.mem.nr_frames - 1 - HPAGE_PMD_NR
    sys_munmap(k, k.mm(1), a, THP)
    assert k.nr_free_frames() == k.mem.nr_frames - 1
    b = mmap_thp(k)
    assert pmd_at(k, b).pfn == 0x200
    assert_consistent(k)
