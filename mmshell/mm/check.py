"""CONFIG_DEBUG_VM for the simulation: every invariant, checked on demand.

`check_invariants(k)` recomputes the machine's bookkeeping from a census of
every page table and compares: swap counts against the PTE and PMD swap entries
that reference each slot (a PMD entry counts once for each of its 512 slots),
the cache bit against the swap cache, Used slots and clusters, PMD swap entry
shape and exclusivity, MM_ANONPAGES / MM_SWAPENTS, folio mapcounts and the
NR_ANON_MAPPED / NR_ANON_THPS / mTHP nr_anon gauges, deposited tables (one per
PMD-level entry with eager deposit, none with lazy) against
nr_ptes, free + used frames against RAM, leaked folios, the LRU (the mem_map's
invariants are in check_folio.py), VMA shape and entries outside every VMA, and
(check_rmap.py) that reclaim can reach every folio: the rmap walk finds each
mapping, no two folios cache one slot, PG_lru marks the folios on the LRU.  It returns readable problems; an empty list means
all is well.  (`check_data.check_data(k)` checks the pages' contents.)

The checks run after every step of a debug_vm session, so each compares whole
arrays at once (bytes.translate, itertools.compress, array equality) and walks
slot by slot or frame by frame only where something differs, to name it.
"""

from __future__ import annotations

from array import array
from collections import Counter
from itertools import compress, repeat
from operator import add, and_, eq, lt, rshift
from typing import TYPE_CHECKING

from . import pte_masks as bm
from .check_folio import check_folios, nonzero_entries
from .check_rmap import check_rmap_pmd, check_rmap_table, check_swap_cache_overlap
from .check_swapcache import swap_cache_owners
from .config import Deposit
from .constants import HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SHIFT, PMD_SHIFT, SWAP_COUNT_MASK, SWAP_MAP_BAD, TASK_SIZE
from .folio import PG
from .pgtable import F_SWP_EXCLUSIVE, PFN_SHIFT, SWP_TYPE_BITS, SWP_TYPE_MASK, SWP_TYPE_SHIFT, PmdKind

if TYPE_CHECKING:
    from .kernel import Kernel


def _swap_key(type_: int, offset: int) -> int:
    """A swap entry as one int, `(offset << SWP_TYPE_BITS) | type`: a swap PTE word >> SWP_TYPE_SHIFT."""
    return (offset << SWP_TYPE_BITS) | type_


def check_invariants(k: "Kernel") -> list[str]:
    problems: list[str] = []
    slot_refs: Counter[int] = Counter()          # swap key -> references from page tables
    # exclusive entries: (first key, nr, where) of a PMD's, (ptes, SWP_EXCL mask, where) of a table's
    exclusive_slots: list[tuple[int | array, int | bytes, str]] = []
    exclusive_keys: list[int] = []
    pte_maps: Counter[int] = Counter()
    pmd_maps: Counter[int] = Counter()
    for pid, mm in sorted(k.mms.peek_items()):
        problems += _check_vmas(pid, mm)
        anon = swapents = tables = 0
        for pmdi, pmd in sorted(mm.pmds.items()):
            where = f"pid {pid} pmd {pmdi << PMD_SHIFT:#x}"
            if pmd.kind is PmdKind.TABLE:
                tables += 1
                if pmd.deposited:
                    problems.append(f"{where}: a PTE table PMD has a deposit")
                if pmd.table is None:
                    problems.append(f"{where}: a PTE table PMD has no table")
                    continue
                ptes = pmd.table.ptes
                if len(ptes) != HPAGE_PMD_NR:
                    problems.append(f"{where}: PTE table of {len(ptes)} entries")
                    continue
                raw = ptes.tobytes()
                if raw == bm.EMPTY_TABLE:
                    continue
                anon_mask, special_mask, swap_mask = bm.pte_masks(raw)
                problems += _check_table_shape(k, mm, pmdi, where, ptes, raw, special_mask)
                pfns = list(map(rshift, compress(ptes, anon_mask), repeat(PFN_SHIFT)))
                anon += len(pfns)
                pte_maps.update(pfns)
                problems += check_rmap_table(k, mm, pmdi, where, anon_mask, pfns)
                keys = list(map(rshift, compress(ptes, swap_mask), repeat(SWP_TYPE_SHIFT)))
                if keys:
                    swapents += len(keys)
                    slot_refs.update(keys)
                    excl = raw[0::8].translate(bm.SWP_EXCL)
                    if excl.count(1):           # named entry by entry only if one is shared (_check_swap)
                        exclusive_keys.extend(compress(keys, compress(excl, swap_mask)))
                        exclusive_slots.append((ptes, excl, where))
                continue
            # decision 10: eager deposit gives every PMD-level entry a table, lazy deposit none
            if pmd.deposited != (k.config.deposit is Deposit.EAGER):
                problems.append(f"{where}: {pmd.kind.value} PMD {'with' if pmd.deposited else 'without'} "
                                f"a deposited table ({k.config.deposit.value} deposit)")
            tables += pmd.deposited
            vma = mm.find_vma(pmdi << PMD_SHIFT)
            if vma is None or vma.end < (pmdi + 1) << PMD_SHIFT:
                problems.append(f"{where}: {pmd.kind.value} PMD not wholly inside a VMA")
            if pmd.kind is PmdKind.HUGE:
                anon += HPAGE_PMD_NR
                pmd_maps[pmd.pfn] += 1
                if not 0 <= pmd.pfn < k.mem.nr_frames or k.mem.order[pmd.pfn] != HPAGE_PMD_ORDER:
                    order = k.mem.order[pmd.pfn] if 0 <= pmd.pfn < k.mem.nr_frames else None
                    problems.append(f"{where}: huge PMD maps a folio of order {order}")
                else:
                    problems += check_rmap_pmd(k, mm, pmdi, where, pmd.pfn)
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
                pmd_keys = range(first, first + (HPAGE_PMD_NR << SWP_TYPE_BITS), 1 << SWP_TYPE_BITS)
                slot_refs.update(pmd_keys)
                if pmd.flags & F_SWP_EXCLUSIVE:
                    exclusive_slots.append((first, HPAGE_PMD_NR, where))
                    exclusive_keys.extend(pmd_keys)
            else:
                problems.append(f"{where}: unexpected PMD kind {pmd.kind.value}")
        if anon != mm.rss_anon:
            problems.append(f"pid {pid}: MM_ANONPAGES {mm.rss_anon} but page tables map {anon}")
        if swapents != mm.rss_swapents:
            problems.append(f"pid {pid}: MM_SWAPENTS {mm.rss_swapents} but page tables hold {swapents}")
        if tables != mm.nr_ptes:
            problems.append(f"pid {pid}: nr_ptes {mm.nr_ptes} but {tables} tables and deposits exist")
    problems += _check_swap(k, slot_refs, exclusive_slots, exclusive_keys)
    problems += check_folios(k, pte_maps, pmd_maps)
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
    nonzero_none = low.translate(bm.PRESENT).count(0) - low.translate(bm.SWAP).count(1) - ptes.count(0)
    if low.translate(bm.BAD_KIND).count(1) or nonzero_none:
        problems.append(f"{where}: PTE table holds malformed entries")
    if set(map(rshift, compress(ptes, special), repeat(PFN_SHIFT))) - {k.zero_pfn}:
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
    # the census by device: (offsets, reference counts), the keys split in C
    keys, counts = list(slot_refs), list(slot_refs.values())
    offs = list(map(rshift, keys, repeat(SWP_TYPE_BITS)))
    key_types = list(map(and_, keys, repeat(SWP_TYPE_MASK)))
    counted = _census_holds(k, offs, key_types, counts)     # else by device, slot by slot where they differ
    types = set() if counted else set(key_types)
    by_type: dict[int, tuple[list[int], list[int]]] = {}
    for t in sorted(types):
        if len(types) == 1:
            by_type[t] = (offs, counts)
        else:
            these = list(map(eq, key_types, repeat(t)))
            by_type[t] = (list(compress(offs, these)), list(compress(counts, these)))
    for t, (type_offs, _) in by_type.items():
        si = k.swap_info[t]
        if si is None:
            problems.append(f"{len(type_offs)} swap entries reference type {t}, which is not an active device")
            continue
        if max(type_offs) >= si.pages:
            problems.append(f"swap {si.name}: entries reference offset "
                            f"{min(off for off in type_offs if off >= si.pages):#x} beyond the device")
    owners = swap_cache_owners(k)       # None: a swap-cache folio to look at one by one
    for si in k.swap_info:
        if si is None:
            continue
        problems += _check_device(k, si, *by_type.get(si.type, ([], [])),
                                  owned=None if owners is None else owners[si.type], counted=counted)
        cached_pages += nonzero_entries(si.cache.table)        # what the table holds, not its count
    if exclusive_keys and max(map(slot_refs.__getitem__, exclusive_keys)) > 1:
        for first, nr, where in _exclusive_entries(exclusive_slots):
            type_, off = first & SWP_TYPE_MASK, first >> SWP_TYPE_BITS
            si = k.swap_info[type_]
            for s in range(off, off + nr):
                if si is not None and s < si.pages and si.swap_count(s) != 1:
                    problems.append(f"{where}: exclusive swap entry {type_}:{s:#x} has count {si.swap_count(s)}")
    problems += check_swap_cache_overlap(k, cached_pages)
    for pfn, entry in k.folio_swap.items() if owners is None else ():
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


def _census_holds(k: "Kernel", offs: list[int], key_types: list[int], counts: list[int]) -> bool:
    """Whether every device's swap counts are exactly the census (slot offs[i] of device
    key_types[i] referenced counts[i] times, no other slot counted), with no continued count,
    none past a byte and every slot on an active device: decided for all devices at once,
    their counts laid end to end and each slot looked up at its device's base."""
    base: dict[int, int] = {}
    pages: dict[int, int] = {}
    parts = []
    end = 0
    for si in k.swap_info:
        if si is None:
            continue
        if si.cont or len(si.swap_map) != si.pages:
            return False
        base[si.type], pages[si.type] = end, si.pages
        parts.append(si.swap_map.translate(bm.COUNT))
        end += si.pages
    have = b"".join(parts)
    if not counts:
        return have.count(0) == len(have)
    try:
        if max(counts) > SWAP_COUNT_MASK or not all(map(lt, offs, map(pages.__getitem__, key_types))):
            return False
        at = list(map(add, map(base.__getitem__, key_types), offs))
    except KeyError:                    # a slot of a device that is not active
        return False
    return list(map(have.__getitem__, at)) == counts and len(have) - have.count(0) == len(counts)


def _exclusive_entries(exclusive_slots: list) -> list[tuple[int, int, str]]:
    """(first key, nr, where) of every exclusive swap entry: a PMD's as recorded, a table's
    entry by entry."""
    out = []
    for first, nr, where in exclusive_slots:
        if isinstance(first, int):
            out.append((first, nr, where))
            continue
        for i in compress(range(HPAGE_PMD_NR), nr):
            out.append((first[i] >> SWP_TYPE_SHIFT, 1, f"{where} pte {i}"))
    return out


def _check_device(k: "Kernel", si, offs: list[int], counts: list[int], owned: int | None,
                  counted: bool = False) -> list[str]:
    """One device: counts against the census (slot offs[i] referenced counts[i] times; not
    when `counted`: _census_holds found them right), cache bits, Used, clusters, freed
    slots, the cache (`owned`: how many slots its swap-cache folios own, all pointing back
    to them; None if not known)."""
    problems: list[str] = []
    sm = si.swap_map
    pages = si.pages
    have = bytearray(sm.translate(bm.COUNT))
    # swap counts: every referenced slot has its count and no other slot has one, compared
    # in C when no count is continued or past a byte; else (or when they differ) slot by slot
    if not counted and (si.cont or (counts and (max(counts) > SWAP_COUNT_MASK or max(offs) >= pages))
                        or list(map(have.__getitem__, offs)) != counts or len(have) - have.count(0) != len(offs)):
        want = bytearray(pages)
        odd: dict[int, int] = {}
        for off, n in zip(offs, counts):
            if 0 <= off < pages:
                if n <= SWAP_COUNT_MASK:
                    want[off] = n
                else:
                    odd[off] = n
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
    cache_bits = sm.translate(bm.CACHE_BIT)
    table = si.cache.table
    if len(table) != pages:
        problems.append(f"swap {si.name}: swap table of {len(table)} slots for {pages}")
    cached = bm.nonzero_bits(table.tobytes(), table.itemsize).to_bytes(len(table), "little").translate(bm.NONZERO)
    if cached.count(1) != len(si.cache):
        problems.append(f"swap {si.name}: swap table counts {len(si.cache)} cached slots but holds "
                        f"{cached.count(1)}")
    if cache_bits != cached and len(cached) == pages:
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
    free = sm.translate(bm.IS_ZERO)
    free_bits = int.from_bytes(free, "little")
    if free_bits & (int.from_bytes(si.zeromap.translate(bm.NONZERO), "little")
                    | int.from_bytes(si.zswap.translate(bm.NONZERO), "little")) \
            or free_bits & int.from_bytes(bm.nonzero_bits(si.data.tobytes(), 8).to_bytes(pages, "little")
                                          .translate(bm.NONZERO), "little"):
        for off in compress(range(pages), free):
            if off and (si.zeromap[off] or si.zswap[off] or si.data[off]):
                problems.append(f"swap {si.name} slot {off:#x}: free slot keeps data")
    # every cached slot is owned by its folio (they are when the folios own as many as it holds)
    for off, pfn in si.cache.items() if owned is None or owned != cached.count(1) else ():
        entry = k.folio_swap.get(pfn)
        if entry is None or entry.type != si.type or not entry.offset <= off < entry.offset + k.mem.nr_pages(pfn):
            problems.append(f"swap {si.name} slot {off:#x}: cached folio {pfn:#x} does not own it")
    return problems
