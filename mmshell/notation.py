"""The letters of `show map`: one per state of the entry that maps a page, and the overlay marks.

Plain data with no imports, declared once here: the views draw with it
(views/cells.py adds the colours) and `help notation` lists it (lang/registry.py).
"""

from __future__ import annotations

#: (letter, meaning) of every cell state, in the order the legend lists them.
MAP_LETTERS: tuple[tuple[str, str], ...] = (
    (".", "none"),
    ("p", "present order-0 page"),
    ("t", "present page of a large folio mapped by PTE"),
    ("H", "PMD-mapped THP (one block)"),
    ("Z", "huge zero page (one block)"),
    ("z", "zero page"),
    ("s", "PTE swap entry"),
    ("S", "PMD swap entry (one block)"),
    ("m", "migration entry"),
)

#: (mark, JSON key, meaning) of the overlays drawn after a cell's letter.
MAP_OVERLAYS: tuple[tuple[str, str, str], ...] = (
    ("~", "swapcache", "in the swap cache"),
    ("+", "shared", "shared: mapcount or swap count > 1"),
)
#: The mark of a cell that has both overlays.
MAP_BOTH = ("*", "both")


def map_legend() -> str:
    """The legend of `show map`, one line per letter and mark, for `help notation`."""
    lines = [f"  {letter}  {meaning}" for letter, meaning in MAP_LETTERS]
    lines += [f"  {mark}  (after a letter) {meaning}" for mark, _key, meaning in MAP_OVERLAYS]
    lines.append(f"  {MAP_BOTH[0]}  (after a letter) {MAP_BOTH[1]}")
    return "\n".join(lines)
