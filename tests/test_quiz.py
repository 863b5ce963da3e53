"""mmshell quiz: one seed, one quiz; at least ten kinds of question; every answer agrees with
running the scenario (an `expect` at the end, or the counter's change over the last step)."""

from __future__ import annotations

from click.testing import CliRunner

from mmshell.commands import main
from mmshell.lang.sim_observer import evaluate
from mmshell.lang.runner import run_text
from mmshell.lang.session import Session
from mmshell.quiz import KINDS, TOPICS, make_quiz, render_quiz

SEEDS = range(40)


def test_at_least_ten_kinds_and_every_topic_answers() -> None:
    assert len({k.name for k in KINDS}) >= 10
    for topic in TOPICS:
        assert make_quiz(3, topic).kind.topic == topic


def test_one_seed_one_quiz() -> None:
    for seed in (0, 7):
        assert render_quiz(make_quiz(seed), True) == render_quiz(make_quiz(seed), True)
    r = CliRunner()
    first, second = (r.invoke(main, ["quiz", "--seed", "11"]) for _ in range(2))
    assert first.exit_code == 0 and first.output == second.output and "Question:" in first.output
    answered = r.invoke(main, ["quiz", "--seed", "11", "--answer"])
    assert "Answer: " in answered.output and "Why: " in answered.output
    assert answered.output.startswith(first.output.split("Work it out")[0])
    assert r.invoke(main, ["quiz", "--topic", "nope"]).exit_code == 2


def test_answers_agree_with_running_the_scenario() -> None:
    kinds = set()
    for seed in SEEDS:
        q = make_quiz(seed)
        kinds.add(q.kind.name)
        lines = q.scenario.lines
        if q.kind.delta is not None:
            family, name = q.kind.delta
            s = Session.boot(debug_vm=True)
            assert run_text(s, "\n".join(lines[:-1]) + "\n", "q").exit_status() == 0
            before = evaluate(s, f"{family}.{name}")
            assert run_text(s, lines[-1] + "\n", "q").exit_status() == 0
            assert evaluate(s, f"{family}.{name}") - before == q.answer, (seed, q.question)
        else:
            path = q.kind.path(q.scenario) if q.kind.path else None
            if path is None:       # swap_count: the slot is read off pagemap first
                s = Session.boot(debug_vm=True)
                assert run_text(s, "\n".join(lines) + "\n", "q").exit_status() == 0
                path = f"swapmap.z.{evaluate(s, 'pagemap.a.swap_offset')}"
            s = Session.boot(debug_vm=True)
            text = "\n".join([*lines, f"expect {path} == {q.answer}"]) + "\n"
            assert run_text(s, text, "q").exit_status() == 0, (seed, q.question, q.answer)
        assert q.why
    assert len(kinds) >= 8          # the seeds reach most kinds
