"""Commands that set the machine up, written once: `set`, `swapon`, `swapoff`.

`set` is looked up in the registry (lang/settings.py): a pinned setting is
skipped, `set display` and the display settings are kept by the backend's
session (what is printed, not the machine), a value out of range is refused the
same way on both backends, and the rest is one primitive: the simulator writes
its Config field, the live kernel its sysfs knob.
"""

from __future__ import annotations

from typing import Callable

from ..mm.swap_info import SwapKind
from . import registry
from .backend import Operations, StepOutput
from .display import check_display, display_words
from .parser import Command

__all__ = ["HANDLERS"]


def do_set(b: Operations, cmd: Command) -> StepOutput:
    name, value = cmd.args["setting"], cmd.args["value"]
    if name in b.pinned:
        return StepOutput(changed=False, lines=[f"skipped: {name} {b.pinned[name]}"])
    if name == "display":                   # a grammar case of `set`, not a setting
        return StepOutput(changed=False, notes=b.keep(name, check_display(display_words(cmd.args))))
    spec = registry.setting(name)
    if spec.display:
        return StepOutput(changed=False, notes=b.keep(name, value))
    why = spec.out_of_range(value)
    if why:
        raise b.refuse("EINVAL", "set", why)
    return b.set(spec, value, cmd.args.get("point"))


def do_swapon(b: Operations, cmd: Command) -> StepOutput:
    a = cmd.args
    return StepOutput(lines=b.swapon(a["name"], a["size"], SwapKind(a["kind"] or "zram"), a["prio"]))


def do_swapoff(b: Operations, cmd: Command) -> StepOutput:
    b.swapoff(cmd.args["name"])
    return StepOutput()


HANDLERS: dict[str, Callable[[Operations, Command], StepOutput]] = {
    "set": do_set, "swapon": do_swapon, "swapoff": do_swapoff,
}
