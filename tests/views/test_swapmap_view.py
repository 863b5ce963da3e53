"""`show swap NAME map`: one strip per cluster, one glyph per slot, PMD vs order-0 clusters, counts."""

from __future__ import annotations

from mmshell.mm.fork import sys_fork
from mmshell.mm.swap_info import SwapKind
from mmshell.mm.vmscan import shrink_lruvec
from mmshell.views.swapmap import SLOT_GLYPHS, SwapMapView

K, M = 1 << 10, 1 << 20


def test_mainline_read_of_3_pages_frees_3_slots_of_a_pmd_cluster(machine, text) -> None:
    m = machine(pmd_swap=False, swap=4 * M)
    m.mmap("a", 2 * M)
    m.touch("a")
    m.madvise("a", "pageout")
    m.touch("a", 0, 12 * K, write=False)
    view = SwapMapView(m.k)
    (dev,) = view.to_json()["devices"]
    assert dev["counts"] == {"used": 509, "cached": 0, "shared": 0, "pmd_clusters": 1, "order0_clusters": 1,
                             "free_clusters": 0}
    header, pmd = dev["strips"]
    assert header["order"] == 0 and header["slots"] == "x" + "." * 511
    assert pmd["order"] == 9 and pmd["first_slot"] == 0x200 and pmd["slots"] == "..." + "o" * 509
    out = text(view, 80)
    assert "cluster 1" in out and "slot 0x200" in out and "PMD (order-9)" in out
    assert "..." + "o" * 61 in out
    assert "509 used, 0 in the swap cache, 0 with count > 1" in out
    assert max(len(ln) for ln in out.splitlines()) <= 80


def test_shared_and_cached_slots_have_their_glyphs(machine, text) -> None:
    m = machine(pmd_swap=True, swap=4 * M, kind=SwapKind.DISK)
    m.mmap("a", 2 * M)
    m.touch("a")
    sys_fork(m.k, m.mm)
    shrink_lruvec(m.k, 512)        # one pass: the disk leaves the written folio cached
    (dev,) = SwapMapView(m.k).to_json()["devices"]
    assert dev["strips"][1]["slots"] == "*" * 512
    assert dev["counts"]["shared"] == dev["counts"]["cached"] == 512
    out = text(SwapMapView(m.k), 80)
    assert "* count > 1 and in the swap cache" in out


def test_free_clusters_fold_into_one_line(machine, text) -> None:
    m = machine(swap=8 * M)
    out = text(SwapMapView(m.k), 80)
    assert "clusters 1-3: free" in out


def test_glyphs_are_distinct() -> None:
    glyphs = [g.glyph for g in SLOT_GLYPHS]
    assert len(set(glyphs)) == len(glyphs)


def test_neighbour_clusters_alike_fold_into_one_strip(machine, text) -> None:
    m = machine(pmd_swap=True, swap=64 * M)
    m.mmap("a", 8 * M)
    m.touch("a")
    m.madvise("a", "pageout")
    out = text(SwapMapView(m.k), 80)
    assert "clusters 1-4" in out and "4 alike" in out and "clusters 5-31: free" in out
    assert len(SwapMapView(m.k).to_json()["devices"][0]["strips"]) == 5      # JSON keeps every one
