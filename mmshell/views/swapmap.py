"""`show swap [NAME] map`: a swap device as one strip per cluster, one glyph per slot.

A cluster is 512 slots (SWAPFILE_CLUSTER), drawn as 8 rows of 64 glyphs; beside
it its index, first slot, and whether it holds one order-9 (PMD-size)
allocation or order-0 slots.  Wholly free clusters fold into one line, and
neighbouring clusters that draw alike into one strip (`clusters 1-512`).  A
slot's glyph says what swap_map holds for it: free, used (count 1), in the
swap cache only, used and cached, count above 1 (shared), both, or the header.
The same marks as `show map`'s overlays: `~` cached, `+` shared, `*` both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Group
from rich.text import Text

from mmshell.mm.constants import COUNT_CONTINUED, SWAP_COUNT_MASK, SWAP_HAS_CACHE, SWAP_MAP_BAD, SWAPFILE_CLUSTER
from mmshell.mm.swap_info import SwapInfo

from .widgets import Packed, Trimmed

if TYPE_CHECKING:
    from mmshell.mm.kernel import Kernel

COLUMNS = 64
LABEL_WIDTH = 15


@dataclass(frozen=True, slots=True)
class SlotGlyph:
    glyph: str
    meaning: str
    style: str


#: What a slot can be, in legend order (the glyphs of `show map`'s overlays where they mean the same).
SLOT_GLYPHS: tuple[SlotGlyph, ...] = (
    SlotGlyph(".", "free", "dim"),
    SlotGlyph("o", "used: count 1", "magenta"),
    SlotGlyph("~", "in the swap cache only (count 0)", "cyan"),
    SlotGlyph("@", "used and in the swap cache", "bold cyan"),
    SlotGlyph("+", "count > 1 (shared)", "bold magenta"),
    SlotGlyph("*", "count > 1 and in the swap cache", "bold yellow"),
    SlotGlyph("x", "header (slot 0) or bad", "red"),
)
_STYLE = {g.glyph: g.style for g in SLOT_GLYPHS}


def _slot_glyph(b: int) -> str:
    if b == SWAP_MAP_BAD:
        return "x"
    cached = bool(b & SWAP_HAS_CACHE)
    count = b & SWAP_COUNT_MASK
    many = count > 1 or bool(b & COUNT_CONTINUED)
    if many:
        return "*" if cached else "+"
    if count:
        return "@" if cached else "o"
    return "~" if cached else "."


#: swap_map byte -> glyph, for bytes.translate (one C call per cluster).
_GLYPH_TABLE = bytes(ord(_slot_glyph(b)) for b in range(256))


@dataclass(frozen=True, slots=True)
class ClusterStrip:
    """One cluster: its index, order (9, 0, or None when wholly free) and its 512 slot glyphs."""

    index: int
    order: int | None
    slots: str


def cluster_strips(si: SwapInfo) -> list[ClusterStrip]:
    """Every cluster of the device, in order."""
    out = []
    for c in range(si.nr_clusters):
        base = c * SWAPFILE_CLUSTER
        raw = bytes(si.swap_map[base:base + SWAPFILE_CLUSTER]).ljust(SWAPFILE_CLUSTER, bytes((SWAP_MAP_BAD,)))
        used = si.cluster_used[c]
        order = None if used == 0 else si.cluster_order[c]
        out.append(ClusterStrip(c, order, raw.translate(_GLYPH_TABLE).decode()))
    return out


class SwapMapView:
    """The cluster strips of the named devices (default: every active one).

    to_json(): {"devices": [{"name", "clusters": total, "free_clusters", "counts": {glyph meaning
    key: n}, "strips": [{"index", "first_slot", "order", "slots" (512 glyphs)}] (clusters in
    use only)}], "legend": {glyph: meaning}}.
    """

    def __init__(self, k: "Kernel", names: list[str] | None = None) -> None:
        self.devices = [(si.name, si.kind.value, si.pages, cluster_strips(si)) for si in k.swap_info
                        if si is not None and (names is None or si.name in names)]

    @staticmethod
    def _counts(strips: list[ClusterStrip]) -> dict[str, int]:
        text = "".join(s.slots for s in strips)
        return {"used": sum(text.count(g) for g in "o@+*"), "cached": sum(text.count(g) for g in "~@*"),
                "shared": sum(text.count(g) for g in "+*"),
                "pmd_clusters": sum(1 for s in strips if s.order == 9),
                "order0_clusters": sum(1 for s in strips if s.order == 0),
                "free_clusters": sum(1 for s in strips if s.order is None)}

    def _device(self, name: str, kind: str, pages: int, strips: list[ClusterStrip]) -> list:
        n = self._counts(strips)
        out: list = [Text(f"swap map of {name} ({kind}, {pages} slots, {len(strips)} clusters)", style="bold"),
                      Text(f"slots: {n['used']} used, {n['cached']} in the swap cache, {n['shared']} with count > 1"),
                      Text(f"clusters: {n['pmd_clusters']} PMD (order-9), {n['order0_clusters']} order-0, "
                           f"{n['free_clusters']} free")]
        i = 0
        while i < len(strips):
            s = strips[i]
            if s.order is None:
                j = i
                while j + 1 < len(strips) and strips[j + 1].order is None:
                    j += 1
                what = f"cluster {i}" if i == j else f"clusters {i}-{j}"
                out.append(Text(f"{what}: free", style="dim"))
                i = j + 1
                continue
            j = i          # neighbours that draw alike fold into one strip
            while j + 1 < len(strips) and (strips[j + 1].order, strips[j + 1].slots) == (s.order, s.slots):
                j += 1
            kind = "PMD (order-9)" if s.order == 9 else "order-0"
            labels = ([f"cluster {i}", f"slot {i * SWAPFILE_CLUSTER:#x}", kind] if i == j else
                      [f"clusters {i}-{j}", f"{j - i + 1} alike", f"slot {i * SWAPFILE_CLUSTER:#x}", kind])
            for r in range(SWAPFILE_CLUSTER // COLUMNS):
                line = Text((labels[r] if r < len(labels) else "").ljust(LABEL_WIDTH))
                for ch in s.slots[r * COLUMNS:(r + 1) * COLUMNS]:
                    line.append(ch, style=_STYLE[ch])
                out.append(line)
            i = j + 1
        return out

    def __rich__(self) -> Trimmed:
        if not self.devices:
            return Trimmed(Group(Text("no swap devices")))
        parts: list = []
        for dev in self.devices:
            parts += self._device(*dev)
        parts.append(Packed("legend: ", [f"{g.glyph} {g.meaning}" for g in SLOT_GLYPHS], style="dim"))
        return Trimmed(Group(*parts))

    def to_json(self) -> dict:
        devices = []
        for name, kind, pages, strips in self.devices:
            devices.append({"name": name, "kind": kind, "pages": pages, "clusters": len(strips),
                            "counts": self._counts(strips),
                            "strips": [{"index": s.index, "first_slot": s.index * SWAPFILE_CLUSTER,
                                        "order": s.order, "slots": s.slots} for s in strips if s.order is not None]})
        return {"devices": devices, "legend": {g.glyph: g.meaning for g in SLOT_GLYPHS}}
