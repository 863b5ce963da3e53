"""`mmshell present FILE`: a lesson full screen, for a projector.

A prompt_toolkit full-screen application over presentation.Presentation: a
title bar (the lesson, the step number, where the step is in the file, and
the mode the machine is in), the
current view on top, the narration, command and changes below, and the keys at
the bottom.  Right, space, Enter or `l` go one step forward; left, `b` or `h`
one step back (a replay from the start); `p`/`P` go to the next/previous
`pause`; Home/`g` and End/`G` to the start and the end; `q` quits (exit 0),
Ctrl-C interrupts (exit 2).
"""

from __future__ import annotations

from typing import Callable

from prompt_toolkit.application import Application
from prompt_toolkit.formatted_text import ANSI, StyleAndTextTuples
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.layout import HSplit, Layout, Window
from prompt_toolkit.layout.controls import FormattedTextControl
from prompt_toolkit.layout.dimension import Dimension
from prompt_toolkit.output import Output
from prompt_toolkit.styles import Style

from ..presentation import Frame, Presentation

__all__ = ["Presenter", "run_presenter", "KEYS"]

KEYS = "→ space: next   ← b: back   p P: next/previous pause   g G: start/end   q: quit"

STYLE = Style.from_dict({
    "title": "reverse bold",
    "title.refused": "bg:ansired ansiwhite bold",
    "keys": "reverse",
    "rule": "ansibrightblack",
})


class Presenter:
    """The position in a Presentation and the frame shown there (rebuilt when the step or
    the width changes; going back replays from the start)."""

    def __init__(self, presentation: Presentation, width: Callable[[], int]) -> None:
        self.presentation = presentation
        self.width = width
        self.index = 0
        self._frame: Frame | None = None
        self._key: tuple[int, int] | None = None

    @property
    def frame(self) -> Frame:
        key = (self.index, self.width())
        if self._frame is None or self._key != key:
            self._frame = self.presentation.frame(self.index, key[1])
            self._key = key
        return self._frame

    def go(self, index: int) -> None:
        self.index = max(0, min(index, self.presentation.total))

    def next_pause(self) -> None:
        self.go(next((i for i in self.presentation.pauses if i > self.index), self.presentation.total))

    def previous_pause(self) -> None:
        self.go(next((i for i in reversed(self.presentation.pauses) if i < self.index), 0))

    def title(self) -> StyleAndTextTuples:
        f = self.frame
        style = "class:title.refused" if f.status in ("refused", "bug", "expect-failed") else "class:title"
        right = f"step {f.index}/{f.total}" + (f"  {f.where}" if f.where else "")
        right += "  pmd_swap=" + ("on" if f.pmd_swap else "off") + " "
        width = self.width()
        left = f" {self.presentation.title}"
        room = width - len(right) - 1
        if len(left) > room:               # the title gives way: the step and the mode stay
            left = left[:max(0, room - 1)] + "…"
        return [(style, (left + " " * max(1, width - len(left) - len(right)) + right)[:width])]


def _bindings(p: Presenter) -> KeyBindings:
    kb = KeyBindings()

    def key(*names: str) -> Callable[[Callable[[KeyPressEvent], None]], Callable[[KeyPressEvent], None]]:
        def register(fn: Callable[[KeyPressEvent], None]) -> Callable[[KeyPressEvent], None]:
            for name in names:
                kb.add(name)(fn)
            return fn
        return register

    @key("right", "space", "enter", "l", "pagedown", "n")
    def _next(event: KeyPressEvent) -> None:
        p.go(p.index + 1)

    @key("left", "b", "h", "pageup")
    def _back(event: KeyPressEvent) -> None:
        p.go(p.index - 1)

    @key("p")
    def _next_pause(event: KeyPressEvent) -> None:
        p.next_pause()

    @key("P")
    def _previous_pause(event: KeyPressEvent) -> None:
        p.previous_pause()

    @key("home", "g")
    def _start(event: KeyPressEvent) -> None:
        p.go(0)

    @key("end", "G")
    def _end(event: KeyPressEvent) -> None:
        p.go(p.presentation.total)

    @key("q", "escape")
    def _quit(event: KeyPressEvent) -> None:
        event.app.exit(result=0)

    @key("c-c")
    def _interrupt(event: KeyPressEvent) -> None:
        event.app.exit(result=2)
    return kb


def _share(text: str, weight: int) -> Dimension:
    """A part of the screen: as many lines as `text` has, shrinking by `weight` when short of room."""
    return Dimension(min=1, preferred=text.count("\n") + 1, weight=weight)


def build_app(presentation: Presentation, input: Input | None = None,
              output: Output | None = None) -> tuple[Application[int], Presenter]:
    """The full-screen application and its Presenter (tests drive both)."""
    holder: list[Application[int]] = []

    def width() -> int:
        return holder[0].output.get_size().columns if holder else 100

    p = Presenter(presentation, width)
    body = HSplit([
        Window(FormattedTextControl(p.title), height=1),
        # each part gets the lines it needs when they fit, and a share by weight when they do not
        Window(FormattedTextControl(lambda: ANSI(p.frame.top)), height=lambda: _share(p.frame.top, 3),
               wrap_lines=False),
        Window(height=1, char="─", style="class:rule"),
        Window(FormattedTextControl(lambda: ANSI(p.frame.bottom)), height=lambda: _share(p.frame.bottom, 2),
               wrap_lines=False),
        Window(FormattedTextControl(lambda: [("class:keys", " " + KEYS)]), height=1, style="class:keys"),
    ])
    app: Application[int] = Application(layout=Layout(body), key_bindings=_bindings(p), full_screen=True,
                                        style=STYLE, input=input, output=output, mouse_support=False)
    holder.append(app)
    return app, p


def run_presenter(presentation: Presentation) -> int:
    """Show the lesson until `q` (0) or Ctrl-C (2)."""
    app, _ = build_app(presentation)
    result = app.run()
    return 0 if result is None else int(result)
