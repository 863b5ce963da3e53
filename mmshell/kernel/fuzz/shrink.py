"""Shrinking a failing script to a minimal one (delta debugging), against any predicate.

`shrink(lines, fails)` returns a sub-script for which `fails` still holds and
from which no single simplification below keeps it failing (within a budget of
predicate calls):

1. cut everything after the last line `fails` needs (the caller says which line
   shows the difference: `keep_through`);
2. ddmin over the lines (Zeller's delta debugging: drop chunks of n/2, n/4 ...
   lines, then single lines), the first `fixed` lines (the header) kept;
3. simplify each remaining line: drop an optional word (`hugepage`, `read`,
   `prot r`, `at ADDR`, `size SIZE`, `prio N`, an `@PID` prefix), replace a
   partial range `NAME+OFF:LEN` by the whole region or by its first page, and
   make each size or offset smaller (4K, 2M, half of it, 0);

and repeats 2-3 while something got smaller.  Pure: it knows the language only
as words, runs nothing itself, and is tested on synthetic predicates.
"""

from __future__ import annotations

import re
from typing import Callable, Iterator

Predicate = Callable[[list[str]], bool]

#: A size or offset word: decimal or hex, with an optional binary unit.
_NUMBER = re.compile(r"(?<![\w.@])(0x[0-9a-fA-F]+|[0-9]+)([KMG]?)(?![\w])")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
#: Optional words (with their value, when they take one) the simplifier tries to drop.
_OPTIONAL = re.compile(r" (hugepage|nohugepage|read|prot \S+|at \S+|size \S+|prio \S+)(?=\s|$)")
_RANGE = re.compile(r"(?<![\w.@])([A-Za-z_]\w*)\+([0-9A-Za-z]+)(:[0-9A-Za-z]+)?")


class Budget:
    """Counts predicate calls; `fails` answers False once the budget is spent."""

    def __init__(self, fails: Predicate, limit: int) -> None:
        self.fails, self.limit, self.calls = fails, limit, 0
        self.seen: dict[tuple[str, ...], bool] = {}

    @property
    def spent(self) -> bool:
        return self.calls >= self.limit

    def __call__(self, lines: list[str]) -> bool:
        key = tuple(lines)
        if key in self.seen:
            return self.seen[key]
        if self.spent:
            return False
        self.calls += 1
        self.seen[key] = self.fails(lines)
        return self.seen[key]


def shrink(lines: list[str], fails: Predicate, fixed: int = 1, keep_through: int | None = None,
           inert: Callable[[str], bool] | None = None, budget: int = 300) -> tuple[list[str], int]:
    """The smallest failing script found, and the number of predicate calls it took.

    `lines` must fail.  `keep_through` (an index into lines) is the last line the failure
    shows at: the lines after it are dropped first, if the failure remains without them.
    `inert` says which lines probably do not matter (e.g. `expect` lines but the one that
    differs): all of them are dropped at once first.
    """
    test = Budget(fails, budget)
    current = list(lines)
    if keep_through is not None and keep_through + 1 < len(current):
        cut = current[:keep_through + 1]
        if test(cut):
            current = cut
    if inert is not None:
        last = len(current) - 1
        kept = [ln for i, ln in enumerate(current) if i < fixed or i == last or not inert(ln)]
        if kept != current and test(kept):
            current = kept
    while not test.spent:
        before = len("".join(current)), len(current)
        current = ddmin(current, test, fixed)
        current = simplify(current, test, fixed)
        if (len("".join(current)), len(current)) == before:
            break
    return current, test.calls


def ddmin(lines: list[str], fails: Predicate, fixed: int = 1) -> list[str]:
    """Drop chunks of lines (never the first `fixed`) while `fails` holds."""
    head, body = lines[:fixed], lines[fixed:]
    n = 2
    while len(body) >= 1:
        chunk = max(1, len(body) // n)
        dropped = False
        for start in range(0, len(body), chunk):
            candidate = body[:start] + body[start + chunk:]
            if candidate != body and fails(head + candidate):
                body = candidate
                n = max(n - 1, 2)
                dropped = True
                break
        if not dropped:
            if chunk == 1:
                break
            n = min(len(body), n * 2)
    return head + body


def simplify(lines: list[str], fails: Predicate, fixed: int = 1) -> list[str]:
    """Replace each line by a simpler variant while `fails` holds.

    Each line takes a form it had before at most once: two variants can lead back to each
    other (a part for a whole region, then another part of it), and a predicate that
    remembers its answers would otherwise go round such a cycle for ever."""
    out = list(lines)
    for i in range(fixed, len(out)):
        taken = {out[i]}
        progress = True
        while progress:
            progress = False
            for variant in variants(out[i]):
                if variant in taken:
                    continue
                candidate = out[:i] + [variant] + out[i + 1:]
                if fails(candidate):
                    out = candidate
                    taken.add(variant)
                    progress = True
                    break
    return out


def variants(line: str) -> Iterator[str]:
    """Simpler forms of one line, the most drastic first."""
    if line.startswith("@"):
        head, _, rest = line.partition(" ")
        yield rest
    for m in _OPTIONAL.finditer(line):
        yield line[:m.start()] + line[m.end():]
    for m in _RANGE.finditer(line):
        name = m.group(1)
        yield line[:m.start()] + name + line[m.end():]
        if m.group(3):
            yield line[:m.start()] + f"{name}+{m.group(2)}:4K" + line[m.end():]
    for m in _NUMBER.finditer(line):
        value = int(m.group(1), 0) * _UNITS[m.group(2)]
        for smaller in _smaller(value):
            yield line[:m.start()] + _size_text(smaller) + line[m.end():]


def _smaller(value: int) -> list[int]:
    out: list[int] = []
    for v in (0, 4 << 10, 2 << 20, (value // 2) & ~0xFFF):
        if 0 <= v < value and v not in out:
            out.append(v)
    return out


def _size_text(n: int) -> str:
    for shift, unit in ((30, "G"), (20, "M"), (10, "K")):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)
