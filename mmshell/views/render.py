"""`show VIEW`: build the named view from a session, for the script runner and the shell.

The session is used duck-typed (`.kernel`, `.pid`, `.names(pid)`); of the language
layer the views take only the view names `show` offers (its grammar declares them).  `opts` is what the `show` handler produced:
{"all": bool, "name": str | None, "range": (start, length) | absent, "pid": int | absent};
`pid` is the process the view is of (`@2 show vmas` shows pid 2), default the current one.
`previous` is what "the last step" was for `show vmstat`: the vmstat snapshot
taken before it, or the whole `Digest` (which also marks mthp changes).

The views the live kernel can feed too are built from the simulator's readings
(views/sim_source.py) by views/source.py, the path the live kernel's readings
take; the others (smaps, which reads parts of VMAs, swapcache, walks, swap map)
from the core here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from importlib import import_module

from mmshell.lang.registry import VIEWS

from .sim_source import SimViews
from .source import observed_view

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
    if name not in VIEW_NAMES:
        raise ValueError(f"no view named {name!r} (views: {', '.join(VIEW_NAMES)})")
    k = session.kernel
    pid = opts.get("pid", session.pid)
    match name:
        case "swap" if opts.get("map"):
            devices = [opts["name"]] if opts.get("name") else None
            return import_module(".swapmap", __package__).SwapMapView(k, devices)
        case "swapcache":
            return import_module(".swapcache", __package__).SwapCacheView(k)
        case "smaps":       # parts of VMAs and smaps_range: read from the core itself
            return import_module(".smaps", __package__).SmapsView(k, k.mm(pid), session.names(pid),
                                                                  opts.get("name"))
        case "walks":
            # `previous` is a step Digest (its `sim` counts) or nothing
            mod = import_module(".walks", __package__)
            return mod.WalksView(mod.sim_counts(k), getattr(previous, "sim", None))
    # the rest from the simulator's readings, as the live kernel's views are built from its own
    return observed_view(SimViews(session), name, opts, previous)


def render_view(session: SessionLike, name: str, opts: Mapping[str, Any] | None = None,
                previous: Any = None) -> Any:
    """The rich renderable for `show NAME`."""
    return build_view(session, name, opts, previous)


def view_json(session: SessionLike, name: str, opts: Mapping[str, Any] | None = None,
              previous: Any = None) -> Any:
    """The JSON form (plain dicts and lists) of `show NAME`."""
    return build_view(session, name, opts, previous).to_json()
