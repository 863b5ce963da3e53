"""The forgiving prompt: save replays to the same state, undo and back N restore the machine
byte for byte, history, reset, exit and quit, errors with a caret, a passing expect said so."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from mmsh_state import diff_dumps, state_dump
from mmshell.lang.runner import run_text
from mmshell.lang.session import Session
from mmshell.lang.topics import MAX_UNDO
from mmshell.shell.journal import Journal
from mmshell.shell.meta import ShellPrinter, run_shell_command
from mmshell.shell.repl import run_line, run_shell

LINES = ["swapon z 64M", "swapon d 32M kind disk prio 5", "mmap a 4M hugepage; touch a",
         "fork", "madvise a+2M:2M pageout", "set pmd_swap off", "mmap b 2M hugepage", "touch b",
         "tuch b", "madvise b pageout", "expect pmd.b == swap", "touch b+0x5000 read", "@2 touch a+0x3000",
         "expect pmd.b == table", "mremap b c at 0x40000000", "show pt", "touch nosuch"]


def _prompt(lines: list[str], debug_vm: bool = True) -> tuple[Session, Journal, str]:
    session = Session.boot(debug_vm=debug_vm)
    out = io.StringIO()
    printer = ShellPrinter(session, echo=False, stream=out)
    journal = Journal(session)
    for n, line in enumerate(lines, 1):
        printer.line_text = line
        if line.split()[0] in ("undo", "back", "save", "history", "reset"):
            run_shell_command(line, session, journal, printer.console)
        else:
            run_line(session, printer, line, n, journal)
    return session, journal, out.getvalue()


def test_save_replays_to_the_same_state(tmp_path: Path) -> None:
    path = tmp_path / "lesson.mmsh"
    session, journal, out = _prompt([*LINES, f"save {path}"])
    assert f"saved {len(journal.entries)} command(s)" in out
    text = path.read_text()
    assert "tuch" not in text and "nosuch" not in text and "expect pmd.b == swap" not in text
    assert "expect pmd.b == table" in text
    replay = Session.boot(debug_vm=True)
    outcome = run_text(replay, text, str(path))
    assert outcome.exit_status() == 0
    assert state_dump(replay) == state_dump(session), diff_dumps(state_dump(replay), state_dump(session))


def test_undo_and_back_restore_the_machine_byte_for_byte() -> None:
    dumps = []
    session = Session.boot(debug_vm=True)
    printer = ShellPrinter(session, echo=False, stream=io.StringIO())
    journal = Journal(session)
    steps = ["swapon z 64M", "mmap a 4M hugepage", "touch a", "fork", "madvise a pageout", "@2 touch a read",
             "set pmd_swap off", "mmap b 2M hugepage", "touch b", "madvise b pageout", "explain on",
             "set counters all"]
    for n, line in enumerate(steps, 1):
        dumps.append((state_dump(session), session.explain, session.counters))
        run_line(session, printer, line, n, journal)
    for back in (1, 3, 2):
        run_shell_command("undo" if back == 1 else f"back {back}", session, journal, printer.console)
        del dumps[len(dumps) - back + 1:]
        want = dumps.pop()
        assert (state_dump(session), session.explain, session.counters) == want
    assert len(journal.steps()) == len(steps) - 6
    run_line(session, printer, "touch a", 99, journal)     # the machine goes on from there
    assert session.kernel.mms[2]


def test_undo_is_bounded_and_says_so() -> None:
    session, journal, out = _prompt([f"mmap r{i} 4K" for i in range(MAX_UNDO + 3)]
                                    + [f"back {MAX_UNDO + 1}", f"back {MAX_UNDO}", "history"])
    assert f"only the last {MAX_UNDO} steps can be undone" in out
    assert f"undone {MAX_UNDO} steps" in out
    listing = out.split("(pid 1 current)")[-1]
    assert "  3  mmap r2 4K" in listing and "mmap r3" not in listing
    assert "none of these can be taken back" in listing


def test_looking_commands_are_not_steps() -> None:
    session, journal, out = _prompt(["mmap a 2M", "show vmas", "expect pid == 1", "undo", "history"])
    assert "undone: mmap a 2M" in out and "no steps yet" in out
    assert journal.entries == []


def test_reset_boots_a_fresh_machine() -> None:
    session, journal, out = _prompt(["swapon z 64M", "mmap a 2M; touch a", "reset", "history"])
    assert list(session.kernel.mms) == [1] and session.regions == {1: {}}
    assert not any(si for si in session.kernel.swap_info) and "no steps yet" in out


def test_errors_point_at_their_column_without_the_stdin_prefix() -> None:
    _, _, out = _prompt(["mmap a 2M; tuch a", "touch a; munmap nosuch"])
    lines = out.splitlines()
    assert "<stdin>" not in out
    i = lines.index("syntax: column 12: unknown command 'tuch' (did you mean 'touch'?)")
    assert lines[i - 1] == " " * 11 + "^"
    j = next(i for i, line in enumerate(lines) if line.startswith("munmap: EINVAL"))
    assert lines[j - 2:j] == ["  touch a; munmap nosuch", " " * 11 + "^"]


def test_save_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "x.mmsh").write_text("keep\n")
    _, _, out = _prompt(["mmap a 2M", f"save {tmp_path / 'x.mmsh'}", f"save {tmp_path / 'x.txt'}", "back x"])
    assert "EEXIST" in out and "ends in .mmsh" in out and "'x' is not a number" in out
    assert (tmp_path / "x.mmsh").read_text() == "keep\n"


@pytest.mark.parametrize("keys, leaves", [("exit\r", True), ("fork\rexit\r", False), ("quit\r", True),
                                          ("fork\rswitch 2\rexit\rexit\r", True)])
def test_exit_and_quit(keys: str, leaves: bool, capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MMSHELL_HISTORY", str(tmp_path / "history"))
    with create_pipe_input() as inp:
        inp.send_text(keys + "mmap zz 2M\r\x04")
        assert run_shell(debug_vm=True, input=inp, output=DummyOutput()) == 0
    out = capsys.readouterr().out
    assert ("zz = 0x" in out) is not leaves
    if not leaves:
        assert "`quit` leaves the shell" in out


def test_undo_records_stay_within_their_memory_budget(monkeypatch) -> None:
    import mmshell.shell.journal as journal_mod
    lines = ["swapon z 64M", "mmap a 8M hugepage"] + ["touch a"] * 4
    _, journal, _ = _prompt(lines)
    costs = [e.cost for e in journal.steps()]
    assert all(costs)
    monkeypatch.setattr(journal_mod, "UNDO_BUDGET", costs[-1] + costs[-2] + 1)     # room for the last two
    session, journal, out = _prompt([*lines, "back 3"])
    assert sum(bool(e.before) for e in journal.steps()) == 2
    mib = (costs[-1] + costs[-2]) >> 20
    assert f"only the last 16 steps can be undone, as long as their records fit in {mib} MiB (2 kept)" in out


def test_an_undo_record_costs_what_its_step_changed_not_every_process() -> None:
    """A step's record holds the processes it reached: with ten times the processes, the same
    (without the invariant checker, which reads every process after every step)."""
    def last_cost(forks: int) -> int:
        _, journal, _ = _prompt(["mmap a 4M; touch a", *["fork"] * forks, "mmap b 4K", "@2 touch a+4K"],
                                debug_vm=False)
        return journal.steps()[-1].cost
    assert last_cost(4) == last_cost(40)


def test_ctrl_c_stops_the_rest_of_the_line(monkeypatch) -> None:
    from mmshell.lang import execute

    def interrupted(s, cmd):
        raise KeyboardInterrupt
    monkeypatch.setitem(execute.HANDLERS, "fork", interrupted)
    session, journal, out = _prompt(["mmap a 2M; fork; mmap b 2M"])
    assert "fork: EINTR: interrupted" in out
    assert "the rest of the line (1 command(s)) was not run" in out
    assert "b" not in session.names() and [e.text for e in journal.entries] == ["mmap a 2M"]


def test_the_toolbar_fits_a_narrow_terminal() -> None:
    from mmshell.shell.toolbar import Toolbar
    session = Session.boot()
    run_text(session, "swapon zram0 1G\nswapon disk1 1G kind disk\nswapon f2 64M kind file\n", "t")
    frags = Toolbar(session).fragments("mmap a 2M hugepage at", 80)
    lines = "".join(text for _, text in frags).split("\n")
    assert len(lines) == 2 and all(len(line) <= 80 for line in lines)
    assert "swap +3" in lines[0] and lines[1].startswith(" next:")


def test_undo_takes_back_what_unlogged_commands_did_after_the_step(tmp_path: Path) -> None:
    """A partial refusal (madvise over a hole) and an `expect fails source` whose file ran are
    not steps, yet changed the machine: undo of the step before them takes them back too."""
    script = tmp_path / "runs.mmsh"
    script.write_text("touch h2\n")
    session = Session.boot(debug_vm=True)
    printer = ShellPrinter(session, echo=False, stream=io.StringIO())
    journal = Journal(session)
    for n, line in enumerate(["swapon z 64M", "mmap h 2M at 0x40000000; mmap h2 2M at 0x40400000"], 1):
        run_line(session, printer, line, n, journal)
    before = state_dump(session)
    run_line(session, printer, "touch h", 3, journal)
    assert run_line(session, printer, "madvise 0x40000000:6M pageout", 4, journal).refused
    assert session.kernel.vmstat.events["pswpout"]          # the part before the hole was paged out
    run_line(session, printer, f"expect fails source {script}", 5, journal)
    assert session.kernel.mms[1].rss_anon
    run_shell_command("undo", session, journal, printer.console)
    assert state_dump(session) == before, diff_dumps(state_dump(session), before)
    assert journal.steps()[-1].text == "mmap h2 2M at 0x40400000"


def test_the_step_summary_follows_the_machine_after_reset_and_undo() -> None:
    """The printer reads the session's machine as it is now: `reset` boots another, and the
    next steps' summaries are that machine's."""
    _, _, out = _prompt(["mmap a 2M", "touch a", "reset", "mmap b 2M", "touch b", "undo", "touch b+4K"])
    after_reset = out.split("the history starts again")[-1]
    assert after_reset.count("→ table: 0-511 present") == 1 and "b+0x0" in after_reset
    assert after_reset.count("no change") == 0
