"""Syntax highlighting of the input line, by the grammar, as a prompt_toolkit Lexer.

The words and ``;`` come from the language's own lexer
(``lang.lexer.split_statements``); what each word *is* comes from the
grammar: the slots ``parser.expected_next`` gives for the text before it.
A word that fits its slot is coloured by kind (command, keyword, number,
region name, expect path, file, operator); the first word that fits no slot
is marked as an error and the rest of its command is left plain.  The last
word of the line, still being typed, is an error only when no choice can
start with it.  Comments and characters the language refuses (control
characters) are marked too.  Any text lexes; nothing here raises.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.lexers import Lexer
from prompt_toolkit.styles import Style

from ..lang import registry
from ..lang.grammar import Arg, Kind, Slot
from ..lang.convert import convert
from ..lang.lexer import Token, split_statements
from ..lang.parser import expected_next
from ..lang.topics import SHELL_COMMANDS
from ..lang.values import BadValue, parse_size

__all__ = ["LEXER_STYLE", "MmshLexer", "highlight_line"]

COMMAND, KEYWORD, NUMBER = "class:mmsh.command", "class:mmsh.keyword", "class:mmsh.number"
REGION, NAME, PATH = "class:mmsh.region", "class:mmsh.name", "class:mmsh.path"
OPERATOR, VALUE, FILE = "class:mmsh.operator", "class:mmsh.value", "class:mmsh.file"
COMMENT, ERROR = "class:mmsh.comment", "class:mmsh.error"

LEXER_STYLE = Style.from_dict({
    "mmsh.command": "bold ansiblue",
    "mmsh.keyword": "ansimagenta",
    "mmsh.number": "ansicyan",
    "mmsh.region": "ansigreen",
    "mmsh.name": "ansigreen italic",
    "mmsh.path": "ansiyellow",
    "mmsh.operator": "bold",
    "mmsh.value": "ansicyan",
    "mmsh.file": "underline",
    "mmsh.comment": "italic ansibrightblack",
    "mmsh.error": "ansired underline",
})

_SPACE = " \t\r\f\v"
_CHOICE_KINDS = (Kind.KEYWORD, Kind.COMMAND, Kind.ENUM, Kind.BOOL, Kind.PUNCT)


class _Statement:
    """Colours the words of one command, one word at a time, left to right."""

    def __init__(self, regions: Collection[str]) -> None:
        self.regions = regions
        self.command_words: list[str] | None = None   # the keywords of the command so far
        self.in_topic = False                        # a help TOPIC takes every word after it
        self.in_text = False                         # so does the TEXT of `pause`
        self.failed = False                          # a word did not fit: leave the rest plain

    def word(self, prefix: str, tok: Token, typing: bool) -> list[str]:
        """The style of each character of ``tok``; ``prefix`` is the line before it."""
        text = tok.text
        if self.failed:
            return [""] * len(text)
        if self.in_topic:
            return [KEYWORD] * len(text)
        if self.in_text:
            return [VALUE] * len(text)
        slots = expected_next(prefix)
        for slot in slots:
            styles = self._fit(slot, text)
            if styles is not None:
                return styles
        glued = self._glued_punct(prefix, text, slots)
        if glued is not None:
            return glued
        self.command_words = None
        if typing and any(_may_become(slot, text) for slot in slots):
            return [""] * len(text)
        self.failed = True
        return [ERROR] * len(text)

    def _glued_punct(self, prefix: str, text: str, slots: tuple[Slot, ...]) -> list[str] | None:
        """``on:`` in ``if pmd_swap on: ...``: a word with the punctuation the grammar wants next glued on."""
        head, last = text[:-1], text[-1:]
        if not head or last.isalnum():
            return None
        follows = expected_next(f"{prefix}{head} ")
        if not any(s.kind is Kind.PUNCT and last in s.choices for s in follows):
            return None
        for slot in slots:
            styles = self._fit(slot, head)
            if styles is not None:
                return styles + [OPERATOR]
        return None

    def _fit(self, slot: Slot, text: str) -> list[str] | None:
        """The styles of ``text`` if it fits ``slot``, else None."""
        n = len(text)
        if slot.kind in _CHOICE_KINDS:
            return self._keyword(slot, text)
        self.command_words = None
        if slot.kind is Kind.TOPIC:
            self.in_topic = True
            return [KEYWORD] * n
        if slot.kind is Kind.TEXT:
            self.in_text = True
            return [VALUE] * n
        try:
            convert(Arg(slot.key or "value", slot.kind, slot.meta, slot.choices), text)
        except (BadValue, ValueError):
            return None
        match slot.kind:
            case Kind.SIZE | Kind.INT | Kind.PID:
                return [NUMBER] * n
            case Kind.RANGE | Kind.ADDR:
                return self._address(text)
            case Kind.NAME:
                return [REGION if text in self.regions else NAME] * n
            case Kind.PATH:
                return [PATH] * n
            case Kind.FILE:
                return [FILE] * n
            case _:
                return [NUMBER if _is_number(text) else VALUE] * n

    def _keyword(self, slot: Slot, text: str) -> list[str] | None:
        """A command word (``mmap``, ``@2``, ``uffd move``), a keyword, or an operator."""
        choices = _choices(slot)
        if slot.meta == "COMMAND":                        # a command starts here
            if text in choices and text != "@":
                self.command_words = [text]
                return [COMMAND] * len(text)
            for spec in registry.COMMANDS:            # ``@PID``: the argument glued to the word
                word = spec.words[0]
                arg = spec.grammar.positionals[0] if spec.grammar.positionals else None
                if spec.glued and isinstance(arg, Arg) and word in choices and text.startswith(word) \
                        and len(text) > len(word):
                    try:
                        convert(arg, text[len(word):])
                    except (BadValue, ValueError):
                        return None
                    self.command_words = None
                    return [COMMAND] * len(word) + [NUMBER] * (len(text) - len(word))
            return None
        if self.command_words and text in registry.next_words(self.command_words):
            self.command_words.append(text)
            return [COMMAND] * len(text)
        self.command_words = None
        if text in choices:
            return [KEYWORD if text[:1].isalnum() else OPERATOR] * len(text)
        return None

    def _address(self, text: str) -> list[str]:
        """``a+2M:4K``: the region name, the ``+`` and ``:``, and the numbers."""
        styles: list[str] = []
        for i, part in enumerate(_split_keep(text, "+:")):
            if part in ("+", ":"):
                styles.append(OPERATOR)
            elif i == 0 and not part[:1].isdigit():
                styles += [REGION if part in self.regions else NAME] * len(part)
            else:
                styles += [NUMBER] * len(part)
        return styles


def _choices(slot: Slot) -> tuple[str, ...]:
    return slot.choices or (("on", "off") if slot.kind is Kind.BOOL else ())


def _may_become(slot: Slot, text: str) -> bool:
    """Whether ``text``, still being typed, may yet become a word that fits ``slot``."""
    choices = _choices(slot)
    if not choices:
        return slot.kind not in _CHOICE_KINDS
    if slot.meta == "COMMAND" and "@" in choices and text.startswith("@"):
        return text[1:].isdigit() or text == "@"
    return any(c.startswith(text) for c in choices)


def _is_number(text: str) -> bool:
    try:
        parse_size(text.removesuffix("kB"))
    except BadValue:
        return False
    return True


def _split_keep(text: str, seps: str) -> list[str]:
    """``"a+2M:4K"`` -> ``["a", "+", "2M", ":", "4K"]``."""
    parts, cur = [], ""
    for ch in text:
        if ch in seps:
            parts += [cur, ch] if cur else [ch]
            cur = ""
        else:
            cur += ch
    return parts + [cur] if cur else parts


def _fragments(line: str, styles: list[str]) -> StyleAndTextTuples:
    """Runs of characters with one style, as prompt_toolkit wants them."""
    out: StyleAndTextTuples = []
    for ch, style in zip(line, styles):
        if out and out[-1][0] == style:
            out[-1] = (style, out[-1][1] + ch)
        else:
            out.append((style, ch))
    return out


def highlight_line(line: str, regions: Collection[str] = ()) -> StyleAndTextTuples:
    """The styled fragments of one line; joined, their text is ``line`` exactly."""
    words = line.split()
    if words and words[0] in SHELL_COMMANDS and ";" not in line and "#" not in line and line.isprintable():
        start = line.index(words[0])                    # the prompt's own commands (help shell)
        frags = [("", line[:start]), (COMMAND, words[0]), ("", line[start + len(words[0]):])]
        return [f for f in frags if f[1]]
    code = line.partition("#")[0]
    styles = [""] * len(code) + [COMMENT] * (len(line) - len(code))
    clean = []
    for i, ch in enumerate(code):
        if ch.isprintable() or ch in _SPACE:
            clean.append(ch)
        else:                                   # the language refuses it: mark it, lex around it
            styles[i] = ERROR
            clean.append(" ")
    cleaned = "".join(clean)
    for i, ch in enumerate(cleaned):
        if ch == ";":
            styles[i] = OPERATOR
    for stmt in split_statements(cleaned, 1):
        colourer = _Statement(regions)
        for tok in stmt.tokens:
            start = tok.column - 1
            typing = tok.end - 1 == len(line)
            for j, style in enumerate(colourer.word(cleaned[:start], tok, typing)):
                styles[start + j] = style
    return _fragments(line, styles)


class MmshLexer(Lexer):
    """The prompt's lexer; ``regions`` gives the current process's region names when called."""

    def __init__(self, regions: Callable[[], Collection[str]] = lambda: ()) -> None:
        self.regions = regions

    def lex_document(self, document: Document) -> Callable[[int], StyleAndTextTuples]:
        lines = document.lines
        try:
            names: Collection[str] = frozenset(self.regions())
        except Exception:  # noqa: BLE001 -- a session mid-change: colour without region names
            names = frozenset()

        def get_line(lineno: int) -> StyleAndTextTuples:
            if not 0 <= lineno < len(lines):
                return []
            try:
                return highlight_line(lines[lineno], names)
            except Exception:  # noqa: BLE001 -- never let colouring take the prompt down
                return [("", lines[lineno])]

        return get_line
