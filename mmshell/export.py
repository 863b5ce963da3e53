"""Pictures of a run for slides and web pages: SVG, HTML and text, at a fixed width, light theme.

A `Recorder` keeps what the printer drew for each step (the renderables, which
are snapshots: a view is built from the machine when it is made) and the map
of the current process after the step.  From it:

- `export_steps(steps, fmt, path)`: `export svg|html|txt FILE` (the last step) and
  `export session FILE` (every step) at the prompt or in a script;
- `export_dir(steps, dir)`: `mmshell run FILE --export DIR`, one SVG per step and an
  index.html that shows them in order;
- `export_page(steps, path)`: `mmshell run FILE --html OUT.html`, one self-contained
  page (styles and script inline, nothing fetched) that steps through the run
  with the arrow keys (views/page.py holds its template).

Each is drawn by rich's own exporters (`Console(record=True)`), at `width`
columns (default 100), in `LIGHT_THEME`, a palette for a white background
(projectors).  The SVGs carry no web-font reference, so they need nothing else.
"""

from __future__ import annotations

import html
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.terminal_theme import TerminalTheme
from rich.text import Text

from .recorder import RecordedStep, Recorder

#: Columns of an exported picture unless asked otherwise.
EXPORT_WIDTH = 100
#: The formats `export` writes, by name and by a FILE's suffix.
FORMATS = ("svg", "html", "txt")

#: Dark text on white; the ANSI colours darkened enough to read on a projector.
LIGHT_THEME = TerminalTheme(
    (255, 255, 255), (20, 20, 20),
    [(40, 40, 40), (178, 24, 24), (24, 128, 24), (150, 110, 0), (30, 70, 190), (150, 30, 150), (0, 120, 140),
     (110, 110, 110)],
    [(90, 90, 90), (210, 40, 40), (30, 150, 30), (170, 130, 0), (50, 90, 220), (180, 50, 180), (0, 140, 160),
     (60, 60, 60)],
)


def _svg_format() -> str:
    """rich's SVG template without its @font-face rules (they name a web font on a CDN)."""
    from rich._export_format import CONSOLE_SVG_FORMAT

    return re.sub(r"\s*@font-face \{\{.*?\}\}", "", CONSOLE_SVG_FORMAT, flags=re.S)


def _console(width: int) -> Console:
    return Console(record=True, file=io.StringIO(), width=width, force_terminal=True, color_system="truecolor",
                   highlight=False, emoji=False, legacy_windows=False, no_color=False)


def _draw(steps: list[RecordedStep], width: int, with_map: bool = False, titles: bool = True) -> Console:
    console = _console(width)
    for step in steps:
        if titles:
            console.print(Text(step.title, style="bold"))
        for item in step.items:
            console.print(item)
        if with_map and step.map is not None:
            console.print(step.map)
    return console


def render(steps: list[RecordedStep], fmt: str, width: int = EXPORT_WIDTH, title: str = "mmshell") -> str:
    """The steps drawn as one SVG, HTML page or plain text."""
    return _export(_draw(steps, width), fmt, title)


def export_renderables(items: list[Any], fmt: str, path: str | Path, width: int = EXPORT_WIDTH) -> str:
    """Anything rich draws (`mmshell compare --export`), written to path in fmt as the steps are;
    the line that says what was written (OSError if it cannot be)."""
    console = _console(width)
    for item in items:
        console.print(item)
    Path(path).write_text(_export(console, fmt, Path(path).name), encoding="utf-8")
    return f"exported as {fmt} to {path}"


def _export(console: Console, fmt: str, title: str) -> str:
    if fmt == "svg":
        return console.export_svg(title=title, theme=LIGHT_THEME, code_format=_svg_format())
    if fmt == "html":
        return console.export_html(theme=LIGHT_THEME, inline_styles=True)
    return console.export_text(styles=False)


def export_steps(steps: list[RecordedStep], fmt: str, path: str | Path, width: int = EXPORT_WIDTH) -> str:
    """Write the steps to path in fmt; the line that says what was written (OSError if it cannot be)."""
    text = render(steps, fmt, width, title=Path(path).name)
    Path(path).write_text(text, encoding="utf-8")
    return f"exported {len(steps)} step{'s' if len(steps) != 1 else ''} as {fmt} to {path}"


def format_of(path: str) -> str | None:
    """svg, html or txt from a FILE's suffix (None for another suffix)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    return {"htm": "html", "text": "txt"}.get(suffix, suffix) if suffix in (*FORMATS, "htm", "text") else None


def export_dir(steps: list[RecordedStep], directory: str | Path, width: int = EXPORT_WIDTH) -> list[Path]:
    """One SVG per step (step-001.svg ...) and an index.html showing them in order; the files written."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    rows = []
    for i, step in enumerate(steps, 1):
        name = f"step-{i:03d}.svg"
        (out / name).write_text(render([step], "svg", width, title=step.title), encoding="utf-8")
        written.append(out / name)
        rows.append(f'<section><h2>{html.escape(step.title)}</h2><img src="{name}" alt="{html.escape(step.title)}">'
                    "</section>")
    index = out / "index.html"
    index.write_text("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>mmshell run</title>"
                     "<style>body{font-family:sans-serif;background:#fff;color:#141414}"
                     "img{max-width:100%}h2{font-size:1em;font-family:monospace}</style></head><body>\n"
                     + "\n".join(rows) + "\n</body></html>\n", encoding="utf-8")
    written.append(index)
    return written


def step_html(step: RecordedStep, width: int) -> str:
    """One step as an HTML fragment with inline styles (its <pre> only)."""
    console = _draw([step], width, with_map=True, titles=False)
    page = console.export_html(theme=LIGHT_THEME, inline_styles=True, code_format="{code}")
    return f'<pre class="step-body">{page}</pre>'


def export_page(steps: list[RecordedStep], path: str | Path, width: int = EXPORT_WIDTH, title: str = "") -> None:
    """One self-contained page that steps through the run (views/page.py's template)."""
    from .views.page import PAGE_TEMPLATE

    bodies = [step_html(s, width) for s in steps]
    sections = "\n".join(
        f'<section class="step" data-index="{i}" hidden><h2 class="command">{html.escape(s.title)}</h2>{body}'
        "</section>" for i, (s, body) in enumerate(zip(steps, bodies)))
    page = PAGE_TEMPLATE.format(title=html.escape(title or "mmshell run"), count=len(steps), sections=sections,
                                commands=json.dumps([s.command for s in steps]).replace("</", "<\\/"))
    Path(path).write_text(page, encoding="utf-8")


@dataclass(frozen=True, slots=True)
class Pictures:
    """What `mmshell run --export DIR --html OUT.html --width N` asks to be written after each script."""

    directory: str | None = None
    page: str | None = None
    width: int = EXPORT_WIDTH

    def recorder(self) -> Recorder:
        """A recorder that keeps every step (and the maps, for a page)."""
        return Recorder(with_map=self.page is not None, keep=None)

    def write(self, recorder: Recorder, source: str, several: bool) -> list[str]:
        """Write the pictures of one script's steps; the lines that say what was written.
        With several scripts, each gets DIR/<script name>/ and <OUT>-<script name>.html."""
        lines = []
        stem = Path(source).stem if source not in ("-c", "<stdin>", "-") else "stdin"
        if self.directory is not None:
            where = Path(self.directory) / stem if several else Path(self.directory)
            files = export_dir(recorder.steps, where, self.width)
            lines.append(f"{source}: {len(files) - 1} SVG(s) and {files[-1]} written")
        if self.page is not None:
            page = Path(self.page)
            if several:
                page = page.with_name(f"{page.stem}-{stem}{page.suffix}")
            export_page(recorder.steps, page, self.width, title=source)
            lines.append(f"{source}: {len(recorder.steps)} step(s) in {page}")
        return lines
