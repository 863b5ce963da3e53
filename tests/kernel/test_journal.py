"""The undo journal: a live run killed before its tear-down is undone by the next run.

The unit tests need no root: they journal a "knob" that is an ordinary file and
files that stand in for a swap file.  The last test kills a real live run with
SIGKILL after it set up a zram swap device and wrote the khugepaged knobs, and
checks that the next run puts everything back; it needs root and zram.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmshell.kernel.devices import undo_step
from mmshell.kernel.journal import Journal, Step
from mmshell.kernel.machine import undo_any
from mmshell.kernel.tunables import Tunables

ROOT = Path(__file__).resolve().parents[2]


def test_steps_are_on_disk_before_the_change_and_gone_after(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j")
    a = j.add(Step("unlink", ("/x",)))
    j.add(Step("knob", ("/k", "madvise")))
    on_disk = json.loads((tmp_path / "j").read_text())
    assert on_disk["pid"] == os.getpid()
    assert on_disk["steps"] == [["unlink", ["/x"]], ["knob", ["/k", "madvise"]]]
    j.drop(a)
    assert Journal.left_behind(tmp_path / "j") == (os.getpid(), [Step("knob", ("/k", "madvise"))])
    j.close()
    assert Journal.left_behind(tmp_path / "j") is None
    (tmp_path / "j").write_text("{not json")
    assert Journal.left_behind(tmp_path / "j") == (None, [])
    Journal(None).add(Step("unlink", ("/x",)))            # in memory only: writes nothing


def test_a_killed_runs_knobs_are_written_back(tmp_path: Path) -> None:
    knob = tmp_path / "enabled"
    knob.write_text("always [madvise] never\n")
    other = tmp_path / "pages_to_scan"
    other.write_text("4096\n")
    t = Tunables(Journal(tmp_path / "j"))
    t.set(knob, "never")
    t.set(other, "16777216")
    t.set(knob, "always")                      # saved once: the value before the run
    # ... and the run dies here: no restore().  The next run replays the journal.
    knob.write_text("[always] madvise never\n")       # what the sysfs file would now show
    pid, steps = Journal.left_behind(tmp_path / "j")
    done, errors, failed = Journal.replay(steps, undo_any)
    assert knob.read_text() == "madvise" and other.read_text() == "4096"
    assert done == [f"{other} = 4096", f"{knob} = madvise"] and errors == [] and failed == []


def test_restore_drops_each_knob_from_the_journal(tmp_path: Path) -> None:
    knob = tmp_path / "k"
    knob.write_text("1\n")
    j = Journal(tmp_path / "j")
    t = Tunables(j)
    t.set(knob, "0")
    assert t.restore() == [] and j.steps == [] and knob.read_text() == "1"


def test_device_steps_touch_only_what_is_still_theirs(tmp_path: Path) -> None:
    f = tmp_path / "s0.swap"
    f.write_bytes(b"x")
    d = tmp_path / "dir"
    d.mkdir()
    assert undo_step(Step("unlink", (str(f),))) == f"removed {f}" and not f.exists()
    assert undo_step(Step("unlink", (str(f),))) is None                   # already gone
    assert undo_step(Step("rmdir", (str(d),))) == f"removed {d}"
    assert undo_step(Step("swapoff", (str(tmp_path / "never-swapped-on"),))) is None
    assert undo_step(Step("zram reset", (987654, 1 << 20))) is None       # no such zram device
    assert undo_step(Step("zram remove", (987654, 1 << 20))) is None
    assert undo_step(Step("loop detach", ("/dev/loop987654", str(f)))) is None


def test_replay_tries_every_step_and_keeps_the_failures(tmp_path: Path) -> None:
    d = tmp_path / "full"
    d.mkdir()
    (d / "left").write_text("")
    steps = [Step("rmdir", (str(d),)), Step("unlink", (str(tmp_path / "gone"),)), Step("bogus", ())]
    done, errors, failed = Journal.replay(steps, undo_any)
    assert done == [] and len(errors) == 2 and failed == [steps[0], steps[2]]


from test_kernel_diff import LIVE_SKIP  # noqa: E402

KILLED_RUN = """
import os, signal, sys
sys.path.insert(0, {root!r})
from mmshell.kernel.machine import LiveMachine
m = LiveMachine().__enter__()
dev = m.devices.swapon("s0", 16 << 20, "zram", 100)
print(dev.path, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.skipif(LIVE_SKIP is not None, reason=LIVE_SKIP or "")
def test_the_next_run_undoes_a_run_killed_with_sigkill() -> None:
    from mmshell.kernel.devices import active_swaps
    from mmshell.kernel.machine import LiveMachine
    from mmshell.kernel.tunables import KHUGEPAGED, read_knob

    sleep_before = read_knob(KHUGEPAGED / "scan_sleep_millisecs")
    out = subprocess.run([sys.executable, "-c", KILLED_RUN.format(root=str(ROOT))], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == -9, out.stderr
    path = out.stdout.strip()
    assert path.startswith("/dev/zram")
    assert any(s.filename == path for s in active_swaps())               # left behind by the killed run
    assert read_knob(KHUGEPAGED / "scan_sleep_millisecs") != sleep_before
    with LiveMachine() as m:
        assert any("ended without tearing down" in w and f"swapoff {path}" in w for w in m.warnings), m.warnings
        assert not any(s.filename == path for s in active_swaps())
    assert not Path(f"/sys/block/{Path(path).name}").exists()
    assert read_knob(KHUGEPAGED / "scan_sleep_millisecs") == sleep_before
    assert Journal.left_behind() is None
