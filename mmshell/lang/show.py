"""`show VIEW`, written once: the arguments resolved and checked, the view drawn by the backend.

Both backends hand the view to the step printer, which draws it after the step
through views/ (the live kernel's readings come from kernel/live_views.py).  The
views the live kernel cannot feed are refused there before this runs, with the
reason the registry gives (LIVE_VIEWS).
"""

from __future__ import annotations

from typing import Any, Callable

from .backend import Operations, StepOutput
from .memory import walk_limit
from .parser import Command

__all__ = ["HANDLERS"]


def do_show(b: Operations, cmd: Command) -> StepOutput:
    a = cmd.args
    view = a["view"]
    # the process is recorded: under @PID the view is of PID, though it is drawn after the step
    opts: dict[str, Any] = {"all": a.get("all", False), "name": a.get("name"), "pid": b.pid,
                            "map": a.get("map", False)}
    if a.get("range") is not None:
        opts["range"] = b.resolve_range(a["range"], "show")
        if view == "pagemap":
            walk_limit(b, "show pagemap", opts["range"][1])
    if view == "smaps" and opts["name"] is not None and opts["name"] not in b.names():
        raise b.refuse("EINVAL", "show", f"no region named {opts['name']!r} in pid {b.pid}")
    return b.show(view, opts)


HANDLERS: dict[str, Callable[[Operations, Command], StepOutput]] = {"show": do_show}
