"""`pause`, `#:` narration and `mmshell run --step`: the stops, the keys, the exit statuses."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmshell.commands import main
from mmshell.lang.parser import parse_command, parse_script
from mmshell.stepkeys import Key, Quit, ask, meaning, read_key

LESSON = """\
#: First a THP.
#:   indented narration keeps its indent
# a plain comment is not narration
mmap a 2M hugepage
touch a   #: a comment after a command is a plain comment
pause look at the PMD
#: Now reclaim.
swapon s0 8M
madvise a pageout
expect pmd.a == swap
#: trailing narration belongs to no step
"""


def test_narration_belongs_to_the_next_command() -> None:
    cmds = parse_script(LESSON)
    assert [c.narration for c in cmds] == [
        ("First a THP.", "  indented narration keeps its indent"), (), (), ("Now reclaim.",), (), ()]
    assert cmds[2].name == "pause" and cmds[2].args["text"] == "look at the PMD"


def test_pause_text_is_kept_as_written_and_round_trips() -> None:
    c = parse_command("pause  two  spaces  # comment")
    assert c.args["text"] == "two  spaces"
    assert [x.name for x in parse_script("pause wait; fork")] == ["pause", "fork"]
    assert parse_command(str(c)) == c
    assert parse_command("pause").args["text"] is None
    assert str(parse_command("pause")) == "pause"


def test_narration_takes_no_part_in_equality() -> None:
    assert parse_script("#: hi\nfork") == parse_script("fork")


@pytest.mark.parametrize("text,key", [("", Key.NEXT), (" ", Key.NEXT), ("q", Key.QUIT), ("Q\n", Key.QUIT),
                                      ("?", Key.HELP), ("x", Key.NEXT)])
def test_key_meanings(text: str, key: Key) -> None:
    assert meaning(text) is key


def test_keys_from_a_pipe() -> None:
    stream = io.StringIO("\n?\nq\n")
    assert [read_key(stream) for _ in range(4)] == [Key.NEXT, Key.HELP, Key.QUIT, Key.EOF]


def test_ask_lists_the_keys_then_asks_again_and_q_quits() -> None:
    said: list[str] = []
    keys = iter([Key.HELP, Key.NEXT])
    assert ask(said.append, lambda: next(keys)) is True
    assert any("q quits" in s for s in said) and len(said) == 3
    with pytest.raises(Quit):
        ask(said.append, lambda: Key.QUIT)
    assert ask(said.append, lambda: Key.EOF) is False


def _lesson(tmp_path: Path) -> str:
    p = tmp_path / "lesson.mmsh"
    p.write_text(LESSON)
    return str(p)


def test_plain_run_neither_stops_nor_narrates(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["run", _lesson(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "First a THP" not in res.output and "[Enter/space]" not in res.output


def test_step_stops_before_every_step_and_shows_the_narration(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["run", "--step", _lesson(tmp_path)], input="\n" * 6)
    assert res.exit_code == 0, res.output
    assert res.output.count("[Enter/space]") == 6
    assert "│ First a THP." in res.output and "│ Now reclaim." in res.output
    assert "trailing narration" not in res.output
    assert res.output.index("│ First a THP.") < res.output.index("next: mmap a 2M hugepage")


def test_step_pause_stops_at_pause_only(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["run", _lesson(tmp_path), "--step=pause"], input="\n")
    assert res.exit_code == 0, res.output
    assert res.output.count("[Enter/space]") == 1
    assert "pause look at the PMD" in res.output and "│ Now reclaim." in res.output
    res = CliRunner().invoke(main, ["run", "--step", "pause", _lesson(tmp_path)], input="\n")
    assert res.output.count("[Enter/space]") == 1


def test_q_quits_with_exit_0_and_runs_nothing_more(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["run", "--step", _lesson(tmp_path)], input="\n\nq\n")
    assert res.exit_code == 0, res.output
    assert "2 steps, 0 failed expectation(s), 0 refused: ok" in res.output
    assert "swapon" not in res.output.split("next: pause")[0].split("touch a")[-1]


def test_q_after_a_failed_expectation_keeps_exit_1(tmp_path: Path) -> None:
    p = tmp_path / "f.mmsh"
    p.write_text("expect pid == 2\nfork\n")
    res = CliRunner().invoke(main, ["run", "--step", str(p)], input="\nq\n")
    assert res.exit_code == 1, res.output


def test_step_ends_when_input_ends(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["run", "--step", _lesson(tmp_path)], input="")
    assert res.exit_code == 0, res.output
    assert res.output.count("[Enter/space]") == 1


def test_bad_step_mode_is_one_clear_line(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["run", "--step=every", _lesson(tmp_path)])
    assert res.exit_code == 2 and "'every' is not one of 'each', 'pause'" in res.output


def test_pause_changes_nothing_in_the_simulator_and_on_the_live_kernel() -> None:
    from mmshell.kernel.runner import HANDLERS as LIVE
    from mmshell.lang.execute import execute
    from mmshell.lang.session import Session

    s = Session.boot()
    out = execute(s, parse_command("pause look"))
    assert (out.changed, out.lines, out.views) == (False, [], [])
    live = LIVE["pause"](None, parse_command("pause look"))   # type: ignore[arg-type]
    assert (live.changed, live.lines) == (False, [])
