"""What the views read of a machine: the view-facing half of the Observer, and `show` built on it.

`show VIEW` and the step summary are drawn by the same view classes on both
backends; each backend reads the facts behind them its own way:
:class:`ViewObserver` is that contract.  The simulator answers from its core
(views/sim_source.py: every fact exact); the live kernel from pagemap,
PAGEMAP_SCAN, kpageflags, smaps, vmstat, meminfo and swaps
(kernel/live_views.py), and says what user space cannot see through
:meth:`ViewObserver.unseen`, which :func:`observed_view` draws as one dim line
under the view (and a ``not_observable`` key in its JSON) rather than a guess.

A view a backend cannot feed at all is refused before this is reached: the
registry declares, per view, whether it works live (lang/registry.py
LIVE_VIEWS).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import TYPE_CHECKING, Any, Protocol

from rich.console import Group
from rich.text import Text

from .fmt import Names

if TYPE_CHECKING:
    from .cells import PmdCells
    from .describe import PmdDesc
    from .step import Digest

#: One VMA as the views read it: start, end (exclusive), perms ("rw-p"), pgoff (None where it is
#: not exported), flag words.
VmaFacts = tuple[int, int, str, "int | None", list[str]]


class ViewObserver(Protocol):
    """What the views and the step summary read of a backend, for the process ``pid``."""

    @property
    def pid(self) -> int:
        """The current process."""
        ...

    def names(self, pid: int | None = None) -> dict[str, tuple[int, int]]:
        """The region names of a process: name -> (start, length)."""
        ...

    def vma_facts(self, pid: int) -> list[VmaFacts]:
        """The VMAs `show vmas` lists, in address order."""
        ...

    def pmd_descs(self, pid: int, start: int | None, end: int | None) -> list[tuple[int, PmdDesc]]:
        """(PMD index, description) of every PMD slot in use meeting [start, end), in address order."""
        ...

    def map_cells(self, pid: int, start: int | None, end: int | None) -> list[PmdCells]:
        """The cells of every PMD slot `show map` draws over [start, end) (None: the regions)."""
        ...

    def pagemap_runs(self, pid: int, start: int, end: int) -> list[dict[str, Any]]:
        """The pagemap words of [start, end) folded into runs (views/pagemap.fold_pagemap)."""
        ...

    def smaps_rows(self, pid: int, name: str | None) -> list[dict[str, Any]] | None:
        """Rows of `show smaps [NAME]` ({"start", "end", "vma", "regions", FIELD: kB}), or None
        when the backend builds the view from its core (the simulator)."""
        ...

    def counters(self, every: bool) -> tuple[dict[str, int], dict[str, int]]:
        """(vmstat, mthp stats) as `show vmstat` lists them; `every`: `show vmstat all`."""
        ...

    def meminfo_fields(self) -> tuple[str, dict[str, int]]:
        """(title, {field: kB}) of `show meminfo`."""
        ...

    def swap_facts(self, names: list[str] | None) -> list[dict[str, Any]]:
        """views/swap.device_facts of each active device (or those named); "clusters" and
        "runs" None where the backend cannot see them."""
        ...

    def digest(self) -> Digest:
        """The state the step summary compares before and after a step (views/step.py)."""
        ...

    def unseen(self, view: str) -> str | None:
        """One line saying what this backend cannot show in `view`, or None when it shows it all."""
        ...

    def pids(self) -> list[int]:
        """The processes alive, in pid order."""
        ...

    def view(self, name: str, opts: Mapping[str, Any] | None = None, previous: Any = None) -> Any:
        """The view object of `show NAME` (a rich renderable with to_json())."""
        ...


class Noted:
    """A view with a line under it saying what the backend could not see."""

    def __init__(self, view: Any, note: str) -> None:
        self.view, self.note = view, note

    def __rich__(self) -> Group:
        return Group(self.view, Text(self.note, style="dim"))

    def to_json(self) -> Any:
        out = self.view.to_json()
        return {**out, "not_observable": self.note} if isinstance(out, dict) else out


def observed_view(obs: ViewObserver, name: str, opts: Mapping[str, Any] | None = None,
                  previous: Any = None) -> Any:
    """The view object of `show NAME` built from what `obs` reads (opts as views/render.py's),
    with the backend's note on what it cannot see."""
    opts = opts or {}
    pid = opts.get("pid", obs.pid)
    names: Names = obs.names(pid)
    rng = opts.get("range")
    start, end = (rng[0], rng[0] + rng[1]) if rng is not None else (None, None)
    view: Any
    mod = import_module(f".{name}", __package__)      # one view module per view, loaded on use
    match name:
        case "vmas":
            view = mod.VmasView.of(pid, mod.vma_rows(obs.vma_facts(pid), names))
        case "pt":
            spans = [(lo, hi) for lo, hi, *_ in obs.vma_facts(pid)]
            view = mod.PageTableView.of(pid, obs.pmd_descs(pid, start, end), names, spans)
        case "map":
            view = mod.MapView(pid, obs.map_cells(pid, start, end), names)
        case "pagemap":
            if start is None or end is None:
                raise ValueError("show pagemap needs a range")
            view = mod.PagemapView.of(pid, start, end, names, obs.pagemap_runs(pid, start, end))
        case "smaps":
            if opts.get("name") is not None and opts["name"] not in names:
                raise KeyError(f"no region named {opts['name']!r}")
            rows = obs.smaps_rows(pid, opts.get("name"))
            assert rows is not None
            view = mod.SmapsView.of(pid, opts.get("name"), rows)
        case "vmstat":
            values, mthp = obs.counters(bool(opts.get("all")))
            prev, prev_mthp = ((previous.vmstat, previous.mthp) if hasattr(previous, "mthp")
                               else (previous, None))
            # a counter the step summary does not follow (the live kernel's others) is not marked
            prev = {**values, **prev} if prev is not None else None
            prev_mthp = {**mthp, **prev_mthp} if prev_mthp is not None else None
            view = mod.VmstatView(values, mthp, prev, bool(opts.get("all")), prev_mthp)
        case "meminfo":
            title, fields = obs.meminfo_fields()
            view = mod.MeminfoView.of(fields, title)
        case "swap":
            view = mod.SwapView.of(obs.swap_facts([opts["name"]] if opts.get("name") else None))
        case _:
            raise ValueError(f"show {name}: this backend cannot draw it")
    note = obs.unseen(name)
    return Noted(view, note) if note else view
