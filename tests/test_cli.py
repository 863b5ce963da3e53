"""The command line: exit statuses, error lines, JSON Lines, compare."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
