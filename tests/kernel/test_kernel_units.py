"""The live runner's parts that need no root: decoding, mapping, refusals, bookkeeping.

Nothing here touches a swap device or a sysfs knob.  The worker-process test forks
ordinary processes (no root needed) and maps a few pages in them.
"""

from __future__ import annotations

import ast
import os
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest

from mmshell.kernel import syscalls as sc
from mmshell.kernel.devices import write_swap_header
from mmshell.kernel.diff import SKIPPED, Side, compare_runs, known_differences
from mmshell.kernel.observe import NotObservable
from mmshell.lang.expectation import PathError, compare, parse_expected
from mmshell.kernel.procfs import PagemapEntry, smaps
from mmshell.kernel.runner import (LiveSession, Refused, Unsupported, live_priorities,
                                   script_priorities)
from mmshell.kernel.shadow import Shadow
from mmshell.lang.parser import parse_line, parse_script

KERNEL_PKG = Path(__file__).resolve().parents[2] / "mmshell" / "kernel"


# -- pagemap -----------------------------------------------------------------------------------------

def test_pagemap_swap_entry_decodes_type_and_offset() -> None:
    word = (1 << 62) | (1 << 57) | 3 | (0x2A5 << 5)
    e = PagemapEntry(word)
    assert (e.present, e.swapped, e.uffd_wp, e.exclusive) == (0, 1, 1, 0)
    assert (e.swap_type, e.swap_offset, e.pfn) == (3, 0x2A5, 0)


def test_pagemap_present_entry_decodes_pfn_and_flags() -> None:
    word = (1 << 63) | (1 << 61) | (1 << 56) | 0x12345
    e = PagemapEntry(word)
    assert (e.present, e.swapped, e.file, e.exclusive) == (1, 0, 1, 1)
    assert (e.pfn, e.swap_type, e.swap_offset) == (0x12345, 0, 0)


def test_pagemap_empty_entry() -> None:
    e = PagemapEntry(0)
    assert (e.present, e.swapped, e.pfn, e.swap_offset) == (0, 0, 0, 0)


# -- uapi numbers ------------------------------------------------------------------------------------

def test_ioctl_numbers_match_the_uapi_headers() -> None:
    assert sc.UFFDIO_API == 0xC018AA3F
    assert sc.UFFDIO_REGISTER == 0xC020AA00
    assert sc.UFFDIO_MOVE == 0xC028AA05
    assert sc.PAGEMAP_SCAN == 0xC0606610


def test_swap_header_is_what_mkswap_writes(tmp_path: Path) -> None:
    f = tmp_path / "swap"
    f.write_bytes(bytes(64 << 10))
    write_swap_header(str(f), 64 << 10)
    page = f.read_bytes()[:4096]
    assert page[4086:] == b"SWAPSPACE2"
    version, last_page, nr_bad = struct.unpack_from("<III", page, 1024)
    assert (version, last_page, nr_bad) == (1, 15, 0)


# -- priorities, known differences, expectations ----------------------------------------------------------

def test_script_priorities_follow_the_kernel_defaults() -> None:
    cmds = parse_script("swapon a 1M\nswapon b 1M prio 10\n@1 swapon c 1M\nif thp never: swapon d 1M prio 3")
    assert script_priorities(cmds) == [-2, 10, -3, 3]


def test_live_priorities_keep_the_order_above_other_devices() -> None:
    live = live_priorities([-2, 10, -3, 3, 10], floor=7)
    assert live == {-3: 8, -2: 9, 3: 10, 10: 11}


def test_known_difference_comments() -> None:
    text = ("# known difference: the whole file\nmmap a 2M\n")
    assert known_differences(text) == ({}, "the whole file")
    text = ("mmap a 2M\ntouch a   # known difference: on the line\n"
            "# known difference: before a command,\n# continued\n\nmadvise a pageout\n")
    lines, whole = known_differences(text)
    assert whole is None
    assert lines == {2: "on the line", 6: "before a command, continued"}


def test_parse_expected_and_compare() -> None:
    assert parse_expected("2048kB", "smaps.a.Rss") == 2048
    assert parse_expected("0x200", "pagemap.a.swap_offset") == 512
    assert parse_expected("huge", "pmd.a") == "huge"
    assert compare(3, ">=", 2)
    with pytest.raises(PathError):
        compare("huge", "<", "table")
    with pytest.raises(PathError):
        compare(1, "==", "huge")


# -- the shadow ----------------------------------------------------------------------------------------------

def test_shadow_lazyfree_accepts_old_value_or_zero() -> None:
    sh = Shadow()
    sh.write(1, 0x1000, 2, 100)
    sh.lazyfree(1, 0x1000)
    assert sh.expected(1, 0x1000) == (100, 0)
    assert sh.expected(1, 0x2000) == (101,)
    sh.write(1, 0x1000, 1, 7)
    assert sh.expected(1, 0x1000) == (7,)


def test_shadow_fork_move_and_zero() -> None:
    sh = Shadow()
    sh.write(1, 0x1000, 3, 10)
    sh.copy_process(1, 2)
    sh.move(2, 0x1000, 0x9000, 0x2000)
    assert sh.expected(2, 0x9000) == (10,) and sh.expected(2, 0x1000) == (0,)
    assert sh.expected(2, 0x3000) == (12,)
    assert sh.expected(1, 0x1000) == (10,)
    sh.zero(1, 0x1000, 0x3000)
    assert sh.pages(1) == [0x3000]


# -- refusals -------------------------------------------------------------------------------------------------

def _session() -> LiveSession:
    machine = SimpleNamespace(tunables=None, has_series=False, devices=None, procs=None, baseline=None)
    return LiveSession(machine)  # type: ignore[arg-type]


@pytest.mark.parametrize("line, words", [
    ("set fail thp_alloc on", "set fail"),
    ("set ram 64M", "set ram"),
    ("trace on", "ftrace"),
    ("reclaim", "global reclaim"),
    ("@1 reclaim 2M", "global reclaim"),
])
def test_unsupported_commands_are_refused_with_a_reason(line: str, words: str) -> None:
    s = _session()
    with pytest.raises(Unsupported) as e:
        _dispatch(s, line)
    assert "not supported on the live kernel" in str(e.value)
    assert words in str(e.value)


def _dispatch(s: LiveSession, line: str) -> None:
    from mmshell.kernel.runner import HANDLERS
    cmd = parse_line(line)[0]
    if cmd.name == "at":            # skip the pid check: there is no worker here
        cmd = cmd.args["command"]
    HANDLERS[cmd.name](s, cmd)


def test_pmd_swap_on_is_refused_without_the_series() -> None:
    s = _session()
    with pytest.raises(Refused) as e:
        _dispatch(s, "set pmd_swap on")
    assert "lacks the PMD swap entry series" in str(e.value)
    assert "thp_swpout_pmd" in str(e.value)
    _dispatch(s, "set pmd_swap off")             # mainline: nothing to do


def test_sources_are_bounded_as_in_the_simulator(tmp_path: Path) -> None:
    """`source` of a device, a directory or a loop is refused before anything runs."""
    from mmshell.kernel.runner import run_live_text
    (tmp_path / "self.mmsh").write_text("source self.mmsh\n")
    for text, errno in [("source /dev/zero", "EINVAL"), ("source .", "EISDIR"), ("source self.mmsh", "ELOOP"),
                        ("source missing.mmsh", "ENOENT")]:
        seen = []
        out = run_live_text(_session(), text + "\n", "t.mmsh", seen.append, base=tmp_path)
        assert out.exit_status() == 2 and f"source: {errno}: " in seen[-1].error, (text, seen[-1].error)


def test_missing_requirements_exit_2(monkeypatch, capsys) -> None:
    from mmshell.kernel import machine, report
    monkeypatch.setattr(machine, "missing_requirements", lambda: ["root (running as uid 1000)"])
    status = report.run_live([("x.mmsh", "mmap a 2M\n")])
    assert status == 2
    err = capsys.readouterr().err
    assert "cannot run on the live kernel" in err and "root" in err


# -- diff comparison ------------------------------------------------------------------------------------------

def _side(text: str, line: int, **kw) -> Side:
    return Side(kind=kw.pop("kind", "ok"), error=kw.pop("error", None), text=text, line=line,
                source="t.mmsh", **kw)


def test_compare_runs_reports_values_and_counter_changes() -> None:
    kern = [_side("madvise a pageout", 1, changed=True, counters={"vmstat.thp_split_pmd": 1}),
            _side("expect smaps.a.Rss == 0", 2, path="smaps.a.Rss", value=4),
            _side("expect vmstat.pgfault > 0", 3, path="vmstat.pgfault", value=99, held=True),
            _side("if thp never: expect pmd.a == huge", 4, path="pmd.a", value=SKIPPED)]
    sim = [_side("madvise a pageout", 1, changed=True, counters={"vmstat.thp_split_pmd": 1}),
           _side("expect smaps.a.Rss == 0", 2, path="smaps.a.Rss", value=0),
           _side("expect vmstat.pgfault > 0", 3, path="vmstat.pgfault", value=5, held=True),
           _side("if thp never: expect pmd.a == huge", 4, path="pmd.a", value=SKIPPED)]
    diffs, stats = compare_runs("t.mmsh", kern, sim)
    assert [(d.line, d.what, d.kernel, d.simulator) for d in diffs] == [(2, "smaps.a.Rss", "4", "0")]
    assert stats["expects"] == 2


def test_compare_runs_leaves_out_thp_counters_under_always_and_io_timing() -> None:
    kern = [_side("touch a", 1, changed=True, counters={"vmstat.thp_fault_alloc": 23}),
            _side("check a", 2, changed=True, async_swapin=True,
                  counters={"vmstat.pgmajfault": 67, "vmstat.pswpin": 512})]
    sim = [_side("touch a", 1, changed=True, counters={"vmstat.thp_fault_alloc": 1}, thp_always=True),
           _side("check a", 2, changed=True, counters={"vmstat.pgmajfault": 64, "vmstat.pswpin": 511})]
    diffs, stats = compare_runs("t.mmsh", kern, sim)
    assert [(d.what, d.kernel, d.simulator) for d in diffs] == [("vmstat.pswpin change", "+512", "+511")]
    assert stats["io_timing"] == 1


def test_compare_runs_refusal_on_one_side() -> None:
    kern = [_side("reclaim", 1, kind="refused", error="t.mmsh:1: reclaim: not supported")]
    sim = [_side("reclaim", 1, changed=True)]
    diffs, _ = compare_runs("t.mmsh", kern, sim)
    assert diffs[0].what == "refused"


# -- layering -------------------------------------------------------------------------------------------------

def test_live_runner_does_not_import_the_simulator() -> None:
    """Only diff.py (the simulator side of `kernel diff`) may use mm/ and the simulator's runner."""
    bad = []
    for path in sorted(KERNEL_PKG.glob("*.py")):
        if path.name == "diff.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                mod = ("." * node.level) + (node.module or "")
                if mod.startswith("..mm") or mod.startswith("mmshell.mm") or mod in (
                        "..lang.runner", "..lang.session", "..lang.execute", "..lang.expect"):
                    bad.append(f"{path.name}: from {mod}")
    assert not bad, bad


# -- worker processes (fork, no root needed) -------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs pidfd_open (Linux 5.3+)")
def test_workers_map_write_fork_read_and_exit() -> None:
    from mmshell.kernel.process import Processes, WorkerError

    procs = Processes()
    try:
        procs.start()
        addr = procs.call(1, "mmap", 0, 4 * 4096, sc.PROT_READ | sc.PROT_WRITE, None)
        procs.call(1, "write", [(addr, 4, 500)])
        child = procs.fork(1)
        assert procs.call(child.spid, "read", [(addr, 4)]) == [500, 501, 502, 503]
        procs.call(child.spid, "write", [(addr, 1, 9)])
        assert procs.call(1, "read", [(addr, 1)]) == [500]       # copy-on-write
        with pytest.raises(WorkerError) as e:
            procs.call(1, "munmap", addr + 1, 4096)
        assert e.value.errno_name == "EINVAL"
        procs.exit(child.spid)
        assert not child.alive
        maps = [v for v in smaps(procs.get(1).pid) if v.start == addr]
        assert maps and maps[0].fields["Rss"] == 16
    finally:
        procs.close_all()


def test_not_observable_is_an_exception_type() -> None:
    assert issubclass(NotObservable, Exception)


def test_copies_of_simulator_constants_agree() -> None:
    """The live runner cannot import mm/, so it keeps copies: they must stay equal."""
    from mmshell.kernel import observe, runner
    from mmshell.mm.constants import MMAP_BASE
    from mmshell.mm.task_mmu import SMAPS_FIELDS

    assert runner.MMAP_BASE == MMAP_BASE
    assert observe.SMAPS_FIELDS == SMAPS_FIELDS
