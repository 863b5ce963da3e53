"""Completing an ``expect`` PATH one ``.``-separated part at a time.

The path shapes (``vmstat.NAME``, ``smaps.NAME.FIELD``, ``swap.NAME.used``,
``pid`` ...) are the registry's ``EXPECT_PATHS``, which ``help expect`` lists
too, so a new path added there is completed without touching this file.  Each placeholder of a shape is filled
from the live session (:mod:`.vocab`): ``vmstat.NAME`` from the counters this
kernel has, ``smaps.NAME`` from region names, ``swap.NAME`` from swap
devices, ``.FIELD`` from the smaps, pagemap or meminfo fields.  ``OFFSET``
(a swap slot) is a number and gets no candidates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from ..lang import registry
from ..lang.session import Session
from . import vocab
from .vocab import Word

__all__ = ["PathShape", "path_candidates", "path_shapes"]


@dataclass(frozen=True)
class PathShape:
    """One documented path form: ``("smaps", "NAME", "FIELD")``.

    A part in upper case is a placeholder; a part in lower case is literal.
    """

    parts: tuple[str, ...]

    def __str__(self) -> str:
        return ".".join(self.parts)

    @property
    def head(self) -> str:
        """The first part, which says what the path reads (``vmstat``, ``smaps`` ...)."""
        return self.parts[0]


@cache
def path_shapes() -> tuple[PathShape, ...]:
    """The PATH forms of `expect` (registry.EXPECT_PATHS, which `help expect` lists), in order."""
    return tuple(PathShape(tuple(p.split("."))) for p in registry.EXPECT_PATHS)


def _fill(session: Session, head: str, placeholder: str) -> list[Word]:
    """The words that may fill ``placeholder`` in a path starting with ``head``."""
    by_head: dict[tuple[str, str], Callable[[], list[Word]]] = {
        ("vmstat", "NAME"): lambda: vocab.vmstat_words(session),
        ("mthp", "NAME"): lambda: vocab.mthp_words(session),
        ("smaps", "NAME"): lambda: vocab.region_words(session),
        ("smaps", "FIELD"): vocab.smaps_field_words,
        ("pagemap", "FIELD"): vocab.pagemap_field_words,
        ("meminfo", "FIELD"): lambda: vocab.meminfo_field_words(session.kernel),
    }
    by_placeholder: dict[str, Callable[[], list[Word]]] = {
        # every other NAME in a path is a swap device (swap, swapmap, swapcache)
        "NAME": lambda: vocab.device_words(session),
        "ADDR": lambda: vocab.region_words(session),
    }
    source = by_head.get((head, placeholder)) or by_placeholder.get(placeholder)
    return source() if source is not None else []


def path_candidates(session: Session, typed: str) -> tuple[str, list[Word]]:
    """What may complete the last part of ``typed`` (a path up to the cursor).

    Returns the part being completed (the text after the last ``.``) and the
    candidates for it, each ending in ``.`` when the path goes on after it.
    Candidates are not yet filtered by the part typed.
    """
    parts = typed.split(".")
    index, done = len(parts) - 1, parts[:-1]
    out: dict[str, Word] = {}
    for shape in path_shapes():
        if len(shape.parts) <= index or (done and shape.head != done[0]):
            continue
        more = "." if len(shape.parts) > index + 1 else ""
        part = shape.parts[index]
        words = _fill(session, shape.head, part) if part.isupper() else [Word(part, str(shape))]
        for w in words:
            out.setdefault(w.text + more, Word(w.text + more, w.meta))
    return parts[-1], list(out.values())
