"""`show swap` and `show swapcache`: devices, clusters, swap_map runs, cached folios."""

from __future__ import annotations

import json

from mmshell.mm.swap_info import SwapKind
from mmshell.views.swap import SwapView
from mmshell.views.swapcache import SwapCacheView

M = 1 << 20


def squeeze(s: str) -> str:
    return " ".join(s.split())


def test_zram_pageout_one_run_of_count_1(machine, text, pmd_swap) -> None:
    m = machine(pmd_swap=pmd_swap)
    m.mmap("a", 2 * M)
    m.touch("a")
    m.madvise("a", "pageout")
    view = SwapView(m.k)
    out = text(view)
    assert "slots 0x200-0x3ff count 1" in out
    assert "+cache" not in out
    assert "s0 0 zram -2 64M 512 2048 30/1/1 of 32" in squeeze(out)
    dev = view.to_json()["devices"][0]
    assert dev["runs"] == [{"first": 0x200, "last": 0x3FF, "count": 1, "cache": False}]
    assert dev["clusters"] == {"total": 32, "free": 30, "order9": 1, "order0": 1}
    assert (dev["used"], dev["used_kb"], dev["kind"], dev["zeromap"]) == (512, 2048, "zram", [])
    assert json.loads(json.dumps(view.to_json())) == view.to_json()
    assert text(SwapCacheView(m.k)).strip() == "swap cache is empty"


def test_disk_keeps_the_folio_in_the_swap_cache(machine, text, pmd_swap) -> None:
    m = machine(pmd_swap=pmd_swap, kind=SwapKind.DISK)
    m.mmap("a", 4 * M)
    m.touch("a")
    m.madvise("a", "pageout")
    m.touch("a", 0, 8192, write=False)   # a swap-cache hit maps the first folio again
    out = text(SwapView(m.k))
    assert "slots 0x200-0x3ff count 0 +cache" in out
    assert "slots 0x400-0x5ff count 1 +cache" in out
    cache = SwapCacheView(m.k)
    folios = cache.to_json()["folios"]
    assert [(f["device"], f["offset"], f["nr"], f["order"], f["dirty"], f["mapped"]) for f in folios] == [
        ("s0", 0x200, 512, 9, False, True), ("s0", 0x400, 512, 9, False, False)]
    assert cache.to_json()["pages"] == 1024
    out = squeeze(text(cache))
    assert "s0 slots 0x200-0x3ff clean mapped" in out
    assert "s0 slots 0x400-0x5ff clean unmapped inactive" in out
    assert "2 folios, 1024 pages" in out


def test_no_devices(machine, text) -> None:
    m = machine(swap=0)
    assert text(SwapView(m.k)).strip() == "no swap devices"
    assert SwapView(m.k).to_json() == {"devices": []}
