"""`set display VIEW...|summary|none`: what is drawn after every step."""

from __future__ import annotations

import json

import pytest

from mmshell.report import run_sources

SETUP = "set pmd_swap off; swapon z 64M; mmap a 2M hugepage; touch a; madvise a pageout; "


def run(commands: str, capsys, json_mode: bool = False) -> str:
    assert run_sources([("-c", commands)], json_mode=json_mode, debug_vm=True) == 0
    return capsys.readouterr().out


def test_default_is_the_step_summary(capsys) -> None:
    out = run(SETUP + "touch a+0x1000 read", capsys)
    assert "page tables" in out and "map of pid" not in out


def test_map_is_drawn_after_each_step_with_the_changed_cells(capsys) -> None:
    out = run(SETUP + "set display map; touch a+0x1000 read", capsys)
    last = out.split("touch a+0x1000 read")[1]
    assert "map of pid 1" in last and "page tables" not in last
    assert "changed 1" in last and "pte 1" in last
    grid = [ln for ln in last.splitlines() if ln.startswith("a+0x0 ")]
    assert grid[0][15:].split()[:3] == ["s", "p", "s"]


def test_map_and_summary_in_the_order_named(capsys) -> None:
    out = run(SETUP + "set display summary map; touch a+0x1000 read", capsys)
    last = out.split("touch a+0x1000 read")[1]
    assert last.index("page tables") < last.index("map of pid 1")


def test_none_draws_nothing(capsys) -> None:
    out = run(SETUP + "set display none; touch a+0x1000 read", capsys)
    last = out.split("touch a+0x1000 read")[1]
    assert last.strip() == "1 page read"


def test_swapmap_and_json(capsys) -> None:
    out = run(SETUP + "set display swapmap map; touch a+0x1000 read", capsys, json_mode=True)
    step = [json.loads(ln) for ln in out.splitlines()][-2]
    assert step["command"] == "touch a+0x1000 read"
    assert step["display"]["map"]["pmds"][0]["changed"] == [[1, 1]]
    assert step["display"]["swapmap"]["devices"][0]["counts"]["used"] == 511
    assert "changes" in step


@pytest.mark.parametrize("words, why", [("none map", "stands alone"), ("map map", "named twice")])
def test_refused(words, why, capsys) -> None:
    assert run_sources([("-c", f"set display {words}")]) == 2
    assert why in capsys.readouterr().out


def test_a_displayed_vmstat_marks_what_this_step_moved(capsys) -> None:
    """`set display vmstat`: the deltas are this step's, not those since the step before it."""
    out = run("set display vmstat; mmap a 2M; mmap b 2M; touch a; touch b", capsys)
    last = out.split("touch b")[1]
    assert ["*", "pgfault", "1024", "+512"] in [ln.split() for ln in last.splitlines()]
    out = run("set display vmstat; mmap a 2M; mmap b 2M; touch a; touch b", capsys, json_mode=True)
    step = [json.loads(ln) for ln in out.splitlines()][-2]
    [pgfault] = [r for r in step["display"]["vmstat"]["vmstat"] if r["name"] == "pgfault"]
    assert (pgfault["value"], pgfault["delta"]) == (1024, 512)
