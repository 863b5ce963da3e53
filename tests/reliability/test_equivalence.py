"""The series changes only the representation: the same commands leave the same data in both modes.

A lockstep machine runs every random command (the rules of mmsh_machine.py) on two
machines at once, one with `pmd_swap on` and one with `off`.  While both have
taken the same path (every command refused in one was refused in the other,
with the same errno), after every step every process must have the same VMAs
and read the same data in both: the shadow of what was written, and every
page as the machine holds it (present, swapped, in the swap cache), read
without faulting.  Page tables, swap slots, counters and fault-injection
points may differ; data may not.

When the two modes refuse differently the runs have legitimately diverged (for
example ENOMEM: a PMD swap-in brings back 2 MiB where mainline brings 4 KiB;
EBUSY: UFFDIO_MOVE of a PTE whose swap-cache folio is still a THP in one mode)
and comparing stops for that example; EQUIV counts how often and why.
"""

from __future__ import annotations

import pytest

from array import array
from collections import Counter

from hypothesis.stateful import invariant, run_state_machine_as_test

import mmsh_coverage
import mmsh_machine as machine
from mmsh_profiles import stateful_settings
from mmsh_state import diff_dumps, state_dump
from mmshell.lang.errors import LangError
from mmshell.lang.execute import ExpectError, execute
from mmshell.lang.parser import parse_line
from mmshell.lang.session import Session
from mmshell.mm.check import check_invariants
from mmshell.mm.check_data import _read_entry, check_data
from mmshell.mm.config import Config
from mmshell.mm.constants import HPAGE_PMD_NR
from mmshell.mm.errors import MmError, VmBug
from mmshell.mm.pgtable import PmdKind

pytestmark = pytest.mark.slow      # Hypothesis: both modes on the same random scripts

EQUIV: Counter = Counter()


def pmd_values(k, pmd) -> array:
    """What the 512 pages under one PMD read, without faulting (0 where nothing is mapped).

    Whole-PMD entries are read as slices; PTE tables entry by entry (check._read_entry
    is the reference for every case).
    """
    mem = k.mem
    if pmd.kind is PmdKind.HUGE:
        return mem.data[pmd.pfn:pmd.pfn + HPAGE_PMD_NR]
    if pmd.kind is PmdKind.TABLE:
        data = mem.data
        return array("Q", (data[p >> 12] if p & 0x103 == 1 else
                           (_read_entry(k, pmd, i) if p & 3 == 2 else 0)
                           for i, p in enumerate(pmd.table.ptes)))
    return array("Q", (v or 0 for v in (_read_entry(k, pmd, i) for i in range(HPAGE_PMD_NR))))


def process_data(k) -> dict:
    """pid -> (VMAs, {pmd index: the 512 values its pages read}), nothing faulted, zero chunks left out."""
    out = {}
    for pid, mm in sorted(k.mms.items()):
        chunks = {}
        for pmdi, pmd in sorted(mm.pmds.items()):
            values = pmd_values(k, pmd)
            if any(values):
                chunks[pmdi] = values.tobytes()
        vmas = [(v.start, v.end, int(v.flags) & 3) for v in mm.vmas]
        out[pid] = (vmas, chunks)
    return out


def shadow_data(k) -> dict:
    return {pid: {i: c.tobytes() for i, c in sorted(chunks.items()) if any(c)}
            for pid, chunks in sorted(k.shadow.procs.items())}


class LockstepMachine(machine.MmshMachine):
    """self.s runs with the series, self.m in mainline; commands go to both."""

    PMD_SWAP = True
    STATS_KEY = "lockstep"

    def __init__(self) -> None:
        super().__init__()
        self.m = Session.boot(Config(pmd_swap=False))
        self.diverged = False

    def run(self, text: str, deliberate: bool = False) -> bool:
        if self.diverged:
            return super().run(text, deliberate)    # the series machine goes on alone, still fully checked
        if self.dead:
            return False
        self.script.append(text)
        try:
            commands = parse_line(text)
        except LangError:
            self.count(deliberate, "syntax")
            return False
        ok = True
        for cmd in commands:
            if self.diverged:
                ok = self.step(cmd, deliberate) and ok
                continue
            try:
                a = _outcome(self.s, cmd)
                b = _outcome(self.m, cmd)
            except (AssertionError, VmBug) as e:
                self.count(deliberate)
                self.fail(f"'{cmd.text}': {e}")
                return False
            self.count(deliberate, None if a == "ok" else f"{machine._inner(cmd).name} {a}")
            ok = ok and a == "ok"
            if a != b and machine._only_looks(cmd):
                # e.g. `expect vmstat.thp_swpout_pmd`: a counter only the series has
                EQUIV[f"differs, changes nothing: {cmd.name} {a} / {b}"] += 1
            elif a != b:
                self.diverged = True
                EQUIV[f"diverged: {cmd.name} {a} / {b}"] += 1
                return False
            self.changed = True
        return ok

    @invariant()
    def same_data(self) -> None:
        self.stats["rules"] += 1
        if not self.changed or self.dead:
            return
        for name, sess in (("series", self.s), ("mainline", self.m))[:1 if self.diverged else 2]:
            problems = check_invariants(sess.kernel) + check_data(sess.kernel)
            if problems:
                return self.fail(f"{name}: " + "\n".join(problems[:10]))
        if self.diverged:
            return
        ks, km = self.s.kernel, self.m.kernel
        EQUIV["compared"] += 1
        self.ensure(self.s.pid == self.m.pid and self.s.regions == self.m.regions, "the sessions differ")
        a, b = shadow_data(ks), shadow_data(km)
        self.ensure(a == b, lambda: "the shadows differ: " + "; ".join(diff_dumps(a, b)))
        a, b = process_data(ks), process_data(km)
        self.ensure(a == b, lambda: "the machines read different data: " + "; ".join(diff_dumps(a, b)))

    def machine_holds(self) -> None:
        """Not an invariant here: same_data checks both machines."""


def _outcome(session: Session, cmd) -> str:
    """'ok', or the errno of the refusal; a refusal must leave that machine unchanged."""
    before = state_dump(session)
    try:
        execute(session, cmd)
    except (MmError, ExpectError) as e:
        if getattr(e, "partial", None):
            return f"partial {e.errno}"
        after = state_dump(session)
        assert after == before, f"refused '{cmd.text}' changed the state: " + "; ".join(diff_dumps(before, after))
        return getattr(e, "errno", "expect")
    return "ok"


def test_modes_leave_the_same_data() -> None:
    EQUIV.clear()
    with mmsh_coverage.measure("lockstep"):
        run_state_machine_as_test(LockstepMachine, settings=stateful_settings(scale=0.15))
    assert EQUIV["compared"] > 0
    print(dict(EQUIV.most_common(20)))
