"""Swap devices and their slots (mm/swapfile.c, include/linux/swap.h).

One `SwapInfo` per device (struct swap_info_struct).  Per slot it keeps the 6.18
`swap_map` byte (count | SWAP_HAS_CACHE | COUNT_CONTINUED), the count held in
continuation pages past SWAP_MAP_MAX, the zeromap bit, whether zswap holds the
page, and the page's contents.  Slots are grouped in clusters of 512; an order-9
allocation takes one wholly free cluster (naturally aligned), an order-0 one
scans on from the cursor in the cluster it last took a slot of (`next_order0`),
then goes through the cluster lists: a partly used cluster is on the fragmented
list after an allocation from it and on the non-full list after a free
(`cluster_frag`), and an order-0 slot comes from a non-full cluster, else a free
one, else a fragmented one, and last from a partly freed order-9 cluster (6.12+).

Left out: discard, the per-cpu cluster caches of other CPUs (one CPU), swap table phase I
(shadows), the memcg swap charge (modelled as the `memcg_charge` fault point); the order of
the partly used clusters on one list (the simulation takes them by number, the kernel in the
order they were moved to the list's tail).  The free list is kept in the kernel's order.
"""

from __future__ import annotations

from array import array
from collections import deque
from dataclasses import dataclass, field
from enum import Enum, IntFlag
from typing import Callable, Iterator, Sequence

from .constants import (COUNT_CONTINUED, PAGE_SIZE, SWAP_CONT_MAX, SWAP_COUNT_MASK, SWAP_HAS_CACHE,
                        SWAP_MAP_BAD, SWAP_MAP_MAX, SWAPFILE_CLUSTER)
from .swap_table import SwapTable

#: One continuation page serves the slots of one page of swap_map.
_CONT_SPAN = PAGE_SIZE


def _plain(b: int, lo: int) -> bool:
    """A swap_map byte whose count can move by one without continuation."""
    return b != SWAP_MAP_BAD and not b & COUNT_CONTINUED and lo <= (b & SWAP_COUNT_MASK) < SWAP_MAP_MAX + lo


#: bytes.translate tables: whole runs of plain counts move in one C call.
_DUP_SAFE = bytes(b for b in range(256) if _plain(b, 0))
_DUP_TABLE = bytes(b + 1 if _plain(b, 0) else b for b in range(256))
_PUT_SAFE = bytes(b for b in range(256) if _plain(b, 1))
_PUT_TABLE = bytes(b - 1 if _plain(b, 1) else b for b in range(256))
_CACHE_ONLY = bytes((0, SWAP_HAS_CACHE))


class SwapKind(Enum):
    """The three device kinds of the contract."""

    ZRAM = "zram"   # synchronous, non-rotational block device
    DISK = "disk"   # asynchronous block device (the folio stays in the swap cache)
    FILE = "file"   # a swap file on a filesystem: no large allocations


class SWP(IntFlag):
    """si->flags."""

    USED = 1 << 0
    WRITEOK = 1 << 1
    BLKDEV = 1 << 4
    SOLIDSTATE = 1 << 6
    STABLE_WRITES = 1 << 11
    SYNCHRONOUS_IO = 1 << 12


KIND_FLAGS = {
    SwapKind.ZRAM: SWP.BLKDEV | SWP.SOLIDSTATE | SWP.SYNCHRONOUS_IO | SWP.STABLE_WRITES,
    SwapKind.DISK: SWP.BLKDEV,
    SwapKind.FILE: SWP(0),
}
#: si->flags of an active device, by kind and SWP_WRITEOK (IntFlag arithmetic done once, not per
#: call on the swap paths).
_FLAGS = {(kind, ok): flags | SWP.USED | (SWP.WRITEOK if ok else SWP(0))
          for kind, flags in KIND_FLAGS.items() for ok in (False, True)}
#: The kinds whose writes complete before submit_bio returns (SWP_SYNCHRONOUS_IO).
_SYNCHRONOUS = frozenset(kind for kind, flags in KIND_FLAGS.items() if flags & SWP.SYNCHRONOUS_IO)


@dataclass(slots=True)
class SwapInfo:
    """struct swap_info_struct for one device."""

    type: int
    name: str
    kind: SwapKind
    prio: int
    pages: int                     # slots including the header slot 0
    swap_map: bytearray = field(init=False)
    cont: dict[int, int] = field(default_factory=dict)      # count held in continuation pages
    cont_pages: set[int] = field(default_factory=set)       # swap_map pages with a continuation page
    zeromap: bytearray = field(init=False)
    zswap: bytearray = field(init=False)
    data: array = field(init=False)
    cache: SwapTable = field(init=False)                    # the swap cache: slot -> head pfn (swap_table.py)
    cluster_used: array = field(init=False)
    cluster_order: bytearray = field(init=False)
    cluster_frag: bytearray = field(init=False)    # a partly used cluster: 1 frag_clusters, 0 nonfull
    free_clusters: deque[tuple[int, int]] = field(default_factory=deque)   # (free_seq, cluster)
    free_seq: array = field(init=False)   # when each cluster last became free: free_clusters order
    free_clock: int = 0
    next_order0: int = 0            # the slot the next order-0 allocation scans from (SWAP_ENTRY_INVALID: 0)
    inuse_pages: int = 0
    full_seq: array = field(init=False)   # when each cluster last became full: full_clusters order
    full_clock: int = 0
    reclaim_work: bool = False      # si->reclaim_work scheduled (swap_reclaim.py)
    writeok: bool = True            # SWP_WRITEOK: cleared by swapoff before try_to_unuse

    def __post_init__(self) -> None:
        self.swap_map = bytearray(self.pages)
        self.zeromap = bytearray(self.pages)
        self.zswap = bytearray(self.pages)
        self.data = array("Q", bytes(8 * self.pages))
        self.cache = SwapTable(self.pages)
        nclusters = (self.pages + SWAPFILE_CLUSTER - 1) // SWAPFILE_CLUSTER
        self.cluster_used = array("H", bytes(2 * nclusters))
        self.cluster_order = bytearray(nclusters)
        self.cluster_frag = bytearray(nclusters)    # swapon: a cluster with the header on nonfull_clusters[0]
        self.full_seq = array("Q", bytes(8 * nclusters))
        # The header occupies slot 0 (SWAP_MAP_BAD); slots past the end of a partial
        # last cluster do not exist, so that cluster can never hold a 2 MiB folio.
        self.swap_map[0] = SWAP_MAP_BAD
        self.cluster_used[0] = 1
        tail = nclusters * SWAPFILE_CLUSTER - self.pages
        if tail:
            self.cluster_used[nclusters - 1] += tail
        self.free_seq = array("Q", bytes(8 * nclusters))
        for c in range(nclusters):
            if self.cluster_used[c] == 0:
                self._add_free(c)

    @property
    def flags(self) -> SWP:
        return _FLAGS[self.kind, self.writeok]

    @property
    def synchronous(self) -> bool:
        return self.kind in _SYNCHRONOUS

    @property
    def nr_clusters(self) -> int:
        return len(self.cluster_used)

    # -- counts --------------------------------------------------------------------
    def swap_count(self, off: int) -> int:
        """swap_count() including continuation: the page-table references to the slot."""
        low = self.swap_map[off] & SWAP_COUNT_MASK if self.swap_map[off] != SWAP_MAP_BAD else 0
        return low + (SWAP_MAP_MAX + 1) * self.cont.get(off, 0) if off in self.cont else low

    def any_count(self, off: int, nr: int) -> bool:
        """Whether any of nr slots from off is referenced by a page-table entry."""
        return bool(self.swap_map[off:off + nr].translate(None, _CACHE_ONLY))

    def has_cache(self, off: int) -> bool:
        return bool(self.swap_map[off] & SWAP_HAS_CACHE) and self.swap_map[off] != SWAP_MAP_BAD

    def need_continuation(self, off: int) -> bool:
        """Whether one more reference to off needs a continuation page it does not have."""
        low = self.swap_map[off] & SWAP_COUNT_MASK
        return low == SWAP_MAP_MAX and (off // _CONT_SPAN) not in self.cont_pages

    def first_needing_continuation(self, off: int, nr: int) -> int | None:
        """The first of nr slots from off whose next reference needs a continuation page it
        does not have, or None (whole-run check first: most runs are far below SWAP_MAP_MAX)."""
        if not self.swap_map[off:off + nr].translate(None, _DUP_SAFE):
            return None
        return next((s for s in range(off, off + nr) if self.need_continuation(s)), None)

    def add_swap_count_continuation(self, off: int) -> None:
        """add_swap_count_continuation(): attach the continuation page for off's swap_map page."""
        self.cont_pages.add(off // _CONT_SPAN)

    def dup(self, off: int, nr: int = 1) -> None:
        """__swap_duplicate(): +1 reference on each of nr slots (continuation checked by caller)."""
        sm = self.swap_map
        seg = sm[off:off + nr]
        if not seg.translate(None, _DUP_SAFE):
            sm[off:off + nr] = seg.translate(_DUP_TABLE)
            return
        for s in range(off, off + nr):
            b = sm[s]
            low = b & SWAP_COUNT_MASK
            if low < SWAP_MAP_MAX:
                sm[s] = b + 1
            else:
                high = self.cont.get(s, 0) + 1
                if high > SWAP_CONT_MAX * (SWAP_CONT_MAX + 1):
                    raise OverflowError("swap count beyond the continuation range")
                self.cont[s] = high
                sm[s] = (b & SWAP_HAS_CACHE) | COUNT_CONTINUED

    def put(self, off: int, nr: int = 1) -> Sequence[int]:
        """Drop one reference from each of nr slots; return the slots that became free."""
        sm = self.swap_map
        seg = sm[off:off + nr]
        if not seg.translate(None, _PUT_SAFE):
            seg = seg.translate(_PUT_TABLE)
            sm[off:off + nr] = seg
            zeros = seg.count(0)
            if zeros == 0:
                return []
            if zeros == nr:
                return range(off, off + nr)
            return [off + i for i, b in enumerate(seg) if b == 0]
        freed = []
        for s in range(off, off + nr):
            b = sm[s]
            low = b & SWAP_COUNT_MASK
            if low > 0:
                low -= 1
            else:
                high = self.cont[s] - 1
                low = SWAP_MAP_MAX
                if high:
                    self.cont[s] = high
                else:
                    del self.cont[s]
            cache = b & SWAP_HAS_CACHE
            cont = COUNT_CONTINUED if s in self.cont else 0
            sm[s] = low | cache | cont if (low or cont) else cache
            if sm[s] == 0:
                freed.append(s)
        return freed

    # -- allocation ----------------------------------------------------------------
    def _take(self, off: int, nr: int) -> None:
        """cluster_alloc_range() and relocate_cluster() of the cluster of off: nr slots taken,
        and the cluster goes to si->full_clusters when full, else to si->frag_clusters[order]
        (whichever list it was on: an allocation from a cluster on the non-full list moves it too)."""
        c = off // SWAPFILE_CLUSTER
        self.cluster_used[c] += nr
        self.inuse_pages += nr
        self.cluster_frag[c] = 1
        if self.cluster_used[c] == SWAPFILE_CLUSTER:
            self.mark_full(c)

    def mark_full(self, c: int) -> None:
        """relocate_cluster() of a full cluster: to the tail of si->full_clusters."""
        self.full_clock += 1
        self.full_seq[c] = self.full_clock

    def full_clusters(self) -> list[int]:
        """si->full_clusters from its head: the full clusters in the order they became full
        (a cluster that lost a slot left the list; full again, it went to the tail)."""
        full = [c for c in range(self.nr_clusters) if self.cluster_used[c] == SWAPFILE_CLUSTER]
        return sorted(full, key=self.full_seq.__getitem__)

    @property
    def full(self) -> bool:
        """Every slot but the header is taken (swap_usage_add(): inuse_pages == si->pages)."""
        return self.inuse_pages == self.pages - 1

    def alloc_cluster(self) -> int | None:
        """An order-9 allocation: the first slot of the cluster at the head of the free list,
        or None.

        The slots are taken at once with the cache bit (cluster_alloc_range() writes
        `usage`, SWAP_HAS_CACHE, into swap_map), so a second allocation cannot return them."""
        c = self.free_head()
        if c is None:
            return None
        self.cluster_order[c] = 9
        if self.next_order0 // SWAPFILE_CLUSTER == c:
            self.next_order0 = 0
        off = c * SWAPFILE_CLUSTER
        self._take(off, SWAPFILE_CLUSTER)
        self.swap_map[off:off + SWAPFILE_CLUSTER] = bytes((SWAP_HAS_CACHE,)) * SWAPFILE_CLUSTER
        return off

    def _add_free(self, c: int) -> None:
        """free_cluster(): cluster c, empty, goes to the tail of si->free_clusters."""
        self.free_clock += 1
        self.free_seq[c] = self.free_clock
        self.free_clusters.append((self.free_clock, c))

    def free_head(self) -> int | None:
        """The cluster at the head of si->free_clusters (the one empty longest), or None.  The
        deque keeps an entry per time a cluster became free; one whose cluster was taken since
        (or freed again later) is dropped here."""
        q, used, seq = self.free_clusters, self.cluster_used, self.free_seq
        while q:
            t, c = q[0]
            if used[c] == 0 and seq[c] == t:
                return c
            q.popleft()
        return None

    def free_list(self) -> list[int]:
        """si->free_clusters from its head."""
        return [c for t, c in self.free_clusters if self.cluster_used[c] == 0 and self.free_seq[c] == t]

    def alloc_slot(self, reclaim: Callable[[int], bool] | None = None) -> int | None:
        """cluster_alloc_swap_entry() of order 0, the slow path's allocation on this device:
        a rotational device scans on from its cursor first (si->global_cluster->next[0]:
        alloc_slot_next()); then the first free slot of a cluster from the lists
        (_order0_candidates()).  The slot is taken at once with the cache bit, as
        alloc_cluster() takes its slots.  `reclaim`: see _scan()."""
        if not self.flags & SWP.SOLIDSTATE:
            pos = self.alloc_slot_next(reclaim)
            if pos is not None:
                return pos
        for c in self._order0_candidates():
            base = c * SWAPFILE_CLUSTER
            end = min(base + SWAPFILE_CLUSTER, self.pages)
            pos = self._scan(max(base, 1), end, reclaim)
            if pos >= 0:
                if self.cluster_used[c] == 0:
                    self.cluster_order[c] = 0
                self._take(pos, 1)
                self.swap_map[pos] = SWAP_HAS_CACHE
                self._set_next_order0(pos)
                return pos
        return None

    def _scan(self, start: int, end: int, reclaim: Callable[[int], bool] | None) -> int:
        """alloc_swap_scan_cluster()'s scan of [start, end): the first free slot, or -1.  With
        `reclaim` (the caller's: swap is full, vm_swap_full()), a slot only the swap cache
        holds comes too, freed first by reclaim(slot) (cluster_scan_range() sets need_reclaim,
        cluster_reclaim_range() runs __try_to_reclaim_swap(TTRS_ANYWAY)); one it cannot free
        is passed over."""
        sm = self.swap_map
        pos = sm.find(0, start, end)
        if reclaim is None:
            return pos
        c = sm.find(SWAP_HAS_CACHE, start, pos if pos >= 0 else end)
        while c >= 0:
            if reclaim(c) and sm[c] == 0:
                return c
            c = sm.find(SWAP_HAS_CACHE, c + 1, pos if pos >= 0 else end)
        return pos

    def alloc_slot_next(self, reclaim: Callable[[int], bool] | None = None) -> int | None:
        """alloc_swap_scan_cluster() from the order-0 cursor (`next_order0`): the first free
        slot at or after it in its cluster, or None.  The cursor is the per-CPU
        percpu_swap_cluster.offset[0] on a non-rotational device (swap_alloc_fast(), which
        swap_slots.py calls for the device of percpu_swap_cluster.si[0]), and
        si->global_cluster->next[0] on a rotational one.  The scan goes forward only: a slot
        freed behind the cursor is not seen, and a scan that finds nothing leaves the cursor
        invalid (0), so the caller goes on to the cluster lists (the slow path), and the
        cluster, scanned, goes to the fragmented list as after an allocation.  Measured on
        6.18.44 (tests/kernel/137_percpu_cursor_skips_freed_slots.mmsh): a zram device's two
        slots 1 and 2, freed by a swap-in while the cursor stood at 3, stay free while the next
        reclaim fills 3..15 and goes on to the next device.  `reclaim`: see _scan()."""
        nxt = self.next_order0
        if not nxt:
            return None
        c = nxt // SWAPFILE_CLUSTER
        end = min((c + 1) * SWAPFILE_CLUSTER, self.pages)
        pos = self._scan(nxt, end, reclaim)
        if pos < 0:
            self.next_order0 = 0
            if self.cluster_used[c] < SWAPFILE_CLUSTER:
                self.cluster_frag[c] = 1    # relocate_cluster() after the scan: to frag_clusters
            return None
        self._take(pos, 1)
        self.swap_map[pos] = SWAP_HAS_CACHE
        self._set_next_order0(pos)
        return pos

    def _set_next_order0(self, pos: int) -> None:
        """alloc_swap_scan_cluster()'s `next` after taking slot pos: the slot after it, unless
        the cluster is full or pos was the last slot of it (SWAP_ENTRY_INVALID, 0)."""
        c = pos // SWAPFILE_CLUSTER
        nxt = pos + 1
        full = self.cluster_used[c] == SWAPFILE_CLUSTER
        self.next_order0 = nxt if not full and nxt < min((c + 1) * SWAPFILE_CLUSTER, self.pages) else 0

    def alloc_slots(self, nr: int, fast: bool = False) -> list[int]:
        """Up to nr order-0 allocations on this non-rotational device, the slots that nr
        folio_alloc_swap() calls give when nothing is freed in between and the device is
        first of the priority list: the first call tries the cursor (swap_alloc_fast()) when
        `fast` (the per-CPU cluster is this device's), then alloc_slot(); every later one the
        cursor, which moves on past each slot taken, so the slots after the first of a
        cluster come from a forward scan of its swap_map (a run of free slots in one slice),
        and when the scan reaches the cluster's end the next call is alloc_slot() again."""
        out: list[int] = []
        sm = self.swap_map
        while len(out) < nr:
            pos = self.alloc_slot_next() if fast else None
            if pos is None:
                pos = self.alloc_slot()
            if pos is None:
                break
            fast = True
            out.append(pos)
            c = pos // SWAPFILE_CLUSTER
            end = min((c + 1) * SWAPFILE_CLUSTER, self.pages)
            p = self.next_order0
            while p and len(out) < nr:
                p = sm.find(0, p, end)
                if p < 0:
                    self.next_order0 = 0        # the cursor's scan found nothing
                    break
                seg = sm[p:end]
                run = min(nr - len(out), len(seg) - len(seg.lstrip(b"\0")))
                sm[p:p + run] = bytes((SWAP_HAS_CACHE,)) * run
                self._take(p, run)
                out.extend(range(p, p + run))
                self._set_next_order0(p + run - 1)
                p = self.next_order0
        return out

    def _order0_candidates(self) -> Iterator[int]:
        """The clusters cluster_alloc_swap_entry() of order 0 looks in, in its order (a device
        without discard): si->nonfull_clusters[0], the order-0 clusters a slot was freed from
        since the last allocation from them (and cluster 0 from swapon, for its header);
        si->free_clusters; si->frag_clusters[0], the other partly used order-0 clusters
        (relocate_cluster() puts a cluster there after every allocation from it); then "Order
        0 stealing from higher order": frag_clusters[9] and nonfull_clusters[9], the partly
        freed clusters of THPs (a cluster keeps its order while it holds a slot).  A partly
        used cluster always has a free slot, so the first cluster yielded gives one.

        Measured on 6.18.44 (tests/kernel/148_order0_takes_a_free_cluster_before_a_fragmented_one):
        a zram device's cluster 0, filled to its end by one folio's pages with slots freed
        behind the cursor, is on the fragmented list, and the next page takes a free cluster,
        which a THP then cannot have."""
        used, order, frag = self.cluster_used, self.cluster_order, self.cluster_frag
        clusters = range(self.nr_clusters)
        yield from (c for c in clusters if 0 < used[c] < SWAPFILE_CLUSTER and not order[c] and not frag[c])
        head = self.free_head()
        if head is not None:
            yield head
        yield from (c for c in clusters if 0 < used[c] < SWAPFILE_CLUSTER and not order[c] and frag[c])
        yield from (c for c in clusters if 0 < used[c] < SWAPFILE_CLUSTER and order[c] and frag[c])
        yield from (c for c in clusters if 0 < used[c] < SWAPFILE_CLUSTER and order[c] and not frag[c])

    def free_slots(self, slots: Sequence[int]) -> None:
        """swap_entries_free(): return slots whose count and cache bit are both 0 (a range of
        consecutive slots is freed as a run at once)."""
        if type(slots) is range and slots.step == 1 and len(slots) > 1:
            self._free_run(slots.start, len(slots))
            return
        if len(slots) > 1 and slots[-1] - slots[0] == len(slots) - 1 \
                and list(slots) == list(range(slots[0], slots[-1] + 1)):   # a run, not just its ends
            self._free_run(slots[0], len(slots))
            return
        for s in slots:
            self.zeromap[s] = 0
            self.zswap[s] = 0
            self.data[s] = 0
            c = s // SWAPFILE_CLUSTER
            self.cluster_used[c] -= 1
            self.inuse_pages -= 1
            self._freed_from(c)

    def _free_run(self, off: int, nr: int) -> None:
        """free_slots() for the consecutive slots [off, off + nr)."""
        zeros = bytes(nr)
        self.zeromap[off:off + nr] = zeros
        self.zswap[off:off + nr] = zeros
        self.data[off:off + nr] = array("Q", bytes(8 * nr))
        self.inuse_pages -= nr
        end = off + nr
        while off < end:
            c = off // SWAPFILE_CLUSTER
            n = min(end, (c + 1) * SWAPFILE_CLUSTER) - off
            self.cluster_used[c] -= n
            self._freed_from(c)
            off += n

    def _freed_from(self, c: int) -> None:
        """After slots of cluster c were freed: free_cluster() when it is empty (to
        si->free_clusters; the order-0 cursor in it is forgotten), else partial_free_cluster()
        (to si->nonfull_clusters[order], from whichever list it was on)."""
        self.cluster_frag[c] = 0
        if self.cluster_used[c] == 0:
            self.cluster_order[c] = 0
            self._add_free(c)
            if self.next_order0 // SWAPFILE_CLUSTER == c:
                self.next_order0 = 0

