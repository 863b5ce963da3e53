"""What every page should read: the record `check` verifies the machine against.

The shadow is kept by the system-call layer from what the user did (writes,
fork, mremap, uffd move, DONTNEED/FREE/munmap), never from page tables, so it
is an independent oracle for the mechanism: after any sequence of steps every
page of every process must read back its shadow value (0 for never written).
Storage is one array of 512 values per 2 MiB of address space that was written.
"""

from __future__ import annotations

from array import array

from .constants import HPAGE_PMD_NR, PAGE_SHIFT, PMD_SHIFT, pmd_index, pte_index
from .pidtable import PidTable

_ZEROS = bytes(8 * HPAGE_PMD_NR)


class Shadow:
    """Expected page values per pid: {pid: {pmd index: array('Q', 512)}}."""

    __slots__ = ("procs",)

    def __init__(self) -> None:
        self.procs: PidTable[dict[int, array]] = PidTable()

    def _chunk(self, pid: int, pmdi: int) -> array:
        chunks = self.procs.setdefault(pid, {})
        chunk = chunks.get(pmdi)
        if chunk is None:
            chunk = chunks[pmdi] = array("Q", _ZEROS)
        return chunk

    def get(self, pid: int, addr: int) -> int:
        chunk = self.procs.get(pid, {}).get(pmd_index(addr))
        return chunk[pte_index(addr)] if chunk is not None else 0

    def set_run(self, pid: int, addr: int, values: array) -> None:
        """Record values for consecutive pages starting at addr (within one PMD)."""
        i = pte_index(addr)
        self._chunk(pid, pmd_index(addr))[i:i + len(values)] = values

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

    def zero(self, pid: int, start: int, end: int) -> None:
        """The range reads zeros from now on (munmap, DONTNEED, FREE of swapped pages)."""
        chunks = self.procs.get(pid)
        if not chunks:
            return
        for pmdi in self._chunks_in(pid, start, end):
            base = pmdi << PMD_SHIFT
            lo, hi = max(start, base), min(end, base + (HPAGE_PMD_NR << PAGE_SHIFT))
            i = pte_index(lo)
            n = (hi - lo) >> PAGE_SHIFT
            if n == HPAGE_PMD_NR:
                del chunks[pmdi]
            else:
                chunks[pmdi][i:i + n] = array("Q", bytes(8 * n))

    def copy_process(self, parent: int, child: int) -> None:
        self.procs[child] = {k: array("Q", v) for k, v in self.procs.get(parent, {}).items()}

    def move(self, src_pid: int, src: int, dst_pid: int, dst: int, length: int) -> None:
        """Contents follow pages moved by mremap / UFFDIO_MOVE (only written chunks are visited)."""
        end = src + length
        runs = []
        for pmdi in self._chunks_in(src_pid, src, end):
            base = pmdi << PMD_SHIFT
            lo, hi = max(src, base), min(end, base + (HPAGE_PMD_NR << PAGE_SHIFT))
            i = pte_index(lo)
            values = self.procs[src_pid][pmdi][i:i + ((hi - lo) >> PAGE_SHIFT)]
            if any(values):
                runs.append((dst + (lo - src), values))
        self.zero(src_pid, src, end)
        self.zero(dst_pid, dst, dst + length)
        for addr, values in runs:
            # the destination may be aligned differently: split the run at its PMD boundaries
            while values:
                n = min(len(values), HPAGE_PMD_NR - pte_index(addr))
                if any(values[:n]):
                    self.set_run(dst_pid, addr, values[:n])
                addr += n << PAGE_SHIFT
                values = values[n:]

    def drop_process(self, pid: int) -> None:
        self.procs.pop(pid, None)
