"""`mmshell present`: frames replayed from the start, the views on top, narration and changes
below, and the keys of the full-screen application."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from mmshell.commands import main
from mmshell.lang.errors import LangError
from mmshell.lang.parser import parse_script
from mmshell.presentation import Presentation, lesson_title
from mmshell.shell.present_app import build_app

LESSON = """\
# A tiny lesson
# What it teaches.
#
# (how to run it)
swapon s0 8M
mmap a 2M hugepage
#: One fault, one PMD.
touch a
pause a THP
madvise a pageout
show swap
expect swap.s0.used == 512
pause on s0
touch a read
"""


def _p(text: str = LESSON) -> Presentation:
    return Presentation(text, "tiny.mmsh", color=False)


def test_steps_pauses_and_title() -> None:
    p = _p()
    assert (p.total, p.pauses, p.title) == (9, [4, 8], "A tiny lesson")
    assert lesson_title("fork\n", "dir/x.mmsh") == "x.mmsh"


def test_frame_0_is_the_opening_comment() -> None:
    f = _p().frame(0)
    assert f.top.splitlines() == ["A tiny lesson", "What it teaches."]
    assert "9 steps" in f.bottom


def test_a_step_shows_the_page_table_its_narration_and_its_changes() -> None:
    f = _p().frame(3)
    assert (f.where, f.command, f.status, f.pause) == ("tiny.mmsh:8", "touch a", "ok", False)
    assert "page table of pid 1" in f.top and "huge" in f.top
    assert f.bottom.index("│ One fault, one PMD.") < f.bottom.index("tiny.mmsh:8  touch a")
    assert "thp_fault_alloc +1" in f.bottom


def test_show_views_stay_on_top_until_the_machine_changes() -> None:
    p = _p()
    assert "swap devices" in p.frame(6).top and "page table" not in p.frame(6).top
    assert "swap devices" in p.frame(8).top          # expect and pause change nothing
    assert p.frame(8).pause and "on s0" in p.frame(8).bottom
    assert "swap devices" not in p.frame(9).top and "page table" in p.frame(9).top


def test_going_back_replays_to_the_same_frame() -> None:
    p = _p()
    first = [p.frame(n, 90) for n in range(p.total + 1)]
    assert [p.frame(n, 90) for n in reversed(range(p.total + 1))] == first[::-1]
    assert p.frame(99, 90) == first[-1] and p.frame(-3, 90) == first[0]


def test_a_refused_step_ends_the_frames() -> None:
    p = _p("mmap a 2M\nmunmap a+1:4K\nfork\n")
    assert p.total == 2
    f = p.frame(2)
    assert f.status == "refused" and "EINVAL" in f.bottom


def test_a_syntax_error_is_refused_before_anything_runs() -> None:
    with pytest.raises(LangError):
        _p("mmap a 2M\nmmpa b 2M\n")


@pytest.mark.parametrize("keys,index", [("", 0), ("\x1b[C\x1b[C ", 3), ("\x1b[C\x1b[C\x1b[Db", 0), ("p", 4),
                                        ("pp", 8), ("ppP", 4), ("G", 9), ("Gb", 8), ("Gg", 0), ("lln", 3)])
def test_keys(keys: str, index: int) -> None:
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        app, presenter = build_app(_p(), input=pipe, output=DummyOutput())
        pipe.send_text(keys + "q")
        assert app.run() == 0
        assert presenter.index == index


def test_ctrl_c_leaves_with_2() -> None:
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        app, _ = build_app(_p(), input=pipe, output=DummyOutput())
        pipe.send_text("\x03")
        assert app.run() == 2


def test_present_needs_a_terminal(tmp_path: Path) -> None:
    f = tmp_path / "l.mmsh"
    f.write_text(LESSON)
    res = CliRunner().invoke(main, ["present", str(f)])
    assert res.exit_code == 2 and "needs a terminal" in res.output
    res = CliRunner().invoke(main, ["present", str(tmp_path / "missing.mmsh")])
    assert res.exit_code == 2


def test_every_lesson_presents() -> None:
    root = Path(__file__).resolve().parents[1] / "examples"
    for path in sorted(root.glob("*.mmsh")):
        p = Presentation(path.read_text(), str(path), color=False)
        assert p.total == len(parse_script(path.read_text()))       # every step runs, none refused
        assert p.pauses and p.frame(p.pauses[0]).pause


def test_mainline_boots_with_pmd_swap_off() -> None:
    p = Presentation(LESSON, "tiny.mmsh", color=False, pmd_swap=False)
    assert "table" in p.frame(5).top and "thp_split_pmd +1" in p.frame(5).bottom
    assert "thp_split_pmd" not in _p().frame(5).bottom


def test_the_title_bar_keeps_the_step_and_the_mode_when_narrow() -> None:
    from mmshell.shell.present_app import Presenter

    p = Presenter(_p("# " + "a very long title " * 8 + "\nset pmd_swap off\n"), lambda: 60)
    p.go(1)
    (style, text), = p.title()
    assert len(text) == 60 and text.rstrip().endswith("step 1/1  tiny.mmsh:2  pmd_swap=off")
    assert "…" in text
