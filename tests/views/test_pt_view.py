"""`show pt`: PMD rows, PTE tables folded into runs, neighbouring PMDs folded."""

from __future__ import annotations

import json

from mmshell.mm.access import access_range
from mmshell.mm.config import ThpMode
from mmshell.views.pt import MAX_RUN_LINES, PageTableView

K, M, G = 1 << 10, 1 << 20, 1 << 30


def test_mainline_pageout_is_one_table_row_of_swap_ptes(machine, text) -> None:
    m = machine(pmd_swap=False)
    m.mmap("a", 2 * M)
    m.touch("a")
    m.madvise("a", "pageout")
    view = PageTableView(m.k, m.mm, names=m.names)
    out = text(view)
    assert "0-511 swap s0 slots 0x200-0x3ff" in out
    assert "table" in out and "a+0x0" in out
    assert len(view.groups) == 1
    pmd = view.to_json()["pmds"][0]
    assert pmd["kind"] == "table"
    assert pmd["runs"] == [{"first": 0, "last": 511, "kind": "swap", "device": "s0", "offset": 512,
                            "flags": ["excl"]}]


def test_series_pageout_is_one_swap_pmd(machine, text) -> None:
    m = machine(pmd_swap=True)
    m.mmap("a", 2 * M)
    m.touch("a")
    m.madvise("a", "pageout")
    view = PageTableView(m.k, m.mm, names=m.names)
    out = text(view)
    row = next(ln for ln in out.splitlines() if ln.startswith("0x"))
    assert row.split()[2:] == ["swap", "s0", "slots", "0x200-0x3ff", "excl"]
    js = view.to_json()
    assert [p["kind"] for p in js["pmds"]] == ["swap"]
    assert js["pmds"][0]["text"] == "swap s0 slots 0x200-0x3ff excl"
    assert js["rows"][0]["count"] == 1


def test_present_thp_row(machine, text) -> None:
    m = machine()
    start = m.mmap("a", 2 * M)
    m.touch("a")
    view = PageTableView(m.k, m.mm)
    pfn = m.mm.pmds[start >> 21].pfn
    assert f"huge THP pfn {pfn:#x}..{pfn + 511:#x} W D excl" in " ".join(text(view).split())
    assert "region" not in text(view)   # no names: no region column


def test_half_written_table_folds_present_and_none(machine, text) -> None:
    m = machine(thp=ThpMode.NEVER)
    m.mmap("a", 2 * M, advice=None)
    m.touch("a", 0, 1 * M)
    runs = PageTableView(m.k, m.mm).to_json()["pmds"][0]["runs"]
    assert [(r["first"], r["last"], r["kind"]) for r in runs] == [(0, 255, "present"), (256, 511, "none")]
    first = runs[0]["pfn"]
    out = text(PageTableView(m.k, m.mm))
    assert f"0-255 present pfn {first:#x}..{first + 255:#x} W D excl" in out
    assert "256-511 none" in out


def test_read_faults_map_zero_pages(machine, text) -> None:
    m = machine()
    m.mmap("h", 2 * M)                   # hugepage: the huge zero page
    m.mmap("s", 2 * M, advice="nohugepage")   # small zero pages
    m.touch("h", write=False)
    m.touch("s", write=False)
    out = text(PageTableView(m.k, m.mm, names=m.names))
    assert "huge zero page" in out
    assert "0-511 zero page" in out


def test_run_breaks_where_pfns_stop_being_consecutive(machine) -> None:
    m = machine(thp=ThpMode.NEVER)
    m.mmap("a", 2 * M, advice=None)
    m.mmap("b", 2 * M, advice=None)
    m.touch("a", 0, 4 * K)
    m.touch("b", 0, 4 * K)      # takes the next free frame
    m.touch("a", 4 * K, 4 * K)
    runs = PageTableView(m.k, m.mm, *m.span("a")).to_json()["pmds"][0]["runs"]
    assert [(r["first"], r["last"]) for r in runs][:2] == [(0, 0), (1, 1)]


def test_many_runs_are_capped_in_text_not_in_json(machine, text) -> None:
    m = machine(thp=ThpMode.NEVER)
    start = m.mmap("a", 2 * M, advice=None)
    for i in range(0, 64, 2):
        access_range(m.k, m.mm, start + i * 4 * K, start + (i + 1) * 4 * K, True)
    view = PageTableView(m.k, m.mm)
    assert len(view.to_json()["pmds"][0]["runs"]) == 64
    out = text(view)
    assert "more runs" in out
    assert len(out.splitlines()) <= MAX_RUN_LINES + 4


def test_neighbours_fold_but_not_across_regions(machine, text) -> None:
    m = machine()
    m.mmap("a", 8 * M)
    m.touch("a")
    view = PageTableView(m.k, m.mm, names=m.names)
    assert len(view.groups) == 1 and view.folded == 3
    out = text(view)
    assert "4 × huge" in out and "a+0x0:8M" in out and "(3 folded)" in out
    split = PageTableView(m.k, m.mm, names={"a": (m.names["a"][0], 4 * M),
                                            "b": (m.names["a"][0] + 4 * M, 4 * M)})
    assert [g.count for g in split.groups] == [2, 2]


def test_range_limits_rows(machine) -> None:
    m = machine()
    m.mmap("a", 8 * M)
    m.touch("a")
    start, _ = m.span("a")
    view = PageTableView(m.k, m.mm, start + 2 * M, start + 4 * M)
    assert [p["addr"] for p in view.to_json()["pmds"]] == [start + 2 * M]


def test_one_gib_fits_one_screen(gib_states, text) -> None:
    for label, m in gib_states.items():
        view = PageTableView(m.k, m.mm, names=m.names)
        out = text(view)
        assert len(out.splitlines()) < 60, label
        assert view.folded == 511, label
        assert "512 × " in out and "(511 folded)" in out, label
    mainline = text(PageTableView(gib_states["mainline"].k, gib_states["mainline"].mm))
    assert "512 × table 0-511 swap s0 slots 0x200-0x401ff excl" in " ".join(mainline.split())
    series = text(PageTableView(gib_states["series"].k, gib_states["series"].mm))
    assert "512 × swap s0 slots 0x200-0x401ff excl" in " ".join(series.split())


def test_json_is_plain_data(gib_states) -> None:
    m = gib_states["mainline"]
    js = PageTableView(m.k, m.mm, names=m.names).to_json()
    assert json.loads(json.dumps(js)) == js
    assert len(js["pmds"]) == 512 and js["folded"] == 511
    assert js["pmds"][1]["region"] == "a+0x200000"
