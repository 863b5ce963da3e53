"""The series changes only the representation: the same commands leave the same data in both modes.

A lockstep machine runs every random command (the rules of mmsh_machine.py) on two
machines at once, one with `pmd_swap on` and one with `off`.  While both have
taken the same path (every command refused in one was refused in the other,
with the same errno), after every step every process must have the same VMAs
and read the same data in both: the shadows of what was written are equal,
and each machine's every page, as it holds it (present, swapped, in the swap
cache), read without faulting, is what its shadow says (check_data), so the
two read the same page for page.  Page tables, swap slots, counters and
fault-injection points may differ; data may not.

When the two modes refuse differently the runs have legitimately diverged (for
example ENOMEM: a PMD swap-in brings back 2 MiB where mainline brings 4 KiB;
EBUSY: UFFDIO_MOVE of a PTE whose swap-cache folio is still a THP in one mode)
and comparing stops for that example; EQUIV counts how often and why.
"""

from __future__ import annotations

import pytest

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
from mmshell.mm.check_data import check_data
from mmshell.mm.config import Config
from mmshell.mm.errors import MmError, VmBug

pytestmark = pytest.mark.slow      # Hypothesis: both modes on the same random scripts

EQUIV: Counter = Counter()


def process_data(k) -> dict:
    """pid -> its VMAs (start, end, read/write bits).

    The data needs no second reading: same_data has just found, with check_data, every
    page of each machine reading its shadow (present, swapped, in the swap cache, read
    without faulting; 0 where nothing was written), and the two shadows equal, so the
    machines read the same data page for page (tests/mm/test_check_data.py holds
    check_data's whole-PMD reading to reading page by page).  The LockstepMachine class
    is left as it was: Hypothesis seeds a derandomized state machine from its source.
    """
    return {pid: [(v.start, v.end, int(v.flags) & 3) for v in mm.vmas] for pid, mm in sorted(k.mms.items())}


def shadow_data(k) -> dict:
    """Every process's pages as last written (Shadow.as_written): a page MADV_FREE let one mode
    drop (a swap entry there) and the other keep (a present lazyfree page there) counts as its
    written value in both; every other page, dropped or not, must be the same."""
    return {pid: {i: c.tobytes() for i, c in sorted(k.shadow.as_written(pid).items()) if any(c)}
            for pid in sorted(k.shadow.procs.keys())}


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
        run_state_machine_as_test(LockstepMachine, settings=stateful_settings(scale=0.2))
    assert EQUIV["compared"] > 0
    print(dict(EQUIV.most_common(20)))


def _lockstep(script: str) -> LockstepMachine:
    """A lockstep machine that has run `script` and compared; not counted in the suite's STATS."""
    saved = machine.STATS.get("lockstep")
    m = LockstepMachine()
    if saved is None:
        machine.STATS.pop("lockstep", None)
    else:
        saved["runs"] -= 1
    m.stats = Counter()
    for line in script.splitlines():
        assert m.run(line), line
    m.same_data()
    return m


def _swapped_page(k):
    """(swap_info, offset) of the first PTE swap entry's slot, or of a PMD swap entry's first slot."""
    slot = machine.swap_slot(k, 1)
    assert slot is not None
    return slot


def _first_frame(k) -> tuple[int, int]:
    """(pmd index, pfn) of pid 1's first page (its lowest PMD maps it: a THP or a table)."""
    pmdi = min(k.mms[1].pmds)
    pmd = k.mms[1].pmds[pmdi]
    return pmdi, pmd.pfn if pmd.table is None else pmd.table.ptes[0] >> 12


@pytest.mark.parametrize("what", ["series page", "mainline page", "mainline slot", "series slot", "both shadows",
                                  "one machine written to"])
def test_same_data_sees_a_page_that_reads_otherwise(what: str) -> None:
    """One page corrupted in one machine (its frame or its swap slot), or the shadows made to
    differ: the lockstep comparison fails, by check_data or by the shadows."""
    m = _lockstep("swapon s 16M\nmmap a 4M hugepage\ntouch a\nmadvise a+2M:2M pageout")
    ks, km = m.s.kernel, m.m.kernel
    k = ks if what.startswith("series") else km
    if what in ("series page", "mainline page"):
        k.mem.data[_first_frame(k)[1] + 5] ^= 1
    elif what in ("series slot", "mainline slot"):
        si, off = _swapped_page(k)
        si.data[off] ^= 1
    elif what == "both shadows":        # both machines read their own shadow, which differ
        for kk, bit in ((ks, 1), (km, 2)):
            pmdi, pfn = _first_frame(kk)
            kk.mem.data[pfn] ^= bit
            kk.shadow.procs[1][pmdi][0] ^= bit
    else:                               # one machine's page and shadow: only the shadows tell
        pmdi, pfn = _first_frame(km)
        km.mem.data[pfn] ^= 1
        km.shadow.procs[1][pmdi][0] ^= 1
    m.changed = True
    with pytest.raises(AssertionError, match="reads|last written|shadows differ") as e:
        m.same_data()
    assert ("shadows differ" in str(e.value)) == (what in ("both shadows", "one machine written to"))


#: MADV_FREE over pages one mode holds swapped (dropped at once) and the other present (lazyfree,
#: kept until reclaim): the one-page read of a PMD swap entry (2 MiB back with the series, one
#: page in mainline), and a swapoff whose PMD swap-in allocation reclaimed with the series only
#: (the lockstep suite's example, shrunk).
MADV_FREE_DROPS = {
    "read of a pmd swap entry": "swapon s0 16M kind zram\nmmap a 2M hugepage\ntouch a\nmadvise a pageout\n"
                                "touch a+0:4K read\nmadvise a free",
    "swapoff reclaims": "set ram 10M\nmmap a 4M hugepage\nmmap b 3M\ntouch a+0:2M\n"
                        "swapon sw1 16M kind disk prio -1\nfork\ntouch a+0:2M\ntouch a+2M:2M\n"
                        "madvise b+0:2M hugepage\nmremap b+0:64K m5 size 2M at 0x618003000000\n"
                        "touch m5+0:2M\nswapon sw6 16M kind zram prio -1\nmadvise m5+0:2M pageout\n"
                        "mmap f7 4M nohugepage\ntouch f7\nmunmap f7+2M:1M\nswapoff sw6\n"
                        "madvise a+3152K:64K free",
}


@pytest.mark.parametrize("name", sorted(MADV_FREE_DROPS))
def test_madv_free_may_drop_in_one_mode(name: str) -> None:
    """The modes hold the pages differently, so MADV_FREE drops data in one and keeps it in the
    other: the shadows differ, the pages as written (what the comparison sees) do not."""
    m = _lockstep(MADV_FREE_DROPS[name])
    ks, km = m.s.kernel, m.m.kernel
    raw = [{pid: {i: c.tobytes() for i, c in chunks.items()} for pid, chunks in k.shadow.procs.items()}
           for k in (ks, km)]
    assert raw[0] != raw[1]
    assert shadow_data(ks) == shadow_data(km)


@pytest.mark.parametrize("what", ["dropped value", "page dropped without MADV_FREE"])
def test_same_data_sees_a_drop_madv_free_did_not_allow(what: str) -> None:
    """Only what MADV_FREE dropped counts as written: a dropped value that is not the written
    one, or a page zeroed by anything else in one machine, still fails the comparison."""
    m = _lockstep(MADV_FREE_DROPS["read of a pmd swap entry"])
    km = m.m.kernel
    if what == "dropped value":
        chunks = km.shadow.procs[1]
        pmdi = next(iter(chunks.dropped))
        j = next(j for j, v in enumerate(chunks.dropped[pmdi]) if v)
        chunks.dropped[pmdi][j] ^= 1
    else:                               # the series' lazyfree THP: one page zeroed, frame and shadow
        ks = m.s.kernel
        pmdi, pfn = _first_frame(ks)
        ks.mem.data[pfn + 3] = 0
        ks.shadow.procs[1][pmdi][3] = 0
    m.changed = True
    with pytest.raises(AssertionError, match="shadows differ"):
        m.same_data()
