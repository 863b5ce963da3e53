"""The keys of `mmshell run --step`: one key read at a stop, and what it means.

At a stop, Enter or space runs the next step, `q` quits the run (exit 0 unless an
expectation had already failed), `?` lists the keys; Ctrl-C interrupts (exit 2,
as anywhere else).  On a terminal one key is read without waiting for Enter; from
a pipe, one line is read (`q` quits, `?` lists the keys, anything else goes on),
and at the end of input the run goes on without stopping again.
"""

from __future__ import annotations

import enum
import sys
from typing import Callable, TextIO

__all__ = ["Key", "KEYS_HELP", "STEP_MODES", "Quit", "meaning", "read_key", "ask"]

#: The values of `--step`: stop before every step, or only at `pause`.
STEP_MODES = ("each", "pause")

KEYS_HELP = "keys: Enter or space run the next step, q quits, ? shows this, Ctrl-C interrupts"


class Key(enum.Enum):
    NEXT = "next"
    QUIT = "quit"
    HELP = "help"
    EOF = "eof"        # input ended: stop no more


class Quit(Exception):
    """`q` at a stop: the run ends here."""


def meaning(text: str) -> Key:
    """What a key (or a line read from a pipe) means at a stop."""
    word = text.strip().lower()
    if word in ("q", "quit"):
        return Key.QUIT
    if word in ("?", "h", "help"):
        return Key.HELP
    return Key.NEXT


def _read_raw_key(stream: TextIO) -> str:
    """One key from a terminal, without echo and without waiting for Enter (Ctrl-C still
    raises KeyboardInterrupt: the terminal keeps its signals)."""
    import termios
    import tty

    fd = stream.fileno()
    old = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        return stream.read(1)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def read_key(stream: TextIO | None = None) -> Key:
    """The next key at a stop, from a terminal or, one line at a time, from a pipe."""
    stream = stream if stream is not None else sys.stdin
    if stream.isatty():
        ch = _read_raw_key(stream)
        return Key.EOF if ch == "" else meaning("" if ch in ("\n", "\r", " ") else ch)
    line = stream.readline()
    return Key.EOF if line == "" else meaning(line)


def ask(prompt: Callable[[str], None], reader: Callable[[], Key] = read_key) -> bool:
    """Stop until a key says go on: True to go on stopping, False when input ended.
    `q` raises Quit; `?` lists the keys and asks again."""
    while True:
        prompt("  [Enter/space] next  [q] quit  [?] keys ")
        key = reader()
        if key is Key.HELP:
            prompt("\n" + KEYS_HELP + "\n")
            continue
        if key is Key.QUIT:
            raise Quit
        return key is Key.NEXT
