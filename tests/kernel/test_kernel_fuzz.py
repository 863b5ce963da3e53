"""`mmshell kernel fuzz`: the generator, the shrinker, the known-difference table and the loop
(everywhere, with the simulator standing in for the kernel), and a bounded live run (when asked
for, as root with zram: the same opt-in as the differential corpus)."""

from __future__ import annotations

import io
import os
import re
import signal
from pathlib import Path

import pytest

from mmshell.kernel.diff import DiffResult, Difference, run_sim
from mmshell.kernel.fuzz import known
from mmshell.kernel.fuzz.generate import HEADER, SimModel, _partial, generate, is_expect
from mmshell.kernel.fuzz.run import Fuzzer, signature
from mmshell.kernel.fuzz.shrink import Budget, ddmin, shrink, simplify, variants
from mmshell.kernel.fuzz.sim_step import sim_step
from mmshell.kernel.machine import MissingRequirement
from mmshell.kernel.runner import HANDLERS
from mmshell.lang.parser import Command, parse_script
from test_kernel_diff import LIVE_SKIP

SEEDS = [f"11:{i}" for i in range(12)]


def _inner(cmd: Command) -> Command:
    while cmd.name in ("at", "if", "expect_fails") and isinstance(cmd.args.get("command"), Command):
        cmd = cmd.args["command"]
    return cmd


# -- the generator -----------------------------------------------------------------------------------

def test_generation_is_deterministic_per_seed() -> None:
    a, b = generate("3:5"), generate("3:5")
    assert a.lines == b.lines
    assert generate("3:6").lines != a.lines
    assert generate("4:5").lines != a.lines


@pytest.mark.parametrize("seed", SEEDS)
def test_generated_scripts_parse_and_use_only_live_commands(seed: str) -> None:
    script = generate(seed, steps=20)
    assert script.lines[:len(HEADER)] == list(HEADER)
    assert 5 <= script.commands - len(HEADER) <= 20
    for cmd in parse_script(script.text):
        inner = _inner(cmd)
        assert inner.name in HANDLERS, inner.text
        assert inner.name not in ("show", "trace", "source", "help"), inner.text
        if inner.name == "set":
            assert inner.args["setting"] not in ("fail", "ram"), inner.text
            assert not (inner.args["setting"] == "pmd_swap" and inner.args["value"]), inner.text
        if inner.name == "reclaim":
            assert inner.args["size"] is None, inner.text


@pytest.mark.parametrize("seed", SEEDS[:6])
def test_generated_expectations_hold_in_the_simulator(seed: str) -> None:
    """What the generator wrote down is what the simulator (mainline, invariants checked after
    each step, as `kernel diff` runs it) shows: a difference is the kernel's alone."""
    script = generate(seed)
    sides = run_sim(f"{seed}.mmsh", script.text)
    problems = [s.error for s in sides if s.error]
    assert not problems, problems
    assert sum(1 for ln in script.lines if is_expect(ln)) > 0


def test_never_turns_thp_on_again_after_never() -> None:
    for i in range(40):
        thp = [ln.split()[2] for ln in generate(f"8:{i}").lines if ln.startswith("set thp")]
        if "never" in thp:
            assert all(v == "never" for v in thp[thp.index("never"):]), thp


def test_most_candidates_are_accepted() -> None:
    tried = refused = 0
    for i in range(20):
        s = generate(f"9:{i}")
        tried, refused = tried + s.tries, refused + s.refused_tries
    assert refused / tried < 0.2, (refused, tried)


# -- the shrinker --------------------------------------------------------------------------------------

def _needs_pageout_of_a_written_thp(lines: list[str]) -> bool:
    """A synthetic difference: `madvise a pageout` after `touch a` of an `a` of 2M or more."""
    text = "\n".join(lines)
    m = re.search(r"^mmap a (\d+)M", text, re.M)
    return (m is not None and int(m.group(1)) >= 2 and "\ntouch a\n" in text + "\n"
            and text.index("\ntouch a") < text.find("madvise a pageout") and "madvise a pageout" in text)


def test_a_refusal_with_a_partial_effect_is_recognised() -> None:
    """A refused line that changed the simulator (a uffd move that stops part-way) is one the
    generator must keep (as `expect fails`): dropping it would leave the script behind the
    simulator's state."""
    sim = SimModel()
    for line in ("mmap a 1M", "touch a", "mmap s 4K", "touch s", "mmap b 1M", "uffd register b",
                 "uffd move s b+512K"):
        assert sim.run(line).kind == "ok", line
    partial = sim.run("uffd move a b")
    assert partial.kind == "refused" and "EAGAIN" in (partial.error or "") and _partial(partial)
    assert sim.value("pagemap.b:1M.present") == 129
    whole = sim.run("uffd move a+512K:4K b+512K")
    assert whole.kind == "refused" and not _partial(whole)


def test_shrink_finds_the_minimal_script() -> None:
    lines = ["set pmd_swap off", "swapon z0 64M kind zram prio 5", "mmap b 4M hugepage", "mmap a 8M hugepage",
             "touch b", "expect smaps.b.Rss == 4096", "touch a", "fork", "@2 touch b read",
             "madvise a+2M:2M cold", "madvise a pageout", "expect smaps.a.Swap == 8192", "check"]
    calls = []

    def fails(c: list[str]) -> bool:
        calls.append(c)
        return _needs_pageout_of_a_written_thp(c)

    assert fails(lines)
    out, n = shrink(lines, fails, keep_through=10, inert=is_expect)
    assert out == ["set pmd_swap off", "mmap a 2M hugepage", "touch a", "madvise a pageout"] or \
        out == ["set pmd_swap off", "mmap a 2M", "touch a", "madvise a pageout"]
    assert _needs_pageout_of_a_written_thp(out)
    assert n == len(calls) - 1


def test_shrink_keeps_the_fixed_head_and_respects_the_budget() -> None:
    lines = [f"line {i}" for i in range(40)]
    out, n = shrink(lines, lambda c: "line 0" in c and "line 17" in c, fixed=3, budget=10)
    assert out[:3] == lines[:3]
    assert n <= 10
    out, _ = shrink(lines, lambda c: "line 17" in c, fixed=3)
    assert out == lines[:3] + ["line 17"]


def test_ddmin_drops_every_irrelevant_line() -> None:
    lines = ["h"] + [str(i) for i in range(30)]
    assert ddmin(lines, lambda c: {"3", "19", "27"} <= set(c)) == ["h", "3", "19", "27"]


def test_variants_make_lines_simpler() -> None:
    got = list(variants("@2 mmap a 6M prot r hugepage at 0x600000000000"))
    assert "mmap a 6M prot r hugepage at 0x600000000000" in got
    assert "@2 mmap a 6M hugepage at 0x600000000000" in got
    assert "@2 mmap a 2M prot r hugepage at 0x600000000000" in got
    assert "@2 mmap a 6M prot r at 0x600000000000" in got
    assert "madvise a pageout" in list(variants("madvise a+1M:4K pageout"))
    assert "madvise a+1M:4K pageout" in list(variants("madvise a+1M:2M pageout"))


def test_simplify_ends_when_a_variant_is_the_line_itself() -> None:
    """`madvise a+1M:4K ...` has itself among its variants (the range cut to 4K); with a
    predicate that remembers its answers, that variant once went round for ever."""
    line = "madvise a+1M:4K pageout"
    assert line in list(variants(line))
    test = Budget(lambda lines: "a+1M" in lines[-1], 40)      # the offset matters, the length not
    out = simplify(["set pmd_swap off", line], test, fixed=1)
    assert out[-1].startswith("madvise a+1M") and test.calls < 40


# -- signatures and known differences -----------------------------------------------------------------

def _d(what: str, kernel: object, sim: object, command: str = "reclaim", line: int = 3) -> Difference:
    return Difference("x.mmsh", line, command, what, kernel, sim)


def test_signature_is_kind_observable_and_direction() -> None:
    assert signature(_d("swap.z0.used change", "+5", "+0")) == ("counter", "swap.*.used", "kernel more")
    assert signature(_d("swap.d1.used change", "+0", "+5")) == ("counter", "swap.*.used", "kernel less")
    assert signature(_d("pagemap.a+0x5000.swap_offset", 9, 8)) == signature(_d("pagemap.b.swap_offset", 1, 2))
    assert signature(_d("smaps.a.Rss", 4, 8)) == ("expect", "smaps", "Rss")
    assert signature(_d("refused", "x: EINVAL", "ok", "madvise a+4K:8K collapse")) == \
        ("refused", "madvise collapse", "kernel")
    assert signature(_d("refused", "ok", "x: EINVAL", "@2 munmap a")) == ("refused", "munmap", "simulator")


def test_known_patterns_are_narrow_and_explained() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "semantics.md").read_text()
    names = [k.name for k in known.KNOWN]
    assert len(names) == len(set(names))
    for k in known.KNOWN:
        assert k.reason and k.docs in docs, f"{k.name}: docs/semantics.md has no entry '{k.docs}'"
        assert k.examples and k.near_misses, f"{k.name}: needs examples and near misses"
        for ex in k.examples:
            assert known.explain(ex.difference(), list(ex.lines)) is k, (k.name, ex)
        for ex in k.near_misses:
            assert known.explain(ex.difference(), list(ex.lines)) is None, (k.name, ex)


def test_a_diverging_known_difference_explains_the_later_steps() -> None:
    """After a difference a diverging pattern explains (the two machines then hold different
    memory), a difference at a later step is its consequence; one at the same step must be
    explained on its own, and nothing before it is (kernel fuzz seed 25252 script 597: the kernel
    freed nothing at the reclaim, so reading the moved pages back faulted nothing in there)."""
    lines = ["set pmd_swap off", "set page_cluster 0", "swapon z0 64M kind zram", "mmap a 2052K hugepage",
             "touch a", "madvise a+800K:1252K pageout", "touch a read", "khugepaged",
             "mremap a:16K d at 0x600033000000", "reclaim", "touch d+8K:8K"]
    pattern = next(k for k in known.KNOWN if k.name.startswith("a reclaim after refaults"))
    assert pattern.diverges

    def d(line: int, what: str, kern: str, sim: str) -> Difference:
        return Difference("s.mmsh", line, lines[line - 1], what, kern, sim)
    before = d(7, "vmstat.pgmajfault change", "+1", "+2")
    at = [d(10, "vmstat.pswpout change", "+0", "+512"), d(10, "vmstat.pgactivate change", "+512", "+0")]
    later = d(11, "vmstat.pgmajfault change", "+0", "+2")
    assert known.classify([before, *at, later], lines) == [
        None, pattern.name, None, f"after: {pattern.name}"]
    assert known.classify([later], lines) == [None]        # no diverging difference before it
    assert not any(k.diverges for k in known.KNOWN if k.name == "machine-wide pgmajfault")


def test_sim_step_reads_the_simulator_at_the_step() -> None:
    """What a pattern's `sim` condition sees: the step's vmstat events, the partly mapped THPs on
    the LRU before it, the swap space and swap-backed folios left after it; None where the script
    does not reach the step."""
    lines = ("set pmd_swap off", "swapon z0 4M kind zram", "mmap a 2M hugepage", "touch a",
             "madvise a+0:4K dontneed", "mmap b 3M hugepage", "touch b", "reclaim")
    step = sim_step(lines)
    assert step is not None and step.partially_mapped_before == 1 and step.ran_out_of_swap
    assert step.swap_free_after == 0 and step.anon_on_lru_after > 0 and step.events["pswpout"] == 1023
    roomy = sim_step(tuple(line.replace("4M", "64M") for line in lines))
    assert roomy is not None and not roomy.ran_out_of_swap and roomy.anon_on_lru_after == 0
    assert sim_step(("mmap a 2M", "munmap b", "touch a")) is None       # refused before the step
    assert sim_step(("mmap a 2M", "tuoch a")) is None                   # does not parse


# -- the loop, with the simulator standing in for the kernel ------------------------------------------

def _fake_compare(differs: bool):
    """Both sides are the simulator; with `differs`, the 'kernel' counts one more pswpout at every
    `madvise ... pageout` step that is not the first command touching its region."""
    def compare(name: str, text: str) -> DiffResult:
        diffs = []
        if differs:
            for i, ln in enumerate(text.splitlines(), start=1):
                if "pageout" in ln and _needs_pageout_of_a_written_thp(text.splitlines()[:i]):
                    diffs.append(Difference(name, i, ln, "vmstat.pswpout change", "+513", "+512"))
                    break
        return DiffResult(name, diffs, {"steps": len(text.splitlines())}, [], [])
    return compare


def _script_with_a_pageout(i: int) -> bool:
    return _needs_pageout_of_a_written_thp(generate(f"5:{i}").lines)


def test_fuzz_loop_without_differences(tmp_path: Path) -> None:
    out = io.StringIO()
    status = Fuzzer(5, seconds=None, scripts=3, out=tmp_path / "f", stream=out, compare=_fake_compare(False)).run()
    assert status == 0, out.getvalue()
    assert "3 scripts" in out.getvalue()
    assert not (tmp_path / "f").exists()


def test_fuzz_loop_shrinks_and_saves_the_first_difference(tmp_path: Path) -> None:
    first = next(i for i in range(200) if _script_with_a_pageout(i))
    out = io.StringIO()
    status = Fuzzer(5, seconds=None, scripts=first + 5, out=tmp_path / "f", stream=out,
                    compare=_fake_compare(True)).run()
    assert status == 1, out.getvalue()
    saved = tmp_path / "f" / f"seed5-{first}.mmsh"
    text = saved.read_text()
    assert "# mmshell kernel fuzz --seed 5" in text and f"replay: mmshell kernel diff {saved}" in text
    assert "vmstat.pswpout change: kernel +513, simulator +512" in text
    body = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert body[:len(HEADER)] == list(HEADER)
    assert _needs_pageout_of_a_written_thp(body)
    assert len(body) <= len(HEADER) + 4, body
    parse_script(text)
    # the run went on after it; the same difference met again is counted, not shrunk again
    later = [i for i in range(first + 1, first + 5) if _script_with_a_pageout(i)]
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == [saved.name]
    if later:
        assert f"the same difference as {saved}" in out.getvalue()
        assert f"(met in {1 + len(later)} scripts)" in out.getvalue()


def test_a_saved_difference_met_again_runs_again_before_it_counts(tmp_path: Path) -> None:
    """A later script whose difference has a saved signature runs again first, as a new one
    does: one not seen again is noise, not one more script of the saved kind (a one-off
    pgmajfault at a fault has the signature of one seen twice elsewhere)."""
    first = next(i for i in range(200) if _script_with_a_pageout(i))
    later = next(i for i in range(first + 1, 400) if _script_with_a_pageout(i))
    base = _fake_compare(True)
    calls: dict[str, int] = {}

    def compare(name: str, text: str) -> DiffResult:
        calls[name] = calls.get(name, 0) + 1
        if name == f"seed5-{later}.mmsh" and calls[name] > 1:
            return DiffResult(name, [], {"steps": len(text.splitlines())}, [], [])
        return base(name, text)

    out = io.StringIO()
    Fuzzer(5, seconds=None, scripts=later + 1, out=tmp_path / "f", stream=out, compare=compare).run()
    assert calls[f"seed5-{later}.mmsh"] == 2, out.getvalue()
    assert f"seed5-{later}.mmsh: vmstat.pswpout change at line" in out.getvalue()
    assert "(met in" not in out.getvalue()


@pytest.mark.parametrize("damon, noise", [(True, True), (False, False)])
def test_a_reclaim_under_a_damon_monitor_must_differ_in_three_runs(tmp_path: Path, monkeypatch,
                                                                   damon: bool, noise: bool) -> None:
    """While a kdamond runs, a difference at a `reclaim` seen in two runs but not the third is
    noise (the monitor's sampling changes reclaim's reference counts from run to run); with no
    monitor, two runs decide, as for every other step."""
    from mmshell.kernel import procfs

    monkeypatch.setattr(procfs, "kernel_threads_named", lambda prefix: ["kdamond.0"] if damon else [])
    runs = 0

    def compare(name: str, text: str) -> DiffResult:
        nonlocal runs
        runs += 1
        lines = text.splitlines()
        at = next(i for i, ln in enumerate(lines, start=1) if ln.startswith("reclaim"))
        diffs = [Difference(name, at, "reclaim", "mthp.nr_anon change", "-2", "+0")] if runs <= 2 else []
        return DiffResult(name, diffs, {"steps": len(lines)}, [], [])

    first = next(i for i in range(400) if any(ln.startswith("reclaim") for ln in generate(f"5:{i}").lines))
    out = io.StringIO()
    Fuzzer(5, seconds=None, scripts=first + 1, out=tmp_path / "f", stream=out,
           compare=lambda n, t: compare(n, t) if n == f"seed5-{first}.mmsh"
           else DiffResult(n, [], {"steps": 1}, [], [])).run()
    assert ("counted as noise" in out.getvalue()) == noise, out.getvalue()


def test_a_second_run_must_show_the_difference_at_the_same_step(tmp_path: Path) -> None:
    """A machine-wide counter another process moves shows at a different step on each run:
    the same kind of difference elsewhere in the script is not the difference seen again."""
    runs = 0

    def compare(name: str, text: str) -> DiffResult:
        nonlocal runs
        runs += 1
        lines = text.splitlines()
        i = 3 + runs % 2                        # the first run at line 4, the second at line 3
        return DiffResult(name, [Difference(name, i, lines[i - 1], "vmstat.pswpin change", "+1", "+0")],
                          {"steps": len(lines)}, [], [])

    out = io.StringIO()
    status = Fuzzer(5, seconds=None, scripts=1, out=tmp_path / "f", stream=out, compare=compare).run()
    assert status == 0 and runs == 2, out.getvalue()
    assert "not seen again on a second run: counted as noise" in out.getvalue()
    assert not (tmp_path / "f").exists()


def test_fuzz_loop_with_first_stops_at_the_first_difference(tmp_path: Path) -> None:
    first = next(i for i in range(200) if _script_with_a_pageout(i))
    out = io.StringIO()
    status = Fuzzer(5, seconds=None, scripts=first + 5, out=tmp_path / "f", stream=out,
                    compare=_fake_compare(True), first=True).run()
    assert status == 1
    assert f"seed 5: {first + 1} scripts" in out.getvalue(), out.getvalue()


def test_fuzz_loop_without_a_live_kernel_exits_2(tmp_path: Path) -> None:
    def compare(name: str, text: str) -> DiffResult:
        raise MissingRequirement("root (running as uid 1000)")
    out = io.StringIO()
    assert Fuzzer(5, scripts=2, out=tmp_path, stream=out, compare=compare).run() == 2
    assert "cannot run on the live kernel: missing root" in out.getvalue()


# -- on the live kernel ----------------------------------------------------------------------------------

@pytest.mark.skipif(LIVE_SKIP is not None, reason=LIVE_SKIP or "")
def test_fuzz_on_the_live_kernel(tmp_path: Path) -> None:
    """A bounded run (a fixed seed, six scripts, about a minute): no difference the simulator
    does not explain."""
    out = io.StringIO()
    status = Fuzzer(2026, seconds=None, scripts=6, out=tmp_path / "failures", stream=out).run()
    saved = "\n".join(p.read_text() for p in (tmp_path / "failures").glob("*.mmsh")) \
        if (tmp_path / "failures").exists() else ""
    assert status == 0, out.getvalue() + saved


def test_ctrl_c_stops_the_run_with_its_summary(tmp_path: Path, python_sigint: None) -> None:
    """Ctrl-C inside the simulator becomes that command's EINTR refusal; the fuzzer must still
    stop (not shrink on), print its summary and exit 2, as every command does on Ctrl-C."""
    calls = []

    def compare(name: str, text: str) -> DiffResult:
        calls.append(name)
        if len(calls) == 2:
            try:
                os.kill(os.getpid(), signal.SIGINT)
            except KeyboardInterrupt:
                pass            # as the simulator does: the command is refused (EINTR)
        return DiffResult(name, [], {"steps": 1}, [], [])
    out = io.StringIO()
    assert Fuzzer(5, seconds=None, scripts=10, out=tmp_path, stream=out, compare=compare).run() == 2
    assert len(calls) == 2
    assert "interrupted" in out.getvalue() and "seed 5: 1 scripts" in out.getvalue(), out.getvalue()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
