"""CONFIG_DEBUG_VM for the mem_map: every frame, folio, mapcount, the LRU and the anon gauges.

`check_folios(k, pte_maps, pmd_maps)` compares the per-frame state with the
census of page tables check.py took (`pte_maps`: pfn -> PTEs mapping it,
`pmd_maps`: head pfn -> huge PMDs mapping it), one invariant per function:
frames are in use or free; folios have their shape; the zero pages are marked;
mapcounts match the census; PageAnonExclusive marks pages mapped once; no
folio leaks; the LRU holds every folio once; the gauges add up.  Each compares
whole byte masks of the frames at once and walks frame by frame only to name
what differs.
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass
from itertools import compress
from typing import TYPE_CHECKING

from . import pte_masks as bm
from .check_rmap import check_lru_flags
from .constants import HPAGE_PMD_NR, HPAGE_PMD_ORDER
from .folio import PG

if TYPE_CHECKING:
    from .kernel import Kernel


@dataclass(frozen=True, slots=True)
class _Frames:
    """0/1 byte masks over every frame (and the lists they give), taken once for all the checks."""

    n: int
    b0: bytes           # the low byte of each page-flags word
    used: bytes
    free: bytes
    tail: bytes
    head: bytes
    small: bytes        # in use, neither head nor tail: order-0 folios and the zero page
    large: list[int]    # the heads of 2 MiB-aligned folios in use
    zero_mask: bytes    # PG_zero
    zero: frozenset[int]        # the zero page and, once allocated, the huge zero folio
    large_set: frozenset[int]   # the large anonymous folios (not the huge zero folio)
    anon_exclusive: bytes


def nonzero_entries(arr: array) -> int:
    """How many entries of an int array are not 0, counted on its bytes (array.count boxes each)."""
    return len(arr) - bm.nonzero_bits(arr.tobytes(), arr.itemsize).to_bytes(len(arr), "little").count(0)


def _frames(k: "Kernel") -> _Frames:
    mem = k.mem
    n = mem.nr_frames
    raw = mem.flags.tobytes()
    b0, b1 = raw[0::4], raw[1::4]
    used = b0.translate(bm.USED)
    tail, head = b0.translate(bm.TAIL), b0.translate(bm.HEAD)
    large = [p for p in range(0, n, HPAGE_PMD_NR) if head[p] and used[p]]
    zero = frozenset({k.zero_pfn} | ({k.huge_zero_pfn} if k.huge_zero_pfn is not None else set()))
    return _Frames(n=n, b0=b0, used=used, free=bytes(mem.alloc.free_map()), tail=tail, head=head,
                   small=bm.and_masks(used, bm.not_mask(tail), bm.not_mask(head)), large=large,
                   zero_mask=b1.translate(bm.ZERO), zero=zero, large_set=frozenset(large) - zero,
                   anon_exclusive=b1.translate(bm.ANON_EXCLUSIVE))


def check_folios(k: "Kernel", pte_maps: Counter, pmd_maps: Counter) -> list[str]:
    """Every mem_map invariant against the page-table census; readable problems, [] if none."""
    f = _frames(k)
    # the census's pages that are anonymous pages in use; the others are named by _check_mapcounts
    in_use = not pte_maps or (min(pte_maps) >= 0 and max(pte_maps) < f.n and f.zero.isdisjoint(pte_maps)
                              and all(map(f.used.__getitem__, pte_maps)))   # in C; else page by page
    bad_pages = [] if in_use else [p for p in pte_maps if not 0 <= p < f.n or not f.used[p] or p in f.zero]
    mapped = pte_maps if not bad_pages else Counter({p: c for p, c in pte_maps.items() if 0 <= p < f.n})
    return (_check_frames(f) + _check_folio_shape(k, f) + _check_zero_pages(f)
            + _check_mapcounts(k, f, pte_maps, pmd_maps, mapped, bad_pages)
            + _check_anon_exclusive(k, f, pte_maps, pmd_maps, mapped) + _check_leaks(k, f, pte_maps, pmd_maps)
            + _check_lru(k, f) + _check_gauges(k, f, pte_maps, pmd_maps, mapped, bad_pages))


def _check_frames(f: _Frames) -> list[str]:
    """Every frame is either in use or free, never both, never neither."""
    problems = []
    u, fr = int.from_bytes(f.used, "little"), int.from_bytes(f.free, "little")
    if u & fr or (u | fr) != int.from_bytes(b"\x01" * f.n, "little"):
        for pfn in range(f.n):
            if not f.used[pfn] and not f.free[pfn]:
                problems.append(f"frame {pfn:#x}: neither free nor in use")
            elif f.used[pfn] and f.free[pfn]:
                problems.append(f"frame {pfn:#x}: in use and free at once")
    return problems


def _check_folio_shape(k: "Kernel", f: _Frames) -> list[str]:
    """512-aligned order-9 heads with 511 tails, order-0 frames elsewhere."""
    problems = []
    mem = k.mem
    if f.head.count(1) != len(f.large):
        problems.append(f"{f.head.count(1) - len(f.large)} head pages are not 2 MiB-aligned folios in use")
    for pfn in f.large:
        seg = f.b0[pfn + 1:pfn + HPAGE_PMD_NR]
        if mem.order[pfn] != HPAGE_PMD_ORDER:
            problems.append(f"folio {pfn:#x}: large folio of order {mem.order[pfn]}")
        elif bm.and_masks(seg.translate(bm.TAIL), seg.translate(bm.USED)).count(1) != HPAGE_PMD_NR - 1 \
                or seg.translate(bm.HEAD).count(1):
            problems.append(f"folio {pfn:#x}: tail pages out of shape")
    if f.tail.count(1) != (HPAGE_PMD_NR - 1) * len(f.large):
        problems.append(f"{f.tail.count(1) - (HPAGE_PMD_NR - 1) * len(f.large)} tail pages belong to no "
                        "large folio")
    if bm.and_masks(mem.order.translate(bm.NONZERO), f.small).count(1):
        problems.append("an order-0 frame records a non-zero order")
    return problems


def _check_zero_pages(f: _Frames) -> list[str]:
    """PG_zero marks exactly the zero page and the huge zero folio, both in use."""
    if f.zero_mask.count(1) != len(f.zero) or not all(f.zero_mask[p] and f.used[p] for p in f.zero):
        return ["the zero pages are not the frames marked PG_zero"]
    return []


def _check_mapcounts(k: "Kernel", f: _Frames, pte_maps: Counter, pmd_maps: Counter, mapped: Counter,
                     bad_pages: list[int]) -> list[str]:
    """Each page's mapcount is the PTEs mapping it, each folio's entire_mapcount the huge PMDs;
    PTEs map only anonymous pages in use, huge PMDs only THPs in use."""
    problems = [f"page {p:#x}: a PTE maps it but it is not an anonymous page in use" for p in bad_pages]
    mem = k.mem
    n = f.n
    if list(map(mem.mapcount.__getitem__, mapped)) != list(mapped.values()) \
            or nonzero_entries(mem.mapcount) != len(mapped):
        for p in range(n):
            want = pte_maps.get(p, 0)
            if mem.mapcount[p] != want:
                problems.append(f"page {p:#x}: mapcount {mem.mapcount[p]} but {want} PTEs map it")
    for pfn in pmd_maps:
        if pfn not in f.large_set:
            problems.append(f"folio {pfn:#x}: a huge PMD maps it but it is not a THP in use")
    pmd_mapped = _pmd_mapped(f, pmd_maps)
    if list(map(mem.entire_mapcount.__getitem__, pmd_mapped)) != list(pmd_mapped.values()) \
            or nonzero_entries(mem.entire_mapcount) != len(pmd_mapped):
        for p in range(n):
            want = pmd_maps.get(p, 0)
            if mem.entire_mapcount[p] != want:
                problems.append(f"folio {p:#x}: entire_mapcount {mem.entire_mapcount[p]} but {want} PMDs "
                                "map it")
    return problems


def _pmd_mapped(f: _Frames, pmd_maps: Counter) -> Counter:
    """The census's huge PMD mappings of frames that exist."""
    return Counter({p: c for p, c in pmd_maps.items() if 0 <= p < f.n})


def _check_anon_exclusive(k: "Kernel", f: _Frames, pte_maps: Counter, pmd_maps: Counter,
                          mapped: Counter) -> list[str]:
    """PageAnonExclusive only on pages mapped once (PTEs and PMDs together)."""
    problems = []
    ae = f.anon_exclusive
    if len(mapped) != sum(mapped.values()):
        for p, c in mapped.items():
            if c > 1 and ae[p] and k.mem.folio_of(p) not in pmd_maps:
                problems.append(f"page {p:#x}: PageAnonExclusive but mapped {c} times")
    for pfn, c in _pmd_mapped(f, pmd_maps).items():
        if pfn + HPAGE_PMD_NR > f.n or not ae.count(1, pfn, pfn + HPAGE_PMD_NR) \
                or (c == 1 and pte_maps.keys().isdisjoint(range(pfn, pfn + HPAGE_PMD_NR))):
            continue
        for p in range(pfn, pfn + HPAGE_PMD_NR):
            total = c + pte_maps.get(p, 0)
            if total > 1 and ae[p]:
                problems.append(f"page {p:#x}: PageAnonExclusive but mapped {total} times")
    return problems


def _check_leaks(k: "Kernel", f: _Frames, pte_maps: Counter, pmd_maps: Counter) -> list[str]:
    """Nothing leaked: every folio but the zero pages is mapped or in the swap cache."""
    problems = []
    mem = k.mem
    swapcache = f.b0.translate(bm.SWAPCACHE)
    mapped_mask = bm.nonzero_bits(mem.mapcount.tobytes(), 4).to_bytes(f.n, "little").translate(bm.NONZERO)
    leaked = bm.and_masks(f.small, bm.not_mask(f.zero_mask), bm.not_mask(swapcache), bm.not_mask(mapped_mask))
    if leaked.count(1):
        for pfn in compress(range(f.n), leaked):
            problems.append(f"folio {pfn:#x}: leaked (not mapped, not in the swap cache)")
    for pfn in sorted(f.large_set - pmd_maps.keys()):
        if not swapcache[pfn] and pte_maps.keys().isdisjoint(range(pfn, pfn + HPAGE_PMD_NR)):
            problems.append(f"folio {pfn:#x}: leaked (not mapped, not in the swap cache)")
    return problems


def _check_lru(k: "Kernel", f: _Frames) -> list[str]:
    """The LRU holds every folio once, and nothing else; PG_lru marks exactly those."""
    problems = k.lru.check_links()
    inactive, active = dict.fromkeys(k.lru.inactive()), dict.fromkeys(k.lru.active())
    folios = bm.and_masks(f.small, bm.not_mask(f.zero_mask))
    large_set = f.large_set
    nr_folios = folios.count(1) + len(large_set)
    try:
        in_lru = sum(map(folios.__getitem__, inactive)) + sum(map(folios.__getitem__, active)) \
            + len(large_set & inactive.keys()) + len(large_set & active.keys())
    except (IndexError, TypeError):
        in_lru = -1
    if in_lru != nr_folios or len(inactive) + len(active) != nr_folios \
            or not inactive.keys().isdisjoint(active):
        lru = set(inactive) | set(active)
        for pfn in compress(range(f.n), folios):
            if pfn not in lru:
                problems.append(f"folio {pfn:#x}: not on the LRU")
        for pfn in sorted(large_set - lru):
            problems.append(f"folio {pfn:#x}: not on the LRU")
        for p in sorted(lru):
            if not 0 <= p < f.n or not f.used[p]:
                problems.append(f"LRU holds freed frame {p:#x}")
            elif not folios[p] and p not in large_set:
                problems.append(f"LRU holds {p:#x}, which is not a folio head")
        both = inactive.keys() & active.keys()
        if both:
            problems.append(f"folio {min(both):#x}: on both the active and the inactive LRU")
    return problems + check_lru_flags(k, f.b0.translate(bm.LRU))


def _check_gauges(k: "Kernel", f: _Frames, pte_maps: Counter, pmd_maps: Counter, mapped: Counter,
                  bad_pages: list[int]) -> list[str]:
    """Used and free frames add up to RAM; NR_ANON_MAPPED, NR_ANON_THPS and the mTHP nr_anon
    gauges match the census."""
    problems = []
    n = f.n
    used_frames = f.small.count(1) + HPAGE_PMD_NR * len(f.large)
    free_count = k.mem.alloc.nr_free
    if used_frames + free_count != n:
        problems.append(f"frames: {used_frames} used + {free_count} free != {n} of RAM")
    if f.free.count(1) != free_count:
        problems.append(f"allocator: nr_free {free_count} but {f.free.count(1)} frames are marked free")
    anon_mapped = len(mapped) - len([p for p in bad_pages if 0 <= p < n])
    for pfn in pmd_maps.keys() & f.large_set:
        anon_mapped += HPAGE_PMD_NR - len(pte_maps.keys() & range(pfn, pfn + HPAGE_PMD_NR))
    if anon_mapped != k.vmstat.nr_anon_pages:
        problems.append(f"nr_anon_pages {k.vmstat.nr_anon_pages} but {anon_mapped} anon pages are mapped")
    anon_thps = len(pmd_maps.keys() & f.large_set)
    if anon_thps != k.vmstat.nr_anon_thps:
        problems.append(f"nr_anon_transparent_hugepages {k.vmstat.nr_anon_thps} but {anon_thps} THPs are "
                        "PMD-mapped")
    nr_anon = len(f.large_set)
    if nr_anon != k.vmstat.mthp["nr_anon"]:
        problems.append(f"mthp nr_anon {k.vmstat.mthp['nr_anon']} but {nr_anon} PMD-size anon folios exist")
    partially = sum(1 for pfn in f.large_set if k.mem.flags[pfn] & PG.PARTIALLY_MAPPED)
    if partially != k.vmstat.mthp["nr_anon_partially_mapped"]:
        problems.append(f"mthp nr_anon_partially_mapped {k.vmstat.mthp['nr_anon_partially_mapped']} "
                        f"but {partially} folios are queued")
    return problems
