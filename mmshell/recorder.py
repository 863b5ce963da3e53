"""The steps of a run as the printer drew them, kept for `export` and the pictures of a run.

Kept apart from export.py (which writes them, with rich's exporters and the page
templates) so that a run that exports nothing does not load the writers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["KEEP_STEPS", "RecordedStep", "Recorder"]


@dataclass(slots=True)
class RecordedStep:
    """One step as drawn: its title line, what was printed, and the map after it (for pages)."""

    title: str
    items: list[Any] = field(default_factory=list)
    map: Any = None
    command: str = ""


#: Steps a recorder keeps unless told to keep every one (the oldest go first).
KEEP_STEPS = 200


class Recorder:
    """The steps of a run as the printer drew them, the last `keep` of them (None: all).

    `with_map`: keep the map of the current process after each step (for --html)."""

    def __init__(self, with_map: bool = False, keep: int | None = KEEP_STEPS) -> None:
        self.steps: list[RecordedStep] = []
        self.with_map = with_map
        self.keep = keep
        self.dropped = 0

    def add(self, title: str, command: str, items: list[Any], session: Any) -> None:
        step = RecordedStep(title, list(items), command=command)
        if self.with_map and session.pid in session.kernel.mms:
            from .views.map import MapView, map_cells
            k = session.kernel
            step.map = MapView(session.pid, map_cells(k, k.mm(session.pid)), session.names(),
                               title=f"map of pid {session.pid} after the step")
        self.steps.append(step)
        if self.keep is not None and len(self.steps) > self.keep:
            del self.steps[0]
            self.dropped += 1
