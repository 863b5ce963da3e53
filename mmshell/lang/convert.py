"""Converting one word to the value of an argument kind, and back.

``convert(arg, text)`` gives the typed value or raises
:class:`~.values.BadValue`; ``format_value(arg, value)`` gives the
canonical text, which ``convert`` turns back into an equal value.
"""

from __future__ import annotations

from typing import Any, Sequence

from .grammar import Arg, Kind
from .values import Addr, BadValue, Range, format_size, parse_int, parse_name, parse_size

__all__ = ["convert", "format_value", "suggest"]

_OP_CHARS = "=!<>"


def suggest(word: str, choices: Sequence[str]) -> str | None:
    """The choice ``word`` was probably meant to be, if any (case first, then spelling)."""
    if len(word) > 40:
        return None
    if word.lower() != word and word.lower() in choices:
        return word.lower()
    import difflib                      # only for a word that is not one of the choices

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def _bounded(arg: Arg, value: int, text: str) -> int:
    lo, hi = arg.minimum, arg.maximum
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        fmt = format_size if arg.kind is Kind.SIZE else str
        if lo is not None and hi is not None:
            hint = f"must be {fmt(lo)}..{fmt(hi)}"
        elif lo is not None:
            hint = f"at least {fmt(lo)}"
        else:
            hint = f"at most {fmt(hi or 0)}"
        raise BadValue(arg.describe(), text, hint)
    return value


def convert(arg: Arg, text: str) -> Any:
    """The value of ``text`` as an argument of ``arg``'s kind."""
    match arg.kind:
        case Kind.NAME:
            return parse_name(text)
        case Kind.SIZE:
            return _bounded(arg, parse_size(text), text)
        case Kind.INT | Kind.PID:
            return _bounded(arg, parse_int(text, arg.describe()), text)
        case Kind.ADDR:
            return Addr.parse(text)
        case Kind.RANGE:
            return Range.parse(text)
        case Kind.BOOL:
            if text in ("on", "off"):
                return text == "on"
            raise BadValue("on or off", text,
                           "keywords are lower case" if text.lower() in ("on", "off") else "")
        case Kind.ENUM:
            if text in arg.choices:
                return text
            hint = ""
            if text.lower() in arg.choices:
                hint = "keywords are lower case"
            elif text[:1] in _OP_CHARS and any(c in _OP_CHARS for c in "".join(arg.choices)):
                hint = "put spaces around the operator"
            elif (guess := suggest(text, arg.choices)) is not None:
                hint = f"did you mean '{guess}'?"
            raise BadValue(arg.describe(), text, hint)
        case Kind.PATH:
            if any(c in _OP_CHARS for c in text):
                raise BadValue("a path", text, "put spaces around the operator")
            return text
        case _:
            return text


def format_value(arg: Arg, value: Any) -> str:
    """The canonical text of ``value`` as an argument of ``arg``'s kind."""
    match arg.kind:
        case Kind.SIZE:
            return format_size(value)
        case Kind.BOOL:
            return "on" if value else "off"
        case _:
            return str(value)
