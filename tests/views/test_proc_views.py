"""`show vmas`, `show smaps`, `show pagemap`, `show meminfo`: the /proc files as views."""

from __future__ import annotations

import json

import pytest

from mmshell.mm.task_mmu import smaps_range
from mmshell.views.meminfo import MeminfoView
from mmshell.views.pagemap import PagemapView
from mmshell.views.smaps import SHOWN, SmapsView
from mmshell.views.vmas import VmasView

K, M = 1 << 10, 1 << 20


def squeeze(s: str) -> str:
    return " ".join(s.split())


def swapped_machine(machine, pmd_swap: bool):
    m = machine(pmd_swap=pmd_swap)
    m.mmap("a", 4 * M)
    m.touch("a")
    m.madvise("a", "pageout", 0, 2 * M)
    return m


def test_vmas(machine, text) -> None:
    m = machine()
    a = m.mmap("a", 4 * M)
    b = m.mmap("b", 1 * M, advice="nohugepage")
    view = VmasView(m.k, m.mm, {**m.names, "part": (a + 2 * M, 4 * M)})
    js = view.to_json()["vmas"]
    assert [(v["start"], v["end"], v["perms"], v["flags"]) for v in js] == [
        (b, b + M, "rw-p", ["nohugepage"]), (a, a + 4 * M, "rw-p", ["hugepage"])]
    # part was bound after a, over a's upper half: that half is named after it
    assert js[1]["regions"] == ["a+0x0:2M", "part+0x0:2M"]
    out = squeeze(text(view))
    assert f"{a:#x}-{a + 4 * M:#x} rw-p 4M hugepage a+0x0:2M part+0x0:2M" in out
    assert "2 VMAs" in out


def test_smaps_after_pageout(machine, text, pmd_swap) -> None:
    m = swapped_machine(machine, pmd_swap)
    view = SmapsView(m.k, m.mm, m.names, "a")
    total = view.to_json()["total"]
    assert total == smaps_range(m.k, m.mm, *m.span("a"))
    assert (total["Rss"], total["AnonHugePages"], total["Swap"], total["SwapPss"]) == (2048, 2048, 2048, 2048)
    out = text(view)
    assert "region a" in out
    assert "Swap: 2048" in squeeze(out) and "AnonHugePages: 2048" in squeeze(out)
    for field in SHOWN:
        assert field + ":" in out
    per_vma = SmapsView(m.k, m.mm, m.names)
    assert len(per_vma.to_json()["vmas"]) == 1 and per_vma.to_json()["vmas"][0]["regions"] == ["a"]
    with pytest.raises(KeyError):
        SmapsView(m.k, m.mm, m.names, "nosuch")


def test_smaps_many_vmas_stay_in_80_columns(machine, text) -> None:
    m = machine()
    for i in range(6):
        m.mmap(f"r{i}", 64 * K, advice="nohugepage" if i % 2 else "hugepage")
    out = text(SmapsView(m.k, m.mm, m.names), 80)
    assert max(len(ln) for ln in out.splitlines()) <= 80
    assert "total" in out and "r5" in out


def test_pagemap_same_in_both_modes(machine, text) -> None:
    views = {}
    for pmd_swap in (True, False):
        m = swapped_machine(machine, pmd_swap)
        views[pmd_swap] = view = PagemapView(m.k, m.mm, *m.span("a"), m.names)
        out = text(view)
        assert "a+0x0-a+0x1ff000 (512) swapped s0 slots 0x200-0x3ff excl=0" in squeeze(out)
        pfn = view.to_json()["runs"][1]["pfn"]
        assert f"a+0x200000-a+0x3ff000 (512) present pfn {pfn:#x}..{pfn + 511:#x} excl=1" in squeeze(out)
    assert views[True].to_json() == views[False].to_json()
    run = views[True].to_json()["runs"][0]
    assert (run["swapped"], run["swap_type"], run["device"], run["swap_offset"], run["pages"]) == (1, 0, "s0", 512, 512)


def test_pagemap_unmapped_and_zero_pages(machine, text) -> None:
    m = machine()
    m.mmap("a", 2 * M, advice="nohugepage")
    m.touch("a", 0, 8 * K, write=False)
    out = squeeze(text(PagemapView(m.k, m.mm, *m.span("a", 0, 16 * K), m.names)))
    assert "a+0x0-a+0x1000 (2) present" in out and "file=1" not in out
    assert "a+0x2000-a+0x3000 (2) none" in out


def test_meminfo(machine, text) -> None:
    m = swapped_machine(machine, True)
    view = MeminfoView(m.k)
    js = view.to_json()
    assert js["SwapTotal"] - js["SwapFree"] == 2048
    assert js["AnonHugePages"] == 2048
    out = text(view)
    assert list(js)[0] == "MemTotal" and f"MemTotal: {js['MemTotal']}" in squeeze(out)
    assert json.loads(json.dumps(js)) == js
