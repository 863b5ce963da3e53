"""explain: every step of every scenario, in both modes, has 1-6 sentences naming each counter that moved."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from mmshell.lang.runner import run_text
from mmshell.lang.session import Session
from mmshell.mm.config import Config
from mmshell.report import StepPrinter
from mmshell.views.explain import explain_step, fold_calls

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(ROOT.glob("tests/scenarios/**/*.mmsh"))


def explained(text: str, pmd_swap: bool) -> list[dict]:
    """The JSON Lines objects of a run with explain on."""
    session = Session.boot(Config(pmd_swap=pmd_swap), debug_vm=True)
    session.explain = True
    out = io.StringIO()
    printer = StepPrinter(session, json_mode=True, stream=out)
    outcome = run_text(session, text, "t.mmsh", printer, before=printer.before)
    assert outcome.exit_status() == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize("path", SCRIPTS, ids=[str(p.relative_to(ROOT)) for p in SCRIPTS])
@pytest.mark.parametrize("mode", [True, False], ids=["series", "mainline"])
def test_every_step_explained(path: Path, mode: bool) -> None:
    steps = explained(path.read_text(), mode)
    assert steps
    for obj in steps:
        sentences = obj.get("explain")
        assert sentences and 1 <= len(sentences) <= 6, obj
        text = " ".join(sentences)
        changes = obj.get("changes", {})
        for name in [*changes.get("vmstat", {}), *changes.get("mthp", {})]:
            assert name in text, (obj["command"], name, text)


def test_path_fallback_entries_and_counters_come_from_the_step() -> None:
    steps = explained("swapon z 1G\nmmap a 2M hugepage\ntouch a\nmadvise a pageout\nset fail thp_alloc once\n"
                      "touch a+0x5000 read\n", True)
    pageout, swapin = " ".join(steps[3]["explain"]), " ".join(steps[5]["explain"])
    assert "set_pmd_swap_entry" in pageout and "thp_swpout_pmd +1" in pageout
    assert "512 slot(s) of z were taken (0 → 512 in use)" in pageout
    assert ("do_huge_pmd_swap_page fell back because of: no PMD-order folio, and split the entry and took the "
            "PTE path instead (after vma_alloc_folio(order=9) failed)") in swapin
    assert "as one 2 MiB THP" not in swapin
    assert "thp_split_pmd +1" in swapin and "mthp swpin_fallback +1" in swapin


def test_mainline_split_says_why() -> None:
    steps = explained("swapon z 1G\nmmap a 2M hugepage\ntouch a\nmadvise a pageout\n", False)
    assert "mainline has no PMD swap entry" in " ".join(steps[3]["explain"])


def test_refused_and_quiet_steps() -> None:
    steps = explained("mmap a 2M\nshow pt\nset thp always\nexpect fails touch 0x1000\n", True)
    assert "only reads the machine" in steps[1]["explain"][0]
    assert "changed a setting" in steps[2]["explain"][0]


def test_explain_of_a_failed_expectation() -> None:
    session = Session.boot(Config(pmd_swap=True))
    session.explain = True
    out = io.StringIO()
    printer = StepPrinter(session, json_mode=True, stream=out)
    run_text(session, "expect pid == 2\n", "t.mmsh", printer, before=printer.before)
    text = " ".join(json.loads(out.getvalue().splitlines()[0])["explain"])
    assert "not what it expected" in text and "refused" not in text


def test_explain_of_a_refusal() -> None:
    from mmshell.lang.parser import parse_line
    cmd = parse_line("munmap 0x1000", 1)[0]
    text = explain_step(cmd, [], None, "t:1: munmap: EINVAL: not mapped")
    assert text[0] == "The command was refused (EINVAL: not mapped)." and len(text) == 2


def test_fold_calls() -> None:
    assert fold_calls(["a", "a", "b x3", "b", "a"]) == ["a x2", "b x4", "a"]


def test_trace_is_in_call_order() -> None:
    from mmsh_helpers import run
    r = run("swapon z 1G\nmmap a 2M hugepage\ntouch a\nmadvise a pageout\ntrace on\ntouch a read\n", pmd_swap=True)
    trace = r.records[-1].output.trace
    assert trace.index("do_huge_pmd_swap_page") < trace.index("swapin_alloc_pmd_folio") \
        < trace.index("swap_read_folio(order=9)")
    assert trace.index("folio_free_swap") < trace.index("delete_from_swap_cache")


def test_the_ptes_and_slots_that_changed_are_named() -> None:
    """A mainline read of one page names that PTE; a fork names the PTEs that lost their
    exclusive bit and the slots whose swap count went up, from the step view's fine grain."""
    steps = explained("swapon z 1G\nmmap a 2M hugepage\ntouch a\nmadvise a pageout\ntouch a+0x5000:4K read\n"
                      "fork\n", False)
    read, fork = " ".join(steps[4]["explain"]), " ".join(steps[5]["explain"])
    assert "PTE 5 of the PTE table at a+0x0 went from swap z slot 0x205 excl to present pfn" in read
    assert "1 slot(s) of z were freed (512 → 511 in use)" in read
    assert "PTEs 0-4 of the PTE table at a+0x0 still hold swap z slots 0x200-0x204, no longer exclusive" in fork
    assert "the swap count of z slots 0x200-0x204 went 1 → 2 (still 511 in use)" in fork
