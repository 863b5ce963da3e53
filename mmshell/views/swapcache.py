"""`show swapcache`: the folios in the swap cache and the slots each one holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.text import Text

from mmshell.mm.folio import PG

from .fmt import device_name, hex_range, slots_text
from .widgets import Trimmed, cell, view_table

if TYPE_CHECKING:
    from mmshell.mm.kernel import Kernel


def cached_folios(k: "Kernel") -> list[dict]:
    """Every swap-cache folio, in swap entry order, as plain data."""
    mem = k.mem
    out = []
    for pfn, entry in sorted(k.folio_swap.items(), key=lambda kv: (kv[1].type, kv[1].offset)):
        nr = mem.nr_pages(pfn)
        mapcount = mem.folio_mapcount(pfn)
        lru = "active" if k.lru.is_active(pfn) else "inactive" if k.lru.is_inactive(pfn) else None
        out.append({
            "pfn": pfn,
            "order": mem.order[pfn],
            "device": device_name(k, entry.type),
            "type": entry.type,
            "offset": entry.offset,
            "nr": nr,
            "dirty": bool(mem.flags[pfn] & PG.DIRTY),
            "mapcount": mapcount,
            "mapped": mapcount > 0,
            "lru": lru,
        })
    return out


class SwapCacheView:
    """Folios in the swap cache: head pfn, order, the slots they hold, dirty or clean, mapped or not.

    to_json(): {"folios": [{"pfn", "order", "device", "type", "offset", "nr", "dirty",
    "mapcount", "mapped", "lru"}], "pages": total pages cached}.
    """

    def __init__(self, k: "Kernel") -> None:
        self.folios = cached_folios(k)

    @property
    def pages(self) -> int:
        return sum(f["nr"] for f in self.folios)

    def __rich__(self) -> Trimmed:
        if not self.folios:
            return Trimmed(Group(Text("swap cache is empty")))
        table = view_table("swap cache", "folio pfn", "order", "entries", "state", "mapped", "lru",
                           right=("order",))
        for f in self.folios:
            entries = f"{f['device']} {slots_text(f['offset'], f['offset'] + f['nr'] - 1)}"
            mapped = f"mapped ({f['mapcount']})" if f["mapped"] else "unmapped"
            table.add_row(cell(hex_range(f["pfn"], f["pfn"] + f["nr"] - 1)), cell(f["order"]), cell(entries),
                          cell("dirty" if f["dirty"] else "clean"), cell(mapped), cell(f["lru"] or "-"))
        n = len(self.folios)
        pages = f"{self.pages} page{'s' if self.pages != 1 else ''}"
        return Trimmed(Group(table, Text(f"{n} folio{'s' if n != 1 else ''}, {pages}", style="dim")))

    def to_json(self) -> dict:
        return {"folios": self.folios, "pages": self.pages}
