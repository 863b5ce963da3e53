"""`timing on|off`: each step's wall time after it, in the simulator's and the live runner's printers."""

from __future__ import annotations

import io
import json
import re

from mmshell.lang.backend import StepOutput
from mmshell.lang.control import do_timing
from mmshell.lang.parser import parse_line
from mmshell.lang.step_loop import StepRecord
from mmshell.lang.session import Session
from mmshell.report import StepPrinter, run_sources

TIME = re.compile(r"^  time: \d+\.\d{3} ms$")


def _run(capsys, text: str, **kw) -> list[str]:
    run_sources([("t.mmsh", text)], **kw)
    return capsys.readouterr().out.splitlines()


def test_each_step_between_on_and_off_prints_its_time(capsys):
    lines = _run(capsys, "mmap a 2M\ntiming on\ntouch a\nmunmap 0x1000\nexpect fails touch 0x1\ntiming off\n"
                         "touch a\n")
    timed = [i for i, line in enumerate(lines) if TIME.match(line)]
    steps = [i for i, line in enumerate(lines) if line.startswith("t.mmsh:")]
    # the steps after `timing on` up to `timing off` (not the two switches themselves)
    assert [max(s for s in steps if s < i) for i in timed] == steps[2:5]


def test_a_refused_step_is_timed_too(capsys):
    lines = _run(capsys, "timing on\nmunmap nosuch\n")
    assert lines[-3].startswith("t.mmsh:2: munmap:") and TIME.match(lines[-2])


def test_json_and_quiet_print_no_time_line(capsys):
    lines = _run(capsys, "timing on\nmmap a 2M\n", json_mode=True)
    steps = [json.loads(line) for line in lines]
    assert not any("time:" in line for line in lines)
    assert all("ms" in s for s in steps if not s.get("final"))
    assert not any(TIME.match(line) for line in _run(capsys, "timing on\nmmap a 2M\n", quiet=True))


class _Live:
    """The part of a live session `timing` writes (kernel/session.py's LiveSession.timing)."""

    timing = False


def test_timing_runs_over_the_backend_and_a_timed_record_prints_its_time():
    """The live runner's records carry `ms` and `timed` as the simulator's do (kernel/runner.py),
    and kernel run prints them with the same step printer."""
    b = _Live()
    do_timing(b, parse_line("timing on")[0])     # type: ignore[arg-type]
    assert b.timing is True
    out = io.StringIO()
    rec = StepRecord("k.mmsh", 2, parse_line("switch 1")[0], ms=12.5, timed=True,
                     output=StepOutput(lines=["pid 1"], changed=False))
    StepPrinter(Session.boot(), stream=out, echo=False)(rec)
    assert out.getvalue().splitlines()[-1] == "  time: 12.500 ms"
    quiet = io.StringIO()
    StepPrinter(Session.boot(), stream=quiet, quiet=True)(rec)
    assert quiet.getvalue() == ""
