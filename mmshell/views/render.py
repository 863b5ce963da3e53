"""`show VIEW`: build the named view from a session, for the script runner and the shell.

The session is used duck-typed (`.kernel`, `.pid`, `.names(pid)`); of the language
layer the views take only the view names `show` offers (its grammar declares them).  `opts` is what the `show` handler produced:
{"all": bool, "name": str | None, "range": (start, length) | absent, "pid": int | absent};
`pid` is the process the view is of (`@2 show vmas` shows pid 2), default the current one.
`previous` is what "the last step" was for `show vmstat`: the vmstat snapshot
taken before it, or the whole `Digest` (which also marks mthp changes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from mmshell.lang.registry import VIEWS
from mmshell.mm.task_mmu import vmstat_snapshot

from importlib import import_module

#: The contract's view names, in the order `show` lists them.
VIEW_NAMES: tuple[str, ...] = VIEWS


class SessionLike(Protocol):
    kernel: Any
    pid: int

    def names(self, pid: int | None = None) -> dict[str, tuple[int, int]]: ...


def build_view(session: SessionLike, name: str, opts: Mapping[str, Any] | None = None,
               previous: Any = None) -> Any:
    """The view object for `show NAME` of process opts["pid"] (default: the current one)."""
    opts = opts or {}
    k = session.kernel
    pid = opts.get("pid", session.pid)
    mm = k.mm(pid)
    names = session.names(pid)
    rng = opts.get("range")
    start, end = (rng[0], rng[0] + rng[1]) if rng is not None else (None, None)
    if name not in VIEW_NAMES:
        raise ValueError(f"no view named {name!r} (views: {', '.join(VIEW_NAMES)})")
    mod = import_module(f".{name}", __package__)      # one view module per view, loaded on use
    match name:
        case "vmas":
            return mod.VmasView(k, mm, names)
        case "pt":
            return mod.PageTableView(k, mm, start, end, names)
        case "map":
            return mod.MapView(pid, mod.map_cells(k, mm, start, end), names)
        case "swap":
            devices = [opts["name"]] if opts.get("name") else None
            if opts.get("map"):
                return import_module(".swapmap", __package__).SwapMapView(k, devices)
            return mod.SwapView(k, devices)
        case "swapcache":
            return mod.SwapCacheView(k)
        case "vmstat":
            # `previous` is a vmstat dict or a step Digest (which has the mthp stats too)
            prev, prev_mthp = (previous.vmstat, previous.mthp) if hasattr(previous, "mthp") else (previous, None)
            return mod.VmstatView(vmstat_snapshot(k), dict(k.vmstat.mthp), prev, bool(opts.get("all")), prev_mthp)
        case "smaps":
            return mod.SmapsView(k, mm, names, opts.get("name"))
        case "pagemap":
            if start is None or end is None:
                raise ValueError("show pagemap needs a range")
            return mod.PagemapView(k, mm, start, end, names)
        case "meminfo":
            return mod.MeminfoView(k)
        case "walks":
            # `previous` is a step Digest (its `sim` counts) or nothing
            return mod.WalksView(mod.sim_counts(k), getattr(previous, "sim", None))
    raise ValueError(f"no view named {name!r} (views: {', '.join(VIEW_NAMES)})")


def render_view(session: SessionLike, name: str, opts: Mapping[str, Any] | None = None,
                previous: Any = None) -> Any:
    """The rich renderable for `show NAME`."""
    return build_view(session, name, opts, previous)


def view_json(session: SessionLike, name: str, opts: Mapping[str, Any] | None = None,
              previous: Any = None) -> Any:
    """The JSON form (plain dicts and lists) of `show NAME`."""
    return build_view(session, name, opts, previous).to_json()
