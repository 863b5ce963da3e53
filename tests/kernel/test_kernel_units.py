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
from mmshell.kernel.diff import SKIPPED, Side, compare_runs, known_differences, refusal_errno
from mmshell.kernel.observe import NotObservable
from mmshell.lang.expect_values import PathError, compare, parse_expected
from mmshell.kernel.procfs import smaps
from mmshell.mm.task_mmu import PagemapEntry
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


class _DictShadow:
    """The shadow page by page: the model the run-length Shadow must agree with."""

    def __init__(self) -> None:
        self.v: dict[int, dict[int, int]] = {}
        self.lz: dict[int, dict[int, int]] = {}

    def write(self, pid: int, start: int, n: int, first: int) -> None:
        for i in range(n):
            self.v.setdefault(pid, {})[start + i * 4096] = first + i
            self.lz.setdefault(pid, {}).pop(start + i * 4096, None)

    def zero(self, pid: int, start: int, end: int) -> None:
        for d in (self.v.setdefault(pid, {}), self.lz.setdefault(pid, {})):
            for p in [p for p in d if start <= p < end]:
                del d[p]

    def madv_free(self, pid: int, start: int, end: int, present: list[tuple[int, int]]) -> None:
        for p in range(start, end, 4096):
            if any(a <= p < b for a, b in present):
                if p in self.v.get(pid, {}):
                    self.lz.setdefault(pid, {})[p] = self.v[pid].pop(p)
            else:
                self.zero(pid, p, p + 4096)

    def move(self, pid: int, src: int, dst: int, length: int) -> None:
        mv = {p - src + dst: x for p, x in self.v.get(pid, {}).items() if src <= p < src + length}
        ml = {p - src + dst: x for p, x in self.lz.get(pid, {}).items() if src <= p < src + length}
        self.zero(pid, src, src + length)
        self.zero(pid, dst, dst + length)
        self.v[pid].update(mv)
        self.lz[pid].update(ml)

    def copy_process(self, parent: int, child: int) -> None:
        self.v[child] = dict(self.v.get(parent, {}))
        self.lz[child] = dict(self.lz.get(parent, {}))

    def expected(self, pid: int, page: int) -> tuple[int, ...]:
        if page in self.lz.get(pid, {}):
            return (self.lz[pid][page], 0)
        return (self.v.get(pid, {}).get(page, 0),)


def test_the_run_length_shadow_agrees_with_a_page_by_page_one() -> None:
    import random

    rng = random.Random(14)
    for _ in range(200):
        sh, model = Shadow(), _DictShadow()
        for _ in range(12):
            pid = rng.choice((1, 2))
            a, b = sorted(rng.sample(range(0, 40), 2))
            lo, hi = a * 4096, b * 4096
            op = rng.choice(("write", "zero", "free", "move", "fork"))
            if op == "write":
                for x in (sh, model):
                    x.write(pid, lo, b - a, 1000 * (a + 1))
            elif op == "zero":
                for x in (sh, model):
                    x.zero(pid, lo, hi)
            elif op == "free":
                c, d = sorted(rng.sample(range(a, b + 1), 2)) if b - a >= 1 else (a, a)
                for x in (sh, model):
                    x.madv_free(pid, lo, hi, [(c * 4096, d * 4096)])
            elif op == "move":
                dst = rng.randrange(0, 40) * 4096
                for x in (sh, model):
                    x.move(pid, lo, dst, hi - lo)
            else:
                for x in (sh, model):
                    x.copy_process(1, 2)
            for p in (1, 2):
                assert [sh.expected(p, q * 4096) for q in range(90)] == \
                    [model.expected(p, q * 4096) for q in range(90)], (op, a, b)


def test_a_touch_of_64g_is_one_run() -> None:
    sh = Shadow()
    sh.write(1, 1 << 32, 16 << 20, 5)
    sh.madv_free(1, 1 << 32, (1 << 32) + (64 << 30), [((1 << 32) + (1 << 30), (1 << 32) + (2 << 30))])
    assert len(sh.values[1].runs) == 0 and len(sh.lazy[1].runs) == 1      # the rest was not present: zero
    assert sh.expected(1, (1 << 32) + (1 << 30)) == (5 + (1 << 18), 0)


# -- refusals -------------------------------------------------------------------------------------------------

def _session() -> LiveSession:
    machine = SimpleNamespace(tunables=None, has_series=False, devices=None, procs=None, baseline=None,
                              cgroup=None)
    return LiveSession(machine)  # type: ignore[arg-type]


@pytest.mark.parametrize("line", [
    "munmap 0x10000:4K", "mprotect 0x10000:4K r", "madvise 0x10000:4K dontneed", "touch 0x10000",
    "touch a:4M", "check a+1M:2M", "mremap 0x10000:4K z", "uffd register 0x7f0000000000:4K",
    "madvise a+2M:4K pageout", "munmap 0x7dffff000000:4K",
])
def test_absolute_ranges_outside_the_scripts_regions_are_refused(line: str) -> None:
    """Nothing outside what the script mapped (the worker's heap, its stack) is ever acted on:
    the refusal comes before any call into the worker (this session has none)."""
    s = _session()
    s.names()["a"] = (0x7DFFFFC00000, 2 << 20)
    s.regions[2] = {"b": (0x7DFFFF000000, 2 << 20)}         # another process's region
    with pytest.raises(Refused) as e:
        _dispatch(s, line)
    assert str(e.value).startswith("EPERM: ") and "outside the script's regions of pid 1" in str(e.value)


def test_own_range_is_the_union_of_the_regions() -> None:
    s = _session()
    s.names().update({"a": (0x10000000, 0x2000), "b": (0x10002000, 0x1000), "c": (0x10001000, 0x3000)})
    s.own_range(0x10000000, 0x4000, "munmap")
    with pytest.raises(Refused, match="reaches 0x10004000"):
        s.own_range(0x10000000, 0x5000, "munmap")


@pytest.mark.parametrize("line, limit", [
    ("touch a:65G", "64G per touch"), ("check a:65G", "64G per check"),
    ("show pagemap a:65G", "64G per show pagemap"), ("uffd move a:65G b", "64G per uffd move"),
])
def test_ranges_walked_page_by_page_keep_the_simulators_limit(line: str, limit: str) -> None:
    s = _session()
    s.names()["a"] = (0x10000000, 65 << 30)
    s.names()["b"] = (0x10000000 + (65 << 30), 65 << 30)
    with pytest.raises(Refused, match=f"EINVAL: a range of 66560M: beyond the simulation's limit of {limit}"):
        _dispatch(s, line)


@pytest.mark.parametrize("line, words", [
    ("set fail thp_alloc on", "set fail"),
    ("set ram 64M", "set ram"),
    ("trace on", "ftrace"),
    ("reclaim", "no memory cgroup"),
])
def test_unsupported_commands_are_refused_with_a_reason(line: str, words: str) -> None:
    s = _session()
    with pytest.raises(Unsupported) as e:
        _dispatch(s, line)
    assert "not supported on the live kernel" in str(e.value)
    assert words in str(e.value)


def _dispatch(s: LiveSession, line: str) -> None:
    from mmshell.kernel.runner import live_handler
    cmd = parse_line(line)[0]
    if cmd.name == "at":            # skip the pid check: there is no worker here
        cmd = cmd.args["command"]
    live_handler(cmd)(s, cmd)


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


def test_compare_runs_compares_the_errno_of_a_refusal_both_sides_made() -> None:
    """Both refused, or both `expect fails` held: the errno must agree too."""
    kern = [_side("expect fails uffd move a b", 1, refusal="EINVAL"),
            _side("expect fails mremap a:2M c", 2, refusal="EFAULT"),
            _side("uffd move a b", 3, kind="refused", error="t.mmsh:3: uffd move: EINVAL: ...", refusal="EINVAL")]
    sim = [_side("expect fails uffd move a b", 1, refusal="ENOENT"),
           _side("expect fails mremap a:2M c", 2, refusal="EFAULT"),
           _side("uffd move a b", 3, kind="refused", error="t.mmsh:3: uffd move: EBUSY: ...", refusal="EBUSY")]
    diffs, _ = compare_runs("t.mmsh", kern, sim)
    assert [(d.line, d.what, d.kernel, d.simulator) for d in diffs] == [
        (1, "errno", "EINVAL", "ENOENT"), (3, "errno", "EINVAL", "EBUSY")]


def test_refusal_errno_reads_a_refused_step_and_an_expect_fails() -> None:
    from mmshell.lang.backend import StepOutput
    from mmshell.lang.step_loop import StepRecord

    def rec(kind: str, error: str | None = None, line: str | None = None) -> StepRecord:
        r = StepRecord(source="t.mmsh", line=1, command=None, kind=kind, error=error)
        if line is not None:
            r.output = StepOutput(changed=False, lines=[line])
        return r

    assert refusal_errno(rec("refused", "t.mmsh:3: uffd move: EINVAL: ioctl(UFFDIO_MOVE, ...)")) == "EINVAL"
    assert refusal_errno(rec("refused", "t.mmsh:3: touch: SIGSEGV: write to read-only mapping")) == "SIGSEGV"
    assert refusal_errno(rec("ok", line="refused as expected: ENOENT: source page 0x1000 is not populated")) \
        == "ENOENT"
    assert refusal_errno(rec("refused", "t.mmsh:1: reclaim: not supported on the live kernel")) is None
    assert refusal_errno(rec("ok", line="16 pages written")) is None


# -- layering -------------------------------------------------------------------------------------------------

#: What the live runner may take from mm/: the kernel's vocabulary (types, field lists, sizes),
#: declared once there, never the simulator's behaviour.
MM_VOCABULARY = {"SMAPS_FIELDS", "Madv", "PagemapEntry", "VM", "SwapKind"}


def test_live_runner_does_not_import_the_simulator() -> None:
    """Only diff.py (the simulator side of `kernel diff`) may use mm/ and the simulator's runner
    (the rest may read mm/constants.py: the simulator's limits apply to live runs too, and the
    kernel's vocabulary in MM_VOCABULARY)."""
    bad = []
    for path in sorted(KERNEL_PKG.glob("*.py")):
        if path.name == "diff.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                mod = ("." * node.level) + (node.module or "")
                if mod == "..mm.constants":          # the machine's sizes and the limits: facts, not the simulator
                    continue
                if {a.name for a in node.names} <= MM_VOCABULARY:
                    continue
                if mod.startswith("..mm") or mod.startswith("mmshell.mm") or mod in (
                        "..lang.runner", "..lang.session", "..lang.execute", "..lang.sim_observer"):
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
        child = procs.fork(1, [])
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


def test_unshare_fills_small_mappings_in_use_and_leaves_untouched_ones() -> None:
    """A worker fills its small anonymous mappings that have a page present (the interpreter's
    arenas) before it joins `work`, so none of their pages is first touched, and charged to
    the script, while a step runs; an untouched one (the drain page) and the script's regions
    (`exclude`) are left as they are.  Run in a forked process: it writes its own memory."""
    from mmshell.kernel import procfs
    from mmshell.kernel.process import unshare_pages

    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            rw, n = sc.PROT_READ | sc.PROT_WRITE, 16
            base = sc.mmap(0, 3 * (n + 1) * 4096, rw, sc.MAP_PRIVATE)
            used, untouched, region = (base + i * (n + 1) * 4096 for i in range(3))
            for a in (untouched, region):           # a hole before each: three VMAs
                sc.munmap(a - 4096, 4096)
            sc.store(used, b"x")
            sc.store(region, b"x")
            unshare_pages([(region, n * 4096)])
            me = os.getpid()
            present = [sum(w >> 63 for w in procfs.pagemap_words(me, a, n))
                       for a in (used, untouched, region)]
            code = 0 if present == [n, 0, 1] else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_differing_reclaim_names_a_running_damon_monitor(monkeypatch) -> None:
    """A DAMON monitor clears the accessed bits of the pages it samples: `kernel diff` says so
    under a `reclaim` that differs, only there, and only when one runs."""
    from mmshell.kernel import diff, procfs

    at_reclaim = [diff.Difference("s.mmsh", 3, "reclaim", "vmstat.pgactivate change", 0, 512)]
    at_touch = [diff.Difference("s.mmsh", 2, "touch a", "vmstat.pgfault change", 1, 2)]
    monkeypatch.setattr(procfs, "kernel_threads_named", lambda prefix: ["kdamond.0"])
    note = diff.damon_note(at_reclaim)
    assert note is not None and "kdamond.0" in note and "accessed bits" in note
    assert diff.damon_note(at_touch) is None
    monkeypatch.setattr(procfs, "kernel_threads_named", lambda prefix: [])
    assert diff.damon_note(at_reclaim) is None


def test_tasks_are_found_by_name() -> None:
    """This test's own process is found by its name (comm), as a kdamond thread would be."""
    from mmshell.kernel import procfs

    me = Path("/proc/self/comm").read_text().strip()
    assert me in procfs.kernel_threads_named(me)


def test_the_live_runner_shares_the_languages_vocabulary() -> None:
    """What both backends name is declared once: the live side imports it, never copies it."""
    from mmshell.kernel import observer, procfs
    from mmshell.lang import backend

    assert observer.PagemapEntry is PagemapEntry and not hasattr(procfs, "PagemapEntry")
    assert NotObservable is backend.NotObservable


# -- the workers' memory cgroup, on a stand-in hierarchy ----------------------------------------------------------

def _fake_hierarchy(tmp_path: Path, monkeypatch, version: int, own_busy: bool = False) -> Path:
    """A directory standing in for a cgroup mount with this process in /runner.  With own_busy,
    enabling the memory controller below /runner fails as it does (EBUSY) when /runner has
    processes of its own (cgroup v2's "no internal processes" rule)."""
    import errno
    import shutil
    from mmshell.kernel import cgroup

    mount = tmp_path / "cg"
    own = mount / "runner"
    own.mkdir(parents=True)
    (mount / "cgroup.controllers").write_text("cpu memory io\n")
    (mount / "cgroup.subtree_control").write_text("memory\n")
    (own / "cgroup.subtree_control").write_text("")

    def write(path: Path, value: str) -> None:
        if own_busy and path == own / "cgroup.subtree_control":
            raise OSError(errno.EBUSY, "Device or resource busy")
        Path(path).write_text(value)

    def mkdir(path: Path, mode: int) -> None:          # a cgroup comes with its cgroup.procs
        os.mkdir(path, mode)
        (Path(path) / "cgroup.procs").write_text("")

    fake_os = SimpleNamespace(**{k: getattr(os, k) for k in dir(os) if not k.startswith("__")})
    fake_os.mkdir, fake_os.rmdir = mkdir, shutil.rmtree     # a cgroup goes with its files
    monkeypatch.setattr(cgroup, "_write", write)
    monkeypatch.setattr(cgroup, "os", fake_os)
    monkeypatch.setattr(cgroup, "_mounts", lambda: [(str(mount), "/", "cgroup2" if version == 2 else "cgroup",
                                                     "rw" if version == 2 else "rw,memory")])
    monkeypatch.setattr(cgroup, "_own_cgroups", lambda: {"": "/runner"} if version == 2 else {"memory": "/runner"})
    monkeypatch.setattr(cgroup, "memtotal", lambda: 8 << 30)
    return mount


@pytest.mark.parametrize("version, busy", [(1, False), (2, False), (2, True)])
def test_the_workers_cgroup_is_made_limited_journaled_and_removed(tmp_path: Path, monkeypatch, version: int,
                                                                  busy: bool) -> None:
    from mmshell.kernel.cgroup import MemoryCgroup
    from mmshell.kernel.journal import Journal

    mount = _fake_hierarchy(tmp_path, monkeypatch, version, busy)
    j = Journal(None)
    cg = MemoryCgroup.create(j)
    parent = mount if busy else mount / "runner"          # v2: under the root when the own cgroup is busy
    assert cg.top.parent == parent and cg.version == version
    limit = "memory.max" if version == 2 else "memory.limit_in_bytes"
    assert (cg.top / limit).read_text() == str(4 << 30)    # half the machine
    if version == 2:
        assert (cg.top / "cgroup.subtree_control").read_text() == "+memory"
    assert [s.args["path"] for s in j.steps] == [str(cg.top), str(cg.stage), str(cg.work)]
    assert all(isinstance(s.args["ino"], int) for s in j.steps)
    assert cg.remove() == [] and j.steps == [] and not cg.top.exists()


@pytest.mark.parametrize("version, size, writes", [
    (1, None, [("memory.force_empty", "0")]),
    (1, 2 << 20, [("memory.limit_in_bytes", str((10 << 20) - (2 << 20))), ("memory.limit_in_bytes", "-1")]),
    (2, None, [("memory.reclaim", str(6 << 20))]),
    (2, 2 << 20, [("memory.reclaim", str(2 << 20))]),
])
def test_reclaim_asks_the_work_cgroup(tmp_path: Path, monkeypatch, version: int, size, writes) -> None:
    from mmshell.kernel import cgroup

    work = tmp_path / "top" / "work"
    work.mkdir(parents=True)
    (work / "memory.stat").write_text("rss 4194304\ncache 2097152\n" if version == 1
                                      else "anon 4194304\nfile 2097152\n")
    (work / "memory.usage_in_bytes").write_text(str(10 << 20))
    monkeypatch.setattr(cgroup, "swapouts", lambda: 0)
    monkeypatch.setattr(cgroup, "thp_splits", lambda: 0)
    seen: list[tuple[str, str]] = []
    monkeypatch.setattr(cgroup, "_write", lambda path, value: seen.append((Path(path).name, value)))
    freed, passes = cgroup.MemoryCgroup(version, tmp_path / "top").reclaim(size)
    assert seen == writes and (freed, passes) == (0, 1)     # nothing freed here: one pass, then it stops


def test_reclaim_goes_on_while_a_pass_writes_to_swap(tmp_path: Path, monkeypatch) -> None:
    """memory.stat lags (here it never moves); /proc/vmstat's swap-outs do not.  Each pass is
    followed by `settle` (the runner waits there for the swap writes to end), and the passes
    go on while one wrote pages to swap: the next frees the folios the last one wrote."""
    from mmshell.kernel import cgroup

    work = tmp_path / "top" / "work"
    work.mkdir(parents=True)
    (work / "memory.stat").write_text("rss 4194304\ncache 0\n")
    written = iter([0, 16, 16, 16, 16])        # pswpout before and after each pass: 16 in the first
    settled: list[int] = []
    monkeypatch.setattr(cgroup, "swapouts", lambda: next(written))
    monkeypatch.setattr(cgroup, "thp_splits", lambda: 0)
    monkeypatch.setattr(cgroup, "_write", lambda path, value: None)
    _freed, passes = cgroup.MemoryCgroup(1, tmp_path / "top").reclaim(None, lambda: settled.append(1))
    assert passes == 2 and len(settled) == 2     # a pass that wrote, then one that made no progress


@pytest.mark.parametrize("version", [1, 2])
def test_reclaim_counts_the_swap_cache_as_progress(tmp_path: Path, monkeypatch, version: int) -> None:
    """A pass that frees only folios left in the swap cache (written to a disk earlier) moves
    neither "rss"/"anon" nor "cache"/"file" on 6.18, only "swapcached": that is progress, and
    the next pass runs (kernel fuzz seed 16161 script 2321: the next pass takes a THP the first
    one activated; here it frees nothing, and the reclaim stops after it)."""
    from mmshell.kernel import cgroup

    work = tmp_path / "top" / "work"
    work.mkdir(parents=True)
    anon, file = ("rss", "cache") if version == 1 else ("anon", "file")
    (work / "memory.stat").write_text(f"{anon} 2097152\n{file} 0\nswapcached 2097152\n")
    monkeypatch.setattr(cgroup, "swapouts", lambda: 0)
    monkeypatch.setattr(cgroup, "thp_splits", lambda: 0)
    monkeypatch.setattr(cgroup, "_write", lambda path, value: (work / "memory.stat").write_text(
        f"{anon} 2097152\n{file} 0\nswapcached 0\n"))
    freed, passes = cgroup.MemoryCgroup(version, tmp_path / "top").reclaim(None)
    assert (freed, passes) == (2 << 20, 2)


def test_reclaim_goes_on_after_a_pass_that_split_a_thp(tmp_path: Path, monkeypatch) -> None:
    """A pass that only activated a partly unmapped THP and split it (the deferred split
    shrinker) frees nothing and writes nothing, but its small folios are for the next pass,
    as in the simulation (kernel fuzz seed 17171 script 3107): the passes go on while one
    split a THP (/proc/vmstat's thp_split_page, exact)."""
    from mmshell.kernel import cgroup

    work = tmp_path / "top" / "work"
    work.mkdir(parents=True)
    (work / "memory.stat").write_text("rss 2097152\ncache 0\n")
    splits = iter([0, 1, 1, 1])                # thp_split_page before and after each pass
    monkeypatch.setattr(cgroup, "swapouts", lambda: 0)
    monkeypatch.setattr(cgroup, "thp_splits", lambda: next(splits))
    monkeypatch.setattr(cgroup, "_write", lambda path, value: None)
    monkeypatch.setattr(cgroup.MemoryCgroup, "flush_stats", lambda self: None)
    _freed, passes = cgroup.MemoryCgroup(1, tmp_path / "top").reclaim(None)
    assert passes == 2                          # a pass that split, then one that made no progress


# -- waiting for the memcg statistics to show a refault (memcg_flush.py) ----------------------------------------

class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += dt


@pytest.mark.parametrize("swapins, flushed_at, waited", [
    (10, None, 0.0),            # nothing read back from swap since the last reclaim: no wait
    (11, 0.5, 0.5),             # the periodic flush shows the refault after 0.5 s
    (11, None, 4.0),            # never (a swap-in that was no refault): at most FLUSH_WAIT
])
def test_a_reclaim_after_a_swapin_waits_for_the_refault_to_be_flushed(swapins: int, flushed_at, waited) -> None:
    from mmshell.kernel.memcg_flush import FLUSH_WAIT, RefaultStats
    clock = _Clock()
    refaults = lambda: 3 if flushed_at is not None and clock.t >= flushed_at else 2    # noqa: E731
    got = RefaultStats(swapins=10, refaults=2).await_flush(swapins, refaults, clock, clock.sleep)
    assert got == pytest.approx(waited, abs=0.03) and got <= FLUSH_WAIT + 0.03


def test_no_wait_where_memory_stat_counts_no_refaults() -> None:
    from mmshell.kernel.memcg_flush import RefaultStats
    clock = _Clock()
    assert RefaultStats(swapins=10, refaults=None).await_flush(99, lambda: None, clock, clock.sleep) == 0.0


def test_flush_subtree_churns_its_own_memory_then_reads_the_ancestors_memory_stat(tmp_path: Path, monkeypatch) -> None:
    from mmshell.kernel import memcg_flush
    calls: list[str] = []
    monkeypatch.setattr(memcg_flush.syscalls, "mmap", lambda addr, n, prot, flags: calls.append(f"mmap {n}") or 0x1000)
    monkeypatch.setattr(memcg_flush.syscalls, "madvise",
                        lambda addr, n, advice: calls.append(f"madvise {n} {advice}"))
    monkeypatch.setattr(memcg_flush.syscalls, "munmap", lambda addr, n: calls.append(f"munmap {n}"))
    stat = tmp_path / "memory.stat"
    stat.write_text("rss 0\n")
    read = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self: (calls.append(f"read {self.name}"), read(self))[1])
    assert memcg_flush.flush_subtree(tmp_path)
    size = memcg_flush.churn_bytes()
    assert size >= 1 << 20
    assert calls == [f"mmap {size}", f"madvise {size} {memcg_flush.syscalls.MADV_POPULATE_WRITE}",
                     f"munmap {size}", "read memory.stat"]


def test_flush_subtree_does_nothing_without_a_memory_stat(tmp_path: Path, monkeypatch) -> None:
    from mmshell.kernel import memcg_flush
    monkeypatch.setattr(memcg_flush.syscalls, "mmap", lambda *a: pytest.fail("mapped memory"))
    assert not memcg_flush.flush_subtree(tmp_path)


def test_swapins_sums_the_swapin_events(tmp_path: Path) -> None:
    from mmshell.kernel.memcg_flush import swapins
    (tmp_path / "vmstat").write_text("pswpin 5\npswpout 9\nzswpin 2\nswpin_zero 1\nworkingset_refault_anon 7\n")
    assert swapins(tmp_path / "vmstat") == 8


# -- the other CPUs' folio batches (percpu.py) ----------------------------------------------------------

def test_drain_cpus_visits_each_cpu_the_workers_one_included_and_gives_the_cpu_set_back(monkeypatch) -> None:
    from mmshell.kernel import percpu
    allowed = os.sched_getaffinity(0)
    seen: list[set[int]] = []
    monkeypatch.setattr(percpu.sc, "madvise", lambda addr, n, advice: seen.append(os.sched_getaffinity(0)))
    percpu.drain_cpus()
    assert seen == [{c} for c in sorted(allowed)]
    assert os.sched_getaffinity(0) == allowed


def test_drain_cpus_advises_cold_on_a_page_of_its_own() -> None:
    from mmshell.kernel import percpu
    allowed = os.sched_getaffinity(0)
    percpu.drain_cpus()       # the real MADV_COLD: no error, nothing changed
    assert os.sched_getaffinity(0) == allowed
