"""`mmshell compare`: each column pinned to its mode, pids, marks, show output, and the summary
of what the series changes (issue 11 item 4)."""

from __future__ import annotations

import io
import json

from mmshell.compare import Comparison, compare_text

#: Eight THPs written, swapped out to zram, every page read back.
ROUND_TRIP = """set pmd_swap off
swapon zram0 64M
mmap a 16M hugepage
touch a
madvise a pageout
touch a read
"""


def json_lines(text: str, width: int = 100) -> list[dict]:
    out = io.StringIO()
    assert compare_text("rt.mmsh", text, json_mode=True, out=out, width=width) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_eight_thp_round_trip_summary() -> None:
    """The figures issue 11 asks for.  Major faults: mainline takes one per page, 4096 (zram,
    swap count 1: the synchronous bypass reads one page per fault, no readahead), the series
    one per THP, 8.  PTE tables: both allocate the 8 deposits up front with eager deposit;
    with lazy deposit mainline allocates one per split (8), the series none."""
    objs = json_lines(ROUND_TRIP)
    summary = objs[-1]["summary"]
    main, series = summary["mainline"], summary["series"]
    assert (main["major_faults"], series["major_faults"]) == (4096, 8)
    assert (main["thp_split_pmd"], series["thp_split_pmd"]) == (8, 0)
    assert (main["anon_huge_kb"], series["anon_huge_kb"]) == (0, 16384)
    assert main["swap_map_identical"] is series["swap_map_identical"] is True
    assert (main["pte_tables"], series["pte_tables"]) == ({"eager": 8, "lazy": 8}, {"eager": 8, "lazy": 0})
    assert (main["faults"], series["faults"]) == (8 + 4096, 8 + 8)
    assert main["pswpin"] == series["pswpin"] == 4096
    assert (main["collapse_needed"], series["collapse_needed"]) == (8, 0)
    assert main["walker_visits"] == series["walker_visits"] == 8      # MADV_PAGEOUT reaches 8 PMDs
    assert main["walks"]["madvise"] == 8
    for mode in (main, series):
        assert set(mode) >= {"faults", "major_faults", "pswpin", "thp_split_pmd", "pte_tables", "walker_visits",
                             "anon_huge_kb", "collapse_needed", "swap_map_identical"}


def test_each_column_is_pinned_and_the_skip_is_noted() -> None:
    """The script's `set pmd_swap off` is skipped in both columns: the series column still
    installs PMD swap entries."""
    objs = json_lines(ROUND_TRIP)
    sets = [o for o in objs if o.get("command") == "set pmd_swap off"]
    assert [o["output"] for o in sets] == [["skipped: pmd_swap is pinned by compare: each column keeps its mode"]] * 2
    final = next(o for o in objs if o.get("final"))
    assert final["notes"] == ["rt.mmsh:1: 'set pmd_swap off' skipped: each column is pinned to its mode"]
    pageout = {o["mode"]: o for o in objs if o.get("command") == "madvise a pageout"}
    assert pageout["series"]["changes"]["vmstat"]["thp_swpout_pmd"] == 8
    assert pageout["mainline"]["changes"]["vmstat"]["thp_split_pmd"] == 8
    assert pageout["series"]["differs"] and pageout["mainline"]["swap_map_identical"]
    assert list(objs[-1]) == ["summary"] and list(objs[-1]["summary"]) == ["mainline", "series"]


def test_pid_column_show_output_and_marks() -> None:
    text = "swapon s0 64M\nmmap a 2M hugepage\ntouch a\nmadvise a pageout\nfork\n@2 touch a:4K read\nshow swap\n"
    objs = json_lines(text)
    read = [o for o in objs if o.get("command") == "@2 touch a:4K read"]
    assert [o["pid"] for o in read] == [2, 2]
    shows = [o for o in objs if o.get("command") == "show swap"]
    assert all(o["views"]["swap"]["devices"][0]["name"] == "s0" for o in shows)
    out = io.StringIO()
    compare_text("f.mmsh", text, out=out, width=100)
    rendered = out.getvalue()
    assert "f.mmsh:6  pid 2  @2 touch a:4K read  ≠" in rendered
    assert "pid 2 a+0x0: none → swap s0 slots 0x200-0x3ff" in rendered      # fork, run in pid 1
    assert "new process 2" in rendered and "pid 2 vma" not in rendered     # its VMAs not one by one
    assert "swap devices" in rendered                   # the show output, in both columns
    assert "≠ the modes differ" in rendered
    assert "PMD splits (thp_split_pmd)" in rendered and "summary" in rendered


def test_a_step_where_the_swap_maps_differ_is_flagged() -> None:
    """On a disk a mainline read fault maps one page and frees its slot from the cache...
    here: a series PMD swap-in frees all 512 slots at once (zram) where mainline frees one,
    so after reading one page the swap_maps differ."""
    cmp = Comparison("d.mmsh", "swapon zram0 64M\nmmap a 2M hugepage\ntouch a\nmadvise a pageout\n"
                     "touch a:4K read\n")
    assert cmp.swap_differs == [("d.mmsh", 5)]
    assert cmp.summary["mainline"]["swap_map_identical"] is False
    out = io.StringIO()
    cmp.print_text(out, width=100)
    assert "d.mmsh:5  pid 1  touch a:4K read  ≠!" in out.getvalue()


def test_a_script_that_sets_deposit_is_counted_both_ways() -> None:
    """A script's own `set deposit lazy` runs in the shown columns; the summary's eager and lazy
    figures come from runs with deposit pinned each way."""
    cmp = Comparison("l.mmsh", "set deposit lazy\n" + ROUND_TRIP)
    assert cmp.summary["mainline"]["pte_tables"] == {"eager": 8, "lazy": 8}
    assert cmp.summary["series"]["pte_tables"] == {"eager": 8, "lazy": 0}
    assert cmp.runs["series"].session.kernel.config.deposit.value == "lazy"


def test_export_writes_a_page_a_picture_and_text(tmp_path) -> None:
    """`mmshell compare FILE --export OUT.html|svg|txt`: the side-by-side steps and the summary,
    drawn at the given width; the SVG is XML, the page needs nothing from the network."""
    import subprocess
    import sys
    import xml.etree.ElementTree as ET

    script = tmp_path / "rt.mmsh"
    script.write_text("swapon z 64M\nmmap a 2M hugepage\ntouch a\nmadvise a pageout\ntouch a:12K read\n")
    for suffix in ("html", "svg", "txt"):
        out = tmp_path / f"cmp.{suffix}"
        done = subprocess.run([sys.executable, "-m", "mmshell.cli", "compare", str(script), "--export", str(out),
                               "--width", "90"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert f"exported as {suffix} to {out}" in done.stderr
        text = out.read_text()
        assert "pgmajfault" in text and "thp_split_pmd" in text      # (an SVG spaces words with &#160;)
        if suffix == "svg":
            ET.parse(out)
        if suffix == "html":
            assert "http://" not in text and "https://" not in text
    bad = subprocess.run([sys.executable, "-m", "mmshell.cli", "compare", str(script), "--export", "x.png"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--export writes .html, .svg or .txt" in bad.stderr
