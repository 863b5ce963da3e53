"""What undoes one command later: the shell's `undo` and `back N`, at the cost of what changed.

`UndoRecord(checkpoint)` ends a checkpoint (lang/snapshot.py) taken before a
command, keeping what the command did, and keeps instead what puts it back:

- the per-process entries the command reached, as they were before it (the
  PidTables' level, mm/pidtable.py `detach`), and the stores into VMAs it made
  (the VMA journal's level, mm/vma.py `vma_journal_detach`);
- of the mem_map, the 16 KiB pieces of each per-frame array that the command
  changed below the high-water mark it started with, the mark, and the frame
  allocator (MemMap.checkpoint compared with the arrays after the command);
- the LRU lists' order (Lru.checkpoint: the next links up to the high-water mark, and the counts);
- the rest of the machine as the checkpoint copied it (swap devices and cache,
  counters: sized by `swapon` and the pages in use, not by the number of
  processes or mappings), the current pid and the region names.

`apply()` puts the machine back as it was before the command, given the machine
as it was right after it: records are applied newest first, each once.  A copy of
the whole machine per step (what the shell kept before) cost every process's page
tables for every step; a record costs what the command reached and changed
(`cost`, in the units of lang/budget.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..mm.folio import MemMap
from ..mm.pidtable import PidTable
from ..mm.vma import vma_journal_detach, vma_journal_undo
from .budget import COST
from .snapshot import _APART, Checkpoint

if TYPE_CHECKING:
    from ..mm.page_alloc import PageAllocator

__all__ = ["UndoRecord"]

#: The mem_map is compared, and its changes kept, in pieces of this many bytes.
PIECE = 16 << 10


def _mem_changes(mem: MemMap, saved: tuple[int, list, "PageAllocator"]) -> list[list[tuple[int, bytes]]]:
    """Per array of MemMap.ARRAYS, the pieces (byte offset, old bytes) below the saved
    high-water mark that differ now."""
    prefixes = mem.unpack(saved)
    out = []
    for name, old in zip(MemMap.ARRAYS, prefixes):
        pieces = []
        with memoryview(getattr(mem, name)).cast("B") as now, memoryview(old).cast("B") as was:
            for off in range(0, len(was), PIECE):
                if now[off:off + PIECE] != was[off:off + PIECE]:
                    pieces.append((off, bytes(was[off:off + PIECE])))
        out.append(pieces)
    return out


class UndoRecord:
    """What puts the machine back as it was before one command (see the module doc)."""

    __slots__ = ("session", "kernel", "pid", "regions", "tables", "saved", "stores", "mem", "hwm", "pieces",
                 "alloc", "lru", "lru_saved", "rest", "cost")

    def __init__(self, cp: Checkpoint) -> None:
        """End `cp` keeping what the commands since it did; this record undoes them."""
        cp._close()
        self.session, self.kernel, self.pid, self.regions = cp.session, cp.kernel, cp.pid, cp.regions
        self.tables: tuple[PidTable, ...] = cp.tables
        self.saved: list[dict[int, Any]] = [t.detach() for t in cp.tables]
        self.stores = vma_journal_detach()
        self.mem: MemMap = cp.mem
        self.hwm: int = cp.mem_saved[0]
        self.pieces = _mem_changes(cp.mem, cp.mem_saved)
        self.alloc: "PageAllocator" = cp.mem_saved[2]
        self.lru, self.lru_saved = cp.lru, cp.lru_saved
        self.rest: dict[str, Any] = cp.rest
        cp.rest, cp.copies = {}, []
        self.cost = self._cost()

    def _cost(self) -> int:
        """Host bytes the record holds, about (lang/budget.py's units)."""
        k = self.kernel
        mms, procs, _ = self.saved
        cost = sum(len(b) for pieces in self.pieces for _, b in pieces) + self.alloc.nr_frames
        cost += COST["swap slots"] * sum(si.pages for si in k.active_swap())
        cost += sum(a.itemsize * len(a) for a in self.lru_saved)     # the LRU's order, as arrays
        for mm in mms.values():
            if hasattr(mm, "pmds"):
                cost += (COST["PMD entries"] * len(mm.pmds) + COST["VMAs"] * len(mm.vmas)
                         + COST["page tables"] * sum(1 for p in mm.pmds.values() if p.table is not None))
        cost += COST["contents blocks"] * sum(len(v) for v in procs.values() if isinstance(v, dict))
        return cost

    def apply(self) -> None:
        """Put the machine, the current pid and the region names back as they were before the
        command (the machine being as the command left it)."""
        for table, saved in zip(self.tables, self.saved):
            table.restore(saved)
        vma_journal_undo(self.stores)
        k = self.kernel
        for name in [n for n in vars(k) if n not in self.rest and n not in _APART]:
            delattr(k, name)
        for name, value in self.rest.items():
            setattr(k, name, value)
        mem = self.mem
        prefixes = []
        for name, pieces in zip(MemMap.ARRAYS, self.pieces):
            prefix = getattr(mem, name)[:self.hwm]
            with memoryview(prefix).cast("B") as buf:
                for off, old in pieces:
                    buf[off:off + len(old)] = old
            prefixes.append(prefix)
        k.mem = mem
        mem.rollback(MemMap.pack(self.hwm, prefixes, self.alloc))
        k.lru = self.lru
        self.lru.rollback(self.lru_saved)
        s = self.session
        s.kernel, s.pid = k, self.pid
        if isinstance(self.regions, PidTable):
            s.regions = self.regions
        self.rest = {}

    def __repr__(self) -> str:
        return f"UndoRecord(cost={self.cost}, pids={sorted(self.saved[0])})"
