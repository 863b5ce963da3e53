"""The step loop both runners share (lang/step_loop.py): parsing first, `source`, tallies."""

from __future__ import annotations

from pathlib import Path

from mmshell.lang.parser import Command
from mmshell.lang.step_loop import MAX_SOURCE_DEPTH, Outcome, StepRecord, run_commands


class Recorder:
    """A step function that runs nothing: it records each command and classifies it by name."""

    def __init__(self, kinds: dict[str, str] | None = None) -> None:
        self.ran: list[tuple[str, int, str]] = []
        self.kinds = kinds or {}

    def __call__(self, cmd: Command, source: str) -> StepRecord:
        self.ran.append((Path(source).name, cmd.line, cmd.name))
        kind = self.kinds.get(cmd.name, "ok")
        return StepRecord(source, cmd.line, cmd, error=None if kind == "ok" else f"{cmd.name} {kind}", kind=kind)


def test_a_syntax_error_runs_nothing() -> None:
    step, seen = Recorder(), []
    out = run_commands("fork\nmmap a\n", "t.mmsh", step, seen.append)
    assert step.ran == [] and out.exit_status() == 2
    assert seen[0].kind == "syntax" and seen[0].error.startswith("t.mmsh:2: syntax: ")


def test_statuses_stop_and_keep_going() -> None:
    step = Recorder({"switch": "refused", "expect": "expect-failed"})
    out = run_commands("fork\nexpect pid == 2\nswitch 9\nfork\n", "t.mmsh", step)
    assert [r[2] for r in step.ran] == ["fork", "expect", "switch"]
    assert (out.failed, out.refused, out.stopped, out.exit_status()) == (1, 1, True, 2)
    step = Recorder({"switch": "refused"})
    out = run_commands("switch 9\nfork\n", "t.mmsh", step, keep_going=True)
    assert [r[2] for r in step.ran] == ["switch", "fork"] and out.exit_status() == 2
    step = Recorder({"expect": "not-observable"})
    assert run_commands("expect pid == 1\n", "t.mmsh", step).exit_status() == 1
    step = Recorder({"fork": "bug"})
    out = run_commands("fork\nfork\n", "t.mmsh", step, keep_going=True)
    assert len(step.ran) == 1 and out.stopped          # a bug stops even with keep_going


def test_source_runs_in_place_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inner.mmsh").write_text("fork\nsource leaf.mmsh\n")
    (tmp_path / "sub" / "leaf.mmsh").write_text("switch 1\n")
    step, before = Recorder(), []
    out = run_commands("fork\nsource sub/inner.mmsh\nfork\n", str(tmp_path / "outer.mmsh"), step,
                       base=tmp_path, before=lambda c: before.append(c.name))
    assert step.ran == [("outer.mmsh", 1, "fork"), ("inner.mmsh", 1, "fork"), ("leaf.mmsh", 1, "switch"),
                        ("outer.mmsh", 3, "fork")]
    assert before == ["fork", "source", "fork", "source", "switch", "fork"]
    assert out.exit_status() == 0 and out.sourced == 2


def test_source_refusals_are_bounded(tmp_path: Path) -> None:
    (tmp_path / "self.mmsh").write_text("source self.mmsh\n")
    for text, errno in [("source self.mmsh", "ELOOP"), ("source /dev/zero", "EINVAL"),
                        ("source missing.mmsh", "ENOENT"), ("source .", "EISDIR"),
                        ("source /proc/self/mem", "EIO")]:
        seen: list[StepRecord] = []
        out = Outcome()
        run_commands(text + "\n", "t.mmsh", Recorder(), seen.append, outcome=out, base=tmp_path)
        assert out.exit_status() == 2 and f"source: {errno}: " in seen[-1].error, (text, seen[-1].error)
    assert MAX_SOURCE_DEPTH == 8


def test_expect_fails_source(tmp_path: Path) -> None:
    (tmp_path / "refused.mmsh").write_text("fork\nswitch 9\nfork\n")
    (tmp_path / "ok.mmsh").write_text("fork\nexpect pid == 2\n")
    (tmp_path / "typo.mmsh").write_text("fork\nforj\n")
    restored: list[str] = []

    def checkpoint():
        return lambda undo: restored.append("restored" if undo else "kept")
    step, seen = Recorder({"switch": "refused", "expect": "expect-failed"}), []
    out = run_commands("expect fails source refused.mmsh\nexpect fails source typo.mmsh\n"
                       "expect fails source missing.mmsh\nexpect fails source ok.mmsh\nfork\n", "t.mmsh", step,
                       seen.append, base=tmp_path, checkpoint=checkpoint)
    # FILE's commands run without steps of their own; the refused one stops it and it is undone
    assert [r.line for r in seen] == [1, 2, 3, 4, 5]
    assert step.ran == [("refused.mmsh", 1, "fork"), ("refused.mmsh", 2, "switch"), ("ok.mmsh", 1, "fork"),
                        ("ok.mmsh", 2, "expect"), ("t.mmsh", 5, "fork")]
    # every checkpoint is closed once: undone after a refusal, kept when nothing ran or all held
    assert restored == ["restored", "kept", "kept"]
    assert seen[0].kind == "ok" and seen[0].output.lines == [
        "refused as expected: switch refused (the commands before it were undone)"]
    assert seen[1].kind == "ok" and "typo.mmsh:2: syntax: column 1: unknown command 'forj'" in seen[1].output.lines[0]
    assert seen[2].kind == "ok" and "ENOENT: cannot read" in seen[2].output.lines[0]
    assert seen[3].kind == "expect-failed" and seen[3].error == (
        "t.mmsh:4: expect: expected 'source ok.mmsh' to be refused, but it ran (1 failed expectation(s))")
    assert (out.steps, out.failed, out.refused, out.sourced) == (5, 1, 0, 4)
