"""The bottom toolbar: the machine at a glance, and what the line expects next.

:class:`Status` is read from the session once per prompt (after each command):
pid, ``pmd_swap``, the THP mode, zswap, free memory of RAM, and each swap
device's used/total.  It reads only counters the kernel keeps (the frame
allocator's free count, each device's ``inuse_pages``), never walks page
tables or the LRU, so it costs the same on a 16 GiB machine as on a 64 MiB one.

The hint after it is the only part recomputed as you type: the slots
``parser.expected_next`` gives for the line up to the cursor (``next: SIZE
(a size)``, ``next: [fails] PATH``), or, when the line cannot go on, why it
does not parse.  That is one parse of one line.
"""

from __future__ import annotations

from dataclasses import dataclass

from prompt_toolkit.application.current import get_app_or_none
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.styles import Style

from ..lang.errors import LangError
from ..lang.grammar import Kind, Slot
from ..lang.parser import expected_next, parse_line
from ..lang.session import Session
from ..lang.topics import SHELL_COMMANDS
from ..mm.constants import PAGE_SIZE
from .vocab import short_size

__all__ = ["TOOLBAR_STYLE", "Status", "Toolbar", "hint"]

TOOLBAR_STYLE = Style.from_dict({
    "bottom-toolbar": "noreverse bg:#262626 #bcbcbc",
    "toolbar.key": "#8a8a8a",
    "toolbar.on": "bold ansigreen",
    "toolbar.off": "ansiyellow",
    "toolbar.value": "bold #e4e4e4",
    "toolbar.hint": "italic #87afd7",
    "toolbar.error": "ansired",
})

#: How many swap devices the toolbar names before it says "+N more".
MAX_DEVICES = 4
#: Kinds whose hint also says what kind of word is wanted (no completion offers them).
_DESCRIBED = frozenset({Kind.SIZE, Kind.INT, Kind.PID, Kind.ADDR, Kind.RANGE, Kind.NAME,
                        Kind.WORD, Kind.PATH, Kind.FILE})


@dataclass(frozen=True)
class Status:
    """The machine as the toolbar shows it; sizes in bytes."""

    pid: int
    pmd_swap: bool
    thp: str
    zswap: bool
    free: int
    ram: int
    devices: tuple[tuple[str, int, int], ...]   # (name, used, size given to swapon), priority order

    @classmethod
    def of(cls, session: Session) -> Status:
        """Read the status off the session's machine (cheap: counters only)."""
        k = session.kernel
        devices = tuple((si.name, si.inuse_pages * PAGE_SIZE, si.pages * PAGE_SIZE)
                        for si in k.active_swap())
        return cls(session.pid, k.config.pmd_swap, k.config.thp.value, k.config.zswap,
                   k.nr_free_frames() * PAGE_SIZE, k.mem.nr_frames * PAGE_SIZE, devices)

    def fragments(self, max_devices: int = 4) -> StyleAndTextTuples:
        """The status as styled fragments, naming at most `max_devices` swap devices."""
        key, val = "class:toolbar.key", "class:toolbar.value"

        def switch(on: bool) -> tuple[str, str]:
            return ("class:toolbar.on", "on") if on else ("class:toolbar.off", "off")

        out: StyleAndTextTuples = [
            (key, " pid "), (val, str(self.pid)),
            (key, "  pmd_swap "), switch(self.pmd_swap),
            (key, "  thp "), (val, self.thp),
            (key, "  zswap "), switch(self.zswap),
            (key, "  free "), (val, f"{short_size(self.free)}/{short_size(self.ram)}"),
            (key, "  swap"),
        ]
        if not self.devices:
            out.append((val, " none"))
        for name, used, total in self.devices[:max_devices]:
            out += [(key, f" {name} "), (val, f"{short_size(used)}/{short_size(total)}")]
        if len(self.devices) > max_devices:
            out.append((key, f" +{len(self.devices) - max_devices}{' more' if max_devices else ''}"))
        return out

    def text(self) -> str:
        """The status as plain text."""
        return "".join(fragment[1] for fragment in self.fragments())


def _slot_text(slot: Slot) -> str:
    """One slot as the hint shows it: ``SIZE (a size)``, ``[read|write]``."""
    label = slot.meta or slot.kind.value
    if slot.kind in _DESCRIBED:
        label += f" ({slot.kind.value})"
    return f"[{label}]" if slot.optional else label


def hint(line: str) -> tuple[str, str]:
    """(style, text) saying what ``line`` (up to the cursor) expects next; ("", "") for nothing."""
    words = line.split()
    if words and words[0] in SHELL_COMMANDS and ";" not in line:
        synopsis, what = SHELL_COMMANDS[words[0]]
        return "class:toolbar.hint", f"{synopsis}: {what.split(' (')[0].split(';')[0]}"
    try:
        slots = expected_next(line)
        if slots:
            return "class:toolbar.hint", "next: " + " ".join(_slot_text(s) for s in slots)
        if line.strip():
            parse_line(line)
    except LangError as e:
        return "class:toolbar.error", e.message
    except Exception:  # noqa: BLE001 -- a hint is never worth an exception
        return "", ""
    return "", ""


class Toolbar:
    """The prompt's ``bottom_toolbar``: a status read once per prompt, and a live hint."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.status = Status.of(session)

    def refresh(self) -> None:
        """Read the status again (call once before each prompt)."""
        self.status = Status.of(self.session)

    def fragments(self, line: str, width: int = 0) -> StyleAndTextTuples:
        """The whole toolbar for input ``line`` (up to the cursor), `width` columns wide (0:
        any): fewer swap devices named when the status is too wide, and the hint on a line
        of its own, cut short with `…`, when it does not fit beside it."""
        n = MAX_DEVICES
        out = self.status.fragments(n)
        while width and n > 0 and _length(out) > width:
            n -= 1
            out = self.status.fragments(n)
        style, text = hint(line)
        if text:
            if not width or _length(out) + 3 + len(text) <= width:
                out += [("class:toolbar.key", "  │ "), (style, text)]
            else:
                cut = text if len(text) < width else text[:max(1, width - 2)] + "…"
                out += [("", "\n"), (style, " " + cut)]
        return out

    def __call__(self) -> StyleAndTextTuples:
        """What prompt_toolkit renders: the toolbar for the line being edited."""
        app = get_app_or_none()
        line = app.current_buffer.document.text_before_cursor if app is not None else ""
        width = app.output.get_size().columns if app is not None else 0
        return self.fragments(line, width)


def _length(fragments: StyleAndTextTuples) -> int:
    return sum(len(f[1]) for f in fragments)
