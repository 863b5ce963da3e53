"""The command line: exit statuses, error lines, JSON Lines, compare."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmshell.commands import main

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_run_statuses(tmp_path: Path) -> None:
    ok = _write(tmp_path, "ok.mmsh", "mmap a 2M hugepage\ntouch a\nexpect pmd.a == huge\n")
    bad = _write(tmp_path, "bad.mmsh", "mmap a 2M hugepage\nexpect pmd.a == huge\n")
    refused = _write(tmp_path, "refused.mmsh", "mmap a 2M\nmunmap a+1:4K\nexpect pid == 2\n")
    r = CliRunner()
    assert r.invoke(main, ["run", "--quiet", ok]).exit_code == 0
    res = r.invoke(main, ["run", "--quiet", bad])
    assert res.exit_code == 1
    assert "bad.mmsh:2: expect: expected pmd.a == huge, actual none" in res.output
    res = r.invoke(main, ["run", "--quiet", refused])
    assert res.exit_code == 2
    assert "refused.mmsh:2: munmap: EINVAL: start 0x" in res.output
    assert "refused.mmsh:3" not in res.output          # the run stopped at the refusal
    res = r.invoke(main, ["run", "--quiet", "--keep-going", refused])
    assert res.exit_code == 2
    assert "refused.mmsh:3: expect: expected pid == 2, actual 1" in res.output


def test_syntax_error_runs_nothing(tmp_path: Path) -> None:
    f = _write(tmp_path, "syn.mmsh", "mmap a 2M\nmmpa b 2M\n")
    res = CliRunner().invoke(main, ["run", f])
    assert res.exit_code == 2
    assert "syn.mmsh:2: syntax: column 1: unknown command 'mmpa'" in res.output


def test_json_lines(tmp_path: Path) -> None:
    f = _write(tmp_path, "j.mmsh", "swapon s0 64M\nmmap a 2M hugepage\ntouch a\nmadvise a pageout\nshow swap\n")
    res = CliRunner().invoke(main, ["run", "--json", f])
    assert res.exit_code == 0
    objs = [json.loads(line) for line in res.output.splitlines()]
    assert [o.get("command") for o in objs[:-1]] == ["swapon s0 64M", "mmap a 2M hugepage", "touch a",
                                                     "madvise a pageout", "show swap"]
    assert objs[3]["changes"]["vmstat"]["thp_swpout_pmd"] == 1
    assert objs[4]["views"]["swap"]["devices"][0]["used"] == 512
    final = objs[-1]
    assert final["final"] and final["exit"] == 0 and final["vmstat"]["pswpout"] == 512


def test_compare_shows_both_modes(tmp_path: Path) -> None:
    f = _write(tmp_path, "c.mmsh", "swapon s0 64M\nmmap a 2M hugepage\ntouch a\nmadvise a pageout\n")
    res = CliRunner().invoke(main, ["compare", f])
    assert res.exit_code == 0
    assert "mainline" in res.output and "series" in res.output
    res = CliRunner().invoke(main, ["compare", "--json", f])
    objs = [json.loads(line) for line in res.output.splitlines()]
    pageout = {o["mode"]: o["changes"] for o in objs if o.get("command") == "madvise a pageout"}
    assert pageout["mainline"]["vmstat"]["thp_split_pmd"] == 1
    assert pageout["series"]["vmstat"]["thp_swpout_pmd"] == 1
    assert "thp_swpout_pmd" not in pageout["mainline"]["vmstat"]


def test_missing_file(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["run", str(tmp_path / "nope.mmsh")])
    assert res.exit_code == 2


def test_dash_c_fast_path_and_status() -> None:
    def mmshell(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mmshell.cli", *args], capture_output=True, text=True,
                              cwd=ROOT)
    r = mmshell("-c", "mmap a 2M hugepage; touch a; expect vmstat.thp_fault_alloc == 1")
    assert r.returncode == 0, r.stdout + r.stderr
    r = mmshell("-c", "expect vmstat.thp_fault_alloc == 1")
    assert r.returncode == 1
    r = mmshell("-c", "set pmd_swap off; expect vmstat.thp_swpout_pmd == 0")
    assert r.returncode == 2
    assert "exists only with the PMD swap entry series" in r.stdout
    assert "Traceback" not in r.stderr
    assert "click" not in mmshell("-c", "show meminfo").stderr


def test_plain_text_off_a_terminal_and_step_mode(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "mmshell.cli", "-c", "mmap a 2M hugepage; touch a; show pt"],
                       capture_output=True, text=True, cwd=ROOT, env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"})
    assert r.returncode == 0
    assert "\x1b[" not in r.stdout
    assert "huge" in r.stdout
    f = _write(tmp_path, "s.mmsh", "mmap a 2M\ntouch a\n")
    res = CliRunner().invoke(main, ["run", "--step", f], input="\n\n")
    assert res.exit_code == 0
    assert res.output.count("next:") == 2


def test_sourced_commands_get_their_own_step_summary(tmp_path: Path) -> None:
    _write(tmp_path, "inner.mmsh", "mmap a 2M hugepage\ntouch a\n")
    outer = _write(tmp_path, "outer.mmsh", "source inner.mmsh\nmadvise a pageout\n")
    res = CliRunner().invoke(main, ["run", outer])
    assert res.exit_code == 0, res.output
    assert "inner.mmsh:2  touch a" in res.output
    touch_part = res.output.split("inner.mmsh:2  touch a")[1].split("outer.mmsh:2")[0]
    assert "thp_fault_alloc +1" in touch_part            # what the sourced touch changed


def test_commands_piped_in_run_as_a_script() -> None:
    def mmshell(*args: str, stdin: bytes) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mmshell.cli", *args], input=stdin, capture_output=True,
                              cwd=ROOT)
    r = mmshell("--quiet", stdin=b"swapon s 8M\nmmap a 2M hugepage\ntouch a\nmadvise a pageout\nexpect pmd.a == swap\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert b"mmsh[" not in r.stdout                      # no prompt: it is not a terminal
    r = mmshell("run", "--quiet", "-", stdin=b"mmap a 2M\nmunmap a+1:4K\n")
    assert r.returncode == 2
    assert b"<stdin>:2: munmap: EINVAL: start 0x" in r.stdout
    r = mmshell(stdin=b"mmap a 2M\nab\xff\n")
    assert r.returncode == 2 and r.stderr == b"mmshell: <stdin>: not UTF-8 text (byte 0xff at offset 12)\n"


def test_run_runs_every_file_each_on_its_own_machine(tmp_path: Path) -> None:
    ok = _write(tmp_path, "ok.mmsh", "mmap a 2M\nexpect pid == 1\n")
    refused = _write(tmp_path, "refused.mmsh", "mmap a 2M\nmunmap a+1:4K\nfork\n")
    failed = _write(tmp_path, "failed.mmsh", "expect vmstat.pgfault == 1\n")
    fresh = _write(tmp_path, "fresh.mmsh", "mmap a 2M\nexpect pid == 1\n")      # a again: a fresh machine
    missing = str(tmp_path / "missing.mmsh")
    res = CliRunner().invoke(main, ["run", "--quiet", ok, refused, missing, failed, fresh])
    assert res.exit_code == 2, res.output
    lines = res.output.splitlines()
    assert f"{ok}: 2 steps, 0 failed expectation(s), 0 refused: ok" in lines
    assert f"{refused}: 2 steps, 0 failed expectation(s), 1 refused: refused" in lines
    assert f"mmshell: {missing}: No such file or directory" in lines
    assert f"{failed}: 1 step, 1 failed expectation(s), 0 refused: expectation failed" in lines
    assert f"{fresh}: 2 steps, 0 failed expectation(s), 0 refused: ok" in lines
    assert "5 scripts: 2 ok, 1 refused, 1 unreadable, 1 expectation failed: exit 2" in lines
    assert CliRunner().invoke(main, ["run", "--quiet", ok, failed, fresh]).exit_code == 1


def test_json_says_why_a_file_cannot_be_read(tmp_path: Path) -> None:
    ok = _write(tmp_path, "ok.mmsh", "fork\n")
    res = CliRunner().invoke(main, ["run", "--json", str(tmp_path), ok])
    assert res.exit_code == 2
    objs = [json.loads(line) for line in res.output.splitlines()]
    assert objs[0] == {"final": True, "source": str(tmp_path), "exit": 2, "steps": 0, "refused": 0,
                       "expectations_failed": 0, "error": f"mmshell: {tmp_path}: Is a directory"}
    assert objs[-1]["final"] and objs[-1]["source"] == ok and objs[-1]["exit"] == 0
    res = CliRunner().invoke(main, ["compare", "--json", str(tmp_path / "none.mmsh")])
    assert res.exit_code == 2 and json.loads(res.output)["error"].endswith("No such file or directory")


def test_ctrl_c_exits_2_everywhere(tmp_path: Path, monkeypatch) -> None:
    import click

    import mmshell.cli
    import mmshell.kernel.report
    import mmshell.report

    f = _write(tmp_path, "s.mmsh", "mmap a 2M\n")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt
    # reading the files, running, rendering: every command exits 2 with one line
    monkeypatch.setattr(mmshell.report, "read_sources", interrupt)
    for args in (["run", f], ["compare", f], ["kernel", "run", f], ["kernel", "diff", f], ["--json"]):
        res = CliRunner().invoke(main, args)
        assert (res.exit_code, res.output) == (2, "mmshell: interrupted\n"), args
    monkeypatch.undo()
    monkeypatch.setattr(mmshell.report.StepPrinter, "__call__", interrupt)
    res = CliRunner().invoke(main, ["run", f])
    assert (res.exit_code, "Aborted" in res.output) == (2, False)
    # click's own parsing, and the -c path
    monkeypatch.setattr(click.Command, "make_context", interrupt)
    # entry() ignores SIGINT as the process ends; the test process goes on, so that call is left out
    monkeypatch.setattr(signal, "signal", lambda signum, handler: None)
    monkeypatch.setattr(sys, "argv", ["mmshell", "run", f])
    with pytest.raises(SystemExit) as e:
        mmshell.cli.entry()
    assert e.value.code == 2
    monkeypatch.setattr(mmshell.report, "run_sources", interrupt)
    monkeypatch.setattr(sys, "argv", ["mmshell", "-c", "fork"])
    with pytest.raises(SystemExit) as e:
        mmshell.cli.entry()
    assert e.value.code == 2
    # kernel run, interrupted while it runs on the live machine
    monkeypatch.setattr(mmshell.kernel.report, "run_script_live", interrupt)
    assert mmshell.kernel.report.run_live([("s.mmsh", "fork\n")]) == 2


def test_ctrl_c_at_a_step_prompt_exits_2(tmp_path: Path) -> None:
    import os
    import signal

    f = _write(tmp_path, "s.mmsh", "mmap a 2M\ntouch a\n")
    # (a background job inherits SIGINT ignored, and Python then leaves it so: restore it)
    p = subprocess.Popen([sys.executable, "-m", "mmshell.cli", "run", "--step", f], cwd=ROOT, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = b""
    while b"[Enter/space]" not in seen:
        chunk = os.read(p.stdout.fileno(), 4096)
        assert chunk, seen
        seen += chunk
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert (p.returncode, err) == (2, b"mmshell: interrupted\n")
