"""struct folio in the mem_map (mmshell/mm/folio.py; include/linux/mm_types.h, page-flags.h).

kernel-semantics.md §1.5: a folio is named by its head pfn; an order-9 folio
has 512 pages, the head carrying PG_head and the folio-wide state, the tails
PG_tail; the folio's mapcount is its PMD mappings (entire_mapcount) plus the
PTE mappings of each page.
"""

from __future__ import annotations

from array import array

from mmshell.mm.constants import HPAGE_PMD_NR, HPAGE_PMD_ORDER
from mmshell.mm.folio import PG, MemMap


def test_order9_folio_has_a_head_and_511_tails() -> None:
    mem = MemMap(2 * HPAGE_PMD_NR)
    assert mem.folio_alloc(0) == 0
    head = mem.folio_alloc(HPAGE_PMD_ORDER)
    assert head == HPAGE_PMD_NR
    assert mem.nr_pages(head) == HPAGE_PMD_NR and mem.order[head] == HPAGE_PMD_ORDER
    assert mem.flags[head] == PG.USED | PG.HEAD | PG.UPTODATE
    assert set(mem.flags[head + 1:head + HPAGE_PMD_NR]) == {PG.USED | PG.TAIL}
    assert {mem.folio_of(p) for p in range(head, head + HPAGE_PMD_NR)} == {head}


def test_order0_folio_is_its_own_head() -> None:
    mem = MemMap(HPAGE_PMD_NR)
    pfn = mem.folio_alloc(0)
    assert pfn == 0
    assert (mem.nr_pages(pfn), mem.folio_of(pfn), mem.flags[pfn]) == (1, 0, PG.USED | PG.UPTODATE)


def test_a_new_folio_is_zeroed() -> None:
    """vma_alloc_zeroed_movable_folio(): whatever the frames held before reads zero."""
    mem = MemMap(HPAGE_PMD_NR)
    head = mem.folio_alloc(HPAGE_PMD_ORDER)
    assert head == 0
    mem.data[0:HPAGE_PMD_NR] = array("Q", range(1, HPAGE_PMD_NR + 1))
    mem.free_folio(head)
    assert mem.folio_alloc(HPAGE_PMD_ORDER) == 0
    assert not any(mem.data[0:HPAGE_PMD_NR])


def test_free_folio_returns_every_frame_and_clears_its_state() -> None:
    mem = MemMap(HPAGE_PMD_NR)
    head = mem.folio_alloc(HPAGE_PMD_ORDER)
    assert head == 0
    mem.set(head, PG.ANON | PG.SWAPBACKED | PG.DIRTY)
    mem.index[head], mem.anon_vma[head] = 7, 3
    mem.free_folio(head)
    assert mem.alloc.nr_free == HPAGE_PMD_NR
    assert not any(mem.flags[0:HPAGE_PMD_NR])
    assert (mem.order[head], mem.index[head], mem.anon_vma[head]) == (0, 0, 0)


def test_flag_accessors_set_test_clear() -> None:
    mem = MemMap(1)
    pfn = mem.folio_alloc(0)
    assert pfn == 0
    mem.set(pfn, PG.SWAPCACHE | PG.DIRTY)
    assert mem.test(pfn, PG.SWAPCACHE) and mem.test(pfn, PG.DIRTY)
    mem.clear(pfn, PG.DIRTY)
    assert mem.test(pfn, PG.SWAPCACHE) and not mem.test(pfn, PG.DIRTY)


def test_folio_mapcount_is_pmd_maps_plus_pte_maps() -> None:
    """folio_mapcount() = entire_mapcount + the sum of per-page mapcounts; page_mapcount of
    one page adds the folio's PMD maps to its own PTE maps."""
    mem = MemMap(HPAGE_PMD_NR)
    head = mem.folio_alloc(HPAGE_PMD_ORDER)
    assert head == 0
    assert not mem.folio_mapped(head)
    mem.entire_mapcount[head] = 1
    mem.mapcount[5] = 1
    mem.mapcount[6] = 2
    assert mem.folio_mapcount(head) == 4
    assert (mem.page_mapcount(5), mem.page_mapcount(6), mem.page_mapcount(7)) == (2, 3, 1)
    assert mem.folio_mapped(head)


def test_folio_maybe_mapped_shared() -> None:
    """Two PMD maps, or one page mapped twice, or PMD-mapped plus any PTE map: maybe shared
    (MADV_PAGEOUT and MADV_COLD skip such a folio, §3.2)."""
    mem = MemMap(HPAGE_PMD_NR + 1)
    head, small = mem.folio_alloc(HPAGE_PMD_ORDER), mem.folio_alloc(0)
    assert (head, small) == (0, HPAGE_PMD_NR)
    head, small = 0, HPAGE_PMD_NR
    mem.entire_mapcount[head] = 1
    assert not mem.folio_maybe_mapped_shared(head)
    mem.mapcount[9] = 1
    assert mem.folio_maybe_mapped_shared(head)
    mem.mapcount[9] = 0
    mem.entire_mapcount[head] = 2
    assert mem.folio_maybe_mapped_shared(head)
    mem.mapcount[small] = 1
    assert not mem.folio_maybe_mapped_shared(small)
    mem.mapcount[small] = 2
    assert mem.folio_maybe_mapped_shared(small)


def test_bulk_order0_folios_are_clean_small_folios() -> None:
    mem = MemMap(HPAGE_PMD_NR)
    pfns = mem.folio_alloc_bulk(4)
    assert pfns == [0, 1, 2, 3]
    assert all(mem.flags[p] == PG.USED | PG.UPTODATE and mem.nr_pages(p) == 1 for p in pfns)
    mem.free_order0_runs(pfns)
    assert mem.alloc.nr_free == HPAGE_PMD_NR and not any(mem.flags[0:4])
