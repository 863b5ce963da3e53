"""No input, however wrong, crashes mmshell or leaves it half-changed.

Random and mutated lines go through the language runner in-process (many) and
through `mmshell -c` in a subprocess (a bounded number); hostile inputs by
name (huge sizes, negative numbers, overflowing hex, unicode, control
characters, very long lines, deep nesting, nested and looping `source`) get a
clear answer in bounded time.  mmsh_fuzz.run_checked holds the promises
checked for every input; FUZZED counts the inputs tried.
"""

from __future__ import annotations

import os
import random
import re
import resource
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mmsh_fuzz import VOCAB, run_checked
from mmshell.lang import registry

pytestmark = pytest.mark.slow      # fuzzers: seconds to minutes

# The subprocesses import this checkout, wherever the package was installed from.
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

FUZZED: Counter = Counter()
FUZZ = settings(max_examples=int(os.environ.get("MMSHELL_FUZZ_EXAMPLES", 600)), deadline=None,
                database=None, derandomize=True, suppress_health_check=list(HealthCheck))

#: Every example line of the registry: the seeds that mutations start from.
SEEDS = [line for spec in registry.COMMANDS for line in spec.examples if not line.startswith("source")]
SEEDS += ["mmap c 2M hugepage at a+8M", "touch a+2M:4K read", "uffd move b:4K a", "@2 madvise a pageout",
          "if pmd_swap on: expect pmd.a == swap", "expect fails munmap 0x1000", "mremap b c size 2M"]

separators = st.sampled_from([" ", " ", " ", "  ", "\t", ";", "; ", ":", "+", "\r", "\x0b", "\x00", "\u00a0"])


@st.composite
def vocab_lines(draw) -> str:
    words = draw(st.lists(st.sampled_from(VOCAB), min_size=1, max_size=10))
    out = words[0]
    for w in words[1:]:
        out += draw(separators) + w
    return out


@st.composite
def mutated_lines(draw) -> str:
    line = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.sampled_from(["insert", "delete", "replace_word", "duplicate", "number", "char"]))
        words = line.split(" ")
        i = draw(st.integers(0, max(0, len(words) - 1)))
        if what == "insert":
            words.insert(i, draw(st.sampled_from(VOCAB)))
        elif what == "delete" and len(words) > 1:
            del words[i]
        elif what == "replace_word":
            words[i] = draw(st.sampled_from(VOCAB))
        elif what == "duplicate":
            words.insert(i, words[i])
        elif what == "number":
            words[i] = draw(st.sampled_from(["-1", "0", "0x0", "1P", "65G", "0x" + "f" * 17, "9" * 30,
                                             "18446744073709551615", "4097", "1.5M", "\uff14K", "1e6"]))
        line = " ".join(words)
        if what == "char":
            j = draw(st.integers(0, len(line)))
            line = line[:j] + draw(st.characters()) + line[j:]
    return line


@FUZZ
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    FUZZED["in-process random text"] += 1
    run_checked(text)


@FUZZ
@given(st.lists(vocab_lines(), min_size=1, max_size=4).map("\n".join))
def test_vocabulary_lines(text: str) -> None:
    FUZZED["in-process vocabulary lines"] += 1
    run_checked(text)


@FUZZ
@given(st.lists(mutated_lines(), min_size=1, max_size=4).map("\n".join))
def test_mutated_lines(text: str) -> None:
    FUZZED["in-process mutated lines"] += 1
    run_checked(text)


HOSTILE = {
    "mmap 1T": "mmap big 1T",
    "mmap 1T then touch all of it": "mmap big 1T; touch big",
    "mmap 1T then check all of it": "mmap big 1T; touch big:4K; check big",
    "mmap 1T then mremap it": "mmap big 1T; touch big:4K; mremap big moved size 2T",
    "mmap 1P": "mmap big 1P",
    "mmap 2**64-1": "mmap big 18446744073709551615",
    "mmap 2**64": "mmap big 18446744073709551616",
    "set ram 1P": "set ram 1P",
    "set ram 65G": "set ram 65G",
    "swapon 1P": "swapon huge 1P",
    "negative size": "mmap n -4K",
    "negative pid": "@-1 fork",
    "negative prio": "swapon s9 8M prio -40000",
    "overflowing hex": "touch 0x1ffffffffffffffffff:4K",
    "hex with a unit": "mmap h 0x10M",
    "fraction": "mmap f 1.5M",
    "unicode digits": "mmap u \uff12M",
    "arabic digits": "mmap u \u0662M",
    "emoji": "mmap \U0001f600 2M",
    "right-to-left override": "mmap a\u202e 2M",
    "zero-width space": "mmap\u200b x 2M",
    "NUL": "mmap x\x00 2M",
    "escape sequence": "show vmas \x1b[2J",
    "bell and backspace": "touch a\x07\x08",
    "a megabyte of garbage": "\u00e9" + "x" * (1 << 20),
    "a megabyte line of one word": "touch " + "a" * (1 << 20),
    "a megabyte comment": "# " + "z" * (1 << 20),
    "ten thousand semicolons": ";" * 10000 + "check",
    "ten thousand @": "@1 " * 10000 + "fork",
    "ten thousand expect fails": "expect fails " * 10000 + "fork",
    "ten thousand ifs": "if pmd_swap on: " * 10000 + "fork",
    "a thousand lines": "\n".join(["expect pid == 1"] * 1000),
    "ten thousand numbered lines": "\n" * 10000 + "bogus",
    "CRLF": "mmap c 2M\r\ntouch c\r\ncheck c\r\n",
    "only whitespace": " \t\r\x0b\x0c\n\n",
    "empty": "",
}


@pytest.mark.parametrize("text", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_input(text: str) -> None:
    FUZZED["hostile inputs by name"] += 1
    records = run_checked(text)
    assert all(r.kind != "bug" for r in records)


def test_sources_nested_looping_and_unreadable(tmp_path: Path) -> None:
    chain = [tmp_path / f"f{i}.mmsh" for i in range(12)]
    for i, f in enumerate(chain):
        f.write_text(f"source f{i + 1}.mmsh\n" if i + 1 < len(chain) else "expect pid == 1\n")
    (tmp_path / "self.mmsh").write_text("source self.mmsh\n" * 4)
    (tmp_path / "bad.mmsh").write_bytes(b"mmap a 2M\n\xff\xfe\n")
    (tmp_path / "dir.mmsh").mkdir()
    big = tmp_path / "big.mmsh"
    with big.open("wb") as f:
        f.truncate(17 << 20)
    cases = {
        "f0.mmsh": "ELOOP", "self.mmsh": "ELOOP", "bad.mmsh": "EINVAL", "dir.mmsh": "EISDIR",
        "big.mmsh": "EINVAL", "missing.mmsh": "ENOENT", "/dev/zero": "EINVAL",
    }
    for name, errno in cases.items():
        FUZZED["source cases"] += 1
        path = name if name.startswith("/") else str(tmp_path / name)
        out = subprocess.run([sys.executable, "-m", "mmshell.cli", "-c", f"source {path}"], capture_output=True,
                             text=True, timeout=60, cwd=tmp_path, env=SUBPROCESS_ENV)
        text = out.stdout + out.stderr
        assert out.returncode == 2 and "Traceback" not in text, text
        assert f"source: {errno}" in text, text


def test_source_fan_out_is_bounded(tmp_path: Path) -> None:
    """A file that sources itself many times per level: E2BIG after MAX_SOURCES, not 10**8 runs."""
    from mmshell.lang.runner import MAX_SOURCES, run_text
    from mmshell.lang.session import Session

    (tmp_path / "fan.mmsh").write_text("source fan.mmsh\n" * 10)
    records = []
    outcome = run_text(Session.boot(), "source fan.mmsh", "-c", records.append, keep_going=True, base=tmp_path)
    assert outcome.sourced == MAX_SOURCES
    assert any(r.error and "E2BIG" in r.error for r in records)


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def _cli_inputs(n: int) -> list[str]:
    rng = random.Random(5)
    out = list(HOSTILE.values())[:20]
    while len(out) < n:
        words = [rng.choice(VOCAB) for _ in range(rng.randint(1, 8))]
        line = " ".join(words)
        if rng.random() < 0.5:
            line = rng.choice(SEEDS)
            j = rng.randint(0, len(line))
            line = line[:j] + rng.choice(VOCAB + [chr(rng.randint(0, 0x10FFFF))]) + line[j:]
        if "\x00" not in line and not any(0xD800 <= ord(c) <= 0xDFFF for c in line):
            out.append(line)
    return out


@pytest.mark.parametrize("text", _cli_inputs(int(os.environ.get("MMSHELL_FUZZ_CLI", 48))))
def test_mmshell_c(text: str) -> None:
    """Through the real command line: exit 0/1/2, one error line with the position, no traceback."""
    FUZZED["mmshell -c"] += 1
    out = subprocess.run([sys.executable, "-m", "mmshell.cli", "-c", f"mmap a 2M; {text}"],
                         capture_output=True, text=True, timeout=60, preexec_fn=_limit_memory,
                         env={**SUBPROCESS_ENV, "COLUMNS": "100"})
    text_out = out.stdout + out.stderr
    assert out.returncode in (0, 1, 2), text_out
    assert "Traceback" not in text_out and "simulator bug" not in text_out, text_out
    errors = [line for line in text_out.splitlines() if re.match(r"-c:\d+: ", line)]
    if out.returncode == 2:
        assert len(errors) == 1, text_out
        if ": syntax: " in errors[0]:
            assert "column" in errors[0], errors[0]


def teardown_module() -> None:
    from mmsh_machine import STATS

    STATS.setdefault("fuzz", Counter()).update(FUZZED)
