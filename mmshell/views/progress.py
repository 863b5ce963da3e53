"""A progress bar for a step that runs long, on a terminal only.

The core reports how far a long operation is (mm/progress.py); `StepProgress`
listens for the length of one step and, once the step has run for `DELAY`
seconds, draws a rich progress bar under it: the command, the phase (`fault`,
a walker such as `madvise`, `swap-out`), pages done of the range, or a count of
pages written where the total is not known.  The bar is transient: it is gone
before the step's own output is drawn.  Nothing is drawn when the output is not
a terminal, with --json or --quiet, or for a step shorter than DELAY.
"""

from __future__ import annotations

from contextlib import ExitStack
from time import monotonic
from typing import TYPE_CHECKING, Any, Callable

from ..mm.progress import listening

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["DELAY", "StepProgress"]

#: Seconds a step runs before its bar appears, and between two redraws of it.
DELAY = 1.0
REDRAW = 0.1


class StepProgress:
    """Listens to the core's progress during one step at a time and draws a bar for a long one."""

    def __init__(self, console: "Console | Callable[[], Console]", enabled: bool,
                 delay: float | None = None) -> None:
        # A console of its own (or a function that makes one when a bar is first drawn): the
        # shell captures the printer's console while a line runs (to page long output), and a
        # bar must reach the terminal now, and be gone before the captured text is written.
        self.console = console
        self.enabled = enabled
        self.delay = delay              # None: DELAY
        self.label = ""
        self._stack: ExitStack | None = None
        self._t0 = self._drawn = 0.0
        self._bar: Any = None
        self._task: Any = None
        self._first: dict[str, int] = {}         # a count's value when this step first saw it
        self._counts: dict[str, int] = {}        # counts since then, by phase
        self._outer: tuple[str, int, int] | None = None     # the last phase with a total

    def start(self, label: str) -> None:
        """A step begins: listen (when a bar may be drawn at all)."""
        self.stop()
        if not self.enabled:
            return
        self.label, self._t0, self._drawn = label, monotonic(), 0.0
        self._first, self._counts, self._outer = {}, {}, None
        self._stack = ExitStack()
        self._stack.enter_context(listening(self.update))

    def update(self, phase: str, done: int, total: int) -> None:
        """The core's report (mm/progress.py): draw it once the step has run `delay` seconds.

        A phase with a total (the pages of the range) is the bar; a count (pages written by
        the reclaim a fault runs into) is told beside it, from where this step started."""
        if total > 0:
            self._outer = (phase, done, total)
        else:
            self._counts[phase] = done - self._first.setdefault(phase, done)
        now = monotonic()
        if now - self._t0 < (DELAY if self.delay is None else self.delay) or now - self._drawn < REDRAW:
            return
        self._drawn = now
        if self._bar is None:
            self._open()
        counts = ", ".join(f"{p} {n:,} pages" for p, n in self._counts.items())
        if self._outer is not None:
            outer, done, total = self._outer
            text = f"{self.label}: {outer}" + (f" ({counts})" if counts else "")
            self._bar.update(self._task, description=text, completed=done, total=total, unit="pages")
        else:
            self._bar.update(self._task, description=f"{self.label}: {phase}", completed=self._counts[phase],
                             total=None, unit="pages written")
        self._bar.refresh()

    def _open(self) -> None:
        from rich.progress import (BarColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn,
                                   TimeElapsedColumn)
        from rich.text import Text

        class Amount(ProgressColumn):
            """`N / TOTAL pages (P%)`, or `N pages written` where there is no total."""

            def render(self, task: Any) -> Text:
                n, unit = f"{int(task.completed):,}", task.fields["unit"]
                if task.total is None:
                    return Text(f"{n} {unit}")
                return Text(f"{n} / {int(task.total):,} {unit} ({task.percentage:.0f}%)")

        if callable(self.console):
            self.console = self.console()
        self._bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), Amount(),
                             TimeElapsedColumn(), console=self.console, transient=True, auto_refresh=False)
        self._task = self._bar.add_task(self.label, total=None, unit="pages")
        self._bar.start()

    def stop(self) -> None:
        """The step ended: stop listening, and take the bar away if one was drawn."""
        if self._stack is not None:
            self._stack.close()
            self._stack = None
        if self._bar is not None:
            self._bar.stop()
            self._bar = self._task = None
