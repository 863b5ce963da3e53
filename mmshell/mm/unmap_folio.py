"""unmap_folio() of a THP split (mm/huge_memory.c): when its rmap walk queues the folio for a
deferred split.

__folio_split() unmaps the folio first: unmap_folio() calls try_to_migrate() with
TTU_SPLIT_HUGE_PMD, whose rmap walk visits the mappings in rmap order and, in each,
- freezes a PMD mapping (split_huge_pmd_locked(freeze=true)): the PMD becomes 512
  migration entries and its rmap is removed (folio_remove_rmap_pmd()) with no PTE rmaps
  added, so the folio loses its whole mapping at once;
- replaces a PTE mapping one PTE at a time (folio_remove_rmap_pte() per page).
After each removal __folio_remove_rmap() asks whether the folio is now partially mapped:
no PMD mapping left, a page just lost its last mapping, and some page is still mapped by a
PTE (for the PMD removal: 0 < _nr_pages_mapped < 512).  The first time it is,
deferred_split_folio(folio, true) queues and counts it (thp_deferred_split_page,
split_deferred), unless the folio is in the swap cache or already partially mapped; the
split then takes it off the queue again.

So whether the split counts a deferred split depends on the walk's order: a THP mapped by
a PMD in one process and by (some of) its PTEs in another is counted when the PMD comes
first (its removal leaves the PTE-mapped pages), not when the PTEs do (while the PMD maps
it, no page is unmapped; the PMD's removal then leaves nothing mapped).  The walk is
rmap_walk_anon()'s, in the anon_vma interval tree's order (anon_vma_order.py): a child's
VMA comes after its parent's at the same offset, but a VMA the parent moved with mremap
after the fork comes after the child's.  Measured on 6.18.44
(tests/kernel/136_split_after_partial_unmap.mmsh): parent PMD, child PTEs after a partial
MADV_DONTNEED: +1; the other way round: +0; after the parent's mremap, parent PTEs, child
PMD: +1 (tests/kernel/139_mremap_moves_the_parent_behind_its_child.mmsh).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .folio import PG
from .pgtable import pte_pfn
from .rmap import folio_ptes, rmap_walk_anon

if TYPE_CHECKING:
    from .kernel import Kernel


def unmap_folio_partially_maps(k: "Kernel", pfn: int) -> bool:
    """Whether unmap_folio() of the large folio at head pfn calls deferred_split_folio(folio,
    true) with effect: the mapcounts replayed step by step along the walk, nothing changed."""
    mem = k.mem
    if not mem.test(pfn, PG.ANON) or mem.flags[pfn] & (PG.SWAPCACHE | PG.PARTIALLY_MAPPED):
        return False
    nr = mem.nr_pages(pfn)
    entire = mem.entire_mapcount[pfn]
    counts = list(mem.mapcount[pfn:pfn + nr])
    mapped = sum(1 for c in counts if c)            # _nr_pages_mapped: pages mapped by a PTE
    for m in rmap_walk_anon(k, pfn):
        if m.pmd:
            entire -= 1
            if not entire and 0 < mapped < nr:
                return True
            continue
        for _, _, pte in folio_ptes(m, pfn, nr):
            i = pte_pfn(pte) - pfn
            counts[i] -= 1
            if not counts[i]:
                mapped -= 1
                if not entire and mapped:
                    return True
    return False
