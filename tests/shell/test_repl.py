"""The interactive shell, driven through a pipe (prompt_toolkit's create_pipe_input)."""

from __future__ import annotations

import threading
import time

from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from mmshell.lang.session import Session
from mmshell.shell.completer import MmshCompleter
from mmshell.shell.repl import prompt_text, run_shell


def _run(keys: str, capsys, monkeypatch, tmp_path) -> str:
    monkeypatch.setenv("MMSHELL_HISTORY", str(tmp_path / "history"))
    with create_pipe_input() as inp:
        inp.send_text(keys)
        status = run_shell(debug_vm=True, input=inp, output=DummyOutput())
    assert status == 0
    return capsys.readouterr().out


def test_commands_run_and_ctrl_d_leaves(capsys, monkeypatch, tmp_path) -> None:
    out = _run("swapon s0 64M\rmmap a 2M hugepage\rtouch a\rmadvise a pageout\rexpect pmd.a == swap\r\x04",
               capsys, monkeypatch, tmp_path)
    assert "a = 0x" in out
    assert "thp_swpout_pmd +1" in out
    assert "holds: pmd.a == swap (actual swap)" in out      # a held expectation says so
    assert (tmp_path / "history").read_text().count("+") >= 5


def test_errors_print_one_line_and_the_prompt_returns(capsys, monkeypatch, tmp_path) -> None:
    out = _run("mmpa a 2M\rmunmap nosuch\rmmap a 2M\rtouch a+0x1001:4K\rexpect pid == 2\r\x04",
               capsys, monkeypatch, tmp_path)
    lines = [line for line in out.splitlines() if line.split(":")[0] in ("syntax", "munmap", "touch", "expect")]
    assert len(lines) == 4, out
    assert "<stdin>" not in out         # the prompt drops the file and line
    assert "did you mean 'mmap'" in lines[0]
    assert "munmap: EINVAL" in lines[1]
    assert "touch: EINVAL" in lines[2]
    assert "expected pid == 2, actual 1" in lines[3]
    assert "Traceback" not in out


def test_ctrl_c_clears_the_line(capsys, monkeypatch, tmp_path) -> None:
    out = _run("mmap a 2M\x03mmap b 2M\r\x04", capsys, monkeypatch, tmp_path)
    assert "b = 0x" in out
    assert "a = 0x" not in out


def test_prompt_shows_pid_and_mode() -> None:
    s = Session.boot()
    assert prompt_text(s) == "mmsh[pid 1 pmd_swap=on]> "


def _run_typed(chunks: list[str], capsys, monkeypatch, tmp_path) -> str:
    """Like _run, but typed in chunks, each Tab only once its completions are loaded.

    Completion runs asynchronously in prompt_toolkit's event loop: completing
    while typing starts on the keys before a Tab, and a Tab that arrives in the
    same read finds those completions not loaded yet.  A person's Tab comes in a
    read of its own, after the menu showed; so here a Tab is sent only after the
    completer has answered for the line typed so far.
    """
    monkeypatch.setenv("MMSHELL_HISTORY", str(tmp_path / "history"))
    seen: list[str] = []
    answered = threading.Condition()
    real = MmshCompleter.completions

    def spy(self, text: str):
        out = real(self, text)
        with answered:
            seen.append(text)
            answered.notify_all()
        return out

    monkeypatch.setattr(MmshCompleter, "completions", spy)
    with create_pipe_input() as inp:
        def typist() -> None:
            typed, since = "", 0
            for chunk in chunks:
                if chunk == "\t":
                    with answered:   # the completer has answered for the keys just typed
                        answered.wait_for(lambda t=typed, i=since: any(s.endswith(t) for s in seen[i:]), timeout=5)
                    time.sleep(0.05)
                with answered:
                    since = len(seen)
                inp.send_text(chunk)
                typed = chunk.rsplit("\r", 1)[-1]
                if chunk == "\t":
                    time.sleep(0.05)

        thread = threading.Thread(target=typist, daemon=True)
        thread.start()
        status = run_shell(debug_vm=True, input=inp, output=DummyOutput())
        thread.join(timeout=10)
    assert status == 0
    return capsys.readouterr().out


def test_tab_completes_command_words_region_names_and_paths(capsys, monkeypatch, tmp_path) -> None:
    out = _run_typed(["swapon s0 64M\rmmap alpha 2M hugepage\rtou", "\t", " al", "\t", "\rmadv", "\t",
                      " alpha pageo", "\t", "\rexpect vmstat.thp_swpout_p", "\t", " == 1\r\x04"],
                     capsys, monkeypatch, tmp_path)
    assert "alpha = 0x" in out
    assert "thp_fault_alloc +1" in out             # `touch alpha` ran
    assert "thp_swpout_pmd +1" in out              # `madvise alpha pageout` ran
    assert "<stdin>:" not in out                   # and the completed expectation held
    history = (tmp_path / "history").read_text()
    assert "+touch alpha\n" in history and "+expect vmstat.thp_swpout_pmd == 1\n" in history


def test_the_toolbar_status_is_read_once_per_prompt(capsys, monkeypatch, tmp_path) -> None:
    from mmshell.shell import toolbar

    calls = []
    real = toolbar.Status.of

    def counting(session):
        calls.append(session.pid)
        return real(session)

    monkeypatch.setattr(toolbar.Status, "of", counting)
    out = _run("fork\rswitch 2\rmmap a 2M\rtouch a read\r\x04", capsys, monkeypatch, tmp_path)
    assert "a = 0x" in out
    # one read when the shell starts, then one before each of the five prompts,
    # however many keystrokes (and toolbar renders) there were
    assert calls == [1, 1, 1, 2, 2, 2]


def _history_run(path: str, capsys, monkeypatch) -> tuple[str, str]:
    monkeypatch.setenv("MMSHELL_HISTORY", path)
    with create_pipe_input() as inp:
        inp.send_text("mmap a 2M\rfork\r\x04")
        assert run_shell(input=inp, output=DummyOutput()) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "child pid 2" in out
    return out, err


def test_history_is_checked_before_use(capsys, monkeypatch, tmp_path) -> None:
    import os
    import stat

    from mmshell.shell import history

    h = tmp_path / "h"
    _, err = _history_run(str(h), capsys, monkeypatch)
    assert err == "" and stat.S_IMODE(os.stat(h).st_mode) == 0o600 and h.read_text().count("+") == 2
    for path, why in [("/nonexistent/dir/h", "cannot be created: No such file or directory"),
                      (str(tmp_path), "not a regular file"), ("/dev/zero", "not a regular file")]:
        _, err = _history_run(path, capsys, monkeypatch)
        assert err == f"mmshell: history file {path}: {why}; history is kept in memory only\n", path
    monkeypatch.setattr(history, "MAX_HISTORY_BYTES", 16)
    _, err = _history_run(str(h), capsys, monkeypatch)
    assert err.endswith("larger than 0 MiB; history is kept in memory only\n")


def test_a_history_write_that_fails_warns_once(capsys, monkeypatch, tmp_path) -> None:
    from prompt_toolkit.history import FileHistory

    def full(self, string):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(FileHistory, "store_string", full)
    _, err = _history_run(str(tmp_path / "h"), capsys, monkeypatch)
    assert err == (f"mmshell: history file {tmp_path / 'h'}: No space left on device; history is kept in memory "
                   "from now on\n")


def test_compare_runs_the_session_so_far_both_ways(capsys, monkeypatch, tmp_path) -> None:
    """`compare` at the prompt: the lines entered so far (a line that did not parse left out)
    on two fresh machines; the session itself goes on as it was."""
    out = _run("set pmd_swap off\rswapon s0 64M\rmmap a 2M hugepage\rmmpa b 2M\rtouch a\rmadvise a pageout\r"
               "compare\rexpect pmd.a == table\r\x04", capsys, monkeypatch, tmp_path)
    assert "<session>: mainline (pmd_swap off) against the series (pmd_swap on)" in out
    assert "note: <session>:1: 'set pmd_swap off' skipped" in out
    assert "thp_swpout_pmd +1" in out and "<session>: summary" in out
    assert "mmpa" not in out.split("<session>: mainline")[1]
    assert "expected pmd.a" not in out          # the session is still in mainline mode


def test_compare_runs_what_save_would_write(capsys, monkeypatch, tmp_path) -> None:
    """`compare` runs the commands that ran, as `save` writes them: an undone step and a
    refused command are not among them."""
    out = _run("swapon s0 64M\rmmap a 2M hugepage\rtouch a\rmadvise a pageout\rundo\rtouch 0x1000\r"
               "compare\r\x04", capsys, monkeypatch, tmp_path)
    compared = out.split("<session>: mainline")[1]
    assert "<session>:3  pid 1  touch a" in compared
    assert "madvise a pageout" not in compared and "0x1000" not in compared
    assert "mainline: 3 steps, 0 failed expectation(s), 0 refused" in compared
