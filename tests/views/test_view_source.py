"""The views built from a backend's readings (views/source.py) draw what the views built from
the simulator's core draw: `show VIEW` (views/render.py, through the simulator's readings)
gives the same text and JSON as each view's constructor over the kernel, so the live kernel's
readings, which fill the same fields, go through the very views the simulator uses."""

from __future__ import annotations

import pytest

from mmshell.lang.registry import LIVE_VIEWS, VIEWS
from mmshell.lang.runner import run_text
from mmshell.lang.session import Session
from mmshell.views.console import render_text
from mmshell.mm.task_mmu import vmstat_snapshot
from mmshell.views.map import MapView, map_cells
from mmshell.views.meminfo import MeminfoView
from mmshell.views.pagemap import PagemapView
from mmshell.views.pt import PageTableView
from mmshell.views.render import build_view
from mmshell.views.swap import SwapView
from mmshell.views.vmas import VmasView
from mmshell.views.vmstat import VmstatView

#: A machine with a THP, a split table with swap entries and present pages, the huge zero
#: page, two swap devices, a second process and a VMA split by mprotect.
SCRIPT = """set pmd_swap off
swapon s0 64M
swapon s1 16M prio 5
mmap a 6M hugepage
touch a
mmap z 2M hugepage
touch z read
madvise a+2M:2M pageout
touch a+2M:12K
mprotect a+4M:1M r
fork
"""

#: The views the simulator's observer feeds (smaps reads parts of VMAs from the core itself).
FED = ("vmas", "pt", "map", "pagemap", "vmstat", "meminfo", "swap")


@pytest.fixture(scope="module")
def session() -> Session:
    s = Session.boot(debug_vm=True)
    assert run_text(s, SCRIPT, "t.mmsh").exit_status() == 0
    return s


def _core_view(s: Session, name: str, opts: dict):
    """The view made by its constructor from the simulated kernel itself."""
    k, pid = s.kernel, opts.get("pid", s.pid)
    mm, names = k.mm(pid), s.names(pid)
    start, end = (opts["range"][0], sum(opts["range"])) if "range" in opts else (None, None)
    match name:
        case "vmas":
            return VmasView(k, mm, names)
        case "pt":
            return PageTableView(k, mm, start, end, names)
        case "map":
            return MapView(pid, map_cells(k, mm, start, end), names)
        case "pagemap":
            assert start is not None and end is not None
            return PagemapView(k, mm, start, end, names)
        case "vmstat":
            return VmstatView(vmstat_snapshot(k), dict(k.vmstat.mthp), None, bool(opts.get("all")))
        case "meminfo":
            return MeminfoView(k)
        case "swap":
            return SwapView(k, [opts["name"]] if opts.get("name") else None)
    raise AssertionError(name)


@pytest.mark.parametrize("name", FED)
@pytest.mark.parametrize("opts", [{}, {"all": True, "name": "s1", "pid": 2}, {"range": (0, 0)}])
def test_views_from_readings_draw_what_the_core_views_draw(session, name, opts) -> None:
    if "range" in opts:
        start, length = session.names()["a"]
        opts = {"range": (start + (1 << 20), length)}
    elif name == "pagemap":
        return
    core = _core_view(session, name, opts)
    shown = build_view(session, name, opts)
    assert render_text(shown) == render_text(core)
    assert shown.to_json() == core.to_json()


def test_every_view_has_a_live_trait() -> None:
    assert set(LIVE_VIEWS) == {*VIEWS, "swap map"}
    refused = {v for v, live in LIVE_VIEWS.items() if live is not True}
    assert refused == {"swapcache", "walks", "swap map"}
    assert all(isinstance(LIVE_VIEWS[v], str) and LIVE_VIEWS[v] for v in refused)


def test_a_counter_the_last_reading_lacks_is_not_marked_changed(session) -> None:
    """`show vmstat all` on the live kernel lists counters the step summary does not follow:
    one missing from the reading before the last step did not change in it."""
    snap = vmstat_snapshot(session.kernel)
    assert snap["pswpout"] and snap["pgfault"]
    view = build_view(session, "vmstat", {"all": True}, {"pswpout": 0})
    deltas = {r["name"]: r["delta"] for r in view.to_json()["vmstat"]}
    assert deltas["pswpout"] == snap["pswpout"] and deltas["pgfault"] == 0
