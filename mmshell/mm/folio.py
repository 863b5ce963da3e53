"""struct page / struct folio: the mem_map, one slot per frame (include/linux/mm_types.h).

Like the kernel's mem_map, folio state lives in per-frame arrays indexed by pfn,
not in one Python object per page.  A folio is named by its head pfn; its order
and the folio-wide fields (flags, entire mapcount, rmap index and anon_vma) are
stored at the head, the per-page fields (mapcount, PageAnonExclusive, contents)
at every page.

`data[pfn]` is the simulation's stand-in for the page's bytes: 0 for a page of
zeros, otherwise the value of the write that last stored into it.

Left out: the refcount (derived from mappings + swap cache; there are no pins),
memcg, NUMA, page locks (one CPU, no races).
"""

from __future__ import annotations

from array import array
from .constants import HPAGE_PMD_NR
from .lanes import is_run
from .page_alloc import PageAllocator


class PG:
    """Page flags (include/linux/page-flags.h) the simulation tracks.

    Plain int bits, not an IntFlag: they are tested on hot paths and stored in
    the `flags` array('I'), so code (and the MemMap accessors) takes them as `int`.
    """

    USED = 1 << 0           # allocated (not in the buddy allocator)
    HEAD = 1 << 1           # head of a large folio
    TAIL = 1 << 2
    ANON = 1 << 3           # folio_test_anon (PAGE_MAPPING_ANON)
    SWAPBACKED = 1 << 4     # cleared by MADV_FREE (lazyfree)
    SWAPCACHE = 1 << 5
    DIRTY = 1 << 6
    LRU = 1 << 7
    ACTIVE = 1 << 8
    REFERENCED = 1 << 9
    ANON_EXCLUSIVE = 1 << 10  # per page: PageAnonExclusive
    PARTIALLY_MAPPED = 1 << 11  # on the deferred split queue as partially mapped
    ZERO = 1 << 12          # the huge zero folio
    WORKINGSET = 1 << 13
    UPTODATE = 1 << 14


class MemMap:
    """Per-frame state for `nr_frames` frames, plus the allocator over them."""

    __slots__ = ("nr_frames", "alloc", "flags", "order", "mapcount", "entire_mapcount",
                 "index", "anon_vma", "data", "hwm")

    #: The per-frame arrays (every entry of a frame never allocated is 0).
    ARRAYS = ("flags", "order", "mapcount", "entire_mapcount", "index", "anon_vma", "data")

    def __init__(self, nr_frames: int) -> None:
        self.nr_frames = nr_frames
        #: high-water mark: no frame at or above it was ever allocated, so its entries are all 0
        self.hwm = 0
        self.alloc = PageAllocator(nr_frames)
        # array([0]) * n: zeroed at once, without a bytes object of the size to copy from
        self.flags = array("I", [0]) * nr_frames
        self.order = bytearray(nr_frames)
        self.mapcount = array("i", [0]) * nr_frames
        self.entire_mapcount = array("i", [0]) * nr_frames
        self.index = array("q", [0]) * nr_frames
        self.anon_vma = array("i", [0]) * nr_frames
        self.data = array("Q", [0]) * nr_frames

    # -- a command's checkpoint (lang/snapshot.py) -------------------------------
    def checkpoint(self) -> tuple[int, list, "PageAllocator"]:
        """What a refusal needs to put the mem_map back: the arrays below the high-water
        mark and the allocator (the frames above it are all 0 and stay so until allocated),
        so a command's checkpoint costs the frames ever used, not the machine's RAM; and
        of those, a chunk of frames whose entries are all 0 (free frames) is not copied."""
        hwm = self.hwm
        return hwm, [_save_chunks(getattr(self, name), hwm) for name in self.ARRAYS], self.alloc.copy()

    def rollback(self, saved: tuple[int, list, "PageAllocator"]) -> None:
        """Put the mem_map back as `checkpoint` saw it."""
        hwm, chunks, alloc = saved
        for name, saved_chunks in zip(self.ARRAYS, chunks):
            arr = getattr(self, name)
            _restore_chunks(arr, saved_chunks, hwm)
            if self.hwm > hwm:
                arr[hwm:self.hwm] = _zeros(arr, self.hwm - hwm)
        self.hwm = hwm
        self.alloc = alloc

    def unpack(self, saved: tuple[int, list, "PageAllocator"]) -> list[array | bytearray]:
        """The arrays below the mark as `checkpoint` saved them, whole (chunks of zeros filled)."""
        hwm, chunks, _ = saved
        out: list[array | bytearray] = []
        for name, saved_chunks in zip(self.ARRAYS, chunks):
            arr = _zeros(getattr(self, name), hwm)
            _restore_chunks(arr, saved_chunks, hwm)
            out.append(arr)
        return out

    @staticmethod
    def pack(hwm: int, arrays: list[array | bytearray],
             alloc: "PageAllocator") -> tuple[int, list, "PageAllocator"]:
        """What `checkpoint` would have saved of these arrays below `hwm` (for `rollback`)."""
        return hwm, [_save_chunks(arr, hwm) for arr in arrays], alloc

    def _allocated(self, end: int) -> None:
        if end > self.hwm:
            self.hwm = end

    # -- folio-wide accessors (pfn is the head) ---------------------------------
    def nr_pages(self, pfn: int) -> int:
        return 1 << self.order[pfn]

    def test(self, pfn: int, flag: int) -> bool:
        return bool(self.flags[pfn] & flag)

    def set(self, pfn: int, flag: int) -> None:
        self.flags[pfn] |= flag

    def clear(self, pfn: int, flag: int) -> None:
        self.flags[pfn] &= ~flag

    def folio_of(self, pfn: int) -> int:
        """page_folio(): the head pfn of the folio holding pfn."""
        if self.flags[pfn] & PG.TAIL:
            return pfn & ~(HPAGE_PMD_NR - 1)
        return pfn

    def folio_mapcount(self, pfn: int) -> int:
        """folio_mapcount(): PTE maps of every page plus PMD maps."""
        nr = self.nr_pages(pfn)
        total = self.entire_mapcount[pfn]
        if nr == 1:
            return total + self.mapcount[pfn]
        return total + sum(self.mapcount[pfn:pfn + nr])

    def folio_mapped(self, pfn: int) -> bool:
        return self.folio_mapcount(pfn) > 0

    def page_mapcount(self, pfn: int) -> int:
        """Mappings of one page: its PTE maps plus the PMD maps of its folio."""
        return self.mapcount[pfn] + self.entire_mapcount[self.folio_of(pfn)]

    def folio_maybe_mapped_shared(self, pfn: int) -> bool:
        """Whether more than one mm may map the folio (approximated by mapcounts)."""
        nr = self.nr_pages(pfn)
        if self.entire_mapcount[pfn] > 1:
            return True
        if nr == 1:
            return self.mapcount[pfn] > 1
        return max(self.mapcount[pfn:pfn + nr]) + self.entire_mapcount[pfn] > 1

    # -- allocation --------------------------------------------------------------
    def folio_alloc(self, order: int) -> int | None:
        """Allocate a zeroed anonymous folio of `order`; its head pfn or None."""
        pfn = self.alloc.alloc(order)
        if pfn is None:
            return None
        self._allocated(pfn + (1 << order))
        self._prep(pfn, order)
        return pfn

    def folio_alloc_bulk(self, nr: int) -> list[int]:
        """Allocate up to nr zeroed order-0 folios."""
        pfns = self.alloc.alloc_bulk(nr)
        if not pfns:
            return pfns
        flags = self.flags
        base = PG.USED | PG.UPTODATE
        p0, n = pfns[0], len(pfns)
        if is_run(pfns):
            self._allocated(p0 + n)
            flags[p0:p0 + n] = array("I", [base]) * n       # consecutive frames: slices
            self.order[p0:p0 + n] = bytes(n)
            return pfns
        self._allocated(max(pfns) + 1)
        for pfn in pfns:
            flags[pfn] = base
            self.order[pfn] = 0
        return pfns

    def _prep(self, pfn: int, order: int) -> None:
        nr = 1 << order
        self.order[pfn] = order
        self.data[pfn:pfn + nr] = array("Q", bytes(8 * nr))
        if nr == 1:
            self.flags[pfn] = PG.USED | PG.UPTODATE
            return
        self.flags[pfn:pfn + nr] = array("I", [PG.USED | PG.TAIL]) * nr
        self.flags[pfn] = PG.USED | PG.HEAD | PG.UPTODATE

    def free_order0_runs(self, pfns: list[int]) -> None:
        """Free many unmapped, uncached order-0 folios (sorted pfns), a run of frames at a time."""
        if pfns and pfns[-1] - pfns[0] == len(pfns) - 1:
            runs = [(pfns[0], len(pfns))]       # consecutive frames (sorted, so no repeats): one run
        else:
            runs = []
            i = 0
            while i < len(pfns):
                j = i + 1
                while j < len(pfns) and pfns[j] == pfns[j - 1] + 1:
                    j += 1
                runs.append((pfns[i], j - i))
                i = j
        for p, n in runs:
            self.flags[p:p + n] = array("I", bytes(4 * n))
            self.data[p:p + n] = array("Q", bytes(8 * n))
            self.index[p:p + n] = array("q", bytes(8 * n))
            self.anon_vma[p:p + n] = array("i", bytes(4 * n))
            self.alloc.free_run(p, n)

    def free_folio(self, pfn: int) -> None:
        """free_unref_folios(): return an unmapped, uncached folio to the allocator."""
        nr = self.nr_pages(pfn)
        order = self.order[pfn]
        self.flags[pfn:pfn + nr] = array("I", bytes(4 * nr))
        self.data[pfn:pfn + nr] = array("Q", bytes(8 * nr))
        self.order[pfn] = 0
        self.index[pfn] = 0
        self.anon_vma[pfn] = 0
        self.alloc.free_pages(pfn, order)


#: Frames per chunk of a checkpoint of the mem_map.
_CHUNK = 1 << 14


def _zeros(arr: array | bytearray, n: int) -> array | bytearray:
    return array(arr.typecode, bytes(arr.itemsize * n)) if isinstance(arr, array) else bytearray(n)


def _save_chunks(arr: array | bytearray, end: int) -> list[array | bytearray | None]:
    """arr[:end] in chunks, None for a chunk of zeros (compared at C speed)."""
    out: list[array | bytearray | None] = []
    zero: bytes = b""
    for start in range(0, end, _CHUNK):
        chunk = arr[start:min(end, start + _CHUNK)]
        size = len(chunk) * chunk.itemsize if isinstance(chunk, array) else len(chunk)
        if len(zero) != size:
            zero = bytes(size)
        out.append(None if memoryview(chunk).cast("B") == zero else chunk)
    return out


def _restore_chunks(arr: array | bytearray, chunks: list[array | bytearray | None], end: int) -> None:
    for i, chunk in enumerate(chunks):
        start = i * _CHUNK
        stop = min(end, start + _CHUNK)
        arr[start:stop] = chunk if chunk is not None else _zeros(arr, stop - start)  # type: ignore[assignment]
