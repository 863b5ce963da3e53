"""The rich Console every view is printed on, and plain-text rendering for tests and scripts.

A console writing to a file or a pipe gives plain text: no colour and no
escape codes (rich markup such as `[bold]` is still interpreted, never
printed).  NO_COLOR (https://no-color.org: set and not empty) turns colour off
on a terminal too.  `render_text` renders at a fixed width with no colour, like
Textualize/rich's own tests (tests/test_tree.py), and strips the padding rich
leaves at the end of table lines.
"""

from __future__ import annotations

import io
import os
import sys
from typing import IO, Any

from rich.console import Console


def _is_terminal(file: IO[str]) -> bool:
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):
        return False


#: Width of plain output to a file or a pipe (rich would assume 80) unless COLUMNS says otherwise.
PLAIN_WIDTH = 120


def make_console(file: IO[str] | None = None, width: int | None = None) -> Console:
    """A Console on `file` (default stdout): colour only on a terminal and without NO_COLOR.

    Off a terminal the width is `width`, else $COLUMNS, else PLAIN_WIDTH.
    """
    file = file if file is not None else sys.stdout
    terminal = _is_terminal(file)
    if width is None and not terminal and not os.environ.get("COLUMNS"):
        width = PLAIN_WIDTH
    no_color = bool(os.environ.get("NO_COLOR"))
    return Console(
        file=file,
        width=width,
        force_terminal=terminal,
        color_system="auto" if terminal and not no_color else None,
        no_color=no_color or not terminal,
        highlight=False,
        emoji=False,
        legacy_windows=False,
    )


def render_text(renderable: Any, width: int = 100) -> str:
    """`renderable` as plain text at `width` columns (no colour, trailing spaces stripped)."""
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None, no_color=True,
                      highlight=False, emoji=False, markup=False, legacy_windows=False)
    console.print(renderable)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"
