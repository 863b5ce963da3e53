"""CONFIG_DEBUG_VM for the simulation: every invariant, checked on demand.

`check_invariants(k)` recomputes the machine's bookkeeping from a census of
every page table and compares: swap counts against the PTE and PMD swap entries
that reference each slot (a PMD entry counts once for each of its 512 slots),
the cache bit against the swap cache, Used slots and clusters, PMD swap entry
shape and exclusivity, MM_ANONPAGES / MM_SWAPENTS, folio mapcounts and the
NR_ANON_MAPPED / NR_ANON_THPS / mTHP nr_anon gauges, deposited tables against
nr_ptes, free + used frames against RAM, and leaked folios.  `check_data(k)`
compares every mapped page and swap slot with the shadow record of what it
should read.  Both return readable problems; an empty list means all is well.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from .constants import HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SHIFT, PMD_SHIFT, SWAP_HAS_CACHE, SWAP_MAP_BAD
from .folio import PG
from .pgtable import F_SPECIAL, F_SWP_EXCLUSIVE, KIND_MASK, KIND_PRESENT, KIND_SWAP, PmdKind, pte_pfn

if TYPE_CHECKING:
    from .kernel import Kernel


def check_invariants(k: "Kernel") -> list[str]:
    problems: list[str] = []
    mem = k.mem
    slot_refs: Counter[tuple[int, int]] = Counter()
    exclusive_slots: list[tuple[int, int, str]] = []
    pte_maps: Counter[int] = Counter()
    pmd_maps: Counter[int] = Counter()
    for pid, mm in sorted(k.mms.items()):
        anon = swapents = tables = 0
        for pmdi, pmd in sorted(mm.pmds.items()):
            where = f"pid {pid} pmd {pmdi << PMD_SHIFT:#x}"
            if pmd.kind is PmdKind.TABLE:
                tables += 1
                if pmd.deposited:
                    problems.append(f"{where}: a PTE table PMD has a deposit")
                for i, pte in enumerate(pmd.table.ptes):
                    kind = pte & KIND_MASK
                    if kind == KIND_PRESENT:
                        if pte & F_SPECIAL:
                            continue
                        anon += 1
                        pte_maps[pte_pfn(pte)] += 1
                    elif kind == KIND_SWAP:
                        swapents += 1
                        key = ((pte >> 12) & 0x1F, pte >> 17)
                        slot_refs[key] += 1
                        if pte & F_SWP_EXCLUSIVE:
                            exclusive_slots.append((*key, f"{where} pte {i}"))
                continue
            if not pmd.deposited:
                problems.append(f"{where}: {pmd.kind.value} PMD without a deposited table")
            tables += 1
            if pmd.kind is PmdKind.HUGE:
                anon += HPAGE_PMD_NR
                pmd_maps[pmd.pfn] += 1
                if mem.order[pmd.pfn] != HPAGE_PMD_ORDER:
                    problems.append(f"{where}: huge PMD maps a folio of order {mem.order[pmd.pfn]}")
            elif pmd.kind is PmdKind.SWAP:
                swapents += HPAGE_PMD_NR
                if not k.config.pmd_swap:
                    problems.append(f"{where}: a PMD swap entry in mainline mode")
                if pmd.swp_offset % HPAGE_PMD_NR:
                    problems.append(f"{where}: PMD swap entry offset {pmd.swp_offset:#x} not 512-aligned")
                for s in range(pmd.swp_offset, pmd.swp_offset + HPAGE_PMD_NR):
                    slot_refs[(pmd.swp_type, s)] += 1
                if pmd.flags & F_SWP_EXCLUSIVE:
                    exclusive_slots.extend((pmd.swp_type, s, where)
                                           for s in range(pmd.swp_offset, pmd.swp_offset + HPAGE_PMD_NR))
        if anon != mm.rss_anon:
            problems.append(f"pid {pid}: MM_ANONPAGES {mm.rss_anon} but page tables map {anon}")
        if swapents != mm.rss_swapents:
            problems.append(f"pid {pid}: MM_SWAPENTS {mm.rss_swapents} but page tables hold {swapents}")
        if tables != mm.nr_ptes:
            problems.append(f"pid {pid}: nr_ptes {mm.nr_ptes} but {tables} tables and deposits exist")
    problems += _check_swap(k, slot_refs, exclusive_slots)
    problems += _check_folios(k, pte_maps, pmd_maps)
    return problems


def _check_swap(k: "Kernel", slot_refs: Counter, exclusive_slots: list) -> list[str]:
    problems: list[str] = []
    cached_pages = 0
    for si in k.swap_info:
        if si is None:
            continue
        used = 0
        cluster_used = [0] * si.nr_clusters
        for off in range(1, si.pages):
            count = si.swap_count(off)
            want = slot_refs.get((si.type, off), 0)
            if count != want:
                problems.append(f"swap {si.name} slot {off:#x}: count {count} but {want} entries reference it")
            cached = off in si.cache
            if bool(si.swap_map[off] & SWAP_HAS_CACHE) != cached:
                problems.append(f"swap {si.name} slot {off:#x}: cache bit {bool(si.swap_map[off] & SWAP_HAS_CACHE)}"
                                f" but swap cache {'holds' if cached else 'lacks'} it")
            if si.swap_map[off]:
                used += 1
                cluster_used[off // HPAGE_PMD_NR] += 1
            elif si.zeromap[off] or si.zswap[off] or si.data[off]:
                problems.append(f"swap {si.name} slot {off:#x}: free slot keeps data")
        if used != si.inuse_pages:
            problems.append(f"swap {si.name}: inuse_pages {si.inuse_pages} but {used} slots allocated")
        cluster_used[0] += 1  # the header
        tail = si.nr_clusters * HPAGE_PMD_NR - si.pages
        cluster_used[-1] += tail
        if list(si.cluster_used) != cluster_used:
            problems.append(f"swap {si.name}: cluster usage out of step with swap_map")
        if si.swap_map[0] != SWAP_MAP_BAD:
            problems.append(f"swap {si.name}: header slot overwritten")
        for off, pfn in si.cache.items():
            entry = k.folio_swap.get(pfn)
            nr = k.mem.nr_pages(pfn)
            if entry is None or entry.type != si.type or not entry.offset <= off < entry.offset + nr:
                problems.append(f"swap {si.name} slot {off:#x}: cached folio {pfn:#x} does not own it")
        cached_pages += len(si.cache)
    for type_, off, where in exclusive_slots:
        si = k.swap_info[type_]
        if si is not None and si.swap_count(off) != 1:
            problems.append(f"{where}: exclusive swap entry {type_}:{off:#x} has count {si.swap_count(off)}")
    for pfn, entry in k.folio_swap.items():
        nr = k.mem.nr_pages(pfn)
        if entry.offset % nr:
            problems.append(f"folio {pfn:#x}: swap cache slots {entry} not naturally aligned")
        if not k.mem.test(pfn, PG.SWAPCACHE):
            problems.append(f"folio {pfn:#x}: has folio->swap but no PG_swapcache")
    if cached_pages != k.vmstat.nr_swapcached:
        problems.append(f"nr_swapcached {k.vmstat.nr_swapcached} but the swap cache holds {cached_pages} pages")
    return problems


def _check_folios(k: "Kernel", pte_maps: Counter, pmd_maps: Counter) -> list[str]:
    problems: list[str] = []
    mem = k.mem
    used_frames = 0
    anon_mapped = 0
    anon_thps = 0
    nr_anon_pmd = 0
    partially = 0
    lru = set(k.lru.inactive) | set(k.lru.active)
    pfn = 0
    while pfn < mem.nr_frames:
        flags = mem.flags[pfn]
        if not flags & PG.USED:
            if k.mem.alloc.is_free(pfn) is False:
                problems.append(f"frame {pfn:#x}: neither free nor in use")
            pfn += 1
            continue
        nr = 1 << mem.order[pfn]
        used_frames += nr
        if flags & PG.ZERO:
            pfn += nr
            continue
        if nr > 1:
            nr_anon_pmd += 1
            if flags & PG.PARTIALLY_MAPPED:
                partially += 1
        entire = pmd_maps.get(pfn, 0)
        if mem.entire_mapcount[pfn] != entire:
            problems.append(f"folio {pfn:#x}: entire_mapcount {mem.entire_mapcount[pfn]} but {entire} PMDs map it")
        if entire:
            anon_thps += 1
        for p in range(pfn, pfn + nr):
            want = pte_maps.get(p, 0)
            if mem.mapcount[p] != want:
                problems.append(f"page {p:#x}: mapcount {mem.mapcount[p]} but {want} PTEs map it")
            if want or entire:
                anon_mapped += 1
            if mem.flags[p] & PG.ANON_EXCLUSIVE and want + entire > 1:
                problems.append(f"page {p:#x}: PageAnonExclusive but mapped {want + entire} times")
        mapped = entire or any(pte_maps.get(p, 0) for p in range(pfn, pfn + nr))
        if not mapped and not flags & PG.SWAPCACHE:
            problems.append(f"folio {pfn:#x}: leaked (not mapped, not in the swap cache)")
        if pfn not in lru:
            problems.append(f"folio {pfn:#x}: not on the LRU")
        pfn += nr
    free = mem.alloc.nr_free
    if used_frames + free != mem.nr_frames:
        problems.append(f"frames: {used_frames} used + {free} free != {mem.nr_frames} of RAM")
    if anon_mapped != k.vmstat.nr_anon_pages:
        problems.append(f"nr_anon_pages {k.vmstat.nr_anon_pages} but {anon_mapped} anon pages are mapped")
    if anon_thps != k.vmstat.nr_anon_thps:
        problems.append(f"nr_anon_transparent_hugepages {k.vmstat.nr_anon_thps} but {anon_thps} THPs are PMD-mapped")
    if nr_anon_pmd != k.vmstat.mthp["nr_anon"]:
        problems.append(f"mthp nr_anon {k.vmstat.mthp['nr_anon']} but {nr_anon_pmd} PMD-size anon folios exist")
    if partially != k.vmstat.mthp["nr_anon_partially_mapped"]:
        problems.append(f"mthp nr_anon_partially_mapped {k.vmstat.mthp['nr_anon_partially_mapped']} "
                        f"but {partially} folios are queued")
    for p in lru:
        if not mem.flags[p] & PG.USED:
            problems.append(f"LRU holds freed frame {p:#x}")
    return problems


def check_data(k: "Kernel") -> list[str]:
    """Every mapped page and swap entry holds what the shadow says it should."""
    problems: list[str] = []
    mem = k.mem
    for pid, mm in sorted(k.mms.items()):
        shadow = k.shadow.procs.get(pid, {})
        for pmdi, pmd in sorted(mm.pmds.items()):
            chunk = shadow.get(pmdi)
            base = pmdi << PMD_SHIFT
            for i in range(HPAGE_PMD_NR):
                want = chunk[i] if chunk is not None else 0
                got = _read_entry(k, pmd, i)
                if got is None:
                    continue
                if got != want:
                    problems.append(f"pid {pid} page {base + (i << PAGE_SHIFT):#x}: reads {got:#x}, "
                                    f"last written {want:#x}")
                    if len(problems) > 20:
                        return problems
    return problems


def _read_entry(k: "Kernel", pmd, i: int) -> int | None:
    """The value page i of this PMD reads without faulting; None if not mapped."""
    if pmd.kind is PmdKind.HUGE:
        return k.mem.data[pmd.pfn + i]
    if pmd.kind is PmdKind.ZERO:
        return 0
    if pmd.kind is PmdKind.SWAP:
        si = k.swap_info[pmd.swp_type]
        folio = si.cache.get(pmd.swp_offset + i)
        return k.mem.data[folio + (pmd.swp_offset + i - k.folio_swap[folio].offset)] if folio is not None \
            else si.data[pmd.swp_offset + i]
    if pmd.kind is PmdKind.TABLE:
        pte = pmd.table.ptes[i]
        kind = pte & KIND_MASK
        if kind == KIND_PRESENT:
            return 0 if pte & F_SPECIAL else k.mem.data[pte_pfn(pte)]
        if kind == KIND_SWAP:
            si = k.swap_info[(pte >> 12) & 0x1F]
            off = pte >> 17
            folio = si.cache.get(off)
            if folio is not None:
                return k.mem.data[folio + (off - k.folio_swap[folio].offset)]
            return si.data[off]
    return None
