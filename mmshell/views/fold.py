"""Folding neighbouring PMD slots whose descriptions differ only in the sliding pfn/offset.

A 1 GiB region is 512 PMD slots; when they hold the same kind of entry (512
THPs, 512 PMD swap entries, 512 tables of swap PTEs) they become one row whose
numbers are shown as one range when they advance with the address
(`pfn 0x200..0x401ff`), else as the first and last PMD's ranges (`A..B … C..D`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from mmshell.mm.constants import PMD_SHIFT, PMD_SIZE

from .describe import PmdDesc
from .fmt import AddrNamer


@dataclass(slots=True)
class PmdGroup:
    """Consecutive PMD slots first..last whose descriptions share one shape."""

    first: int
    last: int
    descs: list[PmdDesc]

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    @property
    def bases(self) -> list[list[int]] | None:
        if len(self.descs) == 1:
            return None
        return [[d.runs[j].base for d in self.descs] for j in range(len(self.descs[0].runs))]

    def detail_lines(self) -> list[str]:
        return self.descs[0].detail_lines(self.bases)

    def text(self) -> str:
        return self.descs[0].text(self.bases)


#: A process's VMAs as (start, end) pairs in address order.
Spans = Sequence[tuple[int, int]]


class VmaIndex:
    """Which VMAs meet a PMD slot, found by bisection over the (start, end) spans."""

    __slots__ = ("spans", "_starts", "_ends")

    def __init__(self, spans: Spans) -> None:
        self.spans = list(spans)
        self._starts = [s for s, _ in self.spans]
        self._ends = [e for _, e in self.spans]

    def meeting(self, idx: int) -> tuple[tuple[int, int], ...]:
        """The VMAs that meet PMD slot idx: two slots fold only when they agree."""
        lo = idx << PMD_SHIFT
        first = bisect_right(self._ends, lo)
        last = bisect_left(self._starts, lo + PMD_SIZE, first)
        return tuple(self.spans[first:last])


def fold_pmds(items: list[tuple[int, PmdDesc]], namer: AddrNamer | None = None,
              spans: Spans | None = None) -> list[PmdGroup]:
    """Group (pmd index, desc) pairs, in index order, into runs of adjacent slots with one shape.

    A group also ends where the region holding the slot changes, so its
    `NAME+OFF` label stays true, and where the VMA changes (`spans`: the
    process's VMAs), so one row never stands for two mappings.
    """
    groups: list[PmdGroup] = []
    prev_shape = prev_region = None
    vmas = VmaIndex(spans) if spans is not None else None
    for idx, desc in items:
        shape = desc.shape
        hit = namer.region(idx << PMD_SHIFT) if namer else None
        region = (hit[0] if hit else None, vmas.meeting(idx) if vmas else None)
        g = groups[-1] if groups else None
        if g is not None and idx == g.last + 1 and shape == prev_shape and region == prev_region:
            g.last = idx
            g.descs.append(desc)
        else:
            groups.append(PmdGroup(idx, idx, [desc]))
        prev_shape, prev_region = shape, region
    return groups
