"""What every page should read: the record `check` verifies the machine against.

The shadow is kept by the system-call layer from what the user did (writes,
fork, mremap, uffd move, DONTNEED/FREE/munmap), never from page tables, so it
is an independent oracle for the mechanism: after any sequence of steps every
page of every process must read back its shadow value (0 for never written).
Storage is one array of 512 values per 2 MiB of address space that was written.

MADV_FREE is the one place where what a page reads depends on how the machine
holds it, not only on what the user did: until the page is written again the
kernel may drop its data (madvise_free_pte_range() frees a swap entry at once;
reclaim discards a clean lazyfree folio later), and a page dropped reads zero.
Two machines that ran the same commands may hold a page differently (a swap
entry in one, a present page in the other: a PMD swap-in brings back 2 MiB,
mainline's one page) and so one reads the value and the other zero.  `drop`
records the value it dropped, per page, until the page is written or unmapped;
`as_written` gives every page's value with the dropped ones put back, which is
the same in both modes.
"""

from __future__ import annotations

from array import array
from typing import cast

from .constants import HPAGE_PMD_NR, PAGE_SHIFT, PMD_SHIFT, pmd_index, pte_index
from .pidtable import PidTable

_ZEROS = bytes(8 * HPAGE_PMD_NR)


class ProcShadow(dict[int, array]):
    """One process's shadow: pmd index -> its 512 page values; `dropped` keeps, per pmd index,
    the values MADV_FREE let the kernel drop since they were written (0: nothing dropped)."""

    __slots__ = ("dropped",)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dropped: dict[int, array] = {}

    def __deepcopy__(self, memo: dict) -> "ProcShadow":
        new = ProcShadow({i: array("Q", c) for i, c in self.items()})
        new.dropped = {i: array("Q", c) for i, c in self.dropped.items()}
        memo[id(self)] = new
        return new

    def forget_dropped(self, pmdi: int, i: int, n: int) -> None:
        """Pages i..i+n of this PMD were written or unmapped: nothing of them is dropped."""
        chunk = self.dropped.get(pmdi)
        if chunk is None:
            return
        chunk[i:i + n] = array("Q", bytes(8 * n))
        if not any(chunk):
            del self.dropped[pmdi]


def _proc(chunks: dict[int, array] | None) -> ProcShadow | None:
    """A process's entry of Shadow.procs as what it is (None stays None)."""
    return cast("ProcShadow | None", chunks)


class Shadow:
    """Expected page values per pid: {pid: {pmd index: array('Q', 512)}}."""

    __slots__ = ("procs",)

    def __init__(self) -> None:
        # typed as plain dicts for their readers (check_data, the views); each entry is a ProcShadow
        self.procs: PidTable[dict[int, array]] = PidTable()

    def _chunk(self, pid: int, pmdi: int) -> array:
        chunks = self.procs.setdefault(pid, ProcShadow())
        chunk = chunks.get(pmdi)
        if chunk is None:
            chunk = chunks[pmdi] = array("Q", _ZEROS)
        return chunk

    def get(self, pid: int, addr: int) -> int:
        chunk = self.procs.get(pid, {}).get(pmd_index(addr))
        return chunk[pte_index(addr)] if chunk is not None else 0

    def set_run(self, pid: int, addr: int, values: array) -> None:
        """Record values for consecutive pages starting at addr (within one PMD)."""
        i, pmdi = pte_index(addr), pmd_index(addr)
        chunks = cast(ProcShadow, self.procs.setdefault(pid, ProcShadow()))
        chunk = chunks.get(pmdi)
        if chunk is None:
            chunk = chunks[pmdi] = array("Q", _ZEROS)
        chunk[i:i + len(values)] = values
        if chunks.dropped:
            chunks.forget_dropped(pmdi, i, len(values))

    def get_run(self, pid: int, addr: int, nr: int) -> array:
        chunk = self.procs.get(pid, {}).get(pmd_index(addr))
        i = pte_index(addr)
        return chunk[i:i + nr] if chunk is not None else array("Q", bytes(8 * nr))

    def _chunks_in(self, pid: int, start: int, end: int) -> list[int]:
        """The pmd indices of pid's chunks that [start, end) touches, in order.

        Only chunks that exist are visited, so a range of a terabyte costs no more
        than the pages that were ever written in it.
        """
        chunks = self.procs.get(pid)
        if not chunks or end <= start:
            return []
        first, last = pmd_index(start), pmd_index(end - 1)
        if last - first + 1 <= len(chunks):
            return [i for i in range(first, last + 1) if i in chunks]
        return sorted(i for i in chunks if first <= i <= last)

    def _pieces(self, pid: int, start: int, end: int) -> list[tuple[int, int, int]]:
        """(pmd index, first page, pages) of each of pid's chunks that [start, end) touches."""
        out = []
        for pmdi in self._chunks_in(pid, start, end):
            base = pmdi << PMD_SHIFT
            lo, hi = max(start, base), min(end, base + (HPAGE_PMD_NR << PAGE_SHIFT))
            out.append((pmdi, pte_index(lo), (hi - lo) >> PAGE_SHIFT))
        return out

    def zero(self, pid: int, start: int, end: int) -> None:
        """The range reads zeros from now on (munmap, DONTNEED, mremap's old range): nothing
        in it was written, so nothing in it is dropped either."""
        chunks = _proc(self.procs.get(pid))
        if not chunks:
            return
        for pmdi, i, n in self._pieces(pid, start, end):
            if n == HPAGE_PMD_NR:
                del chunks[pmdi]
            else:
                chunks[pmdi][i:i + n] = array("Q", bytes(8 * n))
            if chunks.dropped:
                chunks.forget_dropped(pmdi, i, n)

    def drop(self, pid: int, start: int, end: int) -> None:
        """MADV_FREE let the kernel drop the range's data (a swap entry freed by
        madvise_free_pte_range(), a clean lazyfree folio discarded by reclaim): it reads zeros,
        and `dropped` keeps what it held until the page is written or unmapped."""
        chunks = _proc(self.procs.get(pid))
        if not chunks:
            return
        for pmdi, i, n in self._pieces(pid, start, end):
            chunk = chunks[pmdi]
            if not any(chunk[i:i + n]):
                continue
            dropped = chunks.dropped.get(pmdi)
            if dropped is None:
                dropped = chunks.dropped[pmdi] = array("Q", _ZEROS)
            for j in range(i, i + n):
                if chunk[j]:
                    dropped[j] = chunk[j]
            chunk[i:i + n] = array("Q", bytes(8 * n))

    def as_written(self, pid: int) -> dict[int, array]:
        """pid's pages as last written, the values MADV_FREE let the kernel drop put back:
        what two machines that ran the same commands agree on, however each held the pages."""
        chunks = _proc(self.procs.peek(pid))
        if not chunks:
            return {}
        out = {i: array("Q", c) for i, c in chunks.items()}
        for pmdi, dropped in chunks.dropped.items():
            chunk = out[pmdi]
            for j, v in enumerate(dropped):
                if v:
                    chunk[j] = v
        return out

    def copy_process(self, parent: int, child: int) -> None:
        src = _proc(self.procs.get(parent)) or ProcShadow()
        self.procs[child] = src.__deepcopy__({})

    def move(self, src_pid: int, src: int, dst_pid: int, dst: int, length: int) -> None:
        """Contents follow pages moved by mremap / UFFDIO_MOVE (only written chunks are visited);
        so do the values MADV_FREE dropped."""
        runs = []
        dropped_runs = []
        src_chunks = _proc(self.procs.get(src_pid))
        for pmdi, i, n in self._pieces(src_pid, src, src + length):
            at = dst + ((pmdi << PMD_SHIFT) + (i << PAGE_SHIFT) - src)
            values = self.procs[src_pid][pmdi][i:i + n]
            if any(values):
                runs.append((at, values))
            dropped = src_chunks.dropped.get(pmdi) if src_chunks is not None else None
            if dropped is not None and any(dropped[i:i + n]):
                dropped_runs.append((at, dropped[i:i + n]))
        self.zero(src_pid, src, src + length)
        self.zero(dst_pid, dst, dst + length)
        for addr, values in _split_at_pmds(runs):
            self.set_run(dst_pid, addr, values)
        for addr, values in _split_at_pmds(dropped_runs):
            self._chunk(dst_pid, pmd_index(addr))       # a dropped page's chunk exists
            dst_chunks = cast(ProcShadow, self.procs[dst_pid])
            i = pte_index(addr)
            dst_chunks.dropped.setdefault(pmd_index(addr), array("Q", _ZEROS))[i:i + len(values)] = values

    def drop_process(self, pid: int) -> None:
        self.procs.pop(pid, None)


def _split_at_pmds(runs: list[tuple[int, array]]) -> list[tuple[int, array]]:
    """The runs (address, values) cut at PMD boundaries (a destination may be aligned otherwise
    than its source), leaving out the pieces with nothing written."""
    out = []
    for addr, values in runs:
        while values:
            n = min(len(values), HPAGE_PMD_NR - pte_index(addr))
            if any(values[:n]):
                out.append((addr, values[:n]))
            addr += n << PAGE_SHIFT
            values = values[n:]
    return out
