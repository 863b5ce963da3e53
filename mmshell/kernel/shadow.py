"""What every page of every script process should read on the live kernel.

The same record the simulator keeps (mm/shadow.py), kept by the runner from
what the script did: a write stores a fresh value per page; fork copies the
record; mremap and UFFDIO_MOVE move it; munmap, MADV_DONTNEED and MADV_FREE
of swapped or empty pages make the pages read zero.  One thing only the live
kernel has: after MADV_FREE of a *present* page, the kernel may drop the
page whenever reclaim finds it clean, so until the next write the page reads
either its old value or zero, and `check` accepts both.
"""

from __future__ import annotations

PAGE = 4096


class Shadow:
    def __init__(self) -> None:
        self.values: dict[int, dict[int, int]] = {}       # pid -> page address -> value
        self.lazy: dict[int, dict[int, int]] = {}         # pid -> page -> value it may still hold

    def _v(self, pid: int) -> dict[int, int]:
        return self.values.setdefault(pid, {})

    def _l(self, pid: int) -> dict[int, int]:
        return self.lazy.setdefault(pid, {})

    def write(self, pid: int, start: int, npages: int, first: int) -> None:
        v, lz = self._v(pid), self._l(pid)
        for i in range(npages):
            p = start + i * PAGE
            v[p] = first + i
            lz.pop(p, None)

    def expected(self, pid: int, page: int) -> tuple[int, ...]:
        """The values page may read: one, or (old, 0) after MADV_FREE of a present page."""
        if page in self.lazy.get(pid, {}):
            return (self.lazy[pid][page], 0)
        return (self.values.get(pid, {}).get(page, 0),)

    def zero(self, pid: int, start: int, end: int) -> None:
        v, lz = self._v(pid), self._l(pid)
        for p in [p for p in v if start <= p < end]:
            del v[p]
        for p in [p for p in lz if start <= p < end]:
            del lz[p]

    def lazyfree(self, pid: int, page: int) -> None:
        """MADV_FREE of a present page: it keeps its value until reclaim drops it."""
        v = self._v(pid)
        if page in v:
            self._l(pid)[page] = v.pop(page)

    def madv_free(self, pid: int, start: int, end: int, present: list[tuple[int, int]]) -> None:
        """MADV_FREE of [start, end): pages present before it (the `present` runs) may keep their
        value; the rest (swapped or empty) read zero."""
        v = self._v(pid)
        for p in [p for p in v if start <= p < end]:
            if any(a <= p < b for a, b in present):
                self.lazyfree(pid, p)
        lazy = self._l(pid)
        keep = {p: x for p, x in lazy.items() if start <= p < end and any(a <= p < b for a, b in present)}
        self.zero(pid, start, end)
        lazy.update(keep)

    def copy_process(self, parent: int, child: int) -> None:
        self.values[child] = dict(self.values.get(parent, {}))
        self.lazy[child] = dict(self.lazy.get(parent, {}))

    def move(self, pid: int, src: int, dst: int, length: int) -> None:
        v, lz = self._v(pid), self._l(pid)
        moved_v = {p - src + dst: x for p, x in v.items() if src <= p < src + length}
        moved_l = {p - src + dst: x for p, x in lz.items() if src <= p < src + length}
        self.zero(pid, src, src + length)
        self.zero(pid, dst, dst + length)
        v.update(moved_v)
        lz.update(moved_l)

    def drop_process(self, pid: int) -> None:
        self.values.pop(pid, None)
        self.lazy.pop(pid, None)

    def pages(self, pid: int) -> list[int]:
        return sorted(set(self.values.get(pid, {})) | set(self.lazy.get(pid, {})))
