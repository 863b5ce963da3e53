"""Consoles: plain text off a terminal and with NO_COLOR; `show VIEW` dispatch."""

from __future__ import annotations

import io

import pytest
from rich.text import Text

from mmshell.views.console import make_console, render_text
from mmshell.views.render import VIEW_NAMES, build_view, view_json
from mmshell.views.step import digest

M = 1 << 20


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def printed(file) -> str:
    console = make_console(file=file, width=40)
    console.print(Text("swap", style="magenta bold"))
    console.print("[bold]marked[/bold] up")
    return file.getvalue()


def test_plain_off_a_terminal(monkeypatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    out = printed(io.StringIO())
    assert "\x1b" not in out
    assert out == "swap\nmarked up\n"


def test_colour_on_a_terminal_unless_no_color(monkeypatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert "\x1b[" in printed(FakeTty())
    monkeypatch.setenv("NO_COLOR", "1")
    out = printed(FakeTty())
    assert "\x1b[35" not in out and "\x1b[95" not in out   # no magenta


def test_render_text_has_no_trailing_blanks(machine) -> None:
    from mmshell.views.pt import PageTableView
    m = machine()
    m.mmap("a", 2 * M)
    m.touch("a")
    out = render_text(PageTableView(m.k, m.mm, names=m.names), 100)
    assert all(ln == ln.rstrip() for ln in out.splitlines())
    assert "\x1b" not in out


class Session:
    def __init__(self, m) -> None:
        self.kernel, self.pid, self._names = m.k, 1, m.names

    def names(self, pid: int | None = None) -> dict:
        return self._names


@pytest.mark.parametrize("name", VIEW_NAMES)
def test_every_view_builds_renders_and_dumps(machine, name) -> None:
    import json
    m = machine()
    start = m.mmap("a", 2 * M)
    m.touch("a")
    prev = digest(m.k)
    m.madvise("a", "pageout")
    opts = {"all": False, "name": "a" if name == "smaps" else None, "range": (start, 2 * M)}
    view = build_view(Session(m), name, opts, prev)
    assert render_text(view, 100).strip()
    js = view_json(Session(m), name, opts, prev.vmstat)
    assert json.loads(json.dumps(js)) == js


def test_unknown_view(machine) -> None:
    with pytest.raises(ValueError):
        build_view(Session(machine()), "nosuch", {})
