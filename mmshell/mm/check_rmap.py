"""The reachability half of CONFIG_DEBUG_VM: reclaim can find every folio it may have to free.

Reclaim finds a folio from the LRU and its mappings through the rmap walk
(rmap.py `rmap_walk_anon`: the VMAs whose anon_vma chain holds the folio's
anon_vma, at the address vma_address() computes from folio->index), and the
swap-in and swapoff paths find a swap-cache folio from its slots.  A folio
that either cannot find is one no reclaim will ever free.  These checks say so:

- every present anonymous PTE and PMD maps a page that the rmap walk finds
  there (the folio's anon_vma is on the VMA's chain, and the page's index,
  folio->index plus its place in the folio, is the VMA's linear_page_index
  of the address);
- no two swap-cache folios cache one slot (each slot points back at one folio,
  which check.py verifies, so an overlap shows as more cached pages than slots);
- PG_lru is set exactly on the folios that are on an LRU list (check.py checks
  that every folio is on one).

Called by check.py's census, a PTE table or a PMD at a time; the whole-table
comparisons are list equalities, and only a table where something differs is
walked entry by entry, to name it.
"""

from __future__ import annotations

from collections import Counter
from itertools import compress
from operator import itemgetter
from typing import TYPE_CHECKING

from .constants import HPAGE_PMD_NR, PAGE_SHIFT, PMD_SHIFT
from .folio import PG
from .mm_types import MmStruct
from .vma import VmArea

if TYPE_CHECKING:
    from .kernel import Kernel

_LARGE = PG.HEAD | PG.TAIL
_HEAD_MASK = ~(HPAGE_PMD_NR - 1)


def _allowed(vma: VmArea) -> set[int]:
    """The anon_vmas whose folios the rmap walk looks for in this VMA.

    None for a VMA with no anon_vma (0): rmap_walk_anon finds nothing there, so an
    anonymous page mapped in it is one reclaim cannot unmap and fork does not copy
    (vma_needs_copy)."""
    return {vma.anon_vma, *vma.anon_vma_chain} - {0}


def _page_indexes(k: "Kernel", pfns: list[int]) -> tuple[list[int], list[int]]:
    """(the folio head, the page index) of each page: folio->index plus its place in the folio.

    Whole-list lookups (itemgetter) where the pages are order-0 folios or one run of a
    single large folio, the common tables; page by page otherwise."""
    mem = k.mem
    flags, index = mem.flags, mem.index
    get = itemgetter(*pfns) if len(pfns) > 1 else (lambda a: (a[pfns[0]],))
    if not any(f & _LARGE for f in set(get(flags))):
        return pfns, list(get(index))
    h = pfns[0] & _HEAD_MASK
    if pfns[-1] & _HEAD_MASK == h and flags[h] & PG.HEAD and pfns == list(range(pfns[0], pfns[0] + len(pfns))):
        start = index[h] + pfns[0] - h
        return [h] * len(pfns), list(range(start, start + len(pfns)))
    heads = [p & _HEAD_MASK if flags[p] & _LARGE else p for p in pfns]
    return heads, [index[h] + (p - h) for p, h in zip(pfns, heads)]


def check_rmap_table(k: "Kernel", mm: MmStruct, pmdi: int, where: str, anon_mask: bytes,
                     pfns: list[int]) -> list[str]:
    """Each present anonymous PTE of the table at pmdi (`pfns`, at the positions `anon_mask`
    marks) maps a page the rmap walk finds at that address."""
    mem = k.mem
    if not pfns or max(pfns) >= mem.nr_frames:
        return []           # a PTE mapping no frame is check.py's to report
    anon_vma = mem.anon_vma
    heads, got = _page_indexes(k, pfns)
    positions = list(compress(range(HPAGE_PMD_NR), anon_mask))
    base = pmdi << PMD_SHIFT
    vmas = mm.vmas_in(base, base + (HPAGE_PMD_NR << PAGE_SHIFT))
    if len(vmas) == 1:
        vma = vmas[0]
        first = vma.pgoff + ((base - vma.start) >> PAGE_SHIFT)    # the page index of PTE 0 here
        if got == list(map(first.__add__, positions)) and set(map(anon_vma.__getitem__, heads)) <= _allowed(vma):
            return []
    problems: list[str] = []
    reported: set[int] = set()
    for i, p, h, pidx in zip(positions, pfns, heads, got):
        addr = base + (i << PAGE_SHIFT)
        at = mm.find_vma(addr)
        if at is None or h in reported:
            continue        # an entry outside every VMA is check.py's to report
        want = at.linear_page_index(addr)
        if pidx != want or anon_vma[h] not in _allowed(at):
            reported.add(h)
            problems.append(f"{where} pte {i}: page {p:#x} of folio {h:#x} is not found there by the rmap walk "
                            f"(anon_vma {anon_vma[h]}, page index {pidx:#x}; the VMA maps index {want:#x} "
                            f"with anon_vmas {sorted(_allowed(at))})")
    return problems


def check_rmap_pmd(k: "Kernel", mm: MmStruct, pmdi: int, where: str, pfn: int) -> list[str]:
    """A huge PMD at pmdi maps a THP the rmap walk finds at that address."""
    mem = k.mem
    base = pmdi << PMD_SHIFT
    vma = mm.find_vma(base)
    if vma is None or not 0 <= pfn < mem.nr_frames:
        return []           # check.py reports both
    want = vma.linear_page_index(base)
    if mem.index[pfn] == want and mem.anon_vma[pfn] in _allowed(vma):
        return []
    return [f"{where}: THP {pfn:#x} is not found there by the rmap walk (anon_vma {mem.anon_vma[pfn]}, index "
            f"{mem.index[pfn]:#x}; the VMA maps index {want:#x} with anon_vmas {sorted(_allowed(vma))})"]


def check_swap_cache_overlap(k: "Kernel", cached_slots: int) -> list[str]:
    """No two folios cache one slot: the folios' pages add up to the slots the cache holds."""
    by_order = Counter(map(k.mem.order.__getitem__, k.folio_swap))
    if sum(n << order for order, n in by_order.items()) == cached_slots:
        return []
    problems = []
    owner: dict[tuple[int, int], int] = {}
    for pfn, entry in sorted(k.folio_swap.items()):
        for off in range(entry.offset, entry.offset + k.mem.nr_pages(pfn)):
            other = owner.setdefault((entry.type, off), pfn)
            if other != pfn:
                problems.append(f"swap slot {entry.type}:{off:#x} is cached by two folios, {other:#x} and {pfn:#x}")
                break
    return problems


def check_lru_flags(k: "Kernel", lru_mask: bytes) -> list[str]:
    """PG_lru is set on every folio on an LRU list and on no other frame (`lru_mask`: 1 at
    the frames with PG_lru).  check.py checks that the lists hold every folio once."""
    inactive, active = dict.fromkeys(k.lru.inactive()), dict.fromkeys(k.lru.active())
    listed = len(inactive) + len(active)
    try:
        flagged_listed = sum(map(lru_mask.__getitem__, inactive)) + sum(map(lru_mask.__getitem__, active))
    except (IndexError, TypeError):
        flagged_listed = -1     # a freed or bogus frame on a list: check.py names it
    if flagged_listed == listed == lru_mask.count(1):
        return []
    on_list = inactive.keys() | active.keys()
    flagged = set(compress(range(len(lru_mask)), lru_mask))
    problems = [f"folio {pfn:#x}: PG_lru but on no LRU list" for pfn in sorted(flagged - on_list)]
    problems += [f"folio {pfn:#x}: on an LRU list without PG_lru" for pfn in sorted(on_list - flagged)
                 if isinstance(pfn, int) and 0 <= pfn < len(lru_mask)]
    return problems
