"""Reverse mapping and mapcounts (mm/rmap.c).

Anonymous folios are found from their anon_vma and index, as in the kernel:
`rmap_walk_anon` visits every VMA linked to the folio's anon_vma whose range
covers folio->index, and `page_vma_mapped_walk` checks the page table there.
Mapcounts: `entire_mapcount` counts PMD mappings, `mapcount[pfn]` PTE mappings
of each page; NR_ANON_MAPPED / NR_ANON_THPS move as __folio_add/remove_rmap
moves them.

`try_to_unmap_one` turns mappings into swap entries during reclaim; with the
series, a PMD mapping becomes one PMD swap entry (`set_pmd_swap_entry`, patch 12).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .anon_vma_order import anon_vma_walk_key
from . import pte_masks as bm
from .constants import HPAGE_PMD_NR, PAGE_SHIFT, PTRS_PER_PTE, pmd_index, pte_index
from .folio import PG
from .lanes import progression
from .mm_types import MmStruct
from .pgtable import (F_DIRTY, F_SWP_EXCLUSIVE, SWP_KEPT, SWP_OFFSET_SHIFT, PmdKind, mk_swap_pmd,
                      pmd_pgtable, pte_pfn, pte_present, swp_entry_to_pte)
from .swap_info import SwapInfo
from .swap_slots import swap_dup_prepare
from .vma import VmArea

if TYPE_CHECKING:
    from .kernel import Kernel


# -- adding and removing mappings ------------------------------------------------------

def folio_add_new_anon_rmap(k: "Kernel", pfn: int, vma: VmArea, addr: int, pmd: bool,
                            exclusive: bool = True) -> None:
    """folio_add_new_anon_rmap(): a fresh folio's first mapping (by PMD or by its PTEs)."""
    mem = k.mem
    nr = mem.nr_pages(pfn)
    mem.set(pfn, PG.ANON | PG.SWAPBACKED)
    mem.index[pfn] = vma.linear_page_index(addr)
    # __folio_set_anon(): a folio that may be shared (a non-exclusive swap entry brought
    # back) takes the oldest anon_vma, the root, which every related VMA's chain holds;
    # otherwise the rmap walk would miss the mappings of processes not descended from vma's.
    mem.anon_vma[pfn] = vma.anon_vma if exclusive or not vma.anon_vma_chain else vma.anon_vma_chain[0]
    if pmd:
        folio_add_anon_rmap_pmd(k, pfn, exclusive)
    else:
        folio_add_anon_rmap_ptes(k, pfn, nr, exclusive)
    if nr == HPAGE_PMD_NR:
        k.vmstat.count_mthp("nr_anon")


def folio_add_anon_rmap_pmd(k: "Kernel", pfn: int, exclusive: bool) -> None:
    """One more PMD mapping of a THP (entire_mapcount)."""
    mem = k.mem
    mem.entire_mapcount[pfn] += 1
    if mem.entire_mapcount[pfn] == 1:
        k.vmstat.nr_anon_thps += 1
        # NR_ANON_MAPPED counts the pages that were not mapped by PTEs already.
        k.vmstat.nr_anon_pages += mem.mapcount[pfn:pfn + HPAGE_PMD_NR].count(0)
    if exclusive:
        mem.set(pfn, PG.ANON_EXCLUSIVE)


def folio_add_anon_rmap_ptes(k: "Kernel", page: int, nr: int, exclusive: bool) -> None:
    """nr more PTE mappings, one for each page from `page` on.  When none of the pages is
    PTE-mapped yet (a large folio mapped back from the swap cache), their mapcounts become 1
    by one slice and PageAnonExclusive is set by translate; otherwise page by page
    (_add_rmap_ptes_per_page), which leaves the same."""
    mem = k.mem
    if not 1 < nr <= HPAGE_PMD_NR or mem.mapcount[page:page + nr].tobytes() != bm.NO_MAPS[:4 * nr]:
        _add_rmap_ptes_per_page(k, page, nr, exclusive)
        return
    mem.mapcount[page:page + nr] = bm.ONE_MAP[:nr]
    if exclusive:
        bm.set_anon_exclusive(mem.flags, page, nr)
    if not mem.entire_mapcount[mem.folio_of(page)]:
        k.vmstat.nr_anon_pages += nr


def _add_rmap_ptes_per_page(k: "Kernel", page: int, nr: int, exclusive: bool) -> None:
    mem = k.mem
    head = mem.folio_of(page)
    entire = mem.entire_mapcount[head]
    newly = 0
    for p in range(page, page + nr):
        mem.mapcount[p] += 1
        if mem.mapcount[p] == 1 and not entire:
            newly += 1
        if exclusive:
            mem.flags[p] |= PG.ANON_EXCLUSIVE
    k.vmstat.nr_anon_pages += newly


def folio_remove_rmap_pmd(k: "Kernel", pfn: int) -> None:
    """folio_remove_rmap_pmd(): drop one PMD mapping."""
    mem = k.mem
    mem.entire_mapcount[pfn] -= 1
    if mem.entire_mapcount[pfn] == 0:
        k.vmstat.nr_anon_thps -= 1
        k.vmstat.nr_anon_pages -= mem.mapcount[pfn:pfn + HPAGE_PMD_NR].count(0)
        mem.clear(pfn, PG.ANON_EXCLUSIVE)
        _maybe_deferred_split(k, pfn)


def folio_remove_rmap_ptes(k: "Kernel", page: int, nr: int) -> None:
    """folio_remove_rmap_ptes(): drop the PTE mappings of nr pages from `page` on."""
    mem = k.mem
    head = mem.folio_of(page)
    seg = mem.mapcount[page:page + nr]
    if seg == array("i", [1]) * nr:
        # each page's last PTE mapping (reclaim, a private folio's unmap): slices of the arrays
        mem.mapcount[page:page + nr] = array("i", bytes(4 * nr))
        raw = bytearray(mem.flags[page:page + nr].tobytes())
        raw[1::4] = raw[1::4].translate(bm.CLEAR_ANON_EXCL)
        mem.flags[page:page + nr] = array("I", raw)
        if not mem.entire_mapcount[head]:
            k.vmstat.nr_anon_pages -= nr
        if mem.order[head]:
            _maybe_deferred_split(k, head)
        return
    seg = array("i", [m - 1 for m in seg])
    mem.mapcount[page:page + nr] = seg
    gone = seg.count(0)
    if gone:
        flags = mem.flags
        for j, m in enumerate(seg):
            if m == 0:
                flags[page + j] &= ~PG.ANON_EXCLUSIVE
        if not mem.entire_mapcount[head]:
            k.vmstat.nr_anon_pages -= gone
    if mem.order[head]:
        _maybe_deferred_split(k, head)


def _maybe_deferred_split(k: "Kernel", head: int) -> None:
    """deferred_split_folio(partially_mapped=true) when some but not all pages stay mapped."""
    mem = k.mem
    # deferred_split_folio() leaves swap-cache folios alone: reclaim is handling them.
    if mem.order[head] == 0 or mem.flags[head] & (PG.PARTIALLY_MAPPED | PG.SWAPCACHE) \
            or mem.entire_mapcount[head]:
        return
    counts = mem.mapcount[head:head + HPAGE_PMD_NR]
    if any(counts) and not all(counts):
        mem.set(head, PG.PARTIALLY_MAPPED)
        k.vmstat.count("thp_deferred_split_page")
        k.vmstat.count_mthp("split_deferred")
        k.vmstat.count_mthp("nr_anon_partially_mapped")


def folio_move_anon_rmap(k: "Kernel", pfn: int, vma: VmArea, addr: int) -> None:
    """folio_move_anon_rmap(): an exclusive folio moved by UFFDIO_MOVE now belongs to vma's
    anon_vma, at the index addr has in it (move_pages sets folio->index too)."""
    k.mem.anon_vma[pfn] = vma.anon_vma
    k.mem.index[pfn] = vma.linear_page_index(addr)


# -- the rmap walk -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Mapping:
    """One place a folio is mapped: page_vma_mapped_walk's result."""

    mm: MmStruct
    vma: VmArea
    addr: int           # address of the folio's first page in this VMA
    pmd: bool           # mapped by a PMD (pmd_trans_huge) rather than PTEs


def rmap_walk_anon(k: "Kernel", pfn: int) -> list[Mapping]:
    """Every mapping of the folio at head pfn, in the order anon_vma_interval_tree_foreach()
    visits their VMAs (anon_vma_order.py: by vm_pgoff, then by when the VMA was linked in).

    As page_vma_mapped_walk() does, each VMA is looked at only inside itself: where the
    VMA's pgoff lies inside the folio's index range (a piece of the region mremapped on
    its own), the folio's first address in it is below vm_start, in a PMD that another
    VMA may own; vma_address() clamps it to vm_start, and a PMD mapping counts only if
    the PMD there maps the folio (check_pmd()).
    """
    mem = k.mem
    av = mem.anon_vma[pfn]
    index = mem.index[pfn]
    nr = mem.nr_pages(pfn)
    mms = k.mms
    linked = []
    for pid in sorted(mms):
        mm = mms.peek(pid)          # looked at only; reached (pidtable.py) where the folio is mapped
        if mm is None:
            continue
        for vma in mm.vmas:
            if vma.anon_vma != av and av not in vma.anon_vma_chain:
                continue
            first = vma.address_of(index)
            if first + (nr << PAGE_SHIFT) <= vma.start or first >= vma.end:
                continue
            linked.append((anon_vma_walk_key(vma), pid, first, mm, vma))
    linked.sort(key=lambda t: t[:3])
    out = []
    for _, pid, first, mm, vma in linked:
        pmd = mm.pmds.get(pmd_index(max(first, vma.start)))     # vma_address()
        if pmd is not None and pmd.kind is PmdKind.HUGE and pmd.pfn == pfn:
            mms.reach(pid)
            out.append(Mapping(mm, vma, first, True))
            continue
        if _ptes_map(mm, vma, first, pfn, nr):
            mms.reach(pid)
            out.append(Mapping(mm, vma, first, False))
    return out


def _ptes_map(mm: MmStruct, vma: VmArea, first: int, pfn: int, nr: int) -> bool:
    for i in range(nr):
        addr = first + (i << PAGE_SHIFT)
        if not vma.contains(addr):
            continue
        pmd = mm.pmds.get(pmd_index(addr))
        if pmd is None or pmd.kind is not PmdKind.TABLE:
            continue
        pte = pmd_pgtable(pmd).ptes[pte_index(addr)]
        if pte_present(pte) and pfn <= pte_pfn(pte) < pfn + nr:
            return True
    return False


# -- unmapping for reclaim -------------------------------------------------------------------

def try_to_unmap(k: "Kernel", pfn: int, split_huge_pmd: bool, discard: bool = False) -> bool:
    """try_to_unmap(): unmap the folio everywhere; True when no mapping is left.

    TTU_SPLIT_HUGE_PMD (`split_huge_pmd`) splits a PMD mapping to PTEs first
    (mainline, and every fallback of the series); without it the series installs
    a PMD swap entry.  `discard`: a lazyfree (MADV_FREE) folio is dropped from
    every mapping without swap, unless a mapping was written since (then it is
    swap-backed again and stays).
    """
    # Back-edge: splitting walks this module's rmap (unmap_folio), and unmapping splits PMDs
    # (TTU_SPLIT_HUGE_PMD); imported when called.
    from .huge_split import split_huge_pmd_locked

    k.trace("try_to_unmap")
    if discard:
        return _discard_lazyfree(k, pfn)
    for m in rmap_walk_anon(k, pfn):
        if m.pmd:
            if split_huge_pmd:
                split_huge_pmd_locked(k, m.mm, m.vma, m.addr)
                done = try_to_unmap_one_ptes(k, m.mm, m.vma, m.addr, pfn)
            else:
                done = set_pmd_swap_entry(k, m.mm, m.addr, pfn)
        else:
            done = try_to_unmap_one_ptes(k, m.mm, m.vma, m.addr, pfn)
        if not done:
            break           # walk_abort: the mappings not yet unmapped keep the folio
    return not k.mem.folio_mapped(pfn)


def _discard_lazyfree(k: "Kernel", pfn: int) -> bool:
    """try_to_unmap_one() for a clean lazyfree folio: clear the mappings, the data is gone.

    Measured on 6.18.44 (tests/kernel/46_lazyfree_thp_reclaim.mmsh): a PMD mapping is split
    first (TTU_SPLIT_HUGE_PMD: thp_split_pmd +1), whether or not the folio can then be
    discarded; its 512 PTEs are then discarded in one batch (no deferred split) and the PTE
    table stays, so a later read maps 4 KiB zero pages.  A redirtied folio stays, PTE-mapped.
    (Upstream's unmap_huge_pmd_locked() would drop the PMD whole; this kernel does not.)
    """
    from .huge_split import split_huge_pmd_locked       # back-edge, as in try_to_unmap()

    mem = k.mem
    split = set()
    for m in rmap_walk_anon(k, pfn):
        if m.pmd:
            split_huge_pmd_locked(k, m.mm, m.vma, m.addr)
            split.add((m.mm.pid, m.addr))
    maps = rmap_walk_anon(k, pfn)
    nr = mem.nr_pages(pfn)
    dirty = mem.test(pfn, PG.DIRTY)
    for m in maps:
        dirty |= any(pte & F_DIRTY for _, _, pte in folio_ptes(m, pfn, nr))
    if dirty:
        mem.set(pfn, PG.SWAPBACKED)
        return False
    for m in maps:
        if (m.mm.pid, m.addr) in split:
            ptes = pmd_pgtable(m.mm.pmds[pmd_index(m.addr)]).ptes
            ptes[0:HPAGE_PMD_NR] = array("Q", bytes(8 * HPAGE_PMD_NR))
            folio_remove_rmap_ptes(k, pfn, HPAGE_PMD_NR)
            m.mm.rss_anon -= HPAGE_PMD_NR
            k.shadow.drop(m.mm.pid, m.addr, m.addr + (HPAGE_PMD_NR << PAGE_SHIFT))
            continue
        for ptes, idx, pte in folio_ptes(m, pfn, nr):
            ptes[idx] = 0
            folio_remove_rmap_ptes(k, pte_pfn(pte), 1)
            m.mm.rss_anon -= 1
            addr = m.vma.address_of(mem.index[pfn] + pte_pfn(pte) - pfn)
            k.shadow.drop(m.mm.pid, addr, addr + (1 << PAGE_SHIFT))
    k.trace("discard lazyfree folio")
    return True


def folio_ptes(m: "Mapping", pfn: int, nr: int) -> list[tuple]:
    """(table, index, pte) of every PTE in this mapping that maps a page of the folio."""
    out = []
    for i in range(nr):
        addr = m.addr + (i << PAGE_SHIFT)
        if not m.vma.contains(addr):
            continue
        pmd = m.mm.pmds.get(pmd_index(addr))
        if pmd is None or pmd.kind is not PmdKind.TABLE:
            continue
        idx = pte_index(addr)
        ptes = pmd_pgtable(pmd).ptes
        pte = ptes[idx]
        if pte_present(pte) and pte_pfn(pte) == pfn + i:
            out.append((ptes, idx, pte))
    return out


def try_to_unmap_one_ptes(k: "Kernel", mm: MmStruct, vma: VmArea, first: int, pfn: int) -> bool:
    """try_to_unmap_one() at PTE level: each PTE of this VMA mapping the folio becomes a swap PTE.

    The entry is folio->swap + page index; it keeps soft-dirty and uffd-wp, and
    gets the exclusive bit when the page was PageAnonExclusive; a dirty PTE
    dirties the folio.  Done a PTE table at a time.  False when a slot's count
    could not be raised (no continuation page: the `swap_cont` fault point): the
    PTEs before it are unmapped, it and the rest stay (walk_abort).
    """
    mem = k.mem
    entry = k.folio_swap[pfn]
    si = k.swp_info(entry.type)
    nr = mem.nr_pages(pfn)
    k.trace("try_to_unmap_one")
    # page_vma_mapped_walk() visits only this VMA's part of the folio: a folio mapped across
    # a VMA edge (half of it mremapped away, or munmapped) is unmapped a part per VMA.
    i = max(0, (vma.start - first) >> PAGE_SHIFT)
    end = min(nr, (vma.end - first) >> PAGE_SHIFT)
    while i < end:
        addr = first + (i << PAGE_SHIFT)
        n = min(end - i, PTRS_PER_PTE - pte_index(addr))
        pmd = mm.pmds.get(pmd_index(addr))
        if pmd is not None and pmd.kind is PmdKind.TABLE:
            ok = swap_dup_prepare(k, si, entry.offset + i, n)
            if ok:
                _unmap_table_run(k, mm, si, pmd_pgtable(pmd).ptes, pte_index(addr),
                                 pfn + i, entry.offset + i, ok)
            if ok < n:
                k.trace("try_to_unmap_one(swap_duplicate failed: walk_abort)")
                mm.on_mmlist = True
                return False
        i += n
    mm.on_mmlist = True
    return True


def _unmap_table_run(k: "Kernel", mm: MmStruct, si: SwapInfo, ptes: array, i0: int, page: int, off: int,
                     n: int) -> None:
    mem = k.mem
    type_bits = swp_entry_to_pte(si.type, 0)        # the swap PTE of offset 0: type and kind bits
    words = ptes[i0:i0 + n]
    excl = mem.flags[page:page + n]
    raw = words.tobytes()
    low = raw[0::8]
    if bm.present_run_of(raw, page):
        # The whole run maps the folio's pages in order: the swap PTEs are the progression of
        # offsets from off, each with the kind and kept bits of its PTE's low byte and the
        # exclusive bit of its page's flags (lane arithmetic over the run's bytes).
        ostep = 1 << SWP_OFFSET_SHIFT
        out = bytearray(progression("Q", (off << SWP_OFFSET_SHIFT) | type_bits, ostep, n).tobytes())
        out[0::8] = (int.from_bytes(low.translate(bm.SWAP_LOW), "little")
                     | int.from_bytes(excl.tobytes()[1::4].translate(bm.SWP_EXCL_OF_PAGE), "little")
                     ).to_bytes(n, "little")
        ptes[i0:i0 + n] = array("Q", out)
        if low.translate(None, bm.NOT_DIRTY):
            mem.set(mem.folio_of(page), PG.DIRTY)
        si.dup(off, n)
        folio_remove_rmap_ptes(k, page, n)
        mm.rss_anon -= n
        mm.rss_swapents += n
        return
    # Some PTEs of the run map other pages (a COW copy, a hole): one at a time.
    matched = [j for j in range(n) if pte_present(words[j]) and pte_pfn(words[j]) == page + j]
    dirty = False
    for j in matched:
        w = words[j]
        dirty |= bool(w & F_DIRTY)
        swp = (w & SWP_KEPT) | (F_SWP_EXCLUSIVE if excl[j] & PG.ANON_EXCLUSIVE else 0)
        ptes[i0 + j] = ((off + j) << SWP_OFFSET_SHIFT) | type_bits | swp
    if dirty:
        mem.set(mem.folio_of(page), PG.DIRTY)
    for j in matched:
        si.dup(off + j)
        folio_remove_rmap_ptes(k, page + j, 1)
    mm.rss_anon -= len(matched)
    mm.rss_swapents += len(matched)


def set_pmd_swap_entry(k: "Kernel", mm: MmStruct, addr: int, pfn: int) -> bool:
    """patch 12: replace the present PMD by one PMD swap entry over the folio's 512 slots.

    All 512 slot counts are raised in one call (folio_dup_swap); the exclusive
    bit records PageAnonExclusive; soft-dirty and uffd-wp carry over; the
    deposited PTE table stays with the entry.  F8: when the counts cannot be
    raised (a continuation page cannot be had: the `swap_cont` fault point),
    nothing changes, the present PMD stays, and False tells try_to_unmap to stop.
    """
    mem = k.mem
    entry = k.folio_swap[pfn]
    si = k.swp_info(entry.type)
    pmd = mm.pmds[pmd_index(addr)]
    k.trace("set_pmd_swap_entry")
    if swap_dup_prepare(k, si, entry.offset, HPAGE_PMD_NR) < HPAGE_PMD_NR:
        k.trace("set_pmd_swap_entry(folio_dup_swap failed: PMD restored)")
        return False
    if pmd.flags & F_DIRTY:
        mem.set(pfn, PG.DIRTY)
    swp_flags = pmd.flags & SWP_KEPT
    if mem.test(pfn, PG.ANON_EXCLUSIVE):
        swp_flags |= F_SWP_EXCLUSIVE
    si.dup(entry.offset, HPAGE_PMD_NR)
    mm.pmds[pmd_index(addr)] = mk_swap_pmd(entry, swp_flags, pmd.deposited)
    folio_remove_rmap_pmd(k, pfn)
    mm.rss_anon -= HPAGE_PMD_NR
    mm.rss_swapents += HPAGE_PMD_NR
    mm.on_mmlist = True
    k.vmstat.count("thp_swpout_pmd")
    return True
