"""Physical memory: the frame allocator (mm/page_alloc.c), lowest-free-first.

Frames are grouped in 2 MiB pageblocks of 512.  An order-9 request takes the
lowest wholly free block; an order-0 request takes the lowest free frame of the
lowest partially used block first (as the buddy allocator splits the smallest
free buddy), else of the lowest free block.  Everything is deterministic.

Left out: zones, watermarks, compaction, the per-cpu lists and fragmentation
from other users: a block is free exactly when none of its frames is allocated.
"""

from __future__ import annotations

import heapq

from .constants import HPAGE_PMD_NR, HPAGE_PMD_ORDER


class PageAllocator:
    """Free-frame bookkeeping over `nr_frames` frames."""

    __slots__ = ("nr_frames", "nr_free", "_free", "_block_free", "_whole", "_partial")

    def __init__(self, nr_frames: int) -> None:
        self.nr_frames = nr_frames
        self.nr_free = nr_frames
        self._free = bytearray(b"\x01") * nr_frames
        nblocks = (nr_frames + HPAGE_PMD_NR - 1) // HPAGE_PMD_NR
        self._block_free = [min(HPAGE_PMD_NR, nr_frames - b * HPAGE_PMD_NR) for b in range(nblocks)]
        self._whole = [b for b in range(nblocks) if self._block_free[b] == HPAGE_PMD_NR]
        self._partial = [b for b in range(nblocks) if 0 < self._block_free[b] < HPAGE_PMD_NR]
        heapq.heapify(self._partial)

    def copy(self) -> "PageAllocator":
        """An independent copy (a command's checkpoint)."""
        new = PageAllocator.__new__(PageAllocator)
        new.nr_frames, new.nr_free = self.nr_frames, self.nr_free
        new._free = bytearray(self._free)
        new._block_free, new._whole = list(self._block_free), list(self._whole)
        new._partial = list(self._partial)
        return new

    def free_map(self) -> bytearray:
        """One byte a frame, 1 where free (read-only use: the invariant checker)."""
        return self._free

    def _pop_whole(self) -> int | None:
        while self._whole:
            b = heapq.heappop(self._whole)
            if self._block_free[b] == HPAGE_PMD_NR:
                return b
        return None

    def _pop_partial(self) -> int | None:
        while self._partial:
            b = self._partial[0]
            if 0 < self._block_free[b] < HPAGE_PMD_NR:
                return b
            heapq.heappop(self._partial)
        return None

    def can_alloc(self, order: int) -> bool:
        if order == 0:
            return self.nr_free > 0
        return any(f == HPAGE_PMD_NR for f in self._block_free)

    def alloc(self, order: int) -> int | None:
        """Allocate 2**order naturally aligned frames; the first pfn, or None."""
        if order == HPAGE_PMD_ORDER:
            b = self._pop_whole()
            if b is None:
                return None
            start = b * HPAGE_PMD_NR
            self._free[start:start + HPAGE_PMD_NR] = bytes(HPAGE_PMD_NR)
            self._block_free[b] = 0
            self.nr_free -= HPAGE_PMD_NR
            return start
        if order != 0:
            raise ValueError(f"order {order} allocations are not modelled")
        pfns = self.alloc_bulk(1)
        return pfns[0] if pfns else None

    def alloc_bulk(self, nr: int) -> list[int]:
        """Allocate up to nr order-0 frames in allocation order (alloc_pages_bulk)."""
        out: list[int] = []
        free = self._free
        while len(out) < nr:
            b = self._pop_partial()
            if b is None:
                b = self._pop_whole()
                if b is None:
                    break
                heapq.heappush(self._partial, b)
            start = b * HPAGE_PMD_NR
            end = min(start + HPAGE_PMD_NR, self.nr_frames)
            want = nr - len(out)
            if self._block_free[b] == end - start:
                # a wholly free block: take a run from its start in one go
                taken = min(want, end - start)
                free[start:start + taken] = bytes(taken)
                out.extend(range(start, start + taken))
                self._block_free[b] -= taken
                self.nr_free -= taken
                continue
            pos = start
            taken = 0
            while taken < want:
                pos = free.find(1, pos, end)
                if pos < 0:
                    break
                stop = free.find(0, pos, end)
                stop = min(end if stop < 0 else stop, pos + want - taken)
                free[pos:stop] = bytes(stop - pos)
                out.extend(range(pos, stop))
                taken += stop - pos
                pos = stop
            self._block_free[b] -= taken
            self.nr_free -= taken
        return out

    def free_pages(self, pfn: int, order: int) -> None:
        """Return 2**order frames starting at pfn."""
        nr = 1 << order
        self._free[pfn:pfn + nr] = b"\x01" * nr
        self.nr_free += nr
        b = pfn // HPAGE_PMD_NR
        before = self._block_free[b]
        self._block_free[b] = before + nr
        if self._block_free[b] == HPAGE_PMD_NR:
            heapq.heappush(self._whole, b)
        elif before == 0:
            heapq.heappush(self._partial, b)

    def free_run(self, pfn: int, nr: int) -> None:
        """Return the nr consecutive order-0 frames from pfn."""
        end = pfn + nr
        self._free[pfn:end] = b"\x01" * nr
        self.nr_free += nr
        while pfn < end:
            b = pfn // HPAGE_PMD_NR
            n = min(end, (b + 1) * HPAGE_PMD_NR) - pfn
            before = self._block_free[b]
            self._block_free[b] = before + n
            if before + n == HPAGE_PMD_NR:
                heapq.heappush(self._whole, b)
            elif before == 0:
                heapq.heappush(self._partial, b)
            pfn += n
