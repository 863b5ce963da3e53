"""Batched anonymous-page faults for a run of PTEs (an optimisation, same result).

A read or write that walks untouched pages of a PTE table (THP off, or a range
THP does not cover) takes one fault per page: handle_mm_fault, then
do_anonymous_page, which maps the shared zero page on a read and a fresh,
exclusive order-0 folio on a write; a later write to a page that maps the zero
page takes do_wp_page, which copies it into a fresh folio (wp_page_copy), and so
does a write to a small folio shared after fork, where one this process alone
maps is reused (wp_page_reuse; folios in the swap cache are left to it).  When
the PTE table already exists and every PTE of the run takes exactly the same
path, this does the run at once and moves every counter as the separate faults
would (pgfault once per page, the folios in allocation order on the inactive
LRU, NR_ANON_MAPPED, the rss, the trace).

A write batch stops where the free frames run out: the next fault's allocation
would run direct reclaim, and the per-fault path takes it from there.  The
first fault in a PMD (which allocates the PTE table, or tries a THP first) is
always a separate fault, and so is every fault in a VMA registered with a
userfaultfd (where a missing or write-protect fault belongs to the userfaultfd's
handler).
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING

from .constants import PAGE_SHIFT, PTRS_PER_PTE, pmd_index, pte_index
from .folio import PG
from .lanes import is_run, progression
from .memory import anon_vma_prepare
from .mm_types import MmStruct
from .pgtable import (F_DIRTY, F_SPECIAL, F_UFFD_WP, F_WRITE, F_YOUNG, FLAGS_MASK, KIND_MASK, KIND_PRESENT,
                      PFN_SHIFT, PTE_NONE, PmdKind, mk_pte, pmd_pgtable, pte_flags, pte_pfn, pte_present)
from .vma import VM, VmArea

if TYPE_CHECKING:
    from .kernel import Kernel


def none_run(ptes: array, i0: int, n_max: int) -> int:
    """How many PTEs from i0 (at most n_max) are none: the leading zero words, at C speed."""
    raw = ptes[i0:i0 + n_max].tobytes()
    return (len(raw) - len(raw.lstrip(b"\0"))) >> 3


def anon_fault_run(k: "Kernel", mm: MmStruct, start: int, end: int, write: bool) -> int:
    """The faults of the leading run of [start, end) that each take the same anonymous-page
    path, at once: do_anonymous_page for none PTEs; for a write to the shared zero page
    mapped by a PTE, do_wp_page's copy (wp_page_copy: a fresh zeroed folio); for a write
    to read-only small folios, do_wp_page's reuse or copy.

    Returns the pages faulted in (0: nothing batched, the caller takes one fault).
    """
    pmd = mm.pmds.get(pmd_index(start))
    if pmd is None or pmd.kind is not PmdKind.TABLE:
        return 0
    vma = mm.find_vma(start)
    if vma is None or vma.flags & (VM.UFFD_MISSING | VM.UFFD_WP):
        return 0        # not mapped (refused), or registered with a userfaultfd: one fault at a time
    i0 = pte_index(start)
    n_max = min((min(end, vma.end) - start) >> PAGE_SHIFT, PTRS_PER_PTE - i0)
    ptes = pmd_pgtable(pmd).ptes
    first = ptes[i0]
    idx0 = vma.linear_page_index(start)
    if write and first & _WP_MASK == KIND_PRESENT:
        return _wp_page_run(k, mm, vma, ptes, i0, n_max, idx0) if n_max >= 2 else 0
    if write:
        n_max = min(n_max, k.mem.alloc.nr_free)     # no direct reclaim inside the batch
    if n_max < 2:
        return 0
    if first == PTE_NONE:
        n = none_run(ptes, i0, n_max)
        if n < 2:
            return 0
        if write:
            _map_new_folios(k, mm, ptes, i0, n, vma, idx0, F_WRITE | F_DIRTY | F_YOUNG)
            name = "do_anonymous_page"
        else:
            ptes[i0:i0 + n] = array("Q", [mk_pte(k.zero_pfn, F_SPECIAL | F_YOUNG)]) * n
            name = "do_anonymous_page(zero page)"
    elif write and pte_present(first) and pte_pfn(first) == k.zero_pfn and first & (F_SPECIAL | F_WRITE |
                                                                                      F_UFFD_WP) == F_SPECIAL:
        # wp_page_copy() of the zero page, a run of the very same PTE word (same flags)
        n = same_run(ptes, i0, n_max, first)
        if n < 2:
            return 0
        bits = (pte_flags(first) & ~F_SPECIAL) | F_WRITE | F_DIRTY | F_YOUNG
        _map_new_folios(k, mm, ptes, i0, n, vma, idx0, bits)
        name = "wp_page_copy"
    else:
        return 0
    k.vmstat.events["pgfault"] += n
    if k.tracing:
        k.trace_log.extend([name] * n)
    return n


#: A present PTE a store faults on (not writable), mapping an ordinary page (not special,
#: not uffd-wp): do_wp_page's reuse or copy.
_WP_MASK = KIND_MASK | F_WRITE | F_SPECIAL | F_UFFD_WP


def _wp_page_run(k: "Kernel", mm: MmStruct, vma: VmArea, ptes: array, i0: int, n_max: int, idx0: int) -> int:
    """do_wp_page() for a run of read-only PTEs mapping small anonymous folios outside the
    swap cache: a page this process alone maps is reused (wp_page_reuse), a shared one is
    copied (wp_page_copy), page by page in address order; the run ends where a copy would
    need a frame that is not free."""
    mem = k.mem
    mflags, mapcount, order = mem.flags, mem.mapcount, mem.order
    budget = mem.alloc.nr_free
    not_small = PG.HEAD | PG.TAIL | PG.SWAPCACHE
    copies: list[int] = []          # PTE indices (from i0) of the pages to copy
    names: list[str] = []
    n = 0
    for w in ptes[i0:i0 + n_max]:
        if w & _WP_MASK != KIND_PRESENT:
            break
        pfn = w >> PFN_SHIFT
        f = mflags[pfn]
        if f & not_small or order[pfn]:
            break
        if not (f & PG.ANON_EXCLUSIVE or mapcount[pfn] == 1):
            if len(copies) == budget:
                break
            copies.append(n)
            names.append("wp_page_copy")
        else:
            names.append("wp_page_reuse")
        n += 1
    if n < 2:
        return 0
    anon_vma_prepare(k, mm, vma)
    new_pfns = mem.folio_alloc_bulk(len(copies))
    data, index, anon_vma = mem.data, mem.index, mem.anon_vma
    new_flags = PG.USED | PG.UPTODATE | PG.ANON | PG.SWAPBACKED | PG.ANON_EXCLUSIVE | PG.LRU
    av = vma.anon_vma
    wp_bits = F_WRITE | F_DIRTY | F_YOUNG
    for j in range(n):                      # wp_page_reuse() for all; the copies are redone below
        w = ptes[i0 + j]
        mflags[w >> PFN_SHIFT] |= PG.ANON_EXCLUSIVE
        ptes[i0 + j] = w | wp_bits
    for j, new in zip(copies, new_pfns):    # wp_page_copy()
        w = ptes[i0 + j]
        old = w >> PFN_SHIFT
        mflags[old] &= ~PG.ANON_EXCLUSIVE       # shared: it was not exclusive, and stays so
        mapcount[old] -= 1
        data[new] = data[old]
        mflags[new] = new_flags
        mapcount[new] = 1
        index[new] = idx0 + j
        anon_vma[new] = av
        ptes[i0 + j] = (new << PFN_SHIFT) | (w & FLAGS_MASK) | KIND_PRESENT
    k.lru.add_many(new_pfns)
    k.vmstat.nr_anon_pages += len(copies)
    ev = k.vmstat.events
    ev["pgfault"] += n
    ev["pgreuse"] += n - len(copies)
    if k.tracing:
        k.trace_log.extend(names)
    return n


def same_run(ptes: array, i0: int, n_max: int, word: int) -> int:
    """How many PTEs from i0 (at most n_max) are `word`, at C speed."""
    got = ptes[i0:i0 + n_max]
    if got.count(word) == n_max:
        return n_max
    return next(j for j, w in enumerate(got) if w != word)


def _map_new_folios(k: "Kernel", mm: MmStruct, ptes: array, i0: int, n: int, vma: VmArea, idx0: int,
                    pte_bits: int) -> None:
    """n fresh exclusive order-0 folios mapped from PTE i0 with pte_bits (folio_add_new_anon_rmap,
    folio_add_lru_vma, set_pte_at for each, in allocation order)."""
    anon_vma_prepare(k, mm, vma)
    mem = k.mem
    pfns = mem.folio_alloc_bulk(n)
    flags = PG.USED | PG.UPTODATE | PG.ANON | PG.SWAPBACKED | PG.ANON_EXCLUSIVE | PG.LRU
    av = vma.anon_vma
    step = 1 << PFN_SHIFT
    first = mk_pte(pfns[0], pte_bits)
    p0 = pfns[0]
    if is_run(pfns):
        mem.flags[p0:p0 + n] = array("I", [flags]) * n
        mem.mapcount[p0:p0 + n] = array("i", [1]) * n
        mem.index[p0:p0 + n] = progression("q", idx0, 1, n)
        mem.anon_vma[p0:p0 + n] = array("i", [av]) * n
        mem.data[p0:p0 + n] = array("Q", bytes(8 * n))
        ptes[i0:i0 + n] = progression("Q", first, step, n)
    else:
        mflags, mapcount, index, anon_vma, data = mem.flags, mem.mapcount, mem.index, mem.anon_vma, mem.data
        bits = first - (p0 << PFN_SHIFT)
        for j, pfn in enumerate(pfns):
            mflags[pfn] = flags
            mapcount[pfn] = 1
            index[pfn] = idx0 + j
            anon_vma[pfn] = av
            data[pfn] = 0
            ptes[i0 + j] = (pfn << PFN_SHIFT) | bits
    k.lru.add_many(pfns)
    k.vmstat.nr_anon_pages += n
    mm.rss_anon += n
