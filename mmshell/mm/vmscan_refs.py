"""Reclaim's look at a folio's references (mm/vmscan.c folio_check_references(), mm/rmap.c
folio_referenced()), for the LRU scan of `reclaim`.

folio_referenced() walks the folio's mappings and test-and-clears the young bit of each
PMD or PTE that maps it; it counts one reference per VMA with any young entry (not one
per PTE).  folio_check_references() then activates the folio when it was referenced by
more than one VMA, or by one while PG_referenced was still set from an earlier look; it
sets PG_referenced on the way.  A folio referenced by one VMA only is kept on the
inactive list with PG_referenced set, and the same memory-cgroup reclaim comes back to
it at a lower priority, finds its young bits cleared and reclaims it: the simulation
reclaims it at once.  Only a folio that may be referenced twice is looked at
(`may_be_referenced_twice()`); the young bits of the others are left as they are.

Measured on 6.18.44 through the workers' memory cgroup (docs/reliability.md, run 8,
script 462): a THP that a parent and a forked child have both accessed since the fork,
or one PTE-mapped in two VMAs of one process, is activated, and the pass of the cgroup's
reclaim that activated it frees nothing of it; the next pass (a later `reclaim`, or the
next pass of the same one when the first freed something else) reclaims it.  A THP
mapped by 512 young PTEs in one VMA is reclaimed by the first `reclaim`.

Left out: MADV_PAGEOUT ignores references (reclaim_pages()), and direct reclaim
(`set ram`) and `reclaim SIZE` are simulated without this look.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import pmd_index
from .folio import PG
from .pgtable import F_YOUNG
from .rmap import folio_ptes, rmap_walk_anon

if TYPE_CHECKING:
    from .kernel import Kernel

__all__ = ["folio_referenced", "may_be_referenced_twice", "folio_check_references"]


def folio_referenced(k: "Kernel", pfn: int) -> int:
    """folio_referenced(): the number of VMAs with a young entry mapping the folio at head
    pfn; every young bit it finds is cleared (ptep/pmdp_clear_flush_young)."""
    referenced = 0
    nr = k.mem.nr_pages(pfn)
    for m in rmap_walk_anon(k, pfn):
        young = False
        if m.pmd:
            pmd = m.mm.pmds[pmd_index(max(m.addr, m.vma.start))]
            young = bool(pmd.flags & F_YOUNG)
            pmd.flags &= ~F_YOUNG
        else:
            for ptes, idx, pte in folio_ptes(m, pfn, nr):
                if pte & F_YOUNG:
                    young = True
                    ptes[idx] = pte & ~F_YOUNG
        referenced += young
    return referenced


def may_be_referenced_twice(k: "Kernel", pfn: int) -> bool:
    """Whether folio_check_references() could activate the folio at head pfn: cheap, so that
    the scan walks the rmap only of a large folio, one mapped more than once, or one with
    PG_referenced set."""
    mem = k.mem
    return bool(mem.order[pfn] or mem.mapcount[pfn] > 1 or mem.flags[pfn] & PG.REFERENCED)


def folio_check_references(k: "Kernel", pfn: int) -> bool:
    """folio_check_references() for an anonymous folio: True is FOLIOREF_ACTIVATE
    (young bits cleared, PG_referenced set); False is reclaim (PG_referenced cleared)."""
    mem = k.mem
    if not may_be_referenced_twice(k, pfn):
        return False
    referenced_folio = mem.test(pfn, PG.REFERENCED)
    mem.clear(pfn, PG.REFERENCED)
    referenced_ptes = folio_referenced(k, pfn)
    if referenced_ptes and (referenced_folio or referenced_ptes > 1):
        mem.set(pfn, PG.REFERENCED)
        return True
    return False
