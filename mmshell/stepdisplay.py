"""Drawing what `set display` names after each step (the words are lang/display.py's).

`StepDisplay.before` takes what a display needs from before the step (the
current process's map cells, so `map` can mark the cells the step changed);
`renderables` gives, in the order the words were given, the step summary and
each view; `to_json` the views as `show VIEW --json` gives them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol

from .lang.display import display_view
from .lang.session import Session
from .views.render import render_view

if TYPE_CHECKING:
    from .views.cells import PmdCells


class PrintedSession(Protocol):
    """What the step printer (report.py) and the display read of a session, on either backend:
    the simulator's Session, or the live kernel's (kernel/report.py Printed), whose only
    display is the summary."""

    @property
    def pid(self) -> int: ...

    @property
    def regions(self) -> dict[int, dict[str, tuple[int, int]]]: ...

    display: tuple[str, ...]
    explain: bool
    counters: str
    exporter: Callable[[str, str], str] | None

    def names(self, pid: int | None = None) -> dict[str, tuple[int, int]]: ...


class StepDisplay:
    """The display of one session, step after step."""

    def __init__(self) -> None:
        self._cells: dict[int, PmdCells] | None = None
        self._pid: int | None = None

    def before(self, session: PrintedSession) -> None:
        """Remember the current process's map cells when `map` is displayed."""
        self._cells = None
        if "map" in session.display and isinstance(session, Session):
            from .views.map import map_cells
            self._pid = session.pid
            k = session.kernel
            self._cells = {c.index: c for c in map_cells(k, k.mm(session.pid))}

    def _view(self, session: PrintedSession, word: str, previous: Any) -> Any:
        name, opts = display_view(word)
        assert isinstance(session, Session)     # a backend that displays the summary alone draws no view
        if name == "map" and session.pid in session.kernel.mms:
            from .views.map import MapView, map_cells
            k = session.kernel
            before = self._cells if self._pid == session.pid else None
            return MapView(session.pid, map_cells(k, k.mm(session.pid)), session.names(), before=before)
        return render_view(session, name, opts, previous)

    def renderables(self, session: PrintedSession, summary: Any, previous: Any) -> Iterator[Any]:
        """What to draw after the step: the summary (when it is displayed and there is one) and
        each displayed view, in the order `set display` named them."""
        for word in session.display:
            if word == "summary":
                if summary is not None:
                    yield summary
            else:
                yield self._view(session, word, previous)

    def to_json(self, session: PrintedSession, previous: Any) -> dict[str, Any]:
        """The displayed views (not the summary: a step's JSON has its changes anyway)."""
        out = {}
        for word in session.display:
            if word != "summary":
                out[word] = self._view(session, word, previous).to_json()
        return out
