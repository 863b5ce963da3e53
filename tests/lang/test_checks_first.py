"""Commands that check first (registry `checks_first`: munmap) run without a checkpoint.

Every refusal of such a command comes before it changes the machine, so it
changes nothing, as a refusal under a checkpoint does; done, it leaves the same
state as under a checkpoint; a Ctrl-C in its middle is taken when it ends; a
simulator bug inside it says that the machine was not put back.
"""

from __future__ import annotations

import os
import signal

import pytest

from mmsh_state import diff_dumps, state_dump
from mmshell.lang import budget, execute as ex, registry
from mmshell.lang.execute import execute
from mmshell.lang.parser import parse_line
from mmshell.lang.session import Session
from mmshell.mm import mmap as mm_mmap
from mmshell.mm.check import check_invariants
from mmshell.mm.check_data import check_data
from mmshell.mm.config import Config
from mmshell.mm.errors import MmError, VmBug

MODES = pytest.mark.parametrize("mode", [True, False], ids=["series", "mainline"])

#: THPs present and swapped, PTE-mapped pages, a child sharing them.
BUSY = ("set ram 32M; swapon z0 16M; mmap a 8M hugepage; mmap b 1M; touch a; touch b; "
        "madvise a+2M:2M pageout; madvise b:256K pageout; fork")


def boot(setup: str, pmd_swap: bool) -> Session:
    s = Session.boot(Config(pmd_swap=pmd_swap))
    for cmd in parse_line(setup):
        execute(s, cmd)
    return s


def run(s: Session, text: str) -> None:
    for cmd in parse_line(text):
        execute(s, cmd)


@pytest.fixture
def checkpoints(monkeypatch) -> list[str]:
    """The commands execute takes a checkpoint around."""
    taken: list[str] = []
    real = ex.Checkpoint

    def counted(session):
        taken.append("checkpoint")
        return real(session)
    monkeypatch.setattr(ex, "Checkpoint", counted)
    return taken


def test_the_trait_is_read_through_at_and_if() -> None:
    for text in ("munmap a", "@2 munmap a", "if pmd_swap on: munmap a"):
        (cmd,) = parse_line(text)
        assert registry.checks_first(cmd), text
    for text in ("mmap a 4M", "@2 touch a", "expect fails munmap a"):
        (cmd,) = parse_line(text)
        assert not registry.checks_first(cmd), text


@MODES
def test_munmap_takes_no_checkpoint(mode: bool, checkpoints: list[str]) -> None:
    s = boot(BUSY, mode)
    checkpoints.clear()
    run(s, "munmap a+1M:2M; @2 munmap b")
    assert checkpoints == []
    run(s, "touch b:4K")
    assert checkpoints == ["checkpoint"]
    assert not check_invariants(s.kernel) + check_data(s.kernel)


@MODES
@pytest.mark.parametrize("text", ["munmap a", "munmap a+1M:2M", "munmap a+4K:8K", "munmap b+64K:512K",
                                  "@2 munmap a+2M:4M", "munmap 0x10000000:4K"])
def test_munmap_leaves_what_a_checkpointed_munmap_leaves(mode: bool, text: str, monkeypatch) -> None:
    unchecked = boot(BUSY, mode)
    run(unchecked, text)
    monkeypatch.setattr(registry, "checks_first", lambda cmd: False)
    checked = boot(BUSY, mode)
    run(checked, text)
    a, b = state_dump(unchecked), state_dump(checked)
    assert a == b, "; ".join(diff_dumps(b, a))


def _refused_changes_nothing(s: Session, text: str, errno: str) -> MmError:
    before = state_dump(s)
    (cmd,) = parse_line(text)
    with pytest.raises(MmError) as info:
        execute(s, cmd)
    assert info.value.errno == errno, str(info.value)
    after = state_dump(s)
    assert after == before, "; ".join(diff_dumps(before, after))
    assert not check_invariants(s.kernel) + check_data(s.kernel)
    return info.value


@MODES
def test_refused_munmap_changes_nothing(mode: bool, monkeypatch) -> None:
    s = boot(BUSY, mode)
    _refused_changes_nothing(s, "munmap a+0x800:4K", "EINVAL")
    _refused_changes_nothing(s, "munmap nosuch", "EINVAL")
    # a hole inside one VMA at vm.max_map_count (vms_gather_munmap_vmas)
    monkeypatch.setattr(mm_mmap, "MAX_MAP_COUNT", len(s.kernel.mm(1).vmas))
    e = _refused_changes_nothing(s, "munmap a+1M:2M", "ENOMEM")
    assert "vm.max_map_count" in str(e)
    run(s, "munmap a:1M")                   # at an edge, no new VMA: allowed at the limit


@MODES
def test_munmap_checks_the_host_budget_first(mode: bool, monkeypatch) -> None:
    s = boot(BUSY, mode)
    now = budget.footprint(s.kernel).bytes
    # a hole in a THP adds a table and a VMA: refused before the split, over a budget it fits now
    monkeypatch.setattr(budget, "HOST_BUDGET", now + budget.COST["page tables"])
    e = _refused_changes_nothing(s, "munmap a+4K:4K", "ENOMEM")
    assert "splitting at its edges" in str(e)
    run(s, "munmap a:2M")                   # whole THPs: nothing added


@MODES
def test_munmap_checks_page_tables_first_with_lazy_deposit(mode: bool, monkeypatch) -> None:
    s = boot("set deposit lazy; mmap a 4M hugepage; touch a", mode)
    tables = budget.process_tally(s.kernel).nr_ptes
    monkeypatch.setattr(ex, "MAX_PAGE_TABLES", tables)
    e = _refused_changes_nothing(s, "munmap a+4K:4K", "ENOMEM")
    assert "page tables would exist" in str(e)
    run(s, "munmap a+2M:2M")


@MODES
def test_ctrl_c_during_munmap_is_taken_when_it_ends(mode: bool, monkeypatch, python_sigint: None) -> None:
    done = boot(BUSY, mode)
    run(done, "munmap a")
    s = boot(BUSY, mode)
    real, calls = mm_mmap.unmap_page_range, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)
    monkeypatch.setattr(mm_mmap, "unmap_page_range", interrupted)
    (cmd,) = parse_line("munmap a")
    with pytest.raises(KeyboardInterrupt):
        execute(s, cmd)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    a, b = state_dump(s), state_dump(done)
    assert a == b, "; ".join(diff_dumps(b, a))


@MODES
def test_simulator_bug_in_munmap_says_the_machine_was_not_put_back(mode: bool, monkeypatch) -> None:
    s = boot(BUSY, mode)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("simulated bug")
    monkeypatch.setattr(mm_mmap, "free_pgtables", broken)
    (cmd,) = parse_line("munmap a")
    with pytest.raises(VmBug, match="ZeroDivisionError: simulated bug.*takes no checkpoint"):
        execute(s, cmd)
