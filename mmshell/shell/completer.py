"""Completion driven by the grammar: what kind of word comes next -> a matcher.

``parser.expected_next`` reads the line up to the cursor and says which
slots may come next (:class:`~mmshell.lang.grammar.Slot`: a kind, a
placeholder, literal choices).  Each kind has one matcher here that lists
the candidates (the shape of pgcli's ``pgcompleter``):

- KEYWORD, ENUM, BOOL, PUNCT, COMMAND: the slot's own choices (``@`` becomes
  ``@PID`` for each live pid);
- RANGE, ADDR: the current process's region names;
- NAME: swap devices after ``swapoff``, regions after ``show smaps``, nothing
  where a new name is being given (``mmap``, ``swapon``, ``mremap``);
- PID: the live pids; PATH: ``expect`` paths part by part (:mod:`.paths`);
- FILE: ``*.mmsh`` files and directories; TOPIC: ``help`` topics;
- WORD (an expectation's VALUE): the value the path has now;
- SIZE, INT: nothing (the toolbar says what is expected).

Candidates keep their vocabulary order and match the word typed so far by
prefix, case-sensitive matches first.  Completion only reads the session.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable

from prompt_toolkit.completion import (
    CompleteEvent,
    Completer,
    Completion,
    PathCompleter,
)
from prompt_toolkit.document import Document

from ..lang import registry
from ..lang.sim_observer import evaluate
from ..lang.expect_values import PathError
from ..lang.grammar import Kind, Slot
from ..lang.parser import expected_next
from ..lang.session import Session
from ..mm.errors import MmError
from . import vocab
from .paths import path_candidates
from ..lang.topics import SHELL_COMMANDS
from .vocab import Word

__all__ = ["MmshCompleter", "current_word"]

_WORD_RE = re.compile(r"[^ \t\r\f\v;#]*\Z")
_SPACE_RE = re.compile(r"[ \t\r\f\v]+")

def current_word(text: str) -> str:
    """The word the cursor is in (or ``""`` right after a space): what a candidate replaces."""
    match = _WORD_RE.search(text)
    return match.group() if match else ""


def _summaries() -> dict[str, str]:
    """What each command word (and multi-word command) does, for the menu."""
    out: dict[str, str] = {}
    for spec in registry.COMMANDS:
        out[" ".join(spec.words)] = spec.summary
        out.setdefault(spec.words[0], spec.summary if len(spec.words) == 1
                       else " | ".join(" ".join(s.words[1:]) for s in registry.COMMANDS
                                       if s.words[0] == spec.words[0]))
    return out


class MmshCompleter(Completer):
    """The shell's completer over a live :class:`Session` (read at each completion)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._summary = _summaries()
        self._files = PathCompleter(expanduser=True,
                                    file_filter=lambda p: os.path.isdir(p) or p.endswith(".mmsh"))
        self._matchers: dict[Kind, Callable[[Slot, list[str], str], Iterable[Word]]] = {
            Kind.KEYWORD: self._choices, Kind.ENUM: self._choices, Kind.BOOL: self._choices,
            Kind.PUNCT: self._choices, Kind.COMMAND: self._choices,
            Kind.RANGE: self._regions, Kind.ADDR: self._regions, Kind.NAME: self._names,
            Kind.PID: self._pids, Kind.TOPIC: self._topics, Kind.WORD: self._values,
        }

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        """prompt_toolkit's entry point: never raises, whatever the text."""
        try:
            completions = self.completions(document.text_before_cursor)
        except Exception:  # noqa: BLE001 -- a completer that raises would take the prompt down with it
            return
        yield from completions

    def completions(self, text: str) -> list[Completion]:
        """Every completion for the line up to the cursor, in menu order."""
        line = text.rsplit("\n", 1)[-1]
        slots = expected_next(line)
        word = current_word(line)
        statement = line[: len(line) - len(word)].rsplit(";", 1)[-1]
        before = [w for w in _SPACE_RE.split(statement) if w]
        out: dict[str, Completion] = {}
        for slot in slots:
            if slot.kind is Kind.PATH:
                part, words = path_candidates(self.session, word)
                self._add(out, words, part)
            elif slot.kind is Kind.FILE:
                hidden = os.path.basename(word).startswith(".")
                for c in self._files.get_completions(Document(word, len(word)), CompleteEvent()):
                    if c.display_text.startswith(".") and not hidden:
                        continue
                    meta = "directory" if c.display_text.endswith("/") else "script"
                    out.setdefault(word + c.text, Completion(c.text, c.start_position, c.display,
                                                             display_meta=meta))
            elif (matcher := self._matchers.get(slot.kind)) is not None:
                self._add(out, matcher(slot, before, word), word)
        if not before and ";" not in line:          # the prompt's own commands (help shell)
            self._add(out, [Word(w, what.split(" (")[0]) for w, (_, what) in SHELL_COMMANDS.items()], word)
        return list(out.values())

    @staticmethod
    def _add(out: dict[str, Completion], words: Iterable[Word], typed: str) -> None:
        """Add the words that start with ``typed``: exact case first, then any case."""
        words = list(words)
        low = typed.lower()
        exact = [w for w in words if w.text.startswith(typed)]
        loose = [w for w in words if not w.text.startswith(typed) and w.text.lower().startswith(low)]
        for w in exact + loose:
            if w.text not in out and w.text != typed:
                out[w.text] = Completion(w.text, -len(typed), display_meta=w.meta)

    # -- matchers: (slot, words before the cursor, word typed) -> candidates ------------------
    def _choices(self, slot: Slot, before: list[str], word: str) -> Iterable[Word]:
        choices = slot.choices or (("on", "off") if slot.kind is Kind.BOOL else ())
        starting = slot.meta == "COMMAND"
        for choice in choices:
            if starting and choice == "@":
                for pid in vocab.pid_words(self.session):
                    yield Word("@" + pid.text, f"run one command in pid {pid.text}")
            elif starting:
                yield Word(choice, self._summary.get(choice, ""))
            elif before and f"{before[-1]} {choice}" in self._summary:
                yield Word(choice, self._summary[f"{before[-1]} {choice}"])
            elif slot.kind is Kind.PUNCT:
                yield Word(choice, "then the COMMAND")
            elif slot.key == "setting":
                yield Word(choice, registry.setting(choice).usage)
            elif slot.key == "point":
                yield Word(choice, registry.FAULT_POINT_HELP.get(choice, "fault point"))
            else:
                yield Word(choice, slot.meta)

    def _regions(self, slot: Slot, before: list[str], word: str) -> Iterable[Word]:
        return vocab.region_words(self.session)

    def _names(self, slot: Slot, before: list[str], word: str) -> Iterable[Word]:
        if slot.refers == "device":
            return vocab.device_words(self.session)
        if slot.refers == "region":
            return vocab.region_words(self.session)
        return ()                   # a name being given: nothing to offer

    def _pids(self, slot: Slot, before: list[str], word: str) -> Iterable[Word]:
        return vocab.pid_words(self.session)

    def _topics(self, slot: Slot, before: list[str], word: str) -> Iterable[Word]:
        """The next word of a help topic (the parser gives the choices), with what it is."""
        typed = before[len(before) - before[::-1].index("help"):] if "help" in before else []
        return [Word(w, self._summary.get(" ".join([*typed, w]), "help topic")) for w in slot.choices]

    def _values(self, slot: Slot, before: list[str], word: str) -> Iterable[Word]:
        """An expectation's VALUE: the value its PATH has now (and, for pmd., every kind)."""
        if len(before) < 3 or before[-3] != "expect":
            return ()
        path = before[-2]
        try:
            now = evaluate(self.session, path)
        except (PathError, MmError, ValueError):  # an unknown path, region or device: nothing to offer
            return ()
        words = [Word(str(now), "value now")]
        if path.split(".", 1)[0] == "pmd":
            words += vocab.pmd_kind_words()
        return words
