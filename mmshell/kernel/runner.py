"""Running .mmsh commands on the live kernel: one command -> one step, as `mmshell run` does.

`LiveSession.execute(cmd)` (kernel/session.py) runs one parsed command in the
script's current process (or the process `@PID` names) through real system
calls (kernel/backend.py) and returns its `StepOutput`; a refused command
raises `Refused` with the one-line reason in the kernel's terms.
`run_live_text` parses a script whole, runs it step by step, and tallies the
outcome with the exit statuses of `mmshell run`.

What the live kernel cannot do is refused by name (`set fail`, `set ram`,
`trace`, `set pmd_swap on` on a kernel without the series).  A live run keeps
the simulator's limits (docs/limits.md), and a command that names addresses
acts only inside the script's own regions of its process (`own_range`): the
rest of the worker's address space (its heap, its stack) is the runner's.  An
expectation whose path userspace cannot see is *not observable*: it never
passes, and counts as a failed expectation.  Where a proxy is used (see
observe.py), the step says which.

Placement: a mapping is put where the simulator would put it (its top-down
get_unmapped_area below MMAP_BASE, 2 MiB-aligned from 2 MiB up), with
MAP_FIXED_NOREPLACE, and `mremap` without `at` moves to the simulator's
choice with MREMAP_FIXED; so region addresses, and which VMAs merge, are the
same in both, and a same-size mremap really moves (plain MREMAP_MAYMOVE
would leave it where it is).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from time import perf_counter
from typing import Callable

from ..lang.parser import Command
from ..lang.registry import unwrap
from ..lang.step_loop import Observer, Outcome, Run, StepRecord, format_error, op_name
from . import backend as _backend  # noqa: F401  (registers the live handlers in session.HANDLERS)
from . import tunables as tun
from .devices import DeviceError
from .process import WorkerDied
from .session import (HANDLERS, HPAGE, PAGE, STEP_VMSTAT, Counters, ExpectError, LiveSession, Refused,
                      Unsupported, live_handler)

__all__ = ["HANDLERS", "HPAGE", "PAGE", "STEP_VMSTAT", "Counters", "ExpectError", "LiveSession", "Refused",
           "Unsupported", "live_handler", "run_live_text", "script_priorities", "asks_for_huge_zero",
           "live_priorities", "HUGE_ZERO_COUNTERS"]


# -- running text ---------------------------------------------------------------------------------------

def run_live_text(s: LiveSession, text: str, source: str, observer: Observer | None = None,
                  keep_going: bool = False, outcome: Outcome | None = None, depth: int = 0,
                  base: Path | None = None, before: Callable[[Command], None] | None = None) -> Outcome:
    """Parse all of `text` first, then run it step by step on the live kernel (lang/step_loop.py);
    `before` sees each command just before it runs."""
    run = Run(partial(_live_step, s), observer, keep_going, outcome if outcome is not None else Outcome(),
              before)
    return run.text(text, source, depth, base)


def _live_step(s: LiveSession, cmd: Command, source: str) -> StepRecord:
    """One command on the live kernel: a refusal, a failed live run (the workers, a device,
    a tunable) or an expectation userspace cannot see becomes the record's one error line."""
    rec = StepRecord(source, cmd.line, cmd)
    timing = s.timing
    start = perf_counter()
    try:
        rec.output = s.execute(cmd)
    except Refused as e:
        rec.kind, rec.error = "refused", format_error(source, cmd.line, op_name(cmd), str(e))
    except ExpectError as e:
        rec.kind, rec.error = "refused", format_error(source, cmd.line, "expect", str(e))
    except (WorkerDied, DeviceError, tun.TunableError, OSError) as e:
        rec.kind, rec.error = "bug", format_error(source, cmd.line, op_name(cmd), f"live run failed: {e}")
    rec.ms = (perf_counter() - start) * 1000
    rec.timed = timing and s.timing
    if rec.kind != "ok" or rec.output is None:
        return rec
    if rec.output.not_observable:
        rec.kind = "not-observable"
        rec.error = format_error(source, cmd.line, "expect", "not observable on the live kernel: "
                                 + rec.output.not_observable)
    elif rec.output.failed_expect:
        rec.kind = "expect-failed"
        rec.error = format_error(source, cmd.line, "expect", rec.output.failed_expect)
    return rec


# -- swap priorities -----------------------------------------------------------------------------------

def script_priorities(commands: list[Command]) -> list[int]:
    """The priority each `swapon` of the script asks for, in order (defaults as the kernel: -2, -3 ...)."""
    out: list[int] = []
    least = -1
    for c in map(partial(unwrap, into_refusal=True), commands):
        if c.name == "swapon":
            if c.args["prio"] is not None:
                out.append(c.args["prio"])
            else:
                least -= 1
                out.append(least)
    return out


def asks_for_huge_zero(commands: list[Command]) -> bool:
    """Whether the script reads vmstat.thp_zero_page_alloc (in an expect, also under @PID, `if`
    or `expect fails`): only then is the huge zero page freed before it (drop_caches=2, which
    also shrinks every slab cache of the machine), so that its first huge-zero read fault counts
    +1 as on a freshly booted machine.  Otherwise that count depends on the machine's past."""
    return any(c.name == "expect" and str(c.args["path"]).startswith(HUGE_ZERO_COUNTERS)
               for c in map(partial(unwrap, into_refusal=True), commands))


#: vmstat counters of the huge zero page, which is allocated once and kept until freed.
HUGE_ZERO_COUNTERS = ("vmstat.thp_zero_page_alloc", "vmstat.thp_zero_page_alloc_failed")


def live_priorities(script_prios: list[int], floor: int) -> dict[int, int]:
    """Script priority -> live priority: the same order, all above `floor` (every other device)."""
    distinct = sorted(set(script_prios))
    return {p: floor + 1 + i for i, p in enumerate(distinct)}

