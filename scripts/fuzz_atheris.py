#!/usr/bin/env python3
"""Coverage-guided fuzzing of the .mmsh language and the simulator with atheris (libFuzzer).

Every input is decoded as text and run as `mmshell -c` would run it, on a copy
of a busy machine (THPs present and swapped, a child, two devices), with the
promises of tests/reliability/mmsh_fuzz.py checked: nothing escapes, each
error is one line with its position, a refused command changes nothing.  A
violation is an AssertionError: libFuzzer saves the input as crash-*.

    pip install atheris
    scripts/fuzz_atheris.py -runs=100000                 # a fixed number of inputs
    scripts/fuzz_atheris.py -max_total_time=600 corpus/  # ten minutes, keeping a corpus

Any libFuzzer option works; a dictionary of the language's words is passed
unless -dict= is given.  tests/reliability/test_atheris.py runs a short,
bounded session in CI when atheris is installed.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "reliability")]

with atheris.instrument_imports(include=["mmshell"]):
    import mmshell.lang.runner  # noqa: F401  (instrumented for coverage)
    import mmshell.mm.access  # noqa: F401

from mmsh_fuzz import VOCAB, run_checked  # noqa: E402


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    run_checked(fdp.ConsumeUnicodeNoSurrogates(len(data)))


def _escape(word: str) -> str:
    """A dictionary entry: printable ASCII as is, every other byte of the UTF-8 as \\xNN."""
    return "".join(chr(b) if 32 <= b < 127 and chr(b) not in '"\\' else f"\\x{b:02x}"
                   for b in word.encode("utf-8"))


def main() -> None:
    argv = list(sys.argv)
    if not any(a.startswith("-dict=") for a in argv):
        words = sorted({_escape(w) for w in VOCAB if w}) + ["\\x0a", "\\x3b", "\\x23"]   # newline ; #
        f = tempfile.NamedTemporaryFile("w", suffix=".dict", delete=False)
        f.write("".join(f'"{w}"\n' for w in words))
        f.close()
        argv.append(f"-dict={f.name}")
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
