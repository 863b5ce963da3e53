"""`mmshell kernel diff`: each script on the live kernel and in the simulator (mainline mode),
and every observable that differs, side by side.

What is compared, step by step (the two runs execute the same commands in the
same order; the i-th step of one is paired with the i-th of the other):

* whether the step was refused (and, when only one side refused, why);
* for every `expect` line that ran (also under `@PID`, `if` and inside
  `expect fails`): the *value* each side observed at that point, whatever the
  operator; for counters that every process on a live machine moves
  (pgfault, pgfree, nr_free_pages, nr_anon_pages, ... : `MACHINE_WIDE`) only
  whether the expectation held; values that describe the machine rather than
  the script (MemTotal, MemFree, PFNs) are not compared;
* for every step that changes something: the change it made to the THP and
  swap counters of /proc/vmstat the simulator models (`STEP_VMSTAT`), to
  every hugepages-2048kB stat, and to each swap device's Used.
* after every step that can change VMAs (the registry's `maps` trait: mmap, munmap,
  mprotect, mremap, madvise hugepage|nohugepage, uffd register, fork, exit; through
  `@PID`, `if` and `expect fails`): the VMA layout of each process
  (kernel/vma_layout.py), each VMA that meets the script's regions as the regions it
  covers, its perms and flag words (`vmas`); not the part outside the regions, not
  vm_pgoff;
* while THP is `always` (before or after a step), no THP counter is compared
  (`thp_wide`): every process on the machine then faults THPs and moves them;
* `thp_zero_page_alloc` only in a script that reads it: only then is the huge
  zero page freed before the script, so that the kernel counts its allocation;
* when a step read pages from a disk or a swap file (asynchronous devices),
  pgmajfault, swap_ra and swap_ra_hit of that step are not compared
  (`IO_TIMING`): a fault that finds a readahead page still under I/O waits and
  is retried, so those counts depend on timing (seen: 64 or 67 major faults for
  the same 512-page read).  pswpin and everything else still are.

An expectation the live kernel cannot observe is listed as not observable,
neither a difference nor an agreement.  A line (or, before the first
command, the whole file) marked with a `# known difference: WHY` comment has
its differences shown as known; they do not make the exit status 1.  Exit
status: 0 no difference, 1 a difference, 2 the live kernel could not be used
or a script could not be parsed.
"""

from __future__ import annotations

import re

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..lang.expect_values import PathError
from ..lang.sim_observer import evaluate as sim_evaluate
from ..lang.errors import LangError
from ..lang.execute import setting_value
from ..lang.grammar import Nests
from ..lang.parser import Command, parse_script
from ..lang.registry import changes_vmas
from ..lang.runner import StepRecord, run_text
from ..lang.session import Session
from ..mm.config import Config
from ..mm.errors import MmError
from ..mm.task_mmu import vmstat_snapshot
from ..mm.vmstat import MTHP_STATS
from ..views.sim_source import SimViews
from . import procfs
from .machine import MissingRequirement, SetupError
from .observe import MACHINE_SPECIFIC
from .report import cannot_run, run_script_live
from .live_views import LiveViews
from .runner import HUGE_ZERO_COUNTERS, STEP_VMSTAT, asks_for_huge_zero
from .session import LiveSession
from .vma_layout import Layout, VmaSource, layout_difference, vma_layout

def thp_wide(key: str) -> bool:
    """A THP counter: while THP is `always`, every process on the machine moves it."""
    name = key.split(".", 1)[1] if "." in key else key
    return (key.startswith("mthp.") or name.startswith("thp_") or name == "nr_anon_transparent_hugepages"
            or key == "meminfo.AnonHugePages")


#: Counters that depend on I/O timing when a step reads from an asynchronous device.
IO_TIMING = ("vmstat.pgmajfault", "vmstat.swap_ra", "vmstat.swap_ra_hit")


#: /proc/vmstat counters every process moves: compared by the expectation's outcome only.
MACHINE_WIDE = ("pgfault", "pgfree", "pgactivate", "pgdeactivate", "pgreuse", "pgsteal_direct", "pgrotated",
                "nr_free_pages", "nr_zone_inactive_anon", "nr_zone_active_anon", "nr_inactive_anon",
                "nr_active_anon", "nr_anon_pages", "nr_page_table_pages")
SKIPPED = object()


@dataclass
class Side:
    """What one run saw at one step."""

    kind: str
    error: str | None
    value: Any = None                  # an expect's value, SKIPPED, or ("error", msg)
    held: bool | None = None           # whether the expectation held
    counters: dict[str, int] = field(default_factory=dict)
    changed: bool = False
    text: str = ""
    line: int = 0
    source: str = ""
    path: str | None = None
    refusal: str | None = None         # the errno (or signal) of a refusal, `expect fails` included
    thp_always: bool = False           # THP `always` before or after the step
    async_swapin: bool = False         # the kernel read from a disk or swap file in this step
    vmas: Layout | None = None         # the VMA layout after a step that can change it


@dataclass
class Difference:
    source: str
    line: int
    command: str
    what: str
    kernel: Any
    simulator: Any
    known: str | None = None


# -- the simulator side ------------------------------------------------------------------------------

def _sim_counters(s: Session) -> dict[str, int]:
    k = s.kernel
    snap = vmstat_snapshot(k)
    out = {f"vmstat.{n}": snap[n] for n in STEP_VMSTAT if n in snap}
    out.update({f"mthp.{n}": k.vmstat.mthp[n] for n in MTHP_STATS})
    out.update({f"swap.{si.name}.used": si.inuse_pages for si in k.active_swap()})
    return out


def _expect_of(cmd: Command) -> tuple[list[tuple[str, Any]], Command | None]:
    """The wrappers (at / if) around an expect, and the expect itself (None if not an expect)."""
    wrappers: list[tuple[str, Any]] = []
    while cmd.spec.nests is Nests.RUNS:
        if cmd.name == "at":
            wrappers.append(("at", cmd.args["pid"]))
        else:
            wrappers.append(("if", cmd.args))
        cmd = cmd.args["command"]
    return wrappers, cmd if cmd.name == "expect" else None


def _sim_value(s: Session, cmd: Command) -> tuple[Any, str | None]:
    wrappers, exp = _expect_of(cmd)
    if exp is None:
        return None, None
    pid = s.pid
    for kind, arg in wrappers:
        if kind == "at":
            pid = arg
        elif kind == "if" and setting_value(s, arg["setting"], arg.get("point")) != arg["value"]:
            return SKIPPED, exp.args["path"]
    saved = s.pid
    try:
        if pid not in s.kernel.mms:
            return ("error", f"no process {pid}"), exp.args["path"]
        s.pid = pid
        return sim_evaluate(s, exp.args["path"]), exp.args["path"]
    except PathError as e:
        return ("error", str(e)), exp.args["path"]
    except MmError as e:
        return ("error", str(e)), exp.args["path"]
    finally:
        s.pid = saved


def _layout(src: VmaSource, rec: StepRecord) -> Layout | None:
    """The VMA layout after a step that ran and can change VMAs (None after any other)."""
    if rec.command is None or rec.kind in ("refused", "bug", "syntax", "not-observable") \
            or not changes_vmas(rec.command):
        return None
    return vma_layout(src)


def sim_session() -> Session:
    """The simulator a comparison runs a script in: mainline mode, invariants checked."""
    return Session.boot(Config(pmd_swap=False), debug_vm=True)


def run_sim(name: str, text: str) -> list[Side]:
    session = sim_session()
    views = SimViews(session)
    sides: list[Side] = []
    # The state after one step is the state before the next (a sourced file's steps too).
    pending: dict[str, Any] = {"counters": _sim_counters(session), "always": False}

    def observer(rec: StepRecord) -> None:
        side = Side(rec.kind, rec.error, text=rec.text if rec.command else "", line=rec.line,
                    source=rec.source, refusal=refusal_errno(rec))
        if rec.command is not None:
            side.value, side.path = _sim_value(session, rec.command)
            side.held = rec.kind == "ok"
            after = _sim_counters(session)
            prev = pending.get("counters", {})
            side.counters = {k: v - prev.get(k, 0) for k, v in after.items() if v != prev.get(k, 0)}
            side.changed = bool(rec.output is not None and rec.output.changed)
            always = session.kernel.config.thp.value == "always"
            side.thp_always = pending["always"] or always
            side.vmas = _layout(views, rec)
            pending["counters"], pending["always"] = after, always
        sides.append(side)

    run_text(session, text, name, observer, keep_going=False, base=Path(name).parent)
    return sides


# -- the live side --------------------------------------------------------------------------------------

def run_kernel(name: str, text: str) -> list[Side]:
    sides: list[Side] = []
    live: list[LiveViews] = []

    def start(session: LiveSession) -> None:
        live.append(LiveViews(session))

    def observer(rec: StepRecord) -> None:
        side = Side(rec.kind, rec.error, text=rec.text if rec.command else "", line=rec.line,
                    source=rec.source, refusal=refusal_errno(rec))
        if rec.command is not None:
            _, exp = _expect_of(rec.command)
            if exp is not None:
                side.path = exp.args["path"]
                out = rec.output
                if rec.kind == "not-observable":
                    side.value = ("not observable", rec.error)
                elif rec.kind == "refused":
                    side.value = ("error", rec.error)
                elif out is not None and out.value is not None:
                    side.value = out.value
                else:
                    side.value = SKIPPED
            side.held = rec.kind == "ok"
            ch = rec.output.changes if rec.output is not None else None
            if ch:
                side.changed = True
                side.async_swapin = bool(ch.get("async_swapin"))
                side.counters = {f"vmstat.{k}": v for k, v in ch["vmstat"].items()}
                side.counters.update({f"mthp.{k}": v for k, v in ch["mthp"].items()})
                side.counters.update({f"swap.{sw['name']}.used": sw["delta"] for sw in ch["swap"]
                                      if sw["before"] is not None})
            side.changed = side.changed or bool(rec.output is not None and rec.output.changed)
            side.vmas = _layout(live[0], rec)
        sides.append(side)

    run_script_live(name, text, observer, start=start)
    return sides


# -- comparing ------------------------------------------------------------------------------------------

_ERRNO = re.compile(r"(?:^|: )(E[A-Z0-9]+|SIG[A-Z]+): ")
_EXPECTED = "refused as expected: "


def refusal_errno(rec: StepRecord) -> str | None:
    """The errno (or signal) a step was refused with, or an `expect fails` saw: the first
    `EXXX: ` of the refusal's line, after its `file:line: command: ` prefix."""
    text = rec.error if rec.kind == "refused" else None
    if text is None and rec.output is not None and rec.output.lines \
            and rec.output.lines[0].startswith(_EXPECTED):
        text = rec.output.lines[0][len(_EXPECTED):]
    if not text:
        return None
    m = _ERRNO.search(text)
    return m.group(1) if m else None


def known_differences(text: str) -> tuple[dict[int, str], str | None]:
    """Line -> reason of each `# known difference:` comment; and a whole-file reason.

    The comment may end a command's line (it marks that line), stand on its own lines after
    the first command (it marks the next command; the comment lines that follow it are part
    of the reason), or stand before the first command (it marks the whole file).
    """
    marker = "# known difference:"
    lines: dict[int, str] = {}
    whole = None
    seen_command = False
    pending: str | None = None
    collecting = False
    for i, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith(marker):
            pending, collecting = stripped[len(marker):].strip(), True
            continue
        if stripped.startswith("#"):
            if collecting and pending is not None:
                pending += " " + stripped.lstrip("#").strip()
            continue
        collecting = False
        if not stripped:
            continue
        if marker in raw:
            lines[i] = raw.split(marker, 1)[1].strip()
        if pending is not None:
            if seen_command:
                lines.setdefault(i, pending)
            else:
                whole = pending
            pending = None
        seen_command = True
    return lines, whole


def _value_text(v: Any) -> str:
    if v is SKIPPED:
        return "(did not run)"
    if isinstance(v, tuple):
        return f"{v[0]}: {v[1]}"
    return str(v)


def compare_runs(name: str, kern: list[Side], sim: list[Side], skip: tuple[str, ...] = ()
                 ) -> tuple[list[Difference], dict[str, int]]:
    """Every difference between the runs; `skip`: counters whose changes are not compared."""
    diffs: list[Difference] = []
    stats = {"steps": 0, "expects": 0, "counters": 0, "vmas": 0, "not_observable": 0, "io_timing": 0}

    def add(side: Side, what: str, k: Any, s: Any) -> None:
        diffs.append(Difference(side.source, side.line, side.text, what, k, s))

    for k, s in zip(kern, sim):
        stats["steps"] += 1
        if k.text != s.text or k.line != s.line:
            add(k, "the runs went different ways", f"line {k.line}: {k.text}", f"line {s.line}: {s.text}")
            break
        k_ref, s_ref = k.kind in ("refused", "bug", "syntax"), s.kind in ("refused", "bug", "syntax")
        if k.path is not None or s.path is not None:
            if isinstance(k.value, tuple) and k.value[0] == "not observable":
                stats["not_observable"] += 1
                continue
            path = k.path or s.path or ""
            if k.value is SKIPPED and s.value is SKIPPED:
                continue
            stats["expects"] += 1
            if path in MACHINE_SPECIFIC or path.endswith(".pfn") or (s.thp_always and thp_wide(path)):
                continue
            if path.startswith("vmstat.") and path.split(".", 1)[1] in MACHINE_WIDE:
                if k.held != s.held:
                    add(k, f"{path} (machine-wide counter: outcome)", "held" if k.held else "failed",
                        "held" if s.held else "failed")
                continue
            kv, sv = k.value, s.value
            if isinstance(kv, tuple) and isinstance(sv, tuple) and kv[0] == sv[0] == "error":
                continue
            if kv != sv:
                add(k, path, _value_text(kv), _value_text(sv))
            continue
        if k_ref != s_ref:
            add(k, "refused", k.error or "ok", s.error or "ok")
            continue
        if k.refusal and s.refusal and k.refusal != s.refusal:
            add(k, "errno", k.refusal, s.refusal)
            continue
        if k_ref:
            continue
        if k.kind != s.kind:                 # e.g. `expect fails CMD` held on one side only
            add(k, "outcome", k.error or k.kind, s.error or s.kind)
            continue
        if k.changed or s.changed:
            stats["counters"] += 1
            for key in sorted(set(k.counters) | set(s.counters)):
                if (s.thp_always and thp_wide(key)) or key in skip:
                    continue
                if k.async_swapin and key in IO_TIMING:
                    stats["io_timing"] += 1
                    continue
                kd, sd = k.counters.get(key, 0), s.counters.get(key, 0)
                if kd != sd:
                    add(k, f"{key} change", f"{kd:+d}", f"{sd:+d}")
        if k.vmas is not None and s.vmas is not None:
            stats["vmas"] += 1
            differ = layout_difference(k.vmas, s.vmas)
            if differ is not None:
                add(k, "vmas", *differ)
    if len(kern) != len(sim):
        longer, who = (kern, "the simulator") if len(kern) > len(sim) else (sim, "the kernel")
        last = longer[min(len(kern), len(sim))]
        add(last, "steps", f"{len(kern)} steps", f"{len(sim)} steps")
        diffs[-1].what = f"{who} stopped before line {last.line}"
    return diffs, stats


# -- the command -------------------------------------------------------------------------------------------

@dataclass
class DiffResult:
    """One script's comparison."""

    name: str
    diffs: list[Difference]
    stats: dict[str, int]
    kernel_failed: list[str]           # the kernel side's failed (or not observable) expectations
    sim_failed: list[str]              # the simulator side's failed expectations (but those on a line
                                       # of a known difference) and refusals

    @property
    def unknown(self) -> list[Difference]:
        return [d for d in self.diffs if d.known is None]


def diff_script(name: str, text: str) -> DiffResult:
    """Run one script both ways and compare (raises LangError, MissingRequirement, SetupError)."""
    commands = parse_script(text)
    sim = run_sim(name, text)
    kern = run_kernel(name, text)
    # the huge zero page is freed before a script only when it reads its counter
    diffs, stats = compare_runs(name, kern, sim, () if asks_for_huge_zero(commands) else HUGE_ZERO_COUNTERS)
    known_lines, whole = known_differences(text)
    for d in diffs:
        if d.source == name:
            d.known = whole or known_lines.get(d.line)
        else:
            d.known = None
    return DiffResult(name, diffs, stats, [k.error for k in kern if k.error],
                      [s.error for s in sim if s.error and not (s.kind == "expect-failed" and s.source == name
                                                                and (whole or s.line in known_lines))])


def run_diff(sources: list[tuple[str, str]], quiet: bool = False, stream: TextIO | None = None) -> int:
    out = stream if stream is not None else sys.stdout
    status = 0
    for name, text in sources:
        try:
            res = diff_script(name, text)
        except LangError as e:
            print(f"{name}:{e.line}: syntax: {e}", file=out)
            return 2
        except (MissingRequirement, SetupError) as e:
            print(cannot_run("diff", name, e), file=sys.stderr)
            return 2
        diffs, stats, unknown = res.diffs, res.stats, res.unknown
        width = max((len(d.what) for d in diffs), default=0)
        for d in diffs:
            if quiet and d.known:
                continue
            print(f"{d.source}:{d.line}: {d.command}", file=out)
            print(f"    {d.what:<{width}}  kernel: {d.kernel:<12}  simulator: {d.simulator}"
                  + (f"  [known difference: {d.known}]" if d.known else ""), file=out)
        verdict = "DIFFERS" if unknown else "same"
        print(f"{name}: {stats['steps']} steps, {stats['expects']} expect values and "
              f"{stats['counters']} steps' counter changes and {stats['vmas']} VMA layouts compared, "
              f"{len(unknown)} difference(s)"
              + (f", {len(diffs) - len(unknown)} known" if len(diffs) != len(unknown) else "")
              + (f", {stats['not_observable']} not observable" if stats["not_observable"] else "")
              + (f", {stats['io_timing']} readahead counts left out (I/O timing)"
                 if stats["io_timing"] else "")
              + f": {verdict}", file=out)
        if not quiet and (res.kernel_failed or res.sim_failed):
            print(f"    (errors and failed expectations: {len(res.kernel_failed)} on the kernel, "
                  f"{len(res.sim_failed)} in the simulator)", file=out)
        if unknown:
            status = 1
            note = damon_note(unknown)
            if note:
                print(f"    note: {note}", file=out)
    return status


def damon_note(unknown: list[Difference]) -> str | None:
    """What to say when a `reclaim` differs on a machine where a DAMON monitor runs.

    A kdamond samples pages and clears their accessed bits (damon_folio_mkold(): each PTE's
    young bit, keeping one "young" mark on the folio), so reclaim's folio_referenced() can
    count one reference where the script made two: the kernel keeps a folio on the inactive
    list that the simulation activates, or reclaims it.  Measured here: corpus 127 differs in
    about one run in ten with a kdamond running (the trace shows nr_ref_keep=512 where the
    passing runs have nr_activate_anon=512 at the same priority); which pages it samples no
    script decides."""
    if not any(d.command.split()[:1] == ["reclaim"] for d in unknown):
        return None
    monitors = procfs.kernel_threads_named("kdamond")
    if not monitors:
        return None
    return (f"a DAMON monitor runs on this machine ({', '.join(monitors)}): it clears the accessed "
            "bits of the pages it samples, so a reclaim that counts references can differ from "
            "run to run; run the script again to see whether it does")
