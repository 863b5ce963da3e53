"""The undo journal and its directory: replay touches only what the dead run made, and
nothing planted at the lock or the journal makes root create, truncate, read or wait.

The state-directory tests need root (the directory must belong to root) but not the live
kernel: each uses a directory of its own under tmp_path.  The knob tests stand ordinary files
in for sysfs knobs (added to tunables.MANAGED for the test).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
import time
from pathlib import Path

import pytest

from mmshell.kernel import tunables
from mmshell.kernel.devices import check_device_step, file_ident, undo_device_step
from mmshell.kernel.journal import Journal, NotProven, Step
from mmshell.kernel.machine import check_step, recover, recover_now
from mmshell.kernel.state import StateDir, UnsafeState, boot_id
from mmshell.kernel.tunables import Tunables, undo_knob

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the state directory must belong to root: run as root")


@pytest.fixture
def knobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Two files standing in for sysfs knobs, made managed knobs for the test."""
    knob = tmp_path / "enabled"
    knob.write_text("always [madvise] never\n")
    other = tmp_path / "pages_to_scan"
    other.write_text("4096\n")
    monkeypatch.setitem(tunables.MANAGED, str(knob), ("always", "madvise", "never"))
    monkeypatch.setitem(tunables.MANAGED, str(other), tunables._NUMBER)
    return knob, other


def _state(tmp_path: Path) -> StateDir:
    return StateDir(tmp_path / "state")


def _plant(state: StateDir, steps: list, boot: str | None = None, pid: int = 99999) -> None:
    """A journal as a killed run would have left it (or as someone forged it)."""
    data = {"version": 2, "pid": pid, "boot_id": boot or boot_id(), "steps": steps}
    state.write_journal(json.dumps(data).encode())


def _run_dir(tmp_path: Path) -> Path:
    d = tmp_path / ("mmshell-swap-" + "0123456789abcdef")
    d.mkdir(mode=0o700)
    return d


# -- the journal on disk -------------------------------------------------------------------------------------

@needs_root
def test_steps_are_on_disk_before_the_change_and_gone_after(tmp_path: Path) -> None:
    state = _state(tmp_path)
    j = Journal(state)
    a = j.add(Step("unlink", {"path": "/x"}))
    b = j.add(Step("knob", {"path": "/k", "old": "madvise", "written": []}))
    on_disk = json.loads(state.read_journal() or b"")
    assert on_disk["pid"] == os.getpid() and on_disk["boot_id"] == boot_id() and on_disk["version"] == 2
    assert on_disk["steps"] == [["unlink", {"path": "/x"}], ["knob", {"path": "/k", "old": "madvise", "written": []}]]
    j.replace(b, b.with_args(written=["never"]))
    j.drop(a)
    left = Journal.left_behind(state)
    assert left is not None and left.pid == os.getpid() and left.same_boot
    assert left.steps == [["knob", {"path": "/k", "old": "madvise", "written": ["never"]}]]
    j.close()
    assert Journal.left_behind(state) is None
    state.write_journal(b"{not json")
    left = Journal.left_behind(state)
    assert left is not None and left.steps == [] and left.pid is None
    assert stat.S_IMODE(os.stat(state.path).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(state.journal_path).st_mode) == 0o600
    Journal(None).add(Step("unlink", {"path": "/x"}))            # in memory only: writes nothing


# -- knobs ---------------------------------------------------------------------------------------------------

def test_a_killed_runs_knobs_are_written_back(knobs: tuple[Path, Path]) -> None:
    knob, other = knobs
    j = Journal(None)
    t = Tunables(j)
    t.set(knob, "never")
    t.set(other, "16777216")
    t.set(knob, "always")                      # saved once: the value before the run
    assert [s.args["written"] for s in j.steps] == [["never", "always"], ["16777216"]]
    # ... and the run dies here: no restore().  The next run replays the journal.
    knob.write_text("[always] madvise never\n")       # what the sysfs file would now show
    done, notes, failed = Journal.replay([s.to_json() for s in j.steps], undo_knob, check_step)
    assert knob.read_text() == "madvise" and other.read_text() == "4096"
    assert done == [f"{other} = 4096", f"{knob} = madvise"] and notes == [] and failed == []


def test_a_knob_someone_changed_since_is_left_alone(knobs: tuple[Path, Path]) -> None:
    knob, _ = knobs
    t = Tunables(Journal(None))
    t.set(knob, "never")
    knob.write_text("[always] madvise never\n")       # not a value the run wrote
    step = t.saved[knob]
    with pytest.raises(NotProven, match="never wrote"):
        undo_knob(step)
    with pytest.raises(NotProven, match="earlier boot"):
        knob.write_text("always madvise [never]\n")
        undo_knob(step, same_boot=False)
    assert knob.read_text() == "always madvise [never]\n"


def test_restore_drops_each_knob_from_the_journal(knobs: tuple[Path, Path]) -> None:
    knob, _ = knobs
    j = Journal(None)
    t = Tunables(j)
    t.set(knob, "never")
    assert t.restore() == [] and j.steps == [] and knob.read_text() == "madvise"


def test_only_managed_knobs_and_their_values_are_ever_written(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    t = Tunables(Journal(None))
    with pytest.raises(ValueError, match="not a knob a live run writes"):
        t.set(victim, "x")
    with pytest.raises(tunables.TunableError, match="not a value"):
        t.set(tunables.THP / "enabled", "always; rm -rf /")
    assert victim.read_text() == "keep" and t.saved == {}


# -- replay refuses what no live run writes ---------------------------------------------------------------------

@pytest.mark.parametrize("item, why", [
    (["knob", {"path": "/etc/passwd", "old": "root", "written": []}], "not a knob"),
    (["knob", {"path": "/sys/kernel/mm/transparent_hugepage/enabled", "old": "x\nalways", "written": []}],
     "does not take"),
    (["knob", {"path": "/sys/kernel/mm/transparent_hugepage/khugepaged/pages_to_scan", "old": "1",
               "written": ["1; reboot"]}], "does not take"),
    (["unlink", {"path": "/etc/shadow", "dev": 1, "ino": 2}], "not one a live run makes"),
    (["unlink", {"path": "/var/tmp/mmshell-swap-0123456789abcdef/../../etc/x.swap", "dev": 1, "ino": 2}],
     "not one a live run makes"),
    (["rmdir", {"path": "/home", "dev": 1, "ino": 2}], "not one a live run makes"),
    (["swapoff", {"path": "/dev/sda", "uuid": "0" * 32}], "not one a live run makes"),
    (["zram remove", {"num": "0; x", "diskseq": 1}], "number"),
    (["loop detach", {"loop": "/dev/loop0", "backing": "/etc/passwd", "dev": 1, "ino": 2}],
     "not one a live run makes"),
    (["cgroup rmdir", {"path": "/sys/fs/cgroup/memory", "ino": 1}], "not a directory a live run makes"),
    (["exec", {"argv": ["/bin/sh"]}], "unknown step"),
    ("rm -rf /", r"not a \[what, arguments\] pair"),
])
def test_replay_refuses_steps_no_live_run_writes(item: object, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_step(item)


def test_replay_reports_a_refused_step_and_touches_nothing(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    done, notes, failed = Journal.replay([["unlink", {"path": str(victim), "dev": 0, "ino": 0}]],
                                         lambda s: undo_device_step(s), check_step)
    assert done == [] and failed == [] and victim.read_text() == "keep"
    assert len(notes) == 1 and notes[0].startswith("refused a journal step no live run writes")


# -- files and directories: proven by device and inode ---------------------------------------------------------

def test_device_steps_touch_only_what_is_still_theirs(tmp_path: Path) -> None:
    d = _run_dir(tmp_path)
    f = d / "s0.swap"
    f.write_bytes(b"x")
    mine = Step("unlink", {"path": str(f), **file_ident(str(f))})
    check_device_step(mine.what, mine.args)
    f.unlink()
    f.write_bytes(b"someone else's")          # the same name, another file (maybe the same inode number)
    with pytest.raises(NotProven, match="not the run's"):
        undo_device_step(mine)
    with pytest.raises(NotProven, match="before noting its inode"):
        undo_device_step(mine.with_args(dev=None, ino=None, gen=None))
    assert f.read_bytes() == b"someone else's"
    assert undo_device_step(mine.with_args(**file_ident(str(f)))) == f"removed {f}" and not f.exists()
    assert undo_device_step(mine) is None                                  # already gone
    assert undo_device_step(Step("rmdir", {"path": str(d), **file_ident(str(d))})) == f"removed {d}"
    assert undo_device_step(Step("swapoff", {"path": str(f), "uuid": "0" * 32})) is None   # not a swap area
    assert undo_device_step(Step("zram reset", {"num": 987654, "diskseq": 1, "size": 1 << 20})) is None
    assert undo_device_step(Step("zram remove", {"num": 987654, "diskseq": 1})) is None
    assert undo_device_step(Step("loop detach", {"loop": "/dev/loop987654", "diskseq": None,
                                                 "backing": str(f), "dev": 1, "ino": 2})) is None
    with pytest.raises(NotProven, match="earlier boot"):
        undo_device_step(Step("zram remove", {"num": 0, "diskseq": 1}), same_boot=False)


def test_replay_tries_every_step_and_keeps_the_failures(tmp_path: Path) -> None:
    d = _run_dir(tmp_path)
    (d / "left").write_text("")
    steps = [["rmdir", {"path": str(d), **file_ident(str(d))}],
             ["unlink", {"path": str(d / "gone.swap"), "dev": 1, "ino": 2}], ["bogus", {}]]
    done, notes, failed = Journal.replay(steps, lambda s: undo_device_step(s), check_step)
    assert done == [] and len(notes) == 2 and failed == [Step("rmdir", steps[0][1])]
    assert "kept for the next run" in notes[1] and "unknown step" in notes[0]


# -- the state directory: planted links and files ---------------------------------------------------------------

@needs_root
@pytest.mark.parametrize("plant, why", [
    (lambda p: p.symlink_to("/etc"), "not a directory"),
    (lambda p: (p.mkdir(), p.chmod(0o777)), "writable by others"),
    (lambda p: (p.mkdir(), os.chown(p, 1000, 1000)), "belongs to uid 1000"),
])
def test_an_unsafe_state_directory_is_refused(tmp_path: Path, plant, why: str) -> None:
    state = _state(tmp_path)
    plant(state.path)
    with pytest.raises(UnsafeState, match=why):
        state.fd()


@needs_root
def test_a_directory_above_anyone_can_write_is_refused(tmp_path: Path) -> None:
    above = tmp_path / "open"
    above.mkdir()
    above.chmod(0o777)                     # world-writable without the sticky bit
    with pytest.raises(UnsafeState, match="above the state directory"):
        StateDir(above / "state").fd()
    above.chmod(0o1777)                    # sticky: nobody can rename root's entries in it
    StateDir(above / "state").fd()


@pytest.fixture
def planted(tmp_path: Path) -> tuple[StateDir, Path]:
    """A state directory made, and a file someone would like root to write: the victim."""
    state = _state(tmp_path)
    state.fd()
    victim = tmp_path / "victim"
    victim.write_text("keep")
    return state, victim


@needs_root
def test_a_planted_symlink_at_the_lock_is_refused_and_its_target_untouched(
        tmp_path: Path, planted: tuple[StateDir, Path]) -> None:
    state, victim = planted
    (state.path / "lock").symlink_to(victim)
    with pytest.raises(UnsafeState, match="symbolic link"):
        state.lock()
    (state.path / "lock").unlink()
    (state.path / "lock").symlink_to(tmp_path / "would-be-created")
    with pytest.raises(UnsafeState, match="symbolic link"):
        state.lock()
    assert victim.read_text() == "keep" and not (tmp_path / "would-be-created").exists()


@needs_root
def test_a_lock_file_of_another_user_is_refused_at_once(tmp_path: Path) -> None:
    state = _state(tmp_path)
    state.fd()
    lock = state.path / "lock"
    lock.write_text("")
    os.chown(lock, 1000, 1000)
    t0 = time.monotonic()
    with pytest.raises(UnsafeState, match="belongs to uid 1000"):
        state.lock(wait=600)
    assert time.monotonic() - t0 < 5            # never the 600 s wait
    lock.unlink()
    (tmp_path / "hard").write_text("x")                # a hard link to a file elsewhere
    os.link(tmp_path / "hard", lock)
    with pytest.raises(UnsafeState, match="links"):
        state.lock(wait=600)


@needs_root
def test_a_held_lock_is_waited_for_and_the_wait_ends_when_its_time_is_up(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = _state(tmp_path)
    holder = state.lock()
    with pytest.raises(UnsafeState, match="held .* for 0 s"):
        state.lock(wait=0.2)
    assert "waiting for another live run" in capsys.readouterr().err
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)    # the wait left no timer behind
    os.close(holder)
    os.close(state.lock(wait=0.2))


@needs_root
def test_a_waiter_takes_the_lock_from_a_holder_that_takes_it_again_at_once(tmp_path: Path) -> None:
    """`kernel fuzz` lets go of the lock between scripts and takes it again a moment later: a
    run waiting in flock() is woken when it lets go, so it gets its turn."""
    state = _state(tmp_path)
    stop = threading.Event()
    turns = 0

    def fuzz_loop() -> None:
        nonlocal turns
        other = StateDir(state.path)
        while not stop.is_set():
            fd = other.lock(wait=30)
            turns += 1
            time.sleep(0.05)                      # a script's run
            os.close(fd)
            time.sleep(0.001)                     # the moment between two scripts
        other.close()

    loop = threading.Thread(target=fuzz_loop)
    loop.start()
    try:
        while turns == 0:
            time.sleep(0.01)
        fd = state.lock(wait=10)          # woken at the first release (polling every 0.1 s: 0.4-4.5 s)
        os.close(fd)
    finally:
        stop.set()
        loop.join()


@needs_root
def test_a_planted_journal_is_never_followed(planted: tuple[StateDir, Path]) -> None:
    state, victim = planted
    (state.path / "journal").symlink_to(victim)
    with pytest.raises(UnsafeState, match="symbolic link"):
        state.read_journal()
    with pytest.raises(UnsafeState, match="symbolic link"):
        recover(Journal(state))                       # a run refuses to start
    (state.path / "journal.new").symlink_to(victim)  # where the next journal is written first
    Journal(state).add(Step("unlink", {"path": "/x"}))
    assert victim.read_text() == "keep"                # both links replaced, the target untouched
    assert not (state.path / "journal").is_symlink() and not (state.path / "journal.new").exists()
    (state.path / "journal").unlink()
    os.mkfifo(state.path / "journal")
    with pytest.raises(UnsafeState, match="not a regular file"):
        state.read_journal()                           # no wait for a writer


@needs_root
def test_recover_replays_proven_steps_and_names_the_rest(tmp_path: Path, knobs: tuple[Path, Path]) -> None:
    knob, _ = knobs
    state = _state(tmp_path)
    d = _run_dir(tmp_path)
    mine = d / "s0.swap"
    mine.write_text("")
    ident = file_ident(str(mine))
    knob.write_text("[always] madvise never\n")
    _plant(state, [["knob", {"path": str(knob), "old": "madvise", "written": ["always"]}],
                   ["unlink", {"path": str(mine), **ident}],
                   ["unlink", {"path": str(d / "other.swap"), **ident}],
                   ["knob", {"path": "/etc/passwd", "old": "x", "written": []}]])
    (d / "other.swap").write_text("not the run's")
    status, lines = recover_now(state)
    assert status == 0
    assert f"removed {mine}" in lines[0] and f"{knob} = madvise" in lines[0]
    assert any(ln.startswith("left alone: ") and "other.swap" in ln for ln in lines)
    assert any(ln.startswith("refused a journal step") and "/etc/passwd" in ln for ln in lines)
    assert (d / "other.swap").read_text() == "not the run's" and not mine.exists()
    assert state.read_journal() is None
    assert recover_now(state) == (0, [f"nothing to recover: no journal in {state.path}"])


@needs_root
def test_a_journal_of_an_earlier_boot_restores_no_knob(tmp_path: Path, knobs: tuple[Path, Path]) -> None:
    knob, _ = knobs
    state = _state(tmp_path)
    knob.write_text("[always] madvise never\n")
    _plant(state, [["knob", {"path": str(knob), "old": "madvise", "written": ["always"]}]],
           boot="00000000-0000-0000-0000-000000000000")
    status, lines = recover_now(state)
    assert status == 0 and "earlier boot" in lines[0] and knob.read_text() == "[always] madvise never\n"
    assert any("left alone" in ln and "earlier boot" in ln for ln in lines)
