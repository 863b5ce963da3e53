"""The .mmsh parser: text -> :class:`Command` objects, driven by the registry.

``parse_script`` and ``parse_line`` turn text into commands;
``str(command)`` prints the canonical form, which parses back to an equal
command.  ``expected_next`` tells a completer what kind of word comes next.
Every error is a :class:`LangError` with the line and 1-based column of the
offending word.

``;`` binds looser than anything else: in ``if pmd_swap on: touch a; check``
the ``check`` runs whatever the setting.  A command nests at most
:data:`MAX_DEPTH` levels (``@2 expect fails ...``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, NoReturn

from . import registry
from .errors import LangError
from .grammar import Arg, CommandSpec, Flags, Grammar, Kind, Option, Slot, Switch, describe
from .convert import convert, format_value, suggest
from .lexer import Statement, Token, show, split_lines, split_statements
from .values import BadValue

__all__ = [
    "MAX_DEPTH", "Command", "Unparsed", "parse_script", "parse_line", "parse_command", "expected_next",
    "split_path", "narration_of", "NARRATION",
]

MAX_DEPTH = 16
"""How deeply commands may nest (``@1 @1 ...``, ``expect fails expect fails ...``)."""


@dataclass(frozen=True)
class Command:
    """One parsed command.

    ``name`` is the registry key (``mmap``, ``uffd_move``, ``at``...);
    ``args`` maps each argument key of its grammar to a value (omitted
    optional arguments hold None or their default).  ``line``, ``column``
    and ``text`` (the command's own source, stripped) say where it came
    from; they take no part in equality, so ``parse_command(str(c)) == c``.
    ``narration`` holds the ``#:`` lines written before the command (see
    :func:`parse_script`), which ``run --step`` and ``mmshell present`` show.
    ``args`` should be treated as read-only.
    """

    name: str
    args: Mapping[str, Any] = field(hash=False)
    line: int = field(default=0, compare=False)
    column: int = field(default=0, compare=False)
    text: str = field(default="", compare=False)
    narration: tuple[str, ...] = field(default=(), compare=False)

    @property
    def spec(self) -> CommandSpec:
        """The registry entry for this command."""
        return registry.command(self.name)

    def __str__(self) -> str:
        spec = self.spec
        positionals = spec.grammar.positionals
        if spec.glued:
            assert isinstance(positionals[0], Arg)
            head = spec.words[-1] + format_value(positionals[0], self.args[positionals[0].key])
            parts = [head]
            positionals = positionals[1:]
        else:
            parts = list(spec.words)
        _format(Grammar(positionals, spec.grammar.options), self.args, parts)
        return " ".join(parts)


@dataclass(frozen=True)
class Unparsed:
    """The COMMAND of ``expect fails`` when it does not parse: its text and why.

    ``expect fails mmpa b 2M`` parses (a typo is a refusal too, so the expectation
    passes when it runs); ``name`` is never a command's, so code that walks nested
    commands stops here.  It prints back as its text; ``error`` takes no part in
    equality (its column depends on where the text stood).
    """

    text: str
    error: str = field(compare=False)
    name = "unparsed"

    def __str__(self) -> str:
        return self.text


class _TooDeep(LangError):
    """Commands nested past MAX_DEPTH: an error of the whole line, even under ``expect fails``."""


def _format(g: Grammar, args: Mapping[str, Any], parts: list[str]) -> None:
    for p in g.positionals:
        if isinstance(p, Switch):
            parts.append(args[p.key])
            _format(p.case(args[p.key]) or Grammar(), args, parts)
        elif args.get(p.key) is not None or not p.optional:
            parts.append(format_value(p, args[p.key]) + (p.then or ""))
    for opt in g.options:
        value = args.get(opt.key, opt.default)
        if isinstance(opt, Flags):
            if opt.boolean and value:
                parts.append(opt.choices[0])
            elif not opt.boolean and value is not None and value != opt.default:
                parts.append(value)
        elif value is not None and value != opt.default:
            parts += [opt.word, format_value(opt.value, value)]


class _Incomplete(Exception):
    """Completion mode: the words ran out where one is required."""


class _Parser:
    """Parses the words of one statement; in ``complete`` mode, collects slots."""

    def __init__(self, stmt: Statement, complete: bool = False) -> None:
        self.stmt = stmt
        self.toks = stmt.tokens
        self.i = 0
        self.complete = complete
        self.slots: list[Slot] = []
        self.option_words: list[str] = []

    # -- helpers --------------------------------------------------------
    def peek(self) -> Token | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def error(self, column: int, message: str) -> NoReturn:
        raise LangError(self.stmt.line, column, message)

    def prefix(self, start: int) -> str:
        text = " ".join(t.text for t in self.toks[start:self.i])
        return text if len(text) <= 60 else "..." + text[-57:]

    def missing(self, start: int, what: str, slot: Slot) -> NoReturn:
        if self.complete:
            self.slots.append(slot)
            raise _Incomplete
        self.error(self.stmt.end, f"expected {what} after '{self.prefix(start)}'")

    def bad(self, start: int, text: str, column: int, what: str, hint: str = "") -> NoReturn:
        message = f"expected {what} after '{self.prefix(start)}', got '{show(text)}'"
        self.error(column, message + (f" ({hint})" if hint else ""))

    def value(self, arg: Arg, text: str, column: int, start: int) -> Any:
        try:
            return convert(arg, text)
        except BadValue as e:
            hint = e.hint
            if arg.then and arg.then in text:
                hint = f"put a space after '{arg.then}'"
            self.bad(start, text, column, arg.describe(), hint)

    # -- commands -------------------------------------------------------
    def command(self, depth: int) -> Command:
        start = self.i
        tok = self.toks[start]
        if depth > MAX_DEPTH:
            raise _TooDeep(self.stmt.line, tok.column,
                           f"commands nested too deeply (at most {MAX_DEPTH} levels)")
        spec = self.words(start)
        args = spec.grammar.defaults()
        positionals = spec.grammar.positionals
        if spec.glued:
            assert isinstance(positionals[0], Arg)
            self.glued(spec, positionals[0], args, start)
            positionals = positionals[1:]
        self.grammar(Grammar(positionals, spec.grammar.options), args, start, depth)
        extra = self.peek()
        if extra is not None:
            self.unexpected(extra, spec, args, start)
        return Command(spec.name, args, self.stmt.line, tok.column, self.stmt.text_from(start))

    def words(self, start: int) -> CommandSpec:
        """Consume the keyword(s) that name the command."""
        first = self.toks[start]
        glued = [s for s in registry.COMMANDS if s.glued and first.text.startswith(s.words[0])]
        if glued:
            self.i += 1
            return glued[0]
        words: list[str] = []
        while True:
            exact, n = registry.match(words)
            exact = exact if n == len(words) and words else None
            nexts = registry.next_words(words)
            tok = self.peek()
            if tok is not None and tok.text in nexts:
                words.append(tok.text)
                self.i += 1
                continue
            if tok is None and nexts and self.complete:
                self.slots.append(Slot(Kind.KEYWORD, "|".join(nexts), None, nexts, exact is not None))
                if exact is None:
                    raise _Incomplete
            if exact is not None:
                return exact
            if tok is None:
                self.missing(start, describe(Kind.KEYWORD, nexts), Slot(Kind.KEYWORD, "", None, nexts))
            if not words:
                candidates = [w for w in nexts
                              if not any(s.glued and s.words[0] == w for s in registry.COMMANDS)]
                guess = suggest(tok.text, candidates)
                hint = f"did you mean '{guess}'?" if guess else "help lists the commands"
                self.error(tok.column, f"unknown command '{show(tok.text)}' ({hint})")
            guess = suggest(tok.text, nexts)
            self.bad(start, tok.text, tok.column, describe(Kind.KEYWORD, nexts),
                     f"did you mean '{guess}'?" if guess else "")

    def glued(self, spec: CommandSpec, arg: Arg, args: dict[str, Any], start: int) -> None:
        """The argument written onto the command word: the PID of ``@PID``."""
        tok, word = self.toks[start], spec.words[-1]
        text = tok.text[len(word):]
        if not text:
            if self.complete:
                raise _Incomplete
            self.error(tok.end, f"expected {arg.describe()} after '{word}'")
        try:
            args[arg.key] = convert(arg, text)
        except BadValue as e:
            message = f"expected {arg.describe()} after '{word}', got '{show(text)}'"
            self.error(tok.column + len(word), message + (f" ({e.hint})" if e.hint else ""))

    def grammar(self, g: Grammar, args: dict[str, Any], start: int, depth: int) -> None:
        options = g.option_words()
        for p in g.positionals:
            if isinstance(p, Switch):
                self.switch(p, args, start, depth)
                continue
            tok = self.peek()
            if tok is None or (p.optional and tok.text in options):
                if not p.optional:
                    choices = registry.first_words() if p.kind is Kind.COMMAND else p.choices
                    self.missing(start, p.describe(), Slot(p.kind, p.meta, p.key, choices, refers=p.refers))
                if tok is None and self.complete:
                    choices = _topic_words(()) if p.kind is Kind.TOPIC else p.choices
                    self.slots.append(Slot(p.kind, p.meta, p.key, choices, True, p.refers))
                continue
            if p.kind is Kind.COMMAND:
                args[p.key] = self.nested(p, depth)
                continue
            if p.kind is Kind.TOPIC:
                args[p.key] = self.topic(start)
                continue
            if p.kind is Kind.TEXT:            # the rest of the command, as written
                args[p.key] = self.stmt.text_from(self.i)
                self.i = len(self.toks)
                continue
            text = tok.text
            glued_then = bool(p.then) and text.endswith(p.then or "") and len(text) > len(p.then or "")
            if glued_then:
                text = text[: -len(p.then or "")]
            args[p.key] = self.value(p, text, tok.column, start)
            self.i += 1
            if p.then and not glued_then:
                nxt = self.peek()
                if nxt is None:
                    self.missing(start, f"'{p.then}'", Slot(Kind.PUNCT, p.then, None, (p.then,)))
                if nxt.text != p.then:
                    self.bad(start, nxt.text, nxt.column, f"'{p.then}'")
                self.i += 1
        self.options(g, options, args, start)

    def nested(self, arg: Arg, depth: int) -> Command | Unparsed:
        """The rest of the words as a command; for a tolerant slot, kept as Unparsed
        text when they do not parse (a line nested too deeply is still an error)."""
        start = self.i
        if not arg.tolerant or self.complete:
            return self.command(depth + 1)
        try:
            return self.command(depth + 1)
        except _TooDeep:
            raise
        except LangError as e:
            self.i = len(self.toks)
            return Unparsed(self.stmt.text_from(start), f"syntax: {e}")

    def switch(self, sw: Switch, args: dict[str, Any], start: int, depth: int) -> None:
        tok = self.peek()
        noun = sw.noun or "word"
        if tok is None:
            self.missing(start, f"a {noun} ({', '.join(sw.choices)})",
                         Slot(Kind.ENUM, sw.meta, sw.key, sw.choices))
        case = sw.case(tok.text)
        if case is None:
            guess = suggest(tok.text, sw.choices)
            hint = f"did you mean '{guess}'?" if guess else ", ".join(sw.choices)
            if noun == "setting" and tok.text in registry.setting_names():
                self.error(tok.column, f"setting '{tok.text}' cannot be used after "
                                       f"'{self.prefix(start)}' ({hint})")
            self.error(tok.column, f"unknown {noun} '{show(tok.text)}' ({hint})")
        args[sw.key] = tok.text
        self.i += 1
        self.grammar(case, args, start, depth)

    def options(self, g: Grammar, words: dict[str, Option | Flags], args: dict[str, Any],
                start: int) -> None:
        self.option_words += list(words)
        given: dict[str, str] = {}
        while (tok := self.peek()) is not None and tok.text in words:
            opt = words[tok.text]
            if opt.key in given:
                prev = given[opt.key]
                self.error(tok.column, f"'{tok.text}' given twice" if prev == tok.text
                           else f"'{tok.text}' conflicts with '{prev}'")
            given[opt.key] = tok.text
            self.i += 1
            if isinstance(opt, Flags):
                args[opt.key] = True if opt.boolean else tok.text
                continue
            value = self.peek()
            if value is None:
                arg = opt.value
                self.missing(start, arg.describe(),
                             Slot(arg.kind, arg.meta, arg.key, arg.choices, refers=arg.refers))
            args[opt.key] = self.value(opt.value, value.text, value.column, start)
            self.i += 1
        if self.complete and self.peek() is None:
            for opt in g.options:
                if opt.key not in given:
                    choices = (opt.word,) if isinstance(opt, Option) else opt.choices
                    self.slots.append(Slot(Kind.KEYWORD, opt.usage()[1:-1], None, choices, True))

    def topic(self, start: int) -> str:
        first = self.toks[self.i]
        typed = tuple(t.text for t in self.toks[self.i:])
        topic = " ".join(typed)
        self.i = len(self.toks)
        topics = registry.help_topics()
        if self.complete and (nexts := _topic_words(typed)):
            # a topic of several words (`help uffd move`): what may come next
            self.slots.append(Slot(Kind.TOPIC, "TOPIC", "topic", nexts, topic in topics))
            raise _Incomplete
        if topic not in topics:
            guess = suggest(topic, topics)
            hint = f"did you mean '{guess}'?" if guess else "help lists the commands"
            self.error(first.column, f"unknown help topic '{show(topic)}' ({hint})")
        return topic

    def unexpected(self, tok: Token, spec: CommandSpec, args: dict[str, Any], start: int) -> NoReturn:
        usage = spec.synopsis
        sw = spec.grammar.positionals[0] if spec.grammar.positionals else None
        if isinstance(sw, Switch) and args.get(sw.key) in sw.choices:
            usage = spec.usages()[sw.choices.index(args[sw.key])]
        guess = suggest(tok.text, self.option_words)
        hint = f"did you mean '{guess}'?" if guess else f"usage: {usage}"
        self.error(tok.column, f"unexpected '{show(tok.text)}' after '{self.prefix(start)}' ({hint})")


NARRATION = "#:"
"""A comment line that starts with this (after blanks) is narration: it belongs to the next command."""


def narration_of(line: str) -> str | None:
    """The text of a narration line (``#: Notice the PMD.`` -> ``Notice the PMD.``), else None."""
    stripped = line.strip()
    if not stripped.startswith(NARRATION):
        return None
    text = stripped[len(NARRATION):]
    return text[1:] if text.startswith(" ") else text


def parse_script(text: str, first_line: int = 1) -> list[Command]:
    """Parse a whole script; the first error raises :class:`LangError`.

    Lines are numbered from ``first_line``.  Comments, blank lines and empty
    commands between ``;`` give nothing.  Narration lines (``#: ...``, a comment
    line of their own) are kept, in order, as the ``narration`` of the next command;
    narration after the last command belongs to no step and is dropped.
    """
    commands: list[Command] = []
    narration: list[str] = []
    for number, source in split_lines(text, first_line):
        said = narration_of(source)
        if said is not None:
            narration.append(said)
            continue
        for stmt in split_statements(source, number):
            cmd = _Parser(stmt).command(1)
            if narration:
                cmd = replace(cmd, narration=tuple(narration))
                narration = []
            commands.append(cmd)
    return commands


def parse_line(text: str, line: int = 1) -> list[Command]:
    """Parse one line of input (a prompt line, ``-c`` text) as line number ``line``.

    A newline inside ``text`` starts another line, as in a script.
    """
    return parse_script(text, line)


def parse_command(text: str, line: int = 1) -> Command:
    """Parse text that holds exactly one command (``Command.from_text``, so to speak)."""
    commands = parse_script(text, line)
    if len(commands) != 1:
        raise LangError(line, 1, f"expected exactly one command, got {len(commands)}")
    return commands[0]


def expected_next(text: str) -> tuple[Slot, ...]:
    """What may come next after ``text`` (a line up to the cursor), for completion.

    If ``text`` ends inside a word, the slots are those for that word.
    Returns () where nothing can follow or the text does not parse.
    """
    code = text.rsplit("\n", 1)[-1]
    if "#" in code:
        return ()
    tail = code.rsplit(";", 1)[-1]
    try:
        statements = split_statements(tail, 1)
    except LangError:
        return ()
    tokens = statements[0].tokens if statements else ()
    if tokens and tail[-1:] not in (" ", "\t"):
        tokens = tokens[:-1]
    if not tokens:
        words = registry.first_words()
        return (Slot(Kind.KEYWORD, "COMMAND", None, words),)
    parser = _Parser(Statement(tokens, 1, tail), complete=True)
    try:
        parser.command(1)
    except _Incomplete:
        pass
    except LangError:
        return ()
    return tuple(dict.fromkeys(parser.slots))


def _topic_words(typed: tuple[str, ...]) -> tuple[str, ...]:
    """The words that can follow `typed` in a help topic (the first words when none is typed)."""
    n = len(typed)
    return tuple(dict.fromkeys(words[n] for words in (t.split() for t in registry.help_topics())
                               if len(words) > n and tuple(words[:n]) == typed))


def split_path(path: str) -> list[str]:
    """Split an ``expect`` PATH on ``.``: ``pagemap.a+0x1000.swap_offset`` -> 3 parts.

    Addresses in a path (``a+0x1000``, ``a+2M``, ``0x40000000``) never
    contain a ``.``, since sizes are whole numbers and hex has no dot, so a
    plain split keeps them whole.  ``ValueError`` for an empty part.
    """
    parts = path.split(".")
    if not all(parts):
        raise ValueError(f"empty part in path {path!r}")
    return parts
