"""Progress of long steps: the core's hook (mm/progress.py) and the bar drawn from it (views/progress.py)."""

from __future__ import annotations

import io

from rich.console import Console

from mmshell.lang.runner import run_text
from mmshell.lang.session import Session
from mmshell.mm.progress import listening, progress
from mmshell.report import run_sources
from mmshell.views import progress as bar
from mmshell.views.progress import StepProgress

THRASH = "set pmd_swap off\nset ram 16M\nswapon z 64M\nmmap a 24M hugepage\ntouch a\ncheck a\nreclaim\n"


def test_nobody_listens_by_default():
    progress("fault", 1, 2)                # no listener: nothing happens, nothing raises


def test_the_hook_is_called_with_monotone_progress():
    s = Session.boot()
    calls: list[tuple[str, int, int]] = []
    with listening(lambda *a: calls.append(a)):
        run_text(s, THRASH, "t.mmsh")
    assert {p for p, _, _ in calls} >= {"fault", "swap-out"}
    runs: list[list[tuple[str, int, int]]] = []
    for c in calls:                        # one operation: one phase called without a break
        if runs and runs[-1][-1][0] == c[0] and runs[-1][-1][2] == c[2] and c[1] >= runs[-1][-1][1]:
            runs[-1].append(c)
        else:
            runs.append([c])
    for run in runs:
        phase, _, total = run[0]
        if total:
            assert all(0 <= d < total for _, d, _ in run), phase
    counts = [d for p, d, _ in calls if p == "swap-out"]
    assert counts == sorted(counts)        # pages written only go up
    faults = [(d, t) for p, d, t in calls if p == "fault"]
    assert faults[0][0] == 0 and all(d < t for d, t in faults)


def test_no_progress_output_when_stdout_is_not_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(bar, "DELAY", 0.0)
    monkeypatch.setattr(bar, "REDRAW", 0.0)
    run_sources([("t.mmsh", THRASH)])
    out = capsys.readouterr().out
    assert "swap-out" not in out and "check a: fault" not in out and "━━" not in out and "\x1b" not in out


def test_the_bar_is_drawn_on_a_terminal_and_taken_away(monkeypatch):
    monkeypatch.setattr(bar, "REDRAW", 0.0)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    p = StepProgress(console, enabled=True, delay=0.0)
    s = Session.boot()
    run_text(s, "set ram 16M\nswapon z 64M\nmmap a 24M hugepage\nset pmd_swap off", "t.mmsh")
    p.start("touch a")
    run_text(s, "touch a", "t.mmsh")
    p.stop()
    text = out.getvalue()
    assert "touch a: fault" in text and "/ 6,144 pages" in text
    assert "swap-out" in text                # the reclaim the faults ran into, counted beside the bar
    p.start("touch a read")                   # a step that ends before the delay draws nothing
    p.delay = 60.0
    run_text(s, "touch a read", "t.mmsh")
    p.stop()
    assert out.getvalue() == text
