"""`set display VIEW...|summary|none`: what is drawn after every step, like gdb's `display`.

The session keeps the words; the printer (report.py) draws them after each
step that may change the machine.  `summary` is the step summary (what
changed: PMDs, swap_map runs, counters), the default; a VIEW is drawn as
`show VIEW` draws it, for the current process, over its whole address space
(`map` marks the cells the step changed); `swapmap` is `show swap map`;
`none` draws nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..mm.errors import MmError

#: The words `set display` takes, in the order `help` lists them.
DISPLAY_WORDS: tuple[str, ...] = ("summary", "none", "map", "swapmap", "pt", "swap", "swapcache", "vmstat",
                                  "smaps", "meminfo", "vmas")
#: What is drawn after each step on a fresh session.
DEFAULT_DISPLAY: tuple[str, ...] = ("summary",)
#: How many words one `set display` takes.
MAX_DISPLAY = 4


def display_words(args: Mapping[str, Any]) -> tuple[str, ...]:
    """The words of a parsed `set display` (its first in `value`, the rest in `more1`..)."""
    words = [args["value"]] + [args.get(f"more{i}") for i in range(1, MAX_DISPLAY)]
    return tuple(w for w in words if w is not None)


def check_display(words: tuple[str, ...]) -> tuple[str, ...]:
    """The display to keep: `none` alone, each word once; else EINVAL, nothing changed."""
    if "none" in words and len(words) > 1:
        raise MmError("EINVAL", "set", "display none stands alone: it draws nothing after each step")
    dup = next((w for i, w in enumerate(words) if w in words[:i]), None)
    if dup is not None:
        raise MmError("EINVAL", "set", f"display {dup} is named twice")
    return () if words == ("none",) else words


def display_view(word: str) -> tuple[str, dict[str, Any]]:
    """The `show` view and options a display word draws."""
    if word == "swapmap":
        return "swap", {"map": True, "name": None}
    return word, {"all": False, "name": None}
