"""CONFIG_DEBUG_VM for the simulation: every invariant, checked on demand.

`check_invariants(k)` recomputes the machine's bookkeeping from a census of
every page table and compares: swap counts against the PTE and PMD swap entries
that reference each slot (a PMD entry counts once for each of its 512 slots),
the cache bit against the swap cache, Used slots and clusters, PMD swap entry
shape and exclusivity, MM_ANONPAGES / MM_SWAPENTS, folio mapcounts and the
NR_ANON_MAPPED / NR_ANON_THPS / mTHP nr_anon gauges, deposited tables against
nr_ptes, free + used frames against RAM, leaked folios, the LRU, VMA shape and
entries outside every VMA.  `check_data(k)` compares every page of every
process, and every swap slot it references, with the shadow record of what it
should read: a page that was written must still be mapped (present or swap).
Both return readable problems; an empty list means all is well.

The checks run after every step of a debug_vm session, so each compares whole
arrays at once (bytes.translate, itertools.compress, array equality) and walks
slot by slot or frame by frame only where something differs, to name it.
"""

from __future__ import annotations

from array import array
from collections import Counter
from itertools import compress, repeat
from operator import rshift
from typing import TYPE_CHECKING

from .constants import (HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SHIFT, PMD_SHIFT, SWAP_COUNT_MASK, SWAP_HAS_CACHE,
                        SWAP_MAP_BAD, TASK_SIZE)
from .folio import PG
from .pgtable import F_SPECIAL, F_SWP_EXCLUSIVE, KIND_MASK, KIND_PRESENT, KIND_SWAP, PmdKind, pte_pfn

if TYPE_CHECKING:
    from .kernel import Kernel

# Per-byte tables over the low byte (bits 0-7) and the second byte (bits 8-15) of a
# PTE word, a page-flags word, or a swap_map byte: 1 where the property holds.
_PRESENT = bytes(int(b & KIND_MASK == KIND_PRESENT) for b in range(256))
_SWAP = bytes(int(b & KIND_MASK == KIND_SWAP) for b in range(256))
_BAD_KIND = bytes(int(b & KIND_MASK == 3) for b in range(256))
_SWP_EXCL = bytes(int(b & KIND_MASK == KIND_SWAP and bool(b & F_SWP_EXCLUSIVE)) for b in range(256))
_SPECIAL = bytes(int(bool(b & (F_SPECIAL >> 8))) for b in range(256))
_NOT_SPECIAL = bytes(int(not b & (F_SPECIAL >> 8)) for b in range(256))
_COUNT = bytes(0 if b == SWAP_MAP_BAD else b & SWAP_COUNT_MASK for b in range(256))
_CACHE_BIT = bytes(int(b != SWAP_MAP_BAD and bool(b & SWAP_HAS_CACHE)) for b in range(256))
_IS_ZERO = bytes(int(b == 0) for b in range(256))
_NONZERO = bytes(int(b != 0) for b in range(256))


def _bit(flag: int, byte: int) -> bytes:
    """Translate table for one page flag, as seen in byte `byte` of the flags word."""
    return bytes(int(bool(b & (flag >> (8 * byte)))) for b in range(256))


_USED, _HEAD, _TAIL, _SWAPCACHE = (_bit(f, 0) for f in (PG.USED, PG.HEAD, PG.TAIL, PG.SWAPCACHE))
_ZERO = _bit(PG.ZERO, 1)
_ANON_EXCLUSIVE = _bit(PG.ANON_EXCLUSIVE, 1)
_ZEROS_Q = array("Q", bytes(8 * HPAGE_PMD_NR))
_EMPTY_TABLE = bytes(8 * HPAGE_PMD_NR)


def _and(*masks: bytes) -> bytes:
    """Byte-wise AND of 0/1 masks of equal length."""
    n = len(masks[0])
    acc = int.from_bytes(masks[0], "little")
    for m in masks[1:]:
        acc &= int.from_bytes(m, "little")
    return acc.to_bytes(n, "little")


def _not(mask: bytes) -> bytes:
    return mask.translate(_IS_ZERO)


def _nonzero_bits(raw: bytes, width: int) -> int:
    """An int with a non-zero byte i exactly where element i of `raw` (`width` bytes each) is non-zero."""
    acc = 0
    for lane in range(width):
        acc |= int.from_bytes(raw[lane::width], "little")
    return acc


def _pte_masks(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """(present anon, present special, swap) masks over the 512 PTEs of a table (its bytes)."""
    low, second = raw[0::8], raw[1::8]
    present = low.translate(_PRESENT)
    return (_and(present, second.translate(_NOT_SPECIAL)), _and(present, second.translate(_SPECIAL)),
            low.translate(_SWAP))


def _swap_key(type_: int, offset: int) -> int:
    """A swap entry as one int, `(offset << 5) | type`: a swap PTE word >> 12."""
    return (offset << 5) | type_


def check_invariants(k: "Kernel") -> list[str]:
    problems: list[str] = []
    slot_refs: Counter[int] = Counter()          # swap key -> references from page tables
    exclusive_slots: list[tuple[int, int, str]] = []  # (first key, nr, where) of exclusive entries
    exclusive_keys: list[int] = []
    pte_maps: Counter[int] = Counter()
    pmd_maps: Counter[int] = Counter()
    for pid, mm in sorted(k.mms.items()):
        problems += _check_vmas(pid, mm)
        anon = swapents = tables = 0
        for pmdi, pmd in sorted(mm.pmds.items()):
            where = f"pid {pid} pmd {pmdi << PMD_SHIFT:#x}"
            if pmd.kind is PmdKind.TABLE:
                tables += 1
                if pmd.deposited:
                    problems.append(f"{where}: a PTE table PMD has a deposit")
                ptes = pmd.table.ptes
                if len(ptes) != HPAGE_PMD_NR:
                    problems.append(f"{where}: PTE table of {len(ptes)} entries")
                    continue
                raw = ptes.tobytes()
                if raw == _EMPTY_TABLE:
                    continue
                anon_mask, special_mask, swap_mask = _pte_masks(raw)
                problems += _check_table_shape(k, mm, pmdi, where, ptes, raw, special_mask)
                pfns = list(map(rshift, compress(ptes, anon_mask), repeat(12)))
                anon += len(pfns)
                pte_maps.update(pfns)
                keys = list(map(rshift, compress(ptes, swap_mask), repeat(12)))
                if keys:
                    swapents += len(keys)
                    slot_refs.update(keys)
                    excl = list(compress(range(HPAGE_PMD_NR), raw[0::8].translate(_SWP_EXCL)))
                    for i in excl:
                        exclusive_slots.append((ptes[i] >> 12, 1, f"{where} pte {i}"))
                        exclusive_keys.append(ptes[i] >> 12)
                continue
            if not pmd.deposited:
                problems.append(f"{where}: {pmd.kind.value} PMD without a deposited table")
            tables += 1
            vma = mm.find_vma(pmdi << PMD_SHIFT)
            if vma is None or vma.end < (pmdi + 1) << PMD_SHIFT:
                problems.append(f"{where}: {pmd.kind.value} PMD not wholly inside a VMA")
            if pmd.kind is PmdKind.HUGE:
                anon += HPAGE_PMD_NR
                pmd_maps[pmd.pfn] += 1
                if not 0 <= pmd.pfn < k.mem.nr_frames or k.mem.order[pmd.pfn] != HPAGE_PMD_ORDER:
                    order = k.mem.order[pmd.pfn] if 0 <= pmd.pfn < k.mem.nr_frames else None
                    problems.append(f"{where}: huge PMD maps a folio of order {order}")
            elif pmd.kind is PmdKind.ZERO:
                if pmd.pfn != k.huge_zero_pfn:
                    problems.append(f"{where}: huge zero PMD maps {pmd.pfn:#x}, not the huge zero folio")
            elif pmd.kind is PmdKind.SWAP:
                swapents += HPAGE_PMD_NR
                if not k.config.pmd_swap:
                    problems.append(f"{where}: a PMD swap entry in mainline mode")
                if pmd.swp_offset % HPAGE_PMD_NR:
                    problems.append(f"{where}: PMD swap entry offset {pmd.swp_offset:#x} not 512-aligned")
                first = _swap_key(pmd.swp_type, pmd.swp_offset)
                keys = range(first, first + (HPAGE_PMD_NR << 5), 1 << 5)
                slot_refs.update(keys)
                if pmd.flags & F_SWP_EXCLUSIVE:
                    exclusive_slots.append((first, HPAGE_PMD_NR, where))
                    exclusive_keys.extend(keys)
            else:
                problems.append(f"{where}: unexpected PMD kind {pmd.kind.value}")
        if anon != mm.rss_anon:
            problems.append(f"pid {pid}: MM_ANONPAGES {mm.rss_anon} but page tables map {anon}")
        if swapents != mm.rss_swapents:
            problems.append(f"pid {pid}: MM_SWAPENTS {mm.rss_swapents} but page tables hold {swapents}")
        if tables != mm.nr_ptes:
            problems.append(f"pid {pid}: nr_ptes {mm.nr_ptes} but {tables} tables and deposits exist")
    problems += _check_swap(k, slot_refs, exclusive_slots, exclusive_keys)
    problems += _check_folios(k, pte_maps, pmd_maps)
    return problems


def _check_vmas(pid: int, mm) -> list[str]:
    """VMAs are page-aligned, non-empty, in the user address space, sorted and disjoint."""
    problems = []
    prev_end = 0
    for v in mm.vmas:
        if v.start >= v.end or (v.start | v.end) & ((1 << PAGE_SHIFT) - 1) or v.end > TASK_SIZE:
            problems.append(f"pid {pid}: malformed VMA {v.start:#x}-{v.end:#x}")
        if v.start < prev_end:
            problems.append(f"pid {pid}: VMA {v.start:#x}-{v.end:#x} overlaps or is out of order")
        prev_end = max(prev_end, v.end)
    return problems


def _check_table_shape(k: "Kernel", mm, pmdi: int, where: str, ptes: array, raw: bytes,
                       special: bytes) -> list[str]:
    """No malformed entries, the zero page only as special, nothing outside the VMAs."""
    problems = []
    low = raw[0::8]
    nonzero_none = low.translate(_PRESENT).count(0) - low.translate(_SWAP).count(1) - ptes.count(0)
    if low.translate(_BAD_KIND).count(1) or nonzero_none:
        problems.append(f"{where}: PTE table holds malformed entries")
    if set(map(rshift, compress(ptes, special), repeat(12))) - {k.zero_pfn}:
        problems.append(f"{where}: a special PTE maps something other than the zero page")
    base = pmdi << PMD_SHIFT
    i = 0
    for v in mm.vmas_in(base, base + (1 << PMD_SHIFT)):
        lo = max(0, (v.start - base) >> PAGE_SHIFT)
        if raw.count(0, 8 * i, 8 * lo) != 8 * (lo - i):
            problems.append(f"{where}: entries outside every VMA (ptes {i}..{lo - 1})")
        i = max(i, min(HPAGE_PMD_NR, (v.end - base) >> PAGE_SHIFT))
    if raw.count(0, 8 * i) != 8 * (HPAGE_PMD_NR - i):
        problems.append(f"{where}: entries outside every VMA (ptes {i}..511)")
    return problems


def _check_swap(k: "Kernel", slot_refs: Counter, exclusive_slots: list, exclusive_keys: list) -> list[str]:
    problems: list[str] = []
    cached_pages = 0
    by_type: dict[int, list[tuple[int, int]]] = {}
    for key, n in slot_refs.items():
        by_type.setdefault(key & 0x1F, []).append((key >> 5, n))
    for t in sorted(by_type):
        si = k.swap_info[t]
        if si is None:
            problems.append(f"{len(by_type[t])} swap entries reference type {t}, which is not an active device")
            continue
        beyond = [off for off, _ in by_type[t] if not 0 <= off < si.pages]
        if beyond:
            problems.append(f"swap {si.name}: entries reference offset {min(beyond):#x} beyond the device")
    for si in k.swap_info:
        if si is None:
            continue
        problems += _check_device(k, si, by_type.get(si.type, []))
        cached_pages += len(si.cache)
    if exclusive_keys and max(map(slot_refs.__getitem__, exclusive_keys)) > 1:
        for first, nr, where in exclusive_slots:
            type_, off = first & 0x1F, first >> 5
            si = k.swap_info[type_]
            for s in range(off, off + nr):
                if si is not None and s < si.pages and si.swap_count(s) != 1:
                    problems.append(f"{where}: exclusive swap entry {type_}:{s:#x} has count {si.swap_count(s)}")
    for pfn, entry in k.folio_swap.items():
        nr = k.mem.nr_pages(pfn)
        if entry.offset % nr:
            problems.append(f"folio {pfn:#x}: swap cache slots {entry} not naturally aligned")
        if not k.mem.test(pfn, PG.SWAPCACHE):
            problems.append(f"folio {pfn:#x}: has folio->swap but no PG_swapcache")
        si = k.swap_info[entry.type]
        if si is None or set(map(si.cache.get, range(entry.offset, entry.offset + nr))) != {pfn}:
            problems.append(f"folio {pfn:#x}: its swap cache slots {entry}+{nr} do not all point back to it")
    if cached_pages != k.vmstat.nr_swapcached:
        problems.append(f"nr_swapcached {k.vmstat.nr_swapcached} but the swap cache holds {cached_pages} pages")
    return problems


def _check_device(k: "Kernel", si, refs: list[tuple[int, int]]) -> list[str]:
    """One device: counts against the census, cache bits, Used, clusters, freed slots, the cache."""
    problems: list[str] = []
    sm = si.swap_map
    pages = si.pages
    # swap counts (continued counts and counts past a byte are compared slot by slot)
    want = bytearray(pages)
    odd: dict[int, int] = {}
    for off, n in refs:
        if 0 <= off < pages:
            if n <= SWAP_COUNT_MASK:
                want[off] = n
            else:
                odd[off] = n
    have = bytearray(sm.translate(_COUNT))
    for off in set(odd) | set(si.cont):
        if 0 <= off < pages:
            refs_here = odd.get(off, want[off])
            if si.swap_count(off) != refs_here:
                problems.append(f"swap {si.name} slot {off:#x}: count {si.swap_count(off)} but "
                                f"{refs_here} entries reference it")
            have[off] = want[off] = 0
    if have != want:
        for off in range(pages):
            if have[off] != want[off]:
                problems.append(f"swap {si.name} slot {off:#x}: count {have[off]} but {want[off]} entries "
                                "reference it")
    # the cache bit against the swap cache
    cache_bits = sm.translate(_CACHE_BIT)
    cached = bytearray(pages)
    for off in si.cache:
        if 0 <= off < pages:
            cached[off] = 1
        else:
            problems.append(f"swap {si.name}: swap cache holds slot {off:#x} beyond the device")
    if cache_bits != cached:
        for off in range(1, pages):
            if cache_bits[off] != cached[off]:
                problems.append(f"swap {si.name} slot {off:#x}: cache bit {bool(cache_bits[off])}"
                                f" but swap cache {'holds' if cached[off] else 'lacks'} it")
    # Used slots and clusters (slot 0 is the header; slots past the end fill the last cluster)
    used = (pages - 1) - sm.count(0, 1)
    if used != si.inuse_pages:
        problems.append(f"swap {si.name}: inuse_pages {si.inuse_pages} but {used} slots allocated")
    cluster_used = [min(HPAGE_PMD_NR, pages - c * HPAGE_PMD_NR) - sm.count(0, c * HPAGE_PMD_NR,
                                                                          (c + 1) * HPAGE_PMD_NR)
                    for c in range(si.nr_clusters)]
    if pages and sm[0] == 0:
        cluster_used[0] += 1
    cluster_used[-1] += si.nr_clusters * HPAGE_PMD_NR - pages
    if list(si.cluster_used) != cluster_used:
        problems.append(f"swap {si.name}: cluster usage out of step with swap_map")
    if sm[0] != SWAP_MAP_BAD:
        problems.append(f"swap {si.name}: header slot overwritten")
    # a free slot keeps nothing
    free = sm.translate(_IS_ZERO)
    free_bits = int.from_bytes(free, "little")
    if free_bits & (int.from_bytes(si.zeromap.translate(_NONZERO), "little")
                    | int.from_bytes(si.zswap.translate(_NONZERO), "little")) \
            or free_bits & int.from_bytes(_nonzero_bits(si.data.tobytes(), 8).to_bytes(pages, "little")
                                          .translate(_NONZERO), "little"):
        for off in compress(range(pages), free):
            if off and (si.zeromap[off] or si.zswap[off] or si.data[off]):
                problems.append(f"swap {si.name} slot {off:#x}: free slot keeps data")
    # every cached slot is owned by its folio
    for off, pfn in si.cache.items():
        entry = k.folio_swap.get(pfn)
        if entry is None or entry.type != si.type or not entry.offset <= off < entry.offset + k.mem.nr_pages(pfn):
            problems.append(f"swap {si.name} slot {off:#x}: cached folio {pfn:#x} does not own it")
    return problems


def _check_folios(k: "Kernel", pte_maps: Counter, pmd_maps: Counter) -> list[str]:
    problems: list[str] = []
    mem = k.mem
    n = mem.nr_frames
    raw = mem.flags.tobytes()
    b0, b1 = raw[0::4], raw[1::4]
    used = b0.translate(_USED)
    free = bytes(mem.alloc._free)
    # every frame is either in use or free, never both, never neither
    u, f = int.from_bytes(used, "little"), int.from_bytes(free, "little")
    if u & f or (u | f) != int.from_bytes(b"\x01" * n, "little"):
        for pfn in range(n):
            if not used[pfn] and not free[pfn]:
                problems.append(f"frame {pfn:#x}: neither free nor in use")
            elif used[pfn] and free[pfn]:
                problems.append(f"frame {pfn:#x}: in use and free at once")
    tail_mask = b0.translate(_TAIL)
    head_bits = b0.translate(_HEAD)
    small_mask = _and(used, _not(tail_mask), _not(head_bits))
    # folio shape: 512-aligned order-9 heads with 511 tails, order-0 frames elsewhere
    large = [p for p in range(0, n, HPAGE_PMD_NR) if head_bits[p] and used[p]]
    if head_bits.count(1) != len(large):
        problems.append(f"{head_bits.count(1) - len(large)} head pages are not 2 MiB-aligned folios in use")
    for pfn in large:
        seg = b0[pfn + 1:pfn + HPAGE_PMD_NR]
        if mem.order[pfn] != HPAGE_PMD_ORDER:
            problems.append(f"folio {pfn:#x}: large folio of order {mem.order[pfn]}")
        elif _and(seg.translate(_TAIL), seg.translate(_USED)).count(1) != HPAGE_PMD_NR - 1 \
                or seg.translate(_HEAD).count(1):
            problems.append(f"folio {pfn:#x}: tail pages out of shape")
    if tail_mask.count(1) != (HPAGE_PMD_NR - 1) * len(large):
        problems.append(f"{tail_mask.count(1) - (HPAGE_PMD_NR - 1) * len(large)} tail pages belong to no "
                        "large folio")
    if _and(mem.order.translate(_NONZERO), small_mask).count(1):
        problems.append("an order-0 frame records a non-zero order")
    zero_mask = b1.translate(_ZERO)
    zero = {k.zero_pfn} | ({k.huge_zero_pfn} if k.huge_zero_pfn is not None else set())
    if zero_mask.count(1) != len(zero) or not all(zero_mask[p] and used[p] for p in zero):
        problems.append("the zero pages are not the frames marked PG_zero")
    large_set = set(large) - zero
    nr_small = small_mask.count(1)
    used_frames = nr_small + HPAGE_PMD_NR * len(large)
    # mapcounts: gather at the census's pages, and nothing mapped elsewhere
    bad_pages = [p for p in pte_maps if not 0 <= p < n or not used[p] or p in zero]
    for p in bad_pages:
        problems.append(f"page {p:#x}: a PTE maps it but it is not an anonymous page in use")
    mapped = pte_maps if not bad_pages else Counter({p: c for p, c in pte_maps.items() if 0 <= p < n})
    if list(map(mem.mapcount.__getitem__, mapped)) != list(mapped.values()) \
            or n - mem.mapcount.count(0) != len(mapped):
        for p in range(n):
            want = pte_maps.get(p, 0)
            if mem.mapcount[p] != want:
                problems.append(f"page {p:#x}: mapcount {mem.mapcount[p]} but {want} PTEs map it")
    for pfn in pmd_maps:
        if pfn not in large_set:
            problems.append(f"folio {pfn:#x}: a huge PMD maps it but it is not a THP in use")
    pmd_mapped = Counter({p: c for p, c in pmd_maps.items() if 0 <= p < n})
    if list(map(mem.entire_mapcount.__getitem__, pmd_mapped)) != list(pmd_mapped.values()) \
            or n - mem.entire_mapcount.count(0) != len(pmd_mapped):
        for p in range(n):
            want = pmd_maps.get(p, 0)
            if mem.entire_mapcount[p] != want:
                problems.append(f"folio {p:#x}: entire_mapcount {mem.entire_mapcount[p]} but {want} PMDs map it")
    # PageAnonExclusive only on pages mapped once
    ae = b1.translate(_ANON_EXCLUSIVE)
    if len(mapped) != sum(mapped.values()):
        for p, c in mapped.items():
            if c > 1 and ae[p] and mem.folio_of(p) not in pmd_maps:
                problems.append(f"page {p:#x}: PageAnonExclusive but mapped {c} times")
    for pfn, c in pmd_mapped.items():
        if pfn + HPAGE_PMD_NR > n or not ae.count(1, pfn, pfn + HPAGE_PMD_NR) \
                or (c == 1 and pte_maps.keys().isdisjoint(range(pfn, pfn + HPAGE_PMD_NR))):
            continue
        for p in range(pfn, pfn + HPAGE_PMD_NR):
            total = c + pte_maps.get(p, 0)
            if total > 1 and ae[p]:
                problems.append(f"page {p:#x}: PageAnonExclusive but mapped {total} times")
    # nothing leaked: an order-0 folio is mapped or in the swap cache (a large one below)
    swapcache = b0.translate(_SWAPCACHE)
    mapped_mask = _nonzero_bits(mem.mapcount.tobytes(), 4).to_bytes(n, "little").translate(_NONZERO)
    leaked = _and(small_mask, _not(zero_mask), _not(swapcache), _not(mapped_mask))
    if leaked.count(1):
        for pfn in compress(range(n), leaked):
            problems.append(f"folio {pfn:#x}: leaked (not mapped, not in the swap cache)")
    for pfn in sorted(large_set - pmd_maps.keys()):
        if not swapcache[pfn] and pte_maps.keys().isdisjoint(range(pfn, pfn + HPAGE_PMD_NR)):
            problems.append(f"folio {pfn:#x}: leaked (not mapped, not in the swap cache)")
    # the LRU holds every folio once, and nothing else
    inactive, active = k.lru.inactive, k.lru.active
    folios = _and(small_mask, _not(zero_mask))
    nr_folios = folios.count(1) + len(large_set)
    try:
        in_lru = sum(map(folios.__getitem__, inactive)) + sum(map(folios.__getitem__, active)) \
            + len(large_set & inactive.keys()) + len(large_set & active.keys())
    except (IndexError, TypeError):
        in_lru = -1
    if in_lru != nr_folios or len(inactive) + len(active) != nr_folios \
            or not inactive.keys().isdisjoint(active):
        lru = set(inactive) | set(active)
        for pfn in compress(range(n), folios):
            if pfn not in lru:
                problems.append(f"folio {pfn:#x}: not on the LRU")
        for pfn in sorted(large_set - lru):
            problems.append(f"folio {pfn:#x}: not on the LRU")
        for p in sorted(lru):
            if not 0 <= p < n or not used[p]:
                problems.append(f"LRU holds freed frame {p:#x}")
            elif not folios[p] and p not in large_set:
                problems.append(f"LRU holds {p:#x}, which is not a folio head")
        both = inactive.keys() & active.keys()
        if both:
            problems.append(f"folio {min(both):#x}: on both the active and the inactive LRU")
    # frames and gauges
    free_count = mem.alloc.nr_free
    if used_frames + free_count != n:
        problems.append(f"frames: {used_frames} used + {free_count} free != {n} of RAM")
    if free.count(1) != free_count:
        problems.append(f"allocator: nr_free {free_count} but {free.count(1)} frames are marked free")
    anon_mapped = len(mapped) - len([p for p in bad_pages if 0 <= p < n])
    for pfn in pmd_maps.keys() & large_set:
        anon_mapped += HPAGE_PMD_NR - len(pte_maps.keys() & range(pfn, pfn + HPAGE_PMD_NR))
    if anon_mapped != k.vmstat.nr_anon_pages:
        problems.append(f"nr_anon_pages {k.vmstat.nr_anon_pages} but {anon_mapped} anon pages are mapped")
    anon_thps = len(pmd_maps.keys() & large_set)
    if anon_thps != k.vmstat.nr_anon_thps:
        problems.append(f"nr_anon_transparent_hugepages {k.vmstat.nr_anon_thps} but {anon_thps} THPs are PMD-mapped")
    if len(large_set) != k.vmstat.mthp["nr_anon"]:
        problems.append(f"mthp nr_anon {k.vmstat.mthp['nr_anon']} but {len(large_set)} PMD-size anon folios exist")
    partially = sum(1 for pfn in large_set if mem.flags[pfn] & PG.PARTIALLY_MAPPED)
    if partially != k.vmstat.mthp["nr_anon_partially_mapped"]:
        problems.append(f"mthp nr_anon_partially_mapped {k.vmstat.mthp['nr_anon_partially_mapped']} "
                        f"but {partially} folios are queued")
    return problems


def check_data(k: "Kernel") -> list[str]:
    """Every page of every process reads what the shadow says it should.

    A present or swapped page is read without faulting; a page that is not
    mapped at all (none PMD or PTE) reads zeros when faulted, so its shadow
    value must be 0: anything else was written and then lost.
    """
    problems: list[str] = []
    for pid in sorted(k.shadow.procs.keys() - k.mms.keys()):
        problems.append(f"the shadow still records pages of pid {pid}, which has exited")
    for pid, mm in sorted(k.mms.items()):
        shadow = k.shadow.procs.get(pid, {})
        for pmdi in sorted(shadow.keys() - mm.pmds.keys()):
            chunk = shadow[pmdi]
            if any(chunk):
                i = next(j for j, v in enumerate(chunk) if v)
                problems.append(f"pid {pid} page {(pmdi << PMD_SHIFT) + (i << PAGE_SHIFT):#x}: last written "
                                f"{chunk[i]:#x} but not mapped (reads zero)")
        for pmdi, pmd in sorted(mm.pmds.items()):
            chunk = shadow.get(pmdi)
            if _pmd_reads_shadow(k, pmd, chunk if chunk is not None else _ZEROS_Q):
                continue
            base = pmdi << PMD_SHIFT
            for i in range(HPAGE_PMD_NR):
                want = chunk[i] if chunk is not None else 0
                got = _read_entry(k, pmd, i)
                if got == _UNREADABLE:
                    problems.append(f"pid {pid} page {base + (i << PAGE_SHIFT):#x}: maps a frame or swap "
                                    "slot that does not exist")
                    continue
                if got is None:
                    if want:
                        problems.append(f"pid {pid} page {base + (i << PAGE_SHIFT):#x}: last written {want:#x} "
                                        "but not mapped (reads zero)")
                    continue
                if got != want:
                    problems.append(f"pid {pid} page {base + (i << PAGE_SHIFT):#x}: reads {got:#x}, "
                                    f"last written {want:#x}")
                if len(problems) > 20:
                    return problems
    return problems


def _pmd_reads_shadow(k: "Kernel", pmd, chunk: array) -> bool:
    """Fast path of check_data for one PMD: True when every page surely reads its shadow value."""
    mem = k.mem
    if pmd.kind is PmdKind.HUGE:
        return mem.data[pmd.pfn:pmd.pfn + HPAGE_PMD_NR] == chunk
    if pmd.kind is PmdKind.ZERO:
        return chunk == _ZEROS_Q
    if pmd.kind is PmdKind.SWAP:
        si = k.swap_info[pmd.swp_type]
        off = pmd.swp_offset
        if si is None or off + HPAGE_PMD_NR > si.pages:
            return False
        if not si.cache or si.cache.keys().isdisjoint(range(off, off + HPAGE_PMD_NR)):
            return si.data[off:off + HPAGE_PMD_NR] == chunk
        folio = si.cache.get(off)
        return folio is not None and mem.order[folio] == HPAGE_PMD_ORDER \
            and k.folio_swap[folio].offset == off and mem.data[folio:folio + HPAGE_PMD_NR] == chunk
    if pmd.kind is not PmdKind.TABLE:
        return False
    ptes = pmd.table.ptes
    raw = ptes.tobytes()
    anon, special, swap = _pte_masks(raw)
    if any(compress(chunk, special)):
        return False
    pfns = list(map(rshift, compress(ptes, anon), repeat(12)))
    if pfns and max(pfns) >= mem.nr_frames:
        return False
    if list(map(mem.data.__getitem__, pfns)) != list(compress(chunk, anon)):
        return False
    if any(compress(chunk, raw[0::8].translate(_KIND_NONE))):
        return False
    words = list(compress(ptes, swap))
    if not words:
        return True
    types = {(w >> 12) & 0x1F for w in words}
    if len(types) != 1:
        return False
    si = k.swap_info[types.pop()]
    if si is None:
        return False
    offs = list(map(rshift, words, repeat(17)))
    if max(offs) >= si.pages or (si.cache and not si.cache.keys().isdisjoint(offs)):
        return False
    return list(map(si.data.__getitem__, offs)) == list(compress(chunk, swap))


_KIND_NONE = bytes(int(b & KIND_MASK == 0) for b in range(256))


#: What _read_entry gives for a swap entry whose slot nothing holds (a dangling entry).
_UNREADABLE = -1


def _read_entry(k: "Kernel", pmd, i: int) -> int | None:
    """The value page i of this PMD reads without faulting; None if not mapped."""
    if pmd.kind is PmdKind.HUGE:
        return _read_frame(k, pmd.pfn + i)
    if pmd.kind is PmdKind.ZERO:
        return 0
    if pmd.kind is PmdKind.SWAP:
        return _read_slot(k, pmd.swp_type, pmd.swp_offset + i)
    if pmd.kind is PmdKind.TABLE:
        pte = pmd.table.ptes[i]
        kind = pte & KIND_MASK
        if kind == KIND_PRESENT:
            return 0 if pte & F_SPECIAL else _read_frame(k, pte_pfn(pte))
        if kind == KIND_SWAP:
            return _read_slot(k, (pte >> 12) & 0x1F, pte >> 17)
    return None


def _read_frame(k: "Kernel", pfn: int) -> int:
    return k.mem.data[pfn] if 0 <= pfn < k.mem.nr_frames else _UNREADABLE


def _read_slot(k: "Kernel", type_: int, off: int) -> int:
    """What a swap slot reads: its swap-cache folio's page, else the device's copy."""
    si = k.swap_info[type_]
    if si is None or not 0 <= off < si.pages:
        return _UNREADABLE
    folio = si.cache.get(off)
    if folio is None:
        return si.data[off]
    entry = k.folio_swap.get(folio)
    return _read_frame(k, folio + (off - entry.offset)) if entry is not None else _UNREADABLE
