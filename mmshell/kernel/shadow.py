"""What every page of every script process should read on the live kernel.

The same record the simulator keeps (mm/shadow.py), kept by the runner from
what the script did: a write stores a fresh value per page; fork copies the
record; mremap and UFFDIO_MOVE move it; munmap, MADV_DONTNEED and MADV_FREE
of swapped or empty pages make the pages read zero.  One thing only the live
kernel has: after MADV_FREE of a *present* page, the kernel may drop the
page whenever reclaim finds it clean, so until the next write the page reads
either its old value or zero, and `check` accepts both.

A touch writes first, first+1, ... to consecutive pages, so the record is kept
as runs of pages (start, end, value of the first page): its size follows the
number of commands, not of pages (a `touch` of 64G is one run, not 16M entries).
"""

from __future__ import annotations

from bisect import bisect_right

PAGE = 4096


class Runs:
    """Disjoint runs [start, end) of pages whose values count up from `first`, sorted by start."""

    __slots__ = ("starts", "runs")

    def __init__(self, runs: list[tuple[int, int, int]] | None = None) -> None:
        self.runs: list[tuple[int, int, int]] = runs or []
        self.starts = [r[0] for r in self.runs]

    def get(self, page: int) -> int | None:
        i = bisect_right(self.starts, page) - 1
        if i >= 0:
            start, end, first = self.runs[i]
            if page < end:
                return first + (page - start) // PAGE
        return None

    def cut(self, lo: int, hi: int) -> list[tuple[int, int, int]]:
        """Remove [lo, hi); the pieces removed (clipped to it), in order."""
        i = max(bisect_right(self.starts, lo) - 1, 0)
        while i < len(self.runs) and self.runs[i][1] <= lo:
            i += 1
        j = i
        keep: list[tuple[int, int, int]] = []
        removed: list[tuple[int, int, int]] = []
        while j < len(self.runs) and self.runs[j][0] < hi:
            start, end, first = self.runs[j]
            if start < lo:
                keep.append((start, lo, first))
            if end > hi:
                keep.append((hi, end, first + (hi - start) // PAGE))
            a = max(start, lo)
            removed.append((a, min(end, hi), first + (a - start) // PAGE))
            j += 1
        self.runs[i:j] = keep
        self.starts[i:j] = [r[0] for r in keep]
        return removed

    def add(self, start: int, end: int, first: int) -> None:
        """Insert a run over a range cut before."""
        if start < end:
            i = bisect_right(self.starts, start)
            self.runs.insert(i, (start, end, first))
            self.starts.insert(i, start)

    def copy(self) -> "Runs":
        return Runs(list(self.runs))

    def pages(self) -> list[int]:
        return [p for start, end, _ in self.runs for p in range(start, end, PAGE)]


class Shadow:
    def __init__(self) -> None:
        self.values: dict[int, Runs] = {}       # pid -> what each page holds
        self.lazy: dict[int, Runs] = {}         # pid -> what a lazyfree page may still hold

    def _v(self, pid: int) -> Runs:
        return self.values.setdefault(pid, Runs())

    def _l(self, pid: int) -> Runs:
        return self.lazy.setdefault(pid, Runs())

    def write(self, pid: int, start: int, npages: int, first: int) -> None:
        end = start + npages * PAGE
        self.zero(pid, start, end)
        self._v(pid).add(start, end, first)

    def expected(self, pid: int, page: int) -> tuple[int, ...]:
        """The values page may read: one, or (old, 0) after MADV_FREE of a present page."""
        old = self.lazy[pid].get(page) if pid in self.lazy else None
        if old is not None:
            return (old, 0)
        value = self.values[pid].get(page) if pid in self.values else None
        return (value or 0,)

    def zero(self, pid: int, start: int, end: int) -> None:
        self._v(pid).cut(start, end)
        self._l(pid).cut(start, end)

    def lazyfree(self, pid: int, page: int) -> None:
        """MADV_FREE of a present page: it keeps its value until reclaim drops it."""
        self.madv_free(pid, page, page + PAGE, [(page, page + PAGE)])

    def madv_free(self, pid: int, start: int, end: int, present: list[tuple[int, int]]) -> None:
        """MADV_FREE of [start, end): pages present before it (the `present` runs) may keep their
        value; the rest (swapped or empty) read zero."""
        v, lz = self._v(pid), self._l(pid)
        addr = start
        for a, b in sorted(present):
            a, b = max(a, start), min(b, end)
            if a >= b:
                continue
            self.zero(pid, addr, a)
            for piece in v.cut(a, b):
                lz.cut(piece[0], piece[1])
                lz.add(*piece)
            addr = max(addr, b)
        self.zero(pid, addr, end)

    def copy_process(self, parent: int, child: int) -> None:
        self.values[child] = self._v(parent).copy()
        self.lazy[child] = self._l(parent).copy()

    def move(self, pid: int, src: int, dst: int, length: int) -> None:
        v, lz = self._v(pid), self._l(pid)
        moved_v = v.cut(src, src + length)
        moved_l = lz.cut(src, src + length)
        self.zero(pid, dst, dst + length)
        for runs, moved in ((v, moved_v), (lz, moved_l)):
            for start, end, first in moved:
                runs.add(start - src + dst, end - src + dst, first)

    def drop_process(self, pid: int) -> None:
        self.values.pop(pid, None)
        self.lazy.pop(pid, None)

    def pages(self, pid: int) -> list[int]:
        return sorted(set(self._v(pid).pages()) | set(self._l(pid).pages()))
