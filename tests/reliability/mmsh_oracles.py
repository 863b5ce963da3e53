"""Oracles of the random suites: what the kernel promises about a step, beyond the invariants.

`check_invariants` and `check_data` say whether a state is possible; they cannot
say that a step did what the kernel does.  These oracles check a few rules the
kernel (or the series' patches) states outright, each cheap and true in every
state the generators make:

- `fork_oracle`: copy_page_range() splits a PMD only when copying it at PMD
  level needs memory that cannot be had (F4: the `thp_alloc` fault point); a
  failed count continuation is retried with GFP_KERNEL first (patch 7, as
  copy_pte_range() does), so a `swap_cont` failure that does not persist never
  splits (decision 4).
- `zswap_oracle`: once zswap has been enabled, zswap_never_enabled() is false
  and no fault reads a PMD-size folio from swap (decision 12; mainline's
  alloc_swap_folio() has the same gate): a fault step with zswap ever enabled
  before it leaves mTHP `swpin` where it was.
- `drain_oracle`: with no fault point armed and free swap slots for every
  resident anonymous page, repeated whole `reclaim` passes free every folio on
  the LRU (the simulation treats every folio as unreferenced; a lazyfree or
  disk-cached folio needs a second and third pass).  A folio left behind is
  described by `explain_folio` (where it is mapped, whether its index still
  finds those mappings, whether it spans a VMA edge).

Each returns a problem text (None when the rule holds).
"""

from __future__ import annotations

from mmshell.mm.config import FailMode, FaultPoint
from mmshell.mm.constants import PAGE_SHIFT, PMD_SHIFT
from mmshell.mm.folio import PG
from mmshell.mm.pgtable import PmdKind

#: Commands whose page accesses are faults (`check RANGE` reads through the fault path).
FAULTING = frozenset({"touch", "check"})


def armed(k, point: FaultPoint) -> bool:
    """Whether the fault point is on or once."""
    return k.config.fail.get(point, FailMode.OFF) is not FailMode.OFF


class Before:
    """What the step oracles need from the machine before a step (cheap: a few dicts)."""

    __slots__ = ("events", "mthp", "zswap_ever", "thp_alloc_armed", "swap_cont_on")

    def __init__(self, k) -> None:
        self.events = dict(k.vmstat.events)
        self.mthp = dict(k.vmstat.mthp)
        self.zswap_ever = k.zswap_ever_enabled
        self.thp_alloc_armed = armed(k, FaultPoint.THP_ALLOC)
        self.swap_cont_on = k.config.fail.get(FaultPoint.SWAP_CONT, FailMode.OFF) is FailMode.ON


def moved(before: dict, after: dict, name: str) -> int:
    return after.get(name, 0) - before.get(name, 0)


def fork_oracle(k, before: Before) -> str | None:
    split = moved(before.events, k.vmstat.events, "thp_split_pmd")
    if split and not before.thp_alloc_armed and not before.swap_cont_on:
        return (f"fork split {split} PMD(s) (thp_split_pmd +{split}) with no thp_alloc failure armed: "
                "a count continuation that fails once is retried with GFP_KERNEL (patch 7, decision 4)")
    return None


def zswap_oracle(k, before: Before) -> str | None:
    reads = moved(before.mthp, k.vmstat.mthp, "swpin")
    if reads and before.zswap_ever:
        return (f"a fault read {reads} PMD-size folio(s) from swap (mthp swpin +{reads}) after zswap was "
                "enabled: zswap_never_enabled() is false, the PMD swap entry must fall back (decision 12)")
    return None


def drain_ready(k) -> bool:
    """Whether whole reclaim must empty the LRU: nothing armed, a free slot for every page it swaps
    and one more while a swap-backed folio is there: a pass that fills the swap space leaves a
    disk's clean swap cache for the next, which scans no anonymous LRU with no free slot
    (can_reclaim_anon_pages()), as the kernel does."""
    if any(m is not FailMode.OFF for m in k.config.fail.values()):
        return False
    mem = k.mem
    lru = k.lru.oldest_first()
    need = sum(mem.nr_pages(p) for p in lru if not mem.test(p, PG.SWAPCACHE))
    free = sum(si.pages - 1 - si.inuse_pages for si in k.active_swap())
    return free >= need + any(mem.test(p, PG.SWAPBACKED) for p in lru)


def drain_oracle(k) -> str | None:
    left = k.lru.oldest_first()
    if not left:
        return None
    return (f"whole reclaim left {len(left)} folio(s) on the LRU with swap to spare and nothing armed: "
            + "; ".join(explain_folio(k, p) for p in left[:4]))


def mappings(k, pfn: int) -> list[tuple[int, int, int, bool]]:
    """Every page-table entry mapping a page of the folio at pfn: (pid, address, page, by PMD)."""
    mem = k.mem
    nr = mem.nr_pages(pfn)
    out = []
    for pid, mm in sorted(k.mms.items()):
        for pmdi, pmd in sorted(mm.pmds.items()):
            base = pmdi << PMD_SHIFT
            if pmd.kind is PmdKind.HUGE and pmd.pfn <= pfn < pmd.pfn + 512:
                out.append((pid, base + ((pfn - pmd.pfn) << PAGE_SHIFT), pfn, True))
            elif pmd.kind is PmdKind.TABLE and pmd.table is not None:
                for i, pte in enumerate(pmd.table.ptes):
                    page = pte >> 12
                    if pte & 3 == 1 and pfn <= page < pfn + nr:
                        out.append((pid, base + (i << PAGE_SHIFT), page, False))
    return out


def explain_folio(k, pfn: int) -> str:
    """A folio the oracle found left behind, in the terms that tell why reclaim missed it."""
    mem = k.mem
    nr = mem.nr_pages(pfn)
    maps = mappings(k, pfn)
    facts = [f"folio {pfn:#x} order {mem.order[pfn]}",
             "swapcache" if mem.test(pfn, PG.SWAPCACHE) else "not in the swap cache",
             f"{len({m[2] for m in maps})}/{nr} pages mapped"]
    lost = edge = 0
    for pid, addr, page, _ in maps:
        vma = next((v for v in k.mms[pid].vmas if v.contains(addr)), None)
        if vma is None:
            continue
        if vma.linear_page_index(addr) != mem.index[pfn] + (page - pfn):
            lost += 1
            continue
        first = vma.address_of(mem.index[pfn])
        if first < vma.start or first + (nr << PAGE_SHIFT) > vma.end:
            edge += 1
    if lost:
        facts.append(f"index lost: {lost} mapping(s) the rmap walk cannot find")
    if edge:
        facts.append(f"across a VMA edge: {edge} mapping(s) of a folio not wholly inside its VMA")
    return ", ".join(facts)
