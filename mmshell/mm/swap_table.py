"""The swap cache's per-slot table of one device (mm/swap_table.h, 6.18).

Linux 6.18 keeps the swap cache in the swap clusters themselves: each slot of a
cluster has one table entry, holding the folio that caches the slot, a shadow, or
nothing.  `SwapTable` is that table for one device: one int per slot, the head pfn
of the folio caching it or 0 for none (frame 0 is the zero page, never in the swap
cache).  Adding or deleting a folio of nr pages is one slice assignment.  It reads
like the mapping slot -> head pfn it replaces (`get`, `[]`, `len`, `items`,
`values`); the count of cached slots is kept as the table changes.

Left out: shadow entries (workingset refault distances) and the per-cluster locks.
"""

from __future__ import annotations

from array import array
from typing import Iterator

from .constants import SWAPFILE_CLUSTER

#: The table entry of a slot no folio caches.
NO_FOLIO = 0

_EMPTY_CLUSTER = array("i", bytes(4 * SWAPFILE_CLUSTER))


class SwapTable:
    """slot -> head pfn of the folio caching it, for the `pages` slots of one device."""

    __slots__ = ("table", "nr")

    def __init__(self, pages: int) -> None:
        self.table = array("i", bytes(4 * pages))
        self.nr = 0             # slots that hold a folio

    # -- the swap cache's changes (swap_cache_add_folio, swap_cache_del_folio) ----------
    def add(self, off: int, nr: int, pfn: int) -> None:
        """nr free table entries from off now hold the folio at pfn."""
        self.table[off:off + nr] = array("i", [pfn]) * nr
        self.nr += nr

    def delete(self, off: int, nr: int) -> None:
        """The nr entries from off (all holding one folio) hold nothing again."""
        self.table[off:off + nr] = array("i", bytes(4 * nr))
        self.nr -= nr

    def __setitem__(self, off: int, pfn: int) -> None:
        """One entry set directly (the invariant checker's tests corrupt the table so)."""
        self.nr += (pfn != NO_FOLIO) - (self.table[off] != NO_FOLIO)
        self.table[off] = pfn

    # -- lookups ----------------------------------------------------------------------
    def get(self, off: int, default: int | None = None) -> int | None:
        """The head pfn of the folio caching slot off, or `default`."""
        pfn = self.table[off]
        return pfn if pfn != NO_FOLIO else default

    def __getitem__(self, off: int) -> int:
        pfn = self.table[off]
        if pfn == NO_FOLIO:
            raise KeyError(off)
        return pfn

    def __contains__(self, off: object) -> bool:
        return isinstance(off, int) and 0 <= off < len(self.table) and self.table[off] != NO_FOLIO

    def any_in(self, off: int, nr: int) -> bool:
        """Whether any of the nr slots from off is cached."""
        if not self.nr:
            return False
        seg = self.table[off:off + nr]
        return seg != array("i", bytes(4 * len(seg)))

    def __len__(self) -> int:
        return self.nr

    def __bool__(self) -> bool:
        return self.nr > 0

    def items(self) -> Iterator[tuple[int, int]]:
        """(slot, head pfn) of every cached slot, in slot order (empty clusters skipped whole)."""
        if not self.nr:
            return
        table = self.table
        for base in range(0, len(table), SWAPFILE_CLUSTER):
            chunk = table[base:base + SWAPFILE_CLUSTER]
            if chunk == _EMPTY_CLUSTER[:len(chunk)]:
                continue
            for i, pfn in enumerate(chunk):
                if pfn != NO_FOLIO:
                    yield base + i, pfn

    def __iter__(self) -> Iterator[int]:
        return (off for off, _ in self.items())

    def values(self) -> Iterator[int]:
        return (pfn for _, pfn in self.items())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SwapTable) and self.table == other.table

    __hash__ = None     # type: ignore[assignment]
