"""`show map`: each PMD as 512 cells, one letter per page, overlays, folding, 80 columns, JSON."""

from __future__ import annotations

import json

from mmshell.views.cells import GLYPHS, LETTERS
from mmshell.views.map import COLUMNS, ROWS, MapView, map_cells

K, M, G = 1 << 10, 1 << 20, 1 << 30

ROUND_TRIP = ("swapon z 64M; mmap a 2M hugepage; touch a; madvise a pageout; show map; "
              "touch a+0x0:12K read; show map")


def maps_of(commands: str, capsys) -> list[dict]:
    """The `show map` JSON objects of `mmshell -c COMMANDS --json`, in order (invariants checked)."""
    from mmshell.report import run_sources

    assert run_sources([("-c", commands)], json_mode=True, debug_vm=True) == 0
    steps = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return [s["views"]["map"] for s in steps if "map" in s.get("views", {})]


def test_mainline_round_trip_is_3_p_and_509_s(capsys) -> None:
    first, second = maps_of("set pmd_swap off; " + ROUND_TRIP, capsys)
    (pmd,) = first["pmds"]
    assert pmd["kind"] == "table" and pmd["cells"] == "s" * 512
    (pmd,) = second["pmds"]
    assert pmd["cells"] == "ppp" + "s" * 509
    assert pmd["cells"].count("p") == 3 and pmd["cells"].count("s") == 509
    assert pmd["swapcache"] == [] and pmd["shared"] == []


def test_series_round_trip_is_one_s_block_then_one_h_block(capsys) -> None:
    first, second = maps_of("set pmd_swap on; " + ROUND_TRIP, capsys)
    assert [(p["kind"], p["cells"]) for p in first["pmds"]] == [("swap", "S" * 512)]
    assert [(p["kind"], p["cells"]) for p in second["pmds"]] == [("huge", "H" * 512)]


def test_mainline_text_shows_the_mosaic(machine, text) -> None:
    m = machine(pmd_swap=False)
    m.mmap("a", 2 * M)
    m.touch("a")
    m.madvise("a", "pageout")
    m.touch("a", 0, 12 * K, write=False)
    out = text(MapView(1, map_cells(m.k, m.mm), m.names), 80)
    lines = out.splitlines()
    grid = [ln for ln in lines if ln[15:16] in LETTERS and len(ln) > 15]
    assert len(grid) == ROWS
    assert grid[0].startswith("a+0x0") and grid[0][15:].split() == ["p"] * 3 + ["s"] * 29
    assert all(row[15:].split() == ["s"] * COLUMNS for row in grid[1:])
    assert "p 3" in out and "s 509" in out and "table" in out
    assert "legend: " in out and "p present order-0 page" in out and "s PTE swap entry" in out
    assert max(len(ln) for ln in lines) <= 80


def test_series_block_is_solid(machine, text) -> None:
    m = machine(pmd_swap=True)
    m.mmap("a", 2 * M)
    m.touch("a")
    m.madvise("a", "pageout")
    out = text(MapView(1, map_cells(m.k, m.mm), m.names), 80)
    rows = [ln[15:] for ln in out.splitlines() if ln[15:17] == "SS"]
    assert rows == ["S" * 64] * ROWS
    assert "S PMD swap entry (one block)" in out


def test_overlays_have_their_own_marks(machine, text) -> None:
    """A THP swapped out to a disk after fork: its PMD swap entries are shared and cached."""
    from mmshell.mm.fork import sys_fork
    from mmshell.mm.swap_info import SwapKind
    from mmshell.mm.vmscan import shrink_lruvec

    m = machine(pmd_swap=True, kind=SwapKind.DISK)
    m.mmap("a", 2 * M)
    m.touch("a")
    sys_fork(m.k, m.mm)
    shrink_lruvec(m.k, 512)        # one pass: the disk leaves the written folio cached
    view = MapView(1, map_cells(m.k, m.mm), m.names)
    (pmd,) = view.to_json()["pmds"]
    assert pmd["cells"] == "S" * 512
    assert pmd["swapcache"] == [[0, 511]] and pmd["shared"] == [[0, 511]]
    out = text(view, 80)
    assert "S*" * 32 in out
    assert "~ in the swap cache" in out and "+ shared: mapcount or swap count > 1" in out and "* both" in out


def test_neighbours_alike_fold_and_empty_slots_are_one_line(machine, text) -> None:
    m = machine()
    m.mmap("a", 8 * M)
    m.touch("a", 0, 4 * M)
    view = MapView(1, map_cells(m.k, m.mm), m.names)
    out = text(view, 80)
    assert len(view.grids) == 2
    assert "2 × huge" in out and "a+0x0:4M" in out
    assert "a+0x400000:4M" in out and "2 × none: no entry in its 1024 pages" in out
    assert [p["kind"] for p in view.to_json()["pmds"]] == ["huge", "huge", "none", "none"]


def test_changed_cells_are_marked_and_counted(machine, text) -> None:
    m = machine(pmd_swap=False)
    m.mmap("a", 2 * M)
    m.touch("a")
    m.madvise("a", "pageout")
    before = {c.index: c for c in map_cells(m.k, m.mm)}
    m.touch("a", 4 * K, 4 * K, write=False)
    view = MapView(1, map_cells(m.k, m.mm), m.names, before=before)
    assert view.to_json()["pmds"][0]["changed"] == [[1, 1]]
    out = text(view, 80)
    assert "changed 1" in out and "reverse video: changed in this step" in out


def test_every_letter_has_a_distinct_glyph_and_a_colour() -> None:
    assert len(set(LETTERS)) == len(GLYPHS) == 9
    assert set(LETTERS) == set(".ptHZzsSm")
    assert all(g.style for g in GLYPHS)
