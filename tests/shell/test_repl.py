"""The interactive shell, driven through a pipe (prompt_toolkit's create_pipe_input)."""

from __future__ import annotations

from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from mmshell.shell.repl import prompt_text, run_shell
from mmshell.lang.session import Session


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
    assert "expect" not in out          # a held expectation prints nothing
    assert (tmp_path / "history").read_text().count("+") >= 5


def test_errors_print_one_line_and_the_prompt_returns(capsys, monkeypatch, tmp_path) -> None:
    out = _run("mmpa a 2M\rmunmap nosuch\rmmap a 2M\rtouch a+0x1001:4K\rexpect pid == 2\r\x04",
               capsys, monkeypatch, tmp_path)
    lines = [line for line in out.splitlines() if line.startswith("<stdin>:")]
    assert len(lines) == 4, out
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
