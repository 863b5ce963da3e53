"""What every page should read: the record `check` verifies the machine against.

The shadow is kept by the system-call layer from what the user did (writes,
fork, mremap, uffd move, DONTNEED/FREE/munmap), never from page tables, so it
is an independent oracle for the mechanism: after any sequence of steps every
page of every process must read back its shadow value (0 for never written).
Storage is one array of 512 values per 2 MiB of address space that was written.
"""

from __future__ import annotations

from array import array

from .constants import HPAGE_PMD_NR, PAGE_SHIFT, PMD_SHIFT

_ZEROS = bytes(8 * HPAGE_PMD_NR)


class Shadow:
    """Expected page values per pid: {pid: {pmd index: array('Q', 512)}}."""

    __slots__ = ("procs",)

    def __init__(self) -> None:
        self.procs: dict[int, dict[int, array]] = {}

    def _chunk(self, pid: int, pmdi: int) -> array:
        chunks = self.procs.setdefault(pid, {})
        chunk = chunks.get(pmdi)
        if chunk is None:
            chunk = chunks[pmdi] = array("Q", _ZEROS)
        return chunk

    def get(self, pid: int, addr: int) -> int:
        chunk = self.procs.get(pid, {}).get(addr >> PMD_SHIFT)
        return chunk[(addr >> PAGE_SHIFT) & (HPAGE_PMD_NR - 1)] if chunk is not None else 0

    def set_run(self, pid: int, addr: int, values: array) -> None:
        """Record values for consecutive pages starting at addr (within one PMD)."""
        i = (addr >> PAGE_SHIFT) & (HPAGE_PMD_NR - 1)
        self._chunk(pid, addr >> PMD_SHIFT)[i:i + len(values)] = values

    def get_run(self, pid: int, addr: int, nr: int) -> array:
        chunk = self.procs.get(pid, {}).get(addr >> PMD_SHIFT)
        i = (addr >> PAGE_SHIFT) & (HPAGE_PMD_NR - 1)
        return chunk[i:i + nr] if chunk is not None else array("Q", bytes(8 * nr))

    def zero(self, pid: int, start: int, end: int) -> None:
        """The range reads zeros from now on (munmap, DONTNEED, FREE of swapped pages)."""
        chunks = self.procs.get(pid)
        if not chunks:
            return
        addr = start
        while addr < end:
            pmdi = addr >> PMD_SHIFT
            nxt = min(end, (pmdi + 1) << PMD_SHIFT)
            chunk = chunks.get(pmdi)
            if chunk is not None:
                i = (addr >> PAGE_SHIFT) & (HPAGE_PMD_NR - 1)
                n = (nxt - addr) >> PAGE_SHIFT
                if n == HPAGE_PMD_NR:
                    del chunks[pmdi]
                else:
                    chunk[i:i + n] = array("Q", bytes(8 * n))
            addr = nxt

    def copy_process(self, parent: int, child: int) -> None:
        self.procs[child] = {k: array("Q", v) for k, v in self.procs.get(parent, {}).items()}

    def move(self, src_pid: int, src: int, dst_pid: int, dst: int, length: int) -> None:
        """Contents follow pages moved by mremap / UFFDIO_MOVE."""
        npages = length >> PAGE_SHIFT
        values = [self.get(src_pid, src + (i << PAGE_SHIFT)) for i in range(npages)]
        self.zero(src_pid, src, src + length)
        self.zero(dst_pid, dst, dst + length)
        for i, v in enumerate(values):
            if v:
                self.set_run(dst_pid, dst + (i << PAGE_SHIFT), array("Q", [v]))

    def drop_process(self, pid: int) -> None:
        self.procs.pop(pid, None)
