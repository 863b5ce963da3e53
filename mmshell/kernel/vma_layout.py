"""The VMA layout `kernel diff` compares after a step that can change VMAs, read the same way
from both backends (views/source.py's ViewObserver: `vma_facts`, `names`, `pids`).

For each process of the script, each VMA that meets one of its regions, as the regions
column of `show vmas` names it (`a`, or the part inside a region `a+0xOFF:LEN`), with its
perms and the flag words `show vmas` names (hugepage, nohugepage, uffd, uffd-wp, locked).
Named by region, not by address: the live kernel places a region where mmap() puts it, the
simulator where its own top-down search does, so only the layout relative to the regions is
the same fact on both sides.  Left out, because the two sides cannot know them the same way:
the part of a VMA outside the script's regions (on the live kernel a region's VMA may merge
with the worker's own memory next to it), the VMAs that meet no region (the worker's heap,
stack and libraries), and vm_pgoff (the live kernel does not export an anonymous VMA's).
"""

from __future__ import annotations

from typing import Protocol

from ..views.fmt import AddrNamer
from ..views.source import VmaFacts

#: One VMA: the regions it covers (address order), its perms, its flag words.
VmaKey = tuple[tuple[str, ...], str, tuple[str, ...]]
#: Script pid -> its VMAs that meet a region, sorted.
Layout = dict[int, tuple[VmaKey, ...]]


class VmaSource(Protocol):
    """What the layout reads of a backend (SimViews and LiveViews have it)."""

    def pids(self) -> list[int]: ...

    def names(self, pid: int | None = None) -> dict[str, tuple[int, int]]: ...

    def vma_facts(self, pid: int) -> list[VmaFacts]: ...


def vma_layout(src: VmaSource) -> Layout:
    """The layout of every process of the script, as both sides can see it."""
    out: Layout = {}
    for pid in src.pids():
        namer = AddrNamer(src.names(pid))
        rows = []
        for lo, hi, perms, _pgoff, flags in src.vma_facts(pid):
            regions = namer.overlapping(lo, hi)
            if regions:
                rows.append((tuple(regions), perms, tuple(flags)))
        out[pid] = tuple(sorted(rows))
    return out


def vma_text(key: VmaKey) -> str:
    """One VMA as `show vmas` writes its columns: `a b rw-p hugepage`."""
    regions, perms, flags = key
    return " ".join([*regions, perms, *flags])


def layout_difference(kernel: Layout, sim: Layout) -> tuple[str, str] | None:
    """Each side's VMAs of the processes whose layouts differ (None when none does): per
    process `pid N: VMA, VMA`, the VMAs both sides have left out as `(+K same)`."""
    pids = sorted(p for p in set(kernel) | set(sim) if kernel.get(p) != sim.get(p))
    if not pids:
        return None

    def side(mine: Layout, other: Layout) -> str:
        parts = []
        for pid in pids:
            if pid not in mine:
                parts.append(f"pid {pid}: no process")
                continue
            theirs = set(other.get(pid, ()))
            own = [vma_text(v) for v in mine[pid] if v not in theirs]
            same = len(mine[pid]) - len(own)
            if own:
                parts.append(f"pid {pid}: " + ", ".join(own) + (f" (+{same} same)" if same else ""))
            else:
                parts.append(f"pid {pid}: only the {same} both have" if same else f"pid {pid}: no VMA")
        return "; ".join(parts)

    return side(kernel, sim), side(sim, kernel)
