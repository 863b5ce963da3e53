"""The declarative argument grammar of .mmsh commands.

A command is its keyword(s) (``CommandSpec.words``) followed by a
:class:`Grammar`: positional arguments in order, then keyword options and
bare flags in any order.  A :class:`Switch` is a positional keyword that
chooses the rest of the grammar (``show VIEW ...``, ``set SETTING ...``).
A positional of kind ``COMMAND`` takes the rest of the command as a nested
command; ``TOPIC`` takes the rest as words (a help topic); ``TEXT`` the rest
as written (the words of ``pause TEXT``).

Everything here is data: the parser engine walks it, ``help`` prints it,
and a completer asks it what kind of word comes next (see
``parser.expected_next``, which answers with :class:`Slot` objects).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Iterator

__all__ = ["Kind", "Group", "Nests", "Arg", "Option", "Flags", "Switch", "Grammar", "CommandSpec", "Slot"]


class Kind(enum.Enum):
    """What kind of word fills a slot; the value is how messages name it."""

    NAME = "a name"              # region or swap device name (values.parse_name)
    SIZE = "a size"              # values.parse_size -> int
    ADDR = "an address"          # values.Addr
    RANGE = "a range"            # values.Range
    INT = "a number"             # values.parse_int -> int
    PID = "a pid"                # int >= 1
    ENUM = "one of"              # one of Arg.choices -> str
    BOOL = "on or off"           # on|off -> bool
    WORD = "a value"             # any word, raw str (the VALUE of expect)
    PATH = "a path"              # expect PATH, raw str
    FILE = "a file name"         # raw str
    TOPIC = "a help topic"       # the rest of the command, words joined by one space
    TEXT = "a text"              # the rest of the command as written (the TEXT of ``pause``)
    COMMAND = "a command"        # the rest of the command, as a nested Command
    KEYWORD = "a keyword"        # completion only: a literal option word or sub-command word
    PUNCT = "punctuation"        # completion only: the ':' of ``if``


class Group(enum.Enum):
    """Where ``help`` lists a command."""

    SETUP = "setup"
    PROCESS = "process"
    MEMORY = "memory"
    VIEW = "view"
    SCRIPT = "script"


class Nests(enum.Enum):
    """How a command holds the COMMAND it nests."""

    NO = "no"
    RUNS = "runs"            # `@PID`, `if`: the step is what COMMAND does (COMMAND's traits count)
    REFUSAL = "refusal"      # `expect fails`: the step expects COMMAND to be refused


def describe(kind: Kind, choices: tuple[str, ...]) -> str:
    """How an error message names what was expected: ``a size``, ``rw, r or none``."""
    if kind is Kind.ENUM or (kind is Kind.KEYWORD and choices):
        quoted = [c if kind is Kind.ENUM else f"'{c}'" for c in choices]
        if len(quoted) == 1:
            return quoted[0]
        return ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return str(kind.value)


@dataclass(frozen=True)
class Arg:
    """A positional argument, or the value of a keyword option.

    ``meta`` is its placeholder in the synopsis (``RANGE``, ``NEWNAME``).
    ``minimum``/``maximum`` bound INT and PID values.  ``then`` is
    punctuation that must follow the word, glued or as its own word (the
    ``:`` of ``if SETTING VALUE: COMMAND``).  ``refers`` says what an existing
    NAME names (``region`` or ``device``); empty for a name being given.  A
    ``tolerant`` COMMAND that does not parse is kept as text with its error
    (``parser.Unparsed``) instead of failing the line: ``expect fails`` of a typo.
    """

    key: str
    kind: Kind
    meta: str = ""
    choices: tuple[str, ...] = ()
    optional: bool = False
    default: Any = None
    minimum: int | None = None
    maximum: int | None = None
    then: str | None = None
    help: str = ""
    refers: str = ""
    tolerant: bool = False

    def __post_init__(self) -> None:
        if not self.meta:
            object.__setattr__(self, "meta", "|".join(self.choices) or self.kind.name)

    def describe(self) -> str:
        """What an error message says was expected."""
        return describe(self.kind, self.choices)

    def usage(self) -> str:
        text = self.meta + (self.then or "")
        return f"[{text}]" if self.optional else text


@dataclass(frozen=True)
class Option:
    """A keyword option: ``word`` followed by one value (``prot rw``, ``at ADDR``)."""

    key: str
    word: str
    value: Arg

    @property
    def default(self) -> Any:
        return self.value.default

    def usage(self) -> str:
        return f"[{self.word} {self.value.meta}]"


@dataclass(frozen=True)
class Flags:
    """Bare words that set one key: ``hugepage|nohugepage``, ``read|write``.

    With ``boolean`` the key is True when the (single) word is given, else False.
    """

    key: str
    choices: tuple[str, ...]
    default: Any = None
    boolean: bool = False

    def usage(self) -> str:
        return "[" + "|".join(self.choices) + "]"


@dataclass(frozen=True)
class Switch:
    """A positional keyword that chooses the rest of the grammar.

    ``cases`` pairs each keyword with the grammar that follows it; the key
    is set to the keyword itself.
    """

    key: str
    meta: str
    cases: tuple[tuple[str, Grammar], ...]
    noun: str = ""
    help: str = ""

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(word for word, _ in self.cases)

    def case(self, word: str) -> Grammar | None:
        """The grammar after ``word``, or None if ``word`` is not a choice."""
        for choice, grammar in self.cases:
            if choice == word:
                return grammar
        return None

    def describe(self) -> str:
        return describe(Kind.ENUM, self.choices)


@dataclass(frozen=True)
class Grammar:
    """Positionals in order (optional ones last), then options and flags in any order."""

    positionals: tuple[Arg | Switch, ...] = ()
    options: tuple[Option | Flags, ...] = ()

    def walk(self) -> Iterator[Arg | Switch | Option | Flags]:
        """Every element, depth-first through the cases of each Switch."""
        for p in self.positionals:
            yield p
            if isinstance(p, Switch):
                for _, case in p.cases:
                    yield from case.walk()
        yield from self.options

    def defaults(self) -> dict[str, Any]:
        """Every key this grammar can set, with its value when omitted."""
        out: dict[str, Any] = {}
        for item in self.walk():
            if isinstance(item, Option):
                out.setdefault(item.key, item.default)
            elif isinstance(item, Flags):
                out.setdefault(item.key, False if item.boolean else item.default)
            elif isinstance(item, Arg):
                out.setdefault(item.key, item.default)
            else:
                out.setdefault(item.key, None)
        return out

    def option_words(self) -> dict[str, Option | Flags]:
        """The words that start an option or are a flag, at this level."""
        words: dict[str, Option | Flags] = {}
        for opt in self.options:
            for word in (opt.word,) if isinstance(opt, Option) else opt.choices:
                words[word] = opt
        return words

    def usage(self) -> str:
        parts: list[str] = []
        for p in self.positionals:
            parts.append(p.meta if isinstance(p, Switch) else p.usage())
        parts.extend(o.usage() for o in self.options)
        return " ".join(parts)


@dataclass(frozen=True)
class CommandSpec:
    """One command of the language: how it is spelled, parsed and documented.

    ``name`` is ``Command.name``; ``words`` the keyword(s) that start it.
    With ``glued`` the first positional is written onto the last word
    (``@PID``).  ``examples`` are lines that must parse (the tests check).

    Its traits, which both backends read (never a list of names elsewhere):
    ``read_only``: it only looks, so no snapshot is taken around it and no
    step summary follows it; ``acts_with`` names the argument that makes a
    read-only command act (``check RANGE`` faults pages in; a bare ``check``
    only looks).  ``checks_first``: every refusal it can make comes before it changes
    the machine (it checks, then acts, as do_vmi_munmap does), so no checkpoint is taken
    around it (lang/execute.py): it checks the simulation's limits before it starts, a
    Ctrl-C while it acts is taken when it ends, and a simulator bug inside it leaves the
    machine as the bug found it.  ``quiet``: no step summary (by default: when it only looks).
    ``nests``: how it holds a nested COMMAND (:class:`Nests`).  ``live``: True
    when it runs on the live kernel, else the reason it is refused there.
    ``maps``: it can change the VMAs of a process (their range, protection or flags), or
    which processes have VMAs (fork, exit); `kernel diff` compares the VMAs after it.
    (KEY, VALUES): only when its argument KEY is one of VALUES (madvise: the advices that
    change vm_flags).
    """

    name: str
    words: tuple[str, ...]
    synopsis: str
    summary: str
    help: str
    group: Group
    grammar: Grammar = field(default_factory=Grammar)
    glued: bool = False
    examples: tuple[str, ...] = ()
    read_only: bool = False
    acts_with: str = ""
    checks_first: bool = False
    quiet: bool | None = None
    nests: Nests = Nests.NO
    live: bool | str = True
    maps: bool | tuple[str, tuple[str, ...]] = False

    def __post_init__(self) -> None:
        if self.quiet is None:
            object.__setattr__(self, "quiet", self.read_only)

    def only_looks(self, args: Any) -> bool:
        """Whether this command, with these arguments, only looks at the machine."""
        return self.read_only and not (self.acts_with and args.get(self.acts_with) is not None)

    def usages(self) -> tuple[str, ...]:
        """One usage line per form: a Switch as first positional gives one per case."""
        g = self.grammar
        head = " ".join(self.words)
        if g.positionals and isinstance(g.positionals[0], Switch):
            sw = g.positionals[0]
            rest = Grammar(g.positionals[1:], g.options).usage()
            lines = []
            for word, case in sw.cases:
                lines.append(" ".join(x for x in (head, word, case.usage(), rest) if x))
            return tuple(lines)
        return (self.synopsis,)


@dataclass(frozen=True)
class Slot:
    """What may come next at a point of a command, for a completer.

    ``kind`` is what kind of word; ``choices`` the literal words allowed
    (keywords, enum values, command words), empty when any word of the kind
    will do; ``key`` the ``Command.args`` key it fills (None for keywords
    that start a command or an option); ``meta`` the synopsis placeholder;
    ``refers`` what an existing NAME names (``Arg.refers``).
    """

    kind: Kind
    meta: str
    key: str | None = None
    choices: tuple[str, ...] = ()
    optional: bool = False
    refers: str = ""
