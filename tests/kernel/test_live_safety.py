"""A live run as root on a shared machine: it touches only what docs/kernel.md says it may,
and only while it can prove the thing is its own.

The live tests (marked `live`) run when asked (MMSHELL_LIVE_TESTS=1), as root with zram.  Each
one undoes what it made in a `finally`, whatever happens: devices, cgroups, files, knobs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable
from typing import Any

import pytest

from test_kernel_diff import LIVE_SKIP

ROOT = Path(__file__).resolve().parents[2]
def live(test: Callable[..., None]) -> Callable[..., None]:
    """A test on the live kernel: skipped unless asked for (LIVE_SKIP says how), and slow."""
    return pytest.mark.slow(pytest.mark.skipif(LIVE_SKIP is not None, reason=LIVE_SKIP or "")(test))


# -- what a live run may touch (docs/kernel.md, "What a live run touches") -------------------------------------

#: Counters among the settings: they move whenever khugepaged runs.
_COUNTERS = ("pages_collapsed", "full_scans")


def settings() -> dict[str, str]:
    """Every THP, khugepaged and zswap setting and every vm sysctl: the runner writes only the
    knobs docs/kernel.md lists, and puts them back."""
    from mmshell.kernel import tunables as tun

    files = [p for p in tun.THP.rglob("*") if p.is_file() and "stats" not in p.parts and p.name not in _COUNTERS]
    files += sorted(tun.ZSWAP_ENABLED.parent.glob("*")) + sorted(Path("/proc/sys/vm").glob("*"))
    out = {}
    for p in files:
        try:
            out[str(p)] = p.read_text().strip()
        except OSError:
            pass                      # write-only (drop_caches, stat_refresh, compact_memory)
    return out


def footprint() -> dict[str, Any]:
    """Everything on this machine a live run may change, as it is now."""
    from mmshell.kernel.cgroup import memory_hierarchy
    from mmshell.kernel.devices import active_swaps, swap_dir
    from mmshell.kernel.state import STATE_DIR

    _v, _mount, own = memory_hierarchy()
    base = swap_dir()
    return {
        "settings": settings(),
        "swaps": sorted((s.filename, s.size_kb, s.priority) for s in active_swaps()),
        "zram": sorted((p.name, (p / "disksize").read_text().strip()) for p in Path("/sys/block").glob("zram*")),
        "loops": sorted(p.parent.parent.name for p in Path("/sys/block").glob("loop*/loop/backing_file")),
        "files": sorted(p.name for p in base.glob("mmshell-swap-*")) if base else [],
        "cgroups": sorted(p.name for p in own.glob("mmshell-kernel.*")),
        "state": sorted(os.listdir(STATE_DIR)) if STATE_DIR.exists() else ["lock"],
    }


def vmstat(name: str) -> int:
    from mmshell.kernel.procfs import vmstat as read
    return read(refresh=False)[name]


def kernel_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mmshell.cli", "kernel", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def run_script(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "t.mmsh"
    script.write_text(text)
    return kernel_cli("run", "--json", str(script))


EVERYTHING = """\
set pmd_swap off
swapon z 64M
swapon d 64M kind disk
swapon f 16M kind file
set use_zero_page off
set max_ptes_swap 0
mmap a 4M hugepage
touch a
fork
@2 touch a:4K
reclaim 2M
madvise a+2M:2M pageout
khugepaged
check a
uffd register a
swapoff f
exit 2
check
set thp never
"""


@live
def test_a_run_touches_only_what_the_docs_say_and_puts_it_all_back(tmp_path: Path) -> None:
    before = footprint()
    drops = vmstat("drop_slab")
    out = run_script(tmp_path, EVERYTHING)
    final = json.loads(out.stdout.splitlines()[-1])
    assert out.returncode == 0 and final["exit"] == 0, out.stdout + out.stderr
    assert footprint() == before
    assert vmstat("drop_slab") == drops           # the script did not ask for the huge zero page


@live
def test_drop_caches_only_when_the_script_reads_the_huge_zero_page_counter(tmp_path: Path) -> None:
    drops = vmstat("drop_slab")
    out = run_script(tmp_path, "mmap a 2M hugepage\ntouch a read\nexpect vmstat.thp_zero_page_alloc == 1\n")
    assert out.returncode == 0, out.stdout + out.stderr
    assert vmstat("drop_slab") == drops + 1


# -- a journal that names what the dead run did not make ---------------------------------------------------------

class ForeignZram:
    """A zram swap device made outside the runner (as another program would), always removed."""

    def __enter__(self) -> "ForeignZram":
        from mmshell.kernel import syscalls
        from mmshell.kernel.devices import ZRAM_CONTROL, _diskseq, _wait_for, write_swap_header

        self.num = int((ZRAM_CONTROL / "hot_add").read_text())
        self.path = f"/dev/zram{self.num}"
        self.block = Path(f"/sys/block/zram{self.num}")
        (self.block / "disksize").write_text(str(16 << 20))
        _wait_for(Path(self.path))
        self.uuid = write_swap_header(self.path, 16 << 20)
        self.diskseq = _diskseq(self.block)
        syscalls.swapon(self.path, None)
        return self

    def active(self) -> bool:
        from mmshell.kernel.devices import active_swaps
        return any(s.filename == self.path for s in active_swaps())

    def __exit__(self, *exc: Any) -> None:
        from mmshell.kernel import syscalls
        from mmshell.kernel.devices import _zram_remove

        if self.active():
            syscalls.swapoff(self.path)
        if self.block.exists():
            (self.block / "reset").write_text("1")
            _zram_remove(self.num)


def _zram_steps(dev: ForeignZram, **change: Any) -> list:
    ident = {"uuid": dev.uuid, "diskseq": dev.diskseq, **change}
    return [["zram remove", {"num": dev.num, "diskseq": ident["diskseq"]}],
            ["zram reset", {"num": dev.num, "diskseq": ident["diskseq"], "size": 16 << 20}],
            ["swapoff", {"path": dev.path, "uuid": ident["uuid"], "diskseq": ident["diskseq"]}]]


def _plant(state: Any, steps: list, boot: str | None = None) -> None:
    from mmshell.kernel.state import boot_id
    state.write_journal(json.dumps({"version": 2, "pid": 99999, "boot_id": boot or boot_id(),
                                    "steps": steps}).encode())


@live
@pytest.mark.parametrize("change, boot, why", [
    ({"diskseq": -1}, None, "not the run's"),              # the number was reused by another device
    ({"uuid": "f" * 32}, None, "not the run's"),           # another swap area under the run's name
    ({}, "00000000-0000-0000-0000-000000000000", "earlier boot"),
])
def test_a_stale_journal_leaves_a_device_the_run_did_not_make_on(tmp_path: Path, change: dict, boot: str | None,
                                                                 why: str) -> None:
    """A zram device made outside the runner, named by a journal: still on after recovery."""
    from mmshell.kernel.machine import recover_now
    from mmshell.kernel.state import StateDir

    state = StateDir(tmp_path / "state")
    with ForeignZram() as dev:
        if "diskseq" in change:
            change = {"diskseq": dev.diskseq - 1}
        steps = _zram_steps(dev, **change)
        _plant(state, steps[2:] if "uuid" in change else steps, boot)     # the uuid: only the swap area
        status, lines = recover_now(state)
        assert dev.active() and (dev.block / "disksize").read_text().strip() == str(16 << 20)
        left = [ln for ln in lines if ln.startswith("left alone: ")]
        assert status == 0 and len(left) == len(steps[2:] if "uuid" in change else steps), lines
        assert all(why in ln and dev.path in ln for ln in left), lines
        assert "nothing was left to undo" in lines[0]


@live
def test_a_journal_that_proves_the_device_is_the_runs_removes_it(tmp_path: Path) -> None:
    from mmshell.kernel.machine import recover_now
    from mmshell.kernel.state import StateDir

    state = StateDir(tmp_path / "state")
    with ForeignZram() as dev:
        _plant(state, _zram_steps(dev))
        status, lines = recover_now(state)
        assert status == 0 and not dev.active() and not dev.block.exists(), lines
        assert lines[0].endswith(f"swapoff {dev.path}; reset {dev.path}; removed {dev.path}")


@live
def test_a_loop_device_bound_to_another_file_is_left_bound(tmp_path: Path) -> None:
    from mmshell.kernel.devices import _loop_attach, _loop_detach, _loop_free, _loop_status, file_ident
    from mmshell.kernel.machine import recover_now
    from mmshell.kernel.state import StateDir

    d = tmp_path / "mmshell-swap-00000000000000ff"
    d.mkdir()
    backing = d / "d0.disk"
    backing.write_bytes(bytes(1 << 20))
    fd = os.open(backing, os.O_RDWR)
    loop = _loop_free()
    try:
        _loop_attach(loop, fd)
        ident = file_ident(str(backing))
        state = StateDir(tmp_path / "state")
        _plant(state, [["loop detach", {"loop": loop, "diskseq": None, "backing": str(backing),
                                        "dev": ident["dev"], "ino": ident["ino"] + 1}]])
        status, lines = recover_now(state)
        assert _loop_status(loop) is not None and any("left alone" in ln and loop in ln for ln in lines), lines
    finally:
        if _loop_status(loop) is not None:
            _loop_detach(loop)
        os.close(fd)


# -- a killed run, then `mmshell kernel recover` -------------------------------------------------------------------

KILLED_RUN = """
import os, signal, sys
sys.path.insert(0, {root!r})
from mmshell.kernel.machine import LiveMachine
from mmshell.kernel.tunables import THP
m = LiveMachine().__enter__()
dev = m.devices.swapon("s0", 16 << 20, "zram", 100)
m.tunables.set(THP / "enabled", "always")
print(dev.path, m.cgroup.top, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _kill_a_run() -> tuple[str, Path]:
    from mmshell.kernel.devices import active_swaps

    out = subprocess.run([sys.executable, "-c", KILLED_RUN.format(root=str(ROOT))], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == -9, out.stderr
    path, top = out.stdout.split()
    assert any(s.filename == path for s in active_swaps())               # left behind by the killed run
    assert Path(top).is_dir()
    return path, Path(top)


@live
def test_kernel_recover_undoes_a_killed_run(tmp_path: Path) -> None:
    before = footprint()
    path, top = _kill_a_run()
    try:
        assert footprint() != before
        out = kernel_cli("recover")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "ended without tearing down" in out.stdout and f"swapoff {path}" in out.stdout
        assert f"removed {top}" in out.stdout and "enabled = madvise" in out.stdout
    finally:
        kernel_cli("recover")
    assert footprint() == before and not top.exists()
    out = kernel_cli("recover")
    assert out.returncode == 0 and out.stdout.startswith("nothing to recover")


@live
def test_the_next_run_undoes_a_run_killed_with_sigkill() -> None:
    from mmshell.kernel.journal import Journal
    from mmshell.kernel.machine import LiveMachine
    from mmshell.kernel.state import StateDir

    before = footprint()
    path, top = _kill_a_run()
    try:
        with LiveMachine() as m:
            assert any("ended without tearing down" in w and f"swapoff {path}" in w for w in m.warnings), m.warnings
            assert not top.exists()
    finally:
        kernel_cli("recover")
    assert footprint() == before
    assert Journal.left_behind(StateDir()) is None


# -- bounds ------------------------------------------------------------------------------------------------------

HUGE = """\
expect fails mmap big 64T prot none
mmap a 4T prot none
madvise a pageout
madvise a cold
expect smaps.a.Rss == 0
expect pagemap.a+0x3fffffff000.present == 0
expect pmd.a+2T == none
expect fails show pagemap a
show pagemap a+1T:64G
show pt a+3T:4M
check
"""


#: Runs a command and reports the peak RSS of its largest process (the runner or a worker).
PEAK = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print('peak', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
        "sys.exit(r.returncode)")


@live
def test_a_huge_prot_none_mapping_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """4T of PROT_NONE: pageout, smaps, pagemap and check read it in chunks or by PAGEMAP_SCAN
    (a list of its 2^30 pagemap words would be 8G of words, some 40G of Python ints)."""
    script = tmp_path / "huge.mmsh"
    script.write_text(HUGE)
    out = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "-m", "mmshell.cli", "kernel", "run",
                          "--json", str(script)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    final = json.loads(out.stdout.splitlines()[-1])
    assert out.returncode == 0 and final["exit"] == 0, out.stdout + out.stderr
    peak_kb = int(re.findall(r"^peak (\d+)$", out.stderr, re.M)[-1])
    assert peak_kb < 300 << 10, f"peak RSS {peak_kb} kB"


@live
def test_huge_swap_areas_are_refused_before_anything_is_made(tmp_path: Path) -> None:
    before = footprint()
    out = run_script(tmp_path, "expect fails swapon f0 16P kind file\nexpect fails swapon d0 60T kind disk\n"
                               "expect fails swapon z0 4T\nexpect fails swapon z1 65G\n")
    assert out.returncode == 0, out.stdout + out.stderr
    errors = [json.loads(ln).get("output", []) for ln in out.stdout.splitlines()[:-1]]
    assert all(any("limit of 64G" in e for e in err) for err in errors), errors
    assert footprint() == before


def test_a_swap_file_that_does_not_fit_is_refused_before_it_is_written(tmp_path: Path, monkeypatch) -> None:
    from mmshell.kernel import devices
    from mmshell.kernel.journal import Journal

    if devices.fs_type(tmp_path) not in devices._DISK_FS:
        pytest.skip(f"{tmp_path} is not on a disk filesystem")
    monkeypatch.setenv("MMSHELL_SWAP_DIR", str(tmp_path))
    monkeypatch.setattr(devices, "free_for_users", lambda path: 2 << 30)
    devs = devices.SwapDevices(Journal(None))
    for kind in ("file", "disk"):
        with pytest.raises(devices.DeviceError, match="does not fit") as e:
            devs.swapon(f"{kind}0", 1536 << 20, kind, 1)
        assert e.value.errno_name == "ENOSPC"
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert devs.teardown() == [] and list(tmp_path.iterdir()) == []


# -- the workers: their own memory cgroup, the OOM killer's first choice; nothing of theirs is touched --------------

@live
def test_workers_live_in_their_memory_cgroup_and_are_the_oom_killers_first_choice() -> None:
    from mmshell.kernel.cgroup import worker_memory_limit
    from mmshell.kernel.machine import LiveMachine

    with LiveMachine() as m:
        assert m.cgroup is not None
        child = m.procs.fork(1, [])
        for proc in (m.procs.get(1), child):
            groups = Path(f"/proc/{proc.pid}/cgroup").read_text()
            assert re.search(r"memory:.*/mmshell-kernel\.[0-9]+\.[0-9a-f]{8}/work$", groups, re.M) or \
                re.search(r"^0::.*/mmshell-kernel\.[0-9]+\.[0-9a-f]{8}/work$", groups, re.M), groups
            assert Path(f"/proc/{proc.pid}/oom_score_adj").read_text().strip() == "1000"
        top = m.cgroup.top
        limit = int((top / ("memory.limit_in_bytes" if m.cgroup.version == 1 else "memory.max")).read_text())
        assert limit == worker_memory_limit() & ~4095
    assert not top.exists()


@live
def test_commands_never_reach_the_workers_own_memory() -> None:
    from mmshell.kernel.machine import LiveMachine
    from mmshell.kernel.procfs import maps
    from mmshell.kernel.runner import LiveSession, Refused
    from mmshell.lang.parser import parse_line

    with LiveMachine() as m:
        s = LiveSession(m)
        s.execute(parse_line("mmap a 2M")[0])
        own = [(lo, hi, path) for lo, hi, _p, path in maps(s.kpid()) if path in ("[heap]", "[stack]")]
        assert own
        for lo, hi, path in own:
            for line in (f"munmap {lo:#x}:4K", f"mprotect {lo:#x}:4K none", f"madvise {lo:#x}:4K dontneed",
                         f"touch {lo:#x}", f"check {lo:#x}:4K", f"mremap a b at {lo:#x}",
                         f"mremap {lo:#x}:4K c", f"uffd register {lo:#x}:4K"):
                with pytest.raises(Refused, match="^EPERM: .*outside the script's regions"):
                    s.execute(parse_line(line)[0])
        assert m.procs.call(1, "ping") == s.kpid()           # the worker is unharmed
        assert [(lo, hi, path) for lo, hi, _p, path in maps(s.kpid()) if path in ("[heap]", "[stack]")] == own


# -- tear-down holds signals until it ends ---------------------------------------------------------------------------

def test_teardown_finishes_before_a_signal_is_delivered(tmp_path: Path, monkeypatch) -> None:
    """SIGTERM during the tear-down (here: while the workers are ended) waits until every knob
    is back; then it interrupts as usual."""
    from mmshell.kernel import tunables
    from mmshell.kernel.journal import Journal
    from mmshell.kernel.machine import LiveMachine, raise_on_sigterm, restore_signals
    from mmshell.kernel.state import StateDir
    from mmshell.kernel.tunables import Tunables

    knob = tmp_path / "enabled"
    knob.write_text("always [madvise] never\n")
    monkeypatch.setitem(tunables.MANAGED, str(knob), ("always", "madvise", "never"))
    m = LiveMachine(StateDir(tmp_path / "state"))
    m.journal = Journal(None)                      # in memory: no state directory needed
    m.tunables = Tunables(m.journal)
    m.tunables.set(knob, "never")
    m.procs = SimpleNamespace(close_all=lambda: os.kill(os.getpid(), signal.SIGTERM))   # type: ignore[assignment]
    old = raise_on_sigterm()
    try:
        with pytest.raises(KeyboardInterrupt):
            m.close()
            time.sleep(1)                 # (not reached: the signal is delivered as close returns)
        assert knob.read_text() == "madvise"
    finally:
        restore_signals(old)


def test_a_zram_device_larger_than_the_machine_is_refused(monkeypatch) -> None:
    from mmshell.kernel import devices
    from mmshell.kernel.journal import Journal

    monkeypatch.setattr(devices, "memtotal", lambda: 8 << 30)
    devs = devices.SwapDevices(Journal(None))
    with pytest.raises(devices.DeviceError, match="larger than this machine's memory") as e:
        devs.check_size(16 << 30, "zram")
    assert e.value.errno_name == "EINVAL"
    devs.check_size(16 << 30, "disk")                  # a disk's blocks are on disk, not in memory
