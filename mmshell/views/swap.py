"""`show swap`: the swap devices, their clusters, and swap_map as runs of equal counts.

swap_map runs are found with one regex scan over the bytearray (C speed), so
a 64 GiB device costs no Python step per slot.  A run is a range of slots with
the same count and the same SWAP_HAS_CACHE bit: `slots 0x200-0x3ff count 1`,
`slots 0x400-0x5ff count 0 +cache`.  Free slots and the header slot are left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.text import Text

from mmshell.mm.constants import COUNT_CONTINUED, PAGE_SIZE, SWAP_COUNT_MASK, SWAP_HAS_CACHE, SWAP_MAP_BAD
from mmshell.mm.swap_info import SwapInfo

from .fmt import bit_runs, byte_runs, fmt_size, slot_range, slots_text
from .widgets import Trimmed, cell, view_table

if TYPE_CHECKING:
    from mmshell.mm.kernel import Kernel

#: swap_map runs shown per device before the rest are summarised.
MAX_RUNS = 24


def swap_map_runs(si: SwapInfo) -> list[dict]:
    """Runs of allocated slots with equal count and cache bit: [{first, last, count, cache}]."""
    out: list[dict] = []
    sm = si.swap_map
    for start, end, v in byte_runs(sm, skip=0):
        if v == SWAP_MAP_BAD:
            continue
        cache = bool(v & SWAP_HAS_CACHE)
        if not v & COUNT_CONTINUED:
            out.append({"first": start, "last": end - 1, "count": v & SWAP_COUNT_MASK, "cache": cache})
            continue
        for s in range(start, end):  # counts held in continuation pages differ slot by slot
            c = si.swap_count(s)
            prev = out[-1] if out else None
            if prev and prev["last"] == s - 1 and prev["count"] == c and prev["cache"] == cache:
                prev["last"] = s
            else:
                out.append({"first": s, "last": s, "count": c, "cache": cache})
    return out


def run_text(run: dict) -> str:
    """`slots 0x200-0x3ff count 1`, `slot 0x400 count 0 +cache`."""
    return f"{slots_text(run['first'], run['last'])} count {run['count']}" + (" +cache" if run["cache"] else "")


def flag_runs(bits: bytearray) -> list[dict]:
    """The slots whose per-slot byte (zeromap, zswap) is set, as [{first, last}]."""
    if bits.find(1) < 0:
        return []
    return [{"first": s, "last": e - 1} for s, e, v in bit_runs(bits) if v]


def cluster_counts(si: SwapInfo) -> dict[str, int]:
    """Clusters: total, free, holding an order-9 allocation, holding order-0 slots (or the header)."""
    total = si.nr_clusters
    free = si.cluster_used.count(0)
    order9 = si.cluster_order.count(9)
    return {"total": total, "free": free, "order9": order9, "order0": total - free - order9}


def device_facts(si: SwapInfo) -> dict:
    """Everything `show swap` says about one device, as plain data."""
    return {
        "name": si.name,
        "type": si.type,
        "kind": si.kind.value,
        "prio": si.prio,
        "pages": si.pages,
        "size": si.pages * PAGE_SIZE,
        "used": si.inuse_pages,
        "used_kb": si.inuse_pages * PAGE_SIZE // 1024,
        "clusters": cluster_counts(si),
        "runs": swap_map_runs(si),
        "zeromap": flag_runs(si.zeromap),
        "zswap": flag_runs(si.zswap),
        "cached": len(si.cache),
    }


class SwapView:
    """Every active swap device (or those named), in swap type order.

    to_json(): {"devices": [{"name", "type", "kind", "prio", "pages", "size", "used",
    "used_kb", "clusters": {"total", "free", "order9", "order0"},
    "runs": [{"first", "last", "count", "cache"}], "zeromap": [{"first", "last"}],
    "zswap": [{"first", "last"}], "cached"}]}.
    """

    def __init__(self, k: "Kernel", names: list[str] | None = None) -> None:
        self.devices = [device_facts(si) for si in k.swap_info
                        if si is not None and (names is None or si.name in names)]

    @classmethod
    def of(cls, devices: list[dict]) -> "SwapView":
        """The view of device facts a backend read; "clusters" and "runs" None where it cannot see them."""
        view = cls.__new__(cls)
        view.devices = devices
        return view

    def __rich__(self) -> Trimmed:
        if not self.devices:
            return Trimmed(Group(Text("no swap devices")))
        table = view_table("swap devices", "name", "type", "kind", "prio", "size", "used", "used kB",
                           "clusters free/order-9/order-0", right=("type", "prio", "size", "used", "used kB"))
        for d in self.devices:
            c = d["clusters"]
            table.add_row(cell(d["name"]), cell(d["type"]), cell(d["kind"]), cell(d["prio"]),
                          cell(fmt_size(d["size"])), cell(d["used"]), cell(d["used_kb"]),
                          cell(f"{c['free']}/{c['order9']}/{c['order0']} of {c['total']}" if c else "-"))
        parts: list = [table]
        for d in self.devices:
            if d["runs"] is None:
                continue
            lines = [run_text(r) for r in d["runs"]] or ["(no slot in use)"]
            if len(lines) > MAX_RUNS:
                lines = lines[:MAX_RUNS - 1] + [f"… {len(lines) - MAX_RUNS + 1} more runs"]
            for what in ("zeromap", "zswap"):
                if d[what]:
                    lines.append(f"{what} slots " + ", ".join(slot_range(r["first"], r["last"]) for r in d[what][:8])
                                 + (" …" if len(d[what]) > 8 else ""))
            parts.append(Text(f"swap_map of {d['name']}:", style="bold"))
            parts.append(Text("\n".join("  " + ln for ln in lines)))
        return Trimmed(Group(*parts))

    def to_json(self) -> dict:
        return {"devices": self.devices}
