"""The lessons in examples/: each has a title, says its modes, narrates, pauses and expects,
and examples/README.md indexes every one (tests/test_scenarios.py runs them in both modes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mmshell.lang.parser import parse_script

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "examples").glob("*.mmsh"))
INDEX = (ROOT / "examples" / "README.md").read_text()


def test_there_are_at_least_15_lessons() -> None:
    assert len(LESSONS) >= 15


@pytest.mark.parametrize("path", LESSONS, ids=[p.name for p in LESSONS])
def test_lesson_shape(path: Path) -> None:
    text = path.read_text()
    title = text.splitlines()[0]
    assert title.startswith("# ") and len(title) > 10, "the first line is the title"
    assert re.search(r"Modes: \w+", text), "the header says in which modes it holds"
    cmds = parse_script(text)
    assert any(c.narration for c in cmds), "no #: narration"
    assert any(c.name == "pause" for c in cmds), "no pause"
    assert sum(c.name == "expect" or (c.name == "if" and c.args["command"].name == "expect") for c in cmds) >= 3
    assert f"]({path.name})" in INDEX, "examples/README.md does not index it"


def test_the_index_names_only_lessons_that_exist() -> None:
    for name in re.findall(r"\]\(([\w.-]+\.mmsh)\)", INDEX):
        assert (ROOT / "examples" / name).is_file(), name
