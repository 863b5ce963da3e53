"""`mmshell kernel run` draws through the simulator's views and step summary (mainline): the
page-table descriptions, VMAs and counter changes it prints are the ones the simulator prints
for the same script, but for what user space cannot see (pfns differ; W, D and
PageAnonExclusive are not in pagemap), which each view says in one line."""

from __future__ import annotations

import json

import pytest

from mmshell.kernel.live_views import UNSEEN
from test_kernel_diff import LIVE_SKIP

#: A THP written, paged out to zram (mainline: split to 512 PTE swap entries), 3 pages read back.
SCRIPT = """set pmd_swap off
swapon z 64M kind zram
mmap a 2M hugepage
touch a
madvise a pageout
touch a+0x0:12K read
show pt a
show vmas
show swap
"""
#: What the live kernel cannot feed is refused, with the registry's reason (LIVE_VIEWS).
REFUSED = "expect fails show swapcache\nexpect fails show walks\nexpect fails show swap z map\n"


def _steps(out: str) -> dict[str, dict]:
    objs = [json.loads(line) for line in out.splitlines()]
    return {o["command"]: o for o in objs if "command" in o}


def _runs(pt: dict) -> list[tuple]:
    """Each PMD's kind and its runs without pfns and flags: what both backends can see (present
    pages of the real kernel need not have consecutive pfns, so neighbouring present runs join)."""
    out = []
    for p in pt["pmds"]:
        runs: list[list] = []
        for r in p["runs"]:
            if runs and r["kind"] == runs[-1][2] == "present":
                runs[-1][1] = r["last"]
            else:
                runs.append([r["first"], r["last"], r["kind"], r.get("device"), r.get("offset")])
        out.append((p["kind"], runs))
    return out


@pytest.mark.skipif(LIVE_SKIP is not None, reason=LIVE_SKIP or "")
def test_kernel_run_draws_the_simulators_views(capsys) -> None:
    from mmshell.kernel.report import run_live
    from mmshell.report import run_sources

    assert run_sources([("t.mmsh", SCRIPT)], json_mode=True, debug_vm=True) == 0
    sim = _steps(capsys.readouterr().out)
    assert run_live([("t.mmsh", SCRIPT + REFUSED)], json_mode=True) == 0
    live = _steps(capsys.readouterr().out)

    sim_pt, live_pt = sim["show pt a"]["views"]["pt"], live["show pt a"]["views"]["pt"]
    assert _runs(live_pt) == _runs(sim_pt)
    assert [r["kind"] for r in live_pt["rows"]] == ["table"]
    assert live_pt["not_observable"] == UNSEEN["pt"]
    vmas = live["show vmas"]["views"]["vmas"]["vmas"]
    assert [(v["perms"], v["flags"], v["regions"]) for v in vmas] == [("rw-p", ["hugepage"], ["a"])]
    assert live["show swap"]["views"]["swap"]["devices"][0]["used"] == 509

    # the step summary: the same change in the same words, pfns and unexported bits aside
    for cmd in ("touch a", "madvise a pageout"):
        s, k = sim[cmd]["changes"], live[cmd]["changes"]
        assert [(c["level"], c["count"]) for c in k["pmds"]] == [(c["level"], c["count"]) for c in s["pmds"]]
        assert {n: d for n, d in k["vmstat"].items() if n in s["vmstat"]} == \
            {n: d for n, d in s["vmstat"].items() if n in k["vmstat"]}
    pageout = live["madvise a pageout"]["changes"]
    assert pageout["pmds"][0]["old"].startswith("huge THP pfn ")
    assert pageout["pmds"][0]["new"] == "table: 0-511 swap z slots 0x200-0x3ff"
    assert [(s["name"], s["before"], s["after"]) for s in pageout["swap"]] == [("z", 0, 512)]


@pytest.mark.skipif(LIVE_SKIP is not None, reason=LIVE_SKIP or "")
def test_kernel_run_text_draws_the_view_tables(capsys) -> None:
    from mmshell.kernel.report import run_live

    assert run_live([("t.mmsh", SCRIPT + "show swapcache\n")]) == 2
    out = capsys.readouterr().out
    assert "page table of pid 1" in out and "VMAs of pid 1" in out and "swap devices" in out
    # the note may be wrapped at the console's width (another test may have narrowed it)
    assert " ".join(UNSEEN["swap"].split()) in " ".join(out.split())
    assert "t.mmsh:10: show: not supported on the live kernel: the swap cache is not exported" in out
