"""Lexical rules of .mmsh: lines, comments, ``;`` and words.

- Lines are split on ``\\n`` only (a ``\\r`` before it is whitespace); a
  byte-order mark at the start of a script is skipped.
- ``#`` starts a comment wherever it appears; the comment may hold anything.
- ``;`` separates commands on one line; empty commands are ignored.
- Words are runs of anything but space, tab, ``\\r``, ``\\f``, ``\\v``, ``;``
  and ``#``.  There is no quoting.
- Outside comments, a character that is not printable (control characters,
  Unicode spaces and format characters) is an error naming it.

Columns are 1-based and count characters (a tab is one column).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import LangError

__all__ = ["Token", "Statement", "split_lines", "split_statements", "show"]

_WORD_RE = re.compile(r";|[^ \t\r\f\v;]+")
_SPACE = " \t\r\f\v"


def show(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters for an error message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class Token:
    """One word and the 1-based column of its first character."""

    text: str
    column: int

    @property
    def end(self) -> int:
        """The column just past the word."""
        return self.column + len(self.text)


@dataclass(frozen=True, slots=True)
class Statement:
    """The words of one command (between ``;``s) and where it sits."""

    tokens: tuple[Token, ...]
    line: int
    source: str  # the whole line, for slicing a command's text

    def text_from(self, index: int) -> str:
        """The source text from token ``index`` to the end of the statement."""
        return self.source[self.tokens[index].column - 1 : self.tokens[-1].end - 1]

    @property
    def end(self) -> int:
        """The column just past the last word: where a missing word is reported."""
        return self.tokens[-1].end


def split_lines(text: str, first_line: int = 1) -> list[tuple[int, str]]:
    """Number the lines of a script."""
    if text.startswith("\ufeff"):
        text = text[1:]
    return [(first_line + i, line) for i, line in enumerate(text.split("\n"))]


def _check_printable(code: str, line: int) -> None:
    if code.isprintable():
        return
    for i, ch in enumerate(code):
        if not ch.isprintable() and ch not in _SPACE:
            import unicodedata          # only to name a character the lexer refuses

            name = unicodedata.name(ch, "control character")
            raise LangError(line, i + 1, f"unexpected character U+{ord(ch):04X} ({name.lower()})")


def split_statements(source: str, line: int) -> list[Statement]:
    """Split one line into its commands' words, dropping the comment and empty commands."""
    code = source.split("#", 1)[0]
    _check_printable(code, line)
    statements: list[Statement] = []
    words: list[Token] = []
    for m in _WORD_RE.finditer(code):
        if m.group() == ";":
            if words:
                statements.append(Statement(tuple(words), line, source))
            words = []
        else:
            words.append(Token(m.group(), m.start() + 1))
    if words:
        statements.append(Statement(tuple(words), line, source))
    return statements
