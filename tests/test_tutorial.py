"""docs/tutorial.md: every command block runs clean, and the picture under it is what the
tool draws now (scripts/gen_tutorial --write regenerates them)."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GEN = runpy.run_path(str(ROOT / "scripts" / "gen_tutorial"), run_name="gen_tutorial")


def test_the_tutorial_pictures_are_current() -> None:
    text = (ROOT / "docs" / "tutorial.md").read_text()
    assert text.count("```mmsh") >= 6
    new = GEN["regenerate"](text)
    assert new == text, "docs/tutorial.md is stale: run scripts/gen_tutorial --write"


def test_a_stale_picture_and_a_failing_block_are_caught() -> None:
    doc = "# t\n\n## one\n\n```mmsh\nmmap a 2M\n```\n\n```text\nold picture\n```\n"
    new = GEN["regenerate"](doc)
    assert "old picture" not in new and "mmsh> mmap a 2M" in new
    assert GEN["regenerate"](new) == new
    bad = "## two\n\n```mmsh\nmunmap 0x1001:4K\n```\n"
    try:
        GEN["regenerate"](bad)
    except GEN["TutorialError"] as e:
        assert "line 3" in str(e) and "EINVAL" in str(e)
    else:
        raise AssertionError("a refused command in the tutorial must fail")


def test_each_part_boots_a_fresh_machine() -> None:
    doc = "## one\n\n```mmsh\nfork\n```\n\n## two\n\n```mmsh\nfork\n```\n"
    assert GEN["regenerate"](doc).count("child pid 2") == 2
