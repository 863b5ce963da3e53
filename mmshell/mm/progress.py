"""How far a long operation is: a hook the layers above may fill (the simulation's own).

A command over a GiB can run for minutes (a mainline `check` of 1 GiB with 1 GiB
of RAM faults every page back in while reclaim evicts the pages before it).  The
loops that take that long call `progress(phase, done, total)` as they go: per
PMD of the range for the fault path and the page-table walkers (pages of the
range), per folio for shrink_folio_list (reclaim and MADV_PAGEOUT; splits add
folios as it goes, so it gives `pswpout`, the pages written so far, with `total`
0: only a count).  Within one operation `done` never goes down.

By default nothing listens and a call costs a global look-up; the language's
printer sets a listener for the length of a step (`listening`) and draws a bar
from it.  The kernel has nothing like this: it is how the simulation tells a
person at a terminal that it is still working, and it changes no state.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

__all__ = ["Listener", "progress", "listening"]

#: Called with (phase, done, total): pages of the range for a walk or a fault run, folios
#: for reclaim (total 0: not known in advance).
Listener = Callable[[str, int, int], None]

_listener: Listener | None = None


def progress(phase: str, done: int, total: int) -> None:
    """Tell the listener, if any, that `done` of `total` units of `phase` are done."""
    if _listener is not None:
        _listener(phase, done, total)


@contextmanager
def listening(listener: Listener | None) -> Iterator[None]:
    """Send progress to `listener` while the block runs (None: to nobody)."""
    global _listener
    old, _listener = _listener, listener
    try:
        yield
    finally:
        _listener = old
