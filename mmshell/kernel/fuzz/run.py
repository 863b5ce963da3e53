"""`mmshell kernel fuzz [--seed N] [--steps K] [--time S] [--count N] [--out DIR] [--first]`.

Script after script (`generate.py`, script i of seed N has the seed `N:i`), each is
compared on the live kernel and in the simulator by `kernel diff`'s comparison
(`diff.diff_script`, the one narrow interface used: a script's name and text in,
its `Difference`s out).  A difference a pattern of `known.py` explains is counted
as known, and so is every difference at a later step than one a diverging pattern
explains (the machines no longer hold the same memory: `known.classify`).  On any
other one whose `signature` was not met before in this run:

1. the script runs again: a difference not seen twice is counted as noise (another
   process on the machine moved a counter) and the run goes on;
2. the script is shrunk (`shrink.py`) while a difference of the same kind on the
   same observable (`signature`) remains;
3. the minimal script is run twice more, and saved as DIR/seedN-i.mmsh with a
   header giving the seed, the difference and the command that replays it; the
   differing `expect` line holds the kernel's value;
4. the run goes on (with `--first`, it stops there).  A later difference with a
   signature already saved runs again too (step 1), and if seen again is counted under
   that file, not shrunk again.

Exit status: 0 no unexplained difference, 1 one or more found (saved), 2 the live
kernel could not be used (not root, no zram, a set-up that failed, a live run that
failed twice) or Ctrl-C (which stops the run once the comparison under way is over, and
prints the summary).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

from ...lang.errors import LangError
from ..diff import DiffResult, Difference, damon_note, diff_script
from ..machine import MissingRequirement, SetupError
from .generate import DEFAULT_STEPS, HEADER, Script, generate, is_expect
from .known import classify
from .shrink import shrink

#: Compares one script (name, text) on the kernel and in the simulator.
Compare = Callable[[str, str], DiffResult]
DEFAULT_OUT = "fuzz-failures"
#: Predicate calls one shrink may take (each is a live run of a few seconds, more while other live
#: runs hold the lock).
SHRINK_BUDGET = 40
#: More runs a difference at a `reclaim` must show while a DAMON monitor runs (2: three in all,
#: as tests/kernel/test_kernel_diff.py's RUNS).
DAMON_RUNS = 2


class LiveFailed(Exception):
    """The live run itself failed (a worker died, a device or knob could not be set)."""


def signature(d: Difference) -> tuple[str, ...]:
    """What makes two differences the same one while a script shrinks: its kind and observable,
    without the addresses and region names that shrinking changes."""
    what = d.what
    if what.endswith(" change"):
        more = "kernel more" if int(str(d.kernel)) > int(str(d.simulator)) else "kernel less"
        return ("counter", re.sub(r"^swap\.\w+\.", "swap.*.", what[:-len(" change")]), more)
    if what == "refused":
        side = "kernel" if d.simulator == "ok" else "simulator" if d.kernel == "ok" else "both"
        return ("refused", _op(d.command), side)
    if what == "outcome":
        return ("outcome", _op(d.command))
    if what == "vmas":
        return ("vmas", _op(d.command))
    if what == "errno":
        return ("errno", _op(d.command), str(d.kernel), str(d.simulator))
    if re.match(r"(the kernel|the simulator) stopped before", what):
        return ("stopped", what.split(" stopped")[0])
    head, _, rest = what.partition(".")
    if head in ("smaps", "swap", "swapmap", "swapcache"):
        return ("expect", head, rest.split(".")[-1].split(" ")[0])
    if head in ("pmd", "pte", "pagemap"):
        return ("expect", head, rest.rsplit(".", 1)[-1] if head == "pagemap" else "")
    return ("expect", what)


def _op(command: str) -> str:
    words = command.split()
    if words and words[0].startswith("@"):
        words = words[1:]
    if words[:2] == ["expect", "fails"]:
        words = words[2:]
    if not words:
        return ""
    if words[0] == "madvise" and len(words) > 2:
        return f"madvise {words[-1]}"
    return " ".join(words[:2]) if words[0] in ("uffd", "set") and len(words) > 1 else words[0]


def _live_failure(res: DiffResult) -> str | None:
    for d in res.diffs:
        if "live run failed" in str(d.kernel):
            return str(d.kernel)
    return None


@dataclass
class Verdict:
    """One script's comparison, classified."""

    result: DiffResult
    unexplained: list[Difference]
    known: dict[str, int] = field(default_factory=dict)


@dataclass
class Stats:
    scripts: int = 0
    lines: int = 0
    steps: int = 0
    known: dict[str, int] = field(default_factory=dict)
    noise: list[str] = field(default_factory=list)
    shrink_runs: int = 0
    #: each unexplained difference saved: its signature, the file, and how often it was met
    found: dict[tuple[str, ...], tuple[Path, int]] = field(default_factory=dict)


class Fuzzer:
    def __init__(self, seed: int, steps: int = DEFAULT_STEPS, seconds: float | None = 60.0,
                 scripts: int | None = None, out: Path = Path(DEFAULT_OUT), stream: TextIO | None = None,
                 compare: Compare = diff_script, verbose: bool = False, first: bool = False) -> None:
        self.seed, self.steps, self.seconds, self.max_scripts = seed, steps, seconds, scripts
        self.out = out
        self.stream = stream if stream is not None else sys.stdout
        self.compare = compare
        self.verbose = verbose
        self.first = first
        self.stats = Stats()
        self.interrupted = False

    def say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    # -- one script --------------------------------------------------------------------------
    def judge(self, name: str, lines: list[str]) -> Verdict:
        """Compare lines on both sides; raises LiveFailed when the live run itself failed twice."""
        text = "\n".join(lines) + "\n"
        res = self._compare(name, text)
        failure = _live_failure(res)
        if failure is not None:
            res = self._compare(name, text)
            failure = _live_failure(res)
            if failure is not None:
                raise LiveFailed(failure)
        verdict = Verdict(res, [])
        for d, key in zip(res.diffs, classify(res.diffs, lines)):
            if key is not None:
                verdict.known[key] = verdict.known.get(key, 0) + 1
            else:
                verdict.unexplained.append(d)
        return verdict

    def _compare(self, name: str, text: str) -> DiffResult:
        """One comparison; Ctrl-C during it stops the run once it is over (the simulator turns
        a Ctrl-C inside a command into that command's EINTR refusal, which a shrink would take
        for a script that no longer differs)."""
        res = self.compare(name, text)
        if self.interrupted:
            raise KeyboardInterrupt
        return res

    def _on_sigint(self, signum: int, frame: object) -> None:
        self.interrupted = True
        raise KeyboardInterrupt

    def reproduces(self, name: str, lines: list[str], sig: tuple[str, ...], line: int | None = None) -> bool:
        """Whether a run of `lines` shows a difference of signature `sig` (at `line`, when given:
        a second run of the same script must show it at the same step, or a machine-wide counter
        that another process moved at another step would pass for it)."""
        try:
            v = self.judge(name, lines)
        except (LangError, LiveFailed):
            return False
        return any(signature(d) == sig and line in (None, d.line) for d in v.unexplained)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> int:
        limit = f"for {self.seconds:g} s" if self.seconds is not None else ""
        if self.max_scripts is not None:
            limit += (" or " if limit else "") + f"{self.max_scripts} scripts"
        self.say(f"mmshell kernel fuzz: seed {self.seed}, up to {self.steps} commands per script, {limit}; "
                 f"a difference is saved under {self.out}/")
        t0 = time.monotonic()
        i = 0
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            while True:
                if self.seconds is not None and time.monotonic() - t0 >= self.seconds:
                    break
                if self.max_scripts is not None and i >= self.max_scripts:
                    break
                status = self.one(i)
                i += 1
                if status == 2 or (status == 1 and self.first):
                    self.summary(time.monotonic() - t0)
                    return status
        except MissingRequirement as e:
            self.say(f"mmshell kernel fuzz: cannot run on the live kernel: missing {e}")
            return 2
        except SetupError as e:
            self.say(f"mmshell kernel fuzz: setting up the live machine failed: {e}")
            return 2
        except KeyboardInterrupt:
            self.say("mmshell kernel fuzz: interrupted; everything set up was torn down")
            self.summary(time.monotonic() - t0)
            return 2
        finally:
            signal.signal(signal.SIGINT, previous)
        self.summary(time.monotonic() - t0)
        return 1 if self.stats.found else 0

    def one(self, i: int) -> int | None:
        """Script i: None when it shows no unexplained difference, else the exit status."""
        script = generate(f"{self.seed}:{i}", self.steps)
        name = f"seed{self.seed}-{i}.mmsh"
        try:
            v = self.judge(name, script.lines)
        except LiveFailed as e:
            path = self.save(script, script.lines, None, f"the live run failed twice: {e}", 0)
            self.say(f"{name}: the live run failed twice: {e}\n  (the script is in {path})")
            return 2
        self.stats.scripts += 1
        self.stats.lines += len(script.lines)
        self.stats.steps += v.result.stats.get("steps", 0)
        for key, n in v.known.items():
            self.stats.known[key] = self.stats.known.get(key, 0) + n
        if self.verbose:
            self.say(f"{name}: {len(script.lines)} lines ({script.commands} commands): "
                     + ("DIFFERS" if v.unexplained else "same")
                     + (f", known: {', '.join(sorted(v.known))}" if v.known else ""))
        if not v.unexplained:
            return None
        first = v.unexplained[0]
        sig = signature(first)
        self.say(f"{name}:{first.line}: {first.command}: {first.what}: kernel {first.kernel}, "
                 f"simulator {first.simulator}")
        # Noise first, also for a signature already saved: a machine-wide counter another
        # process moves (pgmajfault at a fault) gives the signature of a difference seen twice
        # elsewhere (kernel fuzz seed 18181: five one-off pgmajfault +1 counted under 910).
        # A `reclaim` while a DAMON monitor runs must differ in each of DAMON_RUNS more runs,
        # as the live corpus must: the monitor's sampling changes reclaim's reference counts
        # from run to run (diff.damon_note; seed 19191 script 366 differed in 1 replay of 4).
        runs = DAMON_RUNS if damon_note([first]) else 1
        if not all(self.reproduces(name, script.lines, sig, line=first.line) for _ in range(runs)):
            self.stats.noise.append(f"{name}: {first.what} at line {first.line}")
            self.say("  not seen again on a second run: counted as noise" if runs == 1 else
                     f"  not seen in each of {runs} more runs (a DAMON monitor runs): counted as noise")
            return None
        if sig in self.stats.found:
            path, n = self.stats.found[sig]
            self.stats.found[sig] = (path, n + 1)
            self.say(f"  seen again; the same difference as {path}: not shrunk again")
            return 1
        self.say(f"  seen again; shrinking (at most {SHRINK_BUDGET} runs)")
        minimal, calls = shrink(script.lines, lambda c: self.reproduces(name, c, sig), fixed=len(HEADER),
                                keep_through=first.line - 1, inert=is_expect, budget=SHRINK_BUDGET)
        self.stats.shrink_runs += calls
        final = None
        if self.reproduces(name, minimal, sig) and self.reproduces(name, minimal, sig):
            final = next((d for d in self.judge(name, minimal).unexplained if signature(d) == sig), None)
        if final is None:
            minimal, final, note = script.lines, first, "the shrunk script did not show it twice: saved whole"
        else:
            note = f"shrunk from {len(script.lines)} lines to {len(minimal)} in {calls} runs"
        path = self.save(script, minimal, final, note, calls)
        self.stats.found[sig] = (path, 1)
        self.say(f"  {note}; saved {path}\n  replay: mmshell kernel diff {path}")
        return 1

    # -- saving ------------------------------------------------------------------------------
    def save(self, script: Script, lines: list[str], d: Difference | None, note: str, calls: int) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        index = script.seed.split(":")[1]
        path = self.out / f"seed{self.seed}-{index}.mmsh"
        body = list(lines)
        head = [f"# mmshell kernel fuzz --seed {self.seed} --steps {self.steps}: script {index} "
                f"(seed {script.seed})"]
        if d is not None:
            head.append(f"# difference at `{d.command}`: {d.what}: kernel {d.kernel}, "
                        f"simulator {d.simulator}")
            i = d.line - 1
            if 0 <= i < len(body):
                body[i] = _with_kernel_value(body[i], d)
        head.append(f"# {note}")
        head.append(f"# replay: mmshell kernel diff {path}")
        path.write_text("\n".join(head + body) + "\n")
        return path

    def summary(self, seconds: float) -> None:
        s = self.stats
        known = ", ".join(f"{k} {n}" for k, n in sorted(s.known.items()))
        self.say(f"mmshell kernel fuzz: seed {self.seed}: {s.scripts} scripts ({s.lines} lines, "
                 f"{s.steps} steps compared) in {seconds:.0f} s; known differences: {known or 'none'}; "
                 f"noise (not seen twice): {len(s.noise)}"
                 + (f"; {s.shrink_runs} runs shrinking" if s.shrink_runs else ""))
        for line in s.noise:
            self.say(f"  noise: {line}")
        for sig, (path, met) in s.found.items():
            self.say(f"  unexplained: {' '.join(sig)}: {path}"
                     + (f" (met in {met} scripts)" if met > 1 else ""))


def _with_kernel_value(line: str, d: Difference) -> str:
    """An `expect PATH == VALUE` line that differs gets the kernel's value (the simulator's in
    a comment): the saved script then states what the kernel does."""
    m = re.match(r"^(@\d+ )?expect (\S+) == (\S+)$", line)
    if m is None or not re.fullmatch(r"[\w-]+", str(d.kernel)):
        return line
    return f"{m.group(1) or ''}expect {m.group(2)} == {d.kernel}    # simulator: {d.simulator}"


def run_fuzz(seed: int | None, steps: int, seconds: float | None, scripts: int | None, out: str,
             verbose: bool = False, first: bool = False) -> int:
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    return Fuzzer(seed, steps, seconds, scripts, Path(out), verbose=verbose, first=first).run()
