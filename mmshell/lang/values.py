"""Values of the .mmsh language: sizes, addresses, ranges and names.

Each value is parsed from one word and prints back as canonical text that
parses to an equal value (the python-chess ``Move.from_uci`` / ``Move.uci``
idea)::

    >>> Range.parse("a+0x200000:4096")
    Range(start=Addr(name='a', offset=2097152), length=4096)
    >>> str(Range.parse("a+0x200000:4096"))
    'a+2M:4K'

Resolving a name against the process's regions is not done here; the
executor does that.  Errors are :class:`BadValue` (a ``ValueError``): its
``str()`` is a complete message and ``hint`` a short reason ("" when the
word is simply not of that kind), which the parser folds into a
``LangError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "PAGE_SIZE", "NAME_MAX", "RESERVED_WORDS", "BadValue", "parse_size", "format_size",
    "parse_int", "format_offset", "parse_name", "Addr", "Range",
]

PAGE_SIZE = 4096
"""Bytes in a base page: a bare address as a range means the page holding it."""

NAME_MAX = 64
"""Longest region or swap device name accepted."""

_LIMIT = 1 << 64  # every size, offset and address is below 2**64

RESERVED_WORDS: frozenset[str] = frozenset({
    "prot", "at", "size", "kind", "prio",
    "hugepage", "nohugepage", "read", "write", "all", "map",
})
"""Words that cannot name a region or device.

These are the option keywords and bare flags of the grammar (the registry's
tests check that the two agree).  None of them is ambiguous in the grammar
as it stands, because every name comes in a required position; they are
reserved so that ``touch read`` or ``mmap at 2M`` is never puzzling to read,
so that optional positional words can be added before options later, and so
that a completer can tell a keyword from a name.  Command words (``mmap``,
``show`` ...) and view names are not reserved.
"""

_UNITS: dict[str, int] = {"": 1, "B": 1, "k": 1 << 10, "kB": 1 << 10}
for _i, _letter in enumerate("KMGTP", start=1):
    for _suffix in ("", "B", "iB"):
        _UNITS[_letter + _suffix] = 1 << (10 * _i)
_UNIT_LIST = "K, M, G, T, P, KB ... PB, KiB ... PiB, kB"

_DEC_RE = re.compile(r"([0-9]+)([A-Za-z]*)")
_HEX_RE = re.compile(r"0[xX]([0-9a-fA-F]+)")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class BadValue(ValueError):
    """A word that is not a valid value of some kind.

    ``what`` names the kind with its article ("a size"), ``text`` is the
    word, ``hint`` says what exactly is wrong ("" when nothing more useful
    than "this is not a size" can be said).
    """

    def __init__(self, what: str, text: str, hint: str = "") -> None:
        self.what = what
        self.text = text
        self.hint = hint
        shown = text if len(text) <= 40 else text[:37] + "..."
        super().__init__(f"not {what}: {shown!r}" + (f" ({hint})" if hint else ""))


def _number(text: str, what: str, units: bool) -> int:
    """Parse an unsigned decimal or hex integer, with a unit suffix if ``units``."""
    if not text:
        raise BadValue(what, text, "empty")
    if text[0] == "-":
        raise BadValue(what, text, f"{what} cannot be negative")
    if text[:2] in ("0x", "0X"):
        m = _HEX_RE.fullmatch(text)
        if m is None:
            if units and re.fullmatch(r"0[xX][0-9a-fA-F]+[A-Za-z]+", text):
                raise BadValue(what, text, "a unit suffix needs a decimal number")
            raise BadValue(what, text, "bad hexadecimal number")
        digits = m.group(1).lstrip("0")
        if len(digits) > 16:
            raise BadValue(what, text, "too large: at most 2**64 - 1")
        return int(digits or "0", 16)
    m = _DEC_RE.fullmatch(text)
    if m is None:
        if re.fullmatch(r"[0-9]*\.[0-9]+[A-Za-z]*", text):
            raise BadValue(what, text, "only whole numbers: write 1536K, not 1.5M")
        raise BadValue(what, text)
    digits, unit = m.group(1).lstrip("0"), m.group(2)
    if unit and not units:
        raise BadValue(what, text, "a plain decimal or 0x hex integer, without a unit")
    if unit not in _UNITS:
        hint = f"unknown unit {unit!r}: use {_UNIT_LIST}"
        if unit.upper() in _UNITS:
            hint = f"unknown unit {unit!r}: did you mean {unit.upper()!r}?"
        raise BadValue(what, text, hint)
    if len(digits) > 20:
        raise BadValue(what, text, "too large: at most 2**64 - 1")
    value = int(digits or "0") * _UNITS[unit]
    if value >= _LIMIT:
        raise BadValue(what, text, "too large: at most 2**64 - 1")
    return value


def parse_size(text: str) -> int:
    """Parse a size in bytes: ``4096``, ``0x1000``, ``4K``, ``2M``, ``2MiB``, ``2048kB``.

    The units ``K M G T P`` (also ``KB``... and ``KiB``...) are binary;
    ``kB`` and ``k`` are 1024 as in /proc; ``B`` is bytes.  Raises
    :class:`BadValue` for a negative, malformed or too large (>= 2**64) size.
    """
    return _number(text, "a size", units=True)


def plural(n: int, word: str) -> str:
    """`1 step`, `3 steps`: a count in an output line, never `1 steps`."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def pages(n: int) -> str:
    """`1 page`, `512 pages`: a count of pages in an output line."""
    return plural(n, "page")


def format_size(n: int) -> str:
    """The shortest exact text for ``n`` bytes: ``2M``, ``4K``, ``1G``, ``4097``."""
    if not 0 <= n < _LIMIT:
        raise ValueError(f"size out of range: {n}")
    if n:
        for shift, letter in ((50, "P"), (40, "T"), (30, "G"), (20, "M"), (10, "K")):
            if n % (1 << shift) == 0:
                return f"{n >> shift}{letter}"
    return str(n)


def format_offset(n: int) -> str:
    """Text for an offset or address: a unit form when exact, else hex (``2M``, ``0x1234``)."""
    text = format_size(n)
    return text if not text.isdigit() or n == 0 else hex(n)


def parse_int(text: str, what: str = "a number") -> int:
    """Parse a decimal or ``0x`` hex integer, optionally negative (``-2``)."""
    negative = text.startswith("-")
    try:
        value = _number(text[1:] if negative else text, what, units=False)
    except BadValue as e:
        raise BadValue(what, text, e.hint) from None
    return -value if negative else value


def parse_name(text: str, what: str = "a name") -> str:
    """Check a region or device name: ``[A-Za-z_][A-Za-z0-9_]*``, not a reserved word."""
    if _NAME_RE.fullmatch(text) is None:
        hint = "a name is ASCII letters, digits and '_', not starting with a digit"
        if not text:
            hint = "empty"
        raise BadValue(what, text, hint)
    if len(text) > NAME_MAX:
        raise BadValue(what, text, f"longer than {NAME_MAX} characters")
    if text in RESERVED_WORDS:
        raise BadValue(what, text, f"{text!r} is a reserved word")
    return text


def _offset_sum(off: str, what: str, text: str) -> int:
    """NAME+OFFSET's OFFSET: sizes added and subtracted (``2M+0x11000``, ``2M-4K``), at least 0."""
    if off.startswith("-"):
        raise BadValue(what, text, "offset cannot be negative")
    terms = re.split(r"([+-])", off)
    total = 0
    for i in range(0, len(terms), 2):
        sign = -1 if i and terms[i - 1] == "-" else 1
        if not terms[i]:
            raise BadValue(what, text,
                           f"missing size after '{terms[i - 1]}'" if i else "missing offset after '+'")
        try:
            total += sign * parse_size(terms[i])
        except BadValue as e:
            raise BadValue(what, text, f"offset {e}") from None
    if total < 0:
        raise BadValue(what, text, "the offset comes to less than 0: a NAME+OFFSET address is inside "
                                   "or after its region")
    return total


@dataclass(frozen=True)
class Addr:
    """An address: ``NAME``, ``NAME+OFFSET`` (OFFSET a size), or absolute (``name`` None).

    Absolute addresses print in hex (``0x40000000``); offsets print in their
    shortest unit form, else hex (``a+2M``, ``a+0x1234``).
    """

    name: str | None
    offset: int

    def __post_init__(self) -> None:
        if self.name is not None:
            parse_name(self.name)
        if not 0 <= self.offset < _LIMIT:
            raise ValueError(f"address offset out of range: {self.offset}")

    @classmethod
    def parse(cls, text: str) -> Addr:
        """Parse ``a``, ``a+2M``, ``a+0x1000``, ``0x40000000`` or ``1073741824``."""
        what = "an address"
        if not text:
            raise BadValue(what, text, "empty")
        if text[0].isdigit() or text[:2].lstrip("-")[:1].isdigit():
            try:
                return cls(None, _number(text, what, units=True))
            except BadValue as e:
                raise BadValue(what, text, e.hint) from None
        name, plus, off = text.partition("+")
        if not plus and "-" in name and _NAME_RE.fullmatch(name.partition("-")[0]):
            raise BadValue(what, text, "NAME-OFFSET is not supported: write NAME+OFFSET "
                                       "from a region below, or an absolute address")
        try:
            parse_name(name)
        except BadValue as e:
            raise BadValue(what, text, e.hint if e.hint != "empty" else "missing name before '+'") from None
        if not plus:
            return cls(name, 0)
        if not off:
            raise BadValue(what, text, "missing offset after '+'")
        return cls(name, _offset_sum(off, what, text))

    @property
    def is_absolute(self) -> bool:
        """True for a plain number, False for an address relative to a region."""
        return self.name is None

    def __str__(self) -> str:
        if self.name is None:
            return hex(self.offset)
        return self.name if self.offset == 0 else f"{self.name}+{format_offset(self.offset)}"


@dataclass(frozen=True)
class Range:
    """A range: ``ADDR:LEN``, a bare ``NAME`` (the whole region) or a bare address (one page).

    ``length`` None means "the whole region" when ``start`` is a bare name
    and "the page that holds it" otherwise.  ``NAME+0`` given bare is the
    page at the region's start and is stored as ``NAME:4K``, so that it can
    not be confused with the bare name.
    """

    start: Addr
    length: int | None

    def __post_init__(self) -> None:
        if self.length is not None and not 0 <= self.length < _LIMIT:
            raise ValueError(f"range length out of range: {self.length}")

    @classmethod
    def parse(cls, text: str) -> Range:
        """Parse ``a+2M:4K``, ``0x40000000:2M``, ``a`` or ``a+0x1000``."""
        what = "a range"
        addr_text, colon, len_text = text.partition(":")
        if colon and ":" in len_text:
            raise BadValue(what, text, "one ':' only: ADDR:LEN")
        if colon and not addr_text:
            raise BadValue(what, text, "missing address before ':'")
        if colon and not len_text:
            raise BadValue(what, text, "missing length after ':'")
        try:
            start = Addr.parse(addr_text)
        except BadValue as e:
            raise BadValue(what, text, e.hint) from None
        if colon:
            try:
                return cls(start, parse_size(len_text))
            except BadValue as e:
                raise BadValue(what, text, f"length {e}") from None
        if start.name is not None and start.offset == 0 and "+" in text:
            return cls(start, PAGE_SIZE)
        return cls(start, None)

    @property
    def whole_region(self) -> bool:
        """True for a bare region name."""
        return self.length is None and self.start.name is not None and self.start.offset == 0

    @property
    def one_page(self) -> bool:
        """True for a bare address: the one page that holds it."""
        return self.length is None and not self.whole_region

    def __str__(self) -> str:
        if self.length is None:
            return str(self.start)
        return f"{self.start}:{format_size(self.length)}"
