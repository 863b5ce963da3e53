"""`mmshell quiz`: a generated scenario and a question about its result, answered by the simulator.

A seed (random.Random) picks the scenario: the mode, the swap device, a THP
region, a swap-out of all or half of it, maybe a fork, maybe a failed
allocation, and a last step (a read or a write of one page, a read of all,
the child's read, swapoff).  The scenario runs in the simulator with explain
on; the questions that make sense for what happened are kept, and the seed
picks one (of :data:`KINDS`, at least ten).  Its answer is read off the run
(the last step's counter changes, or an `expect` path at the end), and its
explanation is explain's account of the last step.  The same seed gives the
same quiz: nothing here reads the clock or the machine.
"""

from __future__ import annotations

import io
import json
import random
import textwrap
from dataclasses import dataclass, field
from typing import Callable

from .lang.sim_observer import evaluate
from .lang.runner import run_text
from .lang.session import Session
from .report import StepPrinter

__all__ = ["KINDS", "TOPICS", "Quiz", "make_quiz", "render_quiz"]

PAGE = 4096


@dataclass(slots=True)
class Scenario:
    """The generated script and what the questions need to know of it."""

    lines: list[str]
    series: bool
    size: int                   # of region a, bytes
    swapped: int                # bytes of a swapped out (from a's start)
    page: int                   # offset of the page the last step is about
    fork: bool
    last: str                   # the kind of last step


@dataclass(slots=True)
class Run:
    """The scenario run: its session, and its steps as `mmshell run --json` gives them."""

    session: Session
    steps: list[dict]

    @property
    def last(self) -> dict:
        return self.steps[-1]

    def delta(self, family: str, name: str) -> int:
        return int(self.last.get("changes", {}).get(family, {}).get(name, 0))

    def value(self, path: str) -> int | str:
        return evaluate(self.session, path)


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of question: its topic, when it applies, its text and its answer (with the
    `expect` path that checks it at the end, or the counter the last step moves)."""

    name: str
    topic: str
    applies: Callable[[Scenario, Run], bool]
    question: Callable[[Scenario], str]
    answer: Callable[[Scenario, Run], int | str]
    path: Callable[[Scenario], str] | None = None         # the answer is this path's value at the end
    delta: tuple[str, str] | None = None                  # ... or this counter's change in the last step


def _hex(n: int) -> str:
    return f"a+{n:#x}"


def _delta(family: str, name: str, question: str, topic: str = "counters",
           applies: Callable[[Scenario, Run], bool] = lambda s, r: True) -> Kind:
    label = name if family == "vmstat" else f"mthp.{name}"
    return Kind(f"{label}", topic, applies, lambda s: question.format(label=label),
                lambda s, r: r.delta(family, name), delta=(family, name))


def _at_end(name: str, topic: str, path: Callable[[Scenario], str], question: Callable[[Scenario], str],
            applies: Callable[[Scenario, Run], bool] = lambda s, r: True) -> Kind:
    return Kind(name, topic, applies, question, lambda s, r: r.value(path(s)), path=path)


def _swapped_first(s: Scenario, r: Run) -> bool:
    return bool(r.value("pagemap.a.swapped"))


def _table_at_page(s: Scenario, r: Run) -> bool:
    return r.value(f"pmd.{_hex(s.page)}") == "table"


#: Every kind of question.
KINDS: tuple[Kind, ...] = (
    _at_end("pmd", "pmd", lambda s: f"pmd.{_hex(s.page & ~0x1fffff)}",
            lambda s: f"After the last step, what does the PMD covering {_hex(s.page & ~0x1fffff)} hold "
                      "(none, table, huge or swap)?"),
    _at_end("pte", "pmd", lambda s: f"pte.{_hex(s.page)}",
            lambda s: f"After the last step, what does the PTE for {_hex(s.page)} hold (present, swap "
                      "or none)?", _table_at_page),
    _at_end("swap_used", "swap", lambda s: "swap.z.used",
            lambda s: "After the last step, how many slots of swap device z are in use?",
            lambda s, r: "swapoff" not in s.last),
    Kind("swap_count", "swap", lambda s, r: "swapoff" not in s.last and _swapped_first(s, r),
         lambda s: "After the last step, what is the swap_map count of the slot that holds a's "
                   "first page (pagemap.a.swap_offset)?",
         lambda s, r: r.value(f"swapmap.z.{r.value('pagemap.a.swap_offset')}")),
    _at_end("nr_swapcached", "swap", lambda s: "vmstat.nr_swapcached",
            lambda s: "After the last step, how many pages are in the swap cache (nr_swapcached)?"),
    _delta("vmstat", "pgfault", "How many page faults ({label}) does the last step take?", "faults",
           lambda s, r: s.last.startswith("touch")),
    _delta("vmstat", "pgmajfault", "How many of the last step's faults are major ({label}): they had to "
           "read from swap?", "faults", lambda s, r: s.last.startswith("touch")),
    _delta("vmstat", "pswpin", "How many pages does the last step read from swap ({label})?", "swap",
           lambda s, r: s.last.startswith("touch") or "swapoff" in s.last),
    _delta("vmstat", "pswpout", "How many pages does the last step write to swap ({label})?", "swap",
           lambda s, r: s.last == "pageout"),
    _delta("vmstat", "thp_split_pmd", "How many PMDs does the last step split ({label})?", "pmd"),
    _delta("mthp", "swpin", "How many THPs does the last step swap in whole, in one fault ({label})?",
           "swap", lambda s, r: s.last.startswith("touch") or "swapoff" in s.last),
    _at_end("thp_swpout", "counters", lambda s: "vmstat.thp_swpout",
            lambda s: "Over the whole run, how many THPs went to swap whole, without a split "
                      "(thp_swpout)?"),
    _at_end("smaps_swap", "smaps", lambda s: "smaps.a.Swap",
            lambda s: "After the last step, how many kB of region a does smaps show as Swap in pid 1?"),
    _at_end("smaps_swappss", "smaps", lambda s: "smaps.a.SwapPss",
            lambda s: "After the last step, what is region a's SwapPss in pid 1 (kB): its swap, each slot "
                      "divided by the processes sharing it?", lambda s, r: s.fork),
    _at_end("anon_huge", "smaps", lambda s: "smaps.a.AnonHugePages",
            lambda s: "After the last step, how many kB of region a are mapped by PMDs in pid 1 "
                      "(smaps AnonHugePages)?"),
)

TOPICS: tuple[str, ...] = tuple(dict.fromkeys(k.topic for k in KINDS))


def scenario(rng: random.Random) -> Scenario:
    """A script built from the seed's choices; every one runs in both modes."""
    series = rng.random() < 0.5
    kind = rng.choice(["zram", "disk"])
    size = rng.choice([2, 4]) << 20
    swapped = size if size == 2 << 20 or rng.random() < 0.5 else 2 << 20
    lines = [f"set pmd_swap {'on' if series else 'off'}", f"swapon z 256M kind {kind}",
             f"mmap a {size >> 20}M hugepage", "touch a",
             "madvise a pageout" if swapped == size else "madvise a:2M pageout"]
    fork = rng.random() < 0.4
    if fork:
        lines.append("fork")
    page = rng.randrange(swapped // PAGE) * PAGE
    if rng.random() < 0.25:
        lines.append(f"set fail thp_alloc {rng.choice(['once', 'on'])}")
    last = rng.choice(["touch read", "touch write", "touch all", "pageout", "swapoff"]
                      + (["child read"] if fork else []))
    if last == "touch read":
        lines.append(f"touch {_hex(page)}:4K read")
    elif last == "touch write":
        lines.append(f"touch {_hex(page)}:4K")
    elif last == "touch all":
        lines.append("touch a read")
    elif last == "child read":
        lines.append(f"@2 touch {_hex(page)}:4K read")
    elif last == "swapoff":
        lines.append("swapoff z")
    else:
        lines.pop(4)                # the swap-out is the last step
        if fork:
            lines.remove("fork")
            fork = False
        lines.append("madvise a pageout" if swapped == size else "madvise a:2M pageout")
    return Scenario(lines, series, size, swapped, page, fork, last)


def play(sc: Scenario) -> Run:
    """Run the scenario with explain on; every step as a JSON object."""
    session = Session.boot()
    session.explain = True
    out = io.StringIO()
    printer = StepPrinter(session, json_mode=True, stream=out)
    outcome = run_text(session, "\n".join(sc.lines) + "\n", "quiz.mmsh", printer, before=printer.before)
    if outcome.exit_status() != 0:
        raise RuntimeError(f"a quiz scenario was refused: {out.getvalue()}")
    return Run(session, [json.loads(line) for line in out.getvalue().splitlines()])


@dataclass(slots=True)
class Quiz:
    seed: int
    topic: str | None
    scenario: Scenario
    kind: Kind
    question: str
    answer: int | str
    why: list[str] = field(default_factory=list)


def make_quiz(seed: int, topic: str | None = None) -> Quiz:
    """The quiz of `seed` (of `topic`): a scenario and one question that applies to what it did."""
    if topic is not None and topic not in TOPICS:
        raise ValueError(f"no quiz topic {topic!r} ({', '.join(TOPICS)})")
    rng = random.Random(seed)
    for _ in range(64):             # scenarios until one has a question of the topic
        sc = scenario(rng)
        run = play(sc)
        kinds = [k for k in KINDS if (topic is None or k.topic == topic) and k.applies(sc, run)]
        if kinds:
            kind = rng.choice(kinds)
            return Quiz(seed, topic, sc, kind, kind.question(sc), kind.answer(sc, run), _why(kind, sc, run))
    raise RuntimeError(f"no scenario of seed {seed} has a question of topic {topic}")


def _why(kind: Kind, sc: Scenario, run: Run) -> list[str]:
    """Explain's account of the steps the answer comes from: those that moved the counter a
    whole-run question asks about, else the last step."""
    if kind.path is not None and kind.path(sc).startswith("vmstat."):
        name = kind.path(sc).split(".", 1)[1]
        moved = [(i, st) for i, st in enumerate(run.steps)
                 if st.get("changes", {}).get("vmstat", {}).get(name)]
        if moved:
            return [s for i, st in moved[-2:] for s in [f"Step {i + 1} ({st['command']}):", *st["explain"]]]
    return [f"The last step ({run.last['command']}):", *run.last["explain"]]


def render_quiz(q: Quiz, answer: bool, width: int = 79) -> str:
    mode = "with the PMD swap entry series" if q.scenario.series else "in mainline"
    out = [f"Quiz {q.seed}{f' ({q.topic})' if q.topic else ''}: this script runs {mode}.", ""]
    out += [f"  {line}" for line in q.scenario.lines]
    out += [""] + textwrap.wrap(f"Question: {q.question}", width, subsequent_indent="  ")
    if not answer:
        out += ["", "Work it out (or paste the script at the mmshell prompt); the answer and why:",
                f"  mmshell quiz --seed {q.seed}{f' --topic {q.topic}' if q.topic else ''} --answer"]
        return "\n".join(out)
    out += ["", f"Answer: {q.answer}", ""]
    out += textwrap.wrap("Why: " + " ".join(q.why), width)
    return "\n".join(out)
