"""Small rich building blocks shared by the views: one table style, kind colours, cells."""

from __future__ import annotations

from rich import box
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

#: Colours for entry kinds (dropped on a plain console).
KIND_STYLE = {
    "none": "dim",
    "table": "cyan",
    "huge": "green",
    "swap": "magenta",
    "migration": "yellow",
    "present": "green",
    "swapped": "magenta",
}


def cell(value: object, style: str = "") -> Text:
    """A table cell that is never read as markup (region names are user text)."""
    return Text(str(value), style=style)


def view_table(title: str | None, *columns: str, right: tuple[str, ...] = (),
               wrap: tuple[str, ...] | None = None) -> Table:
    """A compact table: a title, a header rule, no borders; `right` columns right-aligned.

    Only the `wrap` columns (default: the last) wrap, so the others stay on one line.
    The table is at least as wide as its title, so the title never wraps.
    """
    wrap = wrap if wrap is not None else columns[-1:]
    t = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", show_edge=False, pad_edge=False,
              padding=(0, 1), collapse_padding=True, min_width=len(title) if title else None)
    for c in columns:
        t.add_column(c, justify="right" if c in right else "left", overflow="fold", no_wrap=c not in wrap)
    return t


class Trimmed:
    """Render `renderable` with the padding rich leaves at the end of each line removed.

    Tables pad every cell to its column width; in a file or a pipe that leaves
    trailing blanks on every line.  Styles are kept.
    """

    def __init__(self, renderable: RenderableType) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in console.render_lines(self.renderable, options, pad=False, new_lines=False):
            segs = list(line)
            while segs and not segs[-1].control and not segs[-1].text.rstrip():
                segs.pop()
            if segs and not segs[-1].control:
                last = segs[-1]
                segs[-1] = Segment(last.text.rstrip(), last.style)
            yield from segs
            yield Segment.line()


class Packed:
    """Short items (`pswpout +512`) packed into lines at the console width, never split inside one.

    The first line starts with `label`; later lines are indented under the first item.
    """

    def __init__(self, label: str, items: list[str], style: str = "") -> None:
        self.label = label
        self.items = items
        self.style = style

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        indent = " " * len(self.label)
        line = self.label
        fresh = True
        for item in self.items:
            if not fresh and len(line) + 2 + len(item) > width:
                yield Text(line, style=self.style)
                line, fresh = indent + item, False
                continue
            line = line + ("" if fresh else "  ") + item
            fresh = False
        yield Text(line, style=self.style)
