"""The .mmsh language as a Hypothesis state machine: every rule is a command, run as text.

`MmshMachine` boots a small machine (8-64 MiB of RAM, a swap device or two)
and applies random commands to it through the parser and the executor, as a
user at the prompt would: mmap, munmap, touch (read and write), check RANGE,
madvise of every advice, mprotect, mremap, fork, switch, exit, @PID, uffd
register and move, swapon and swapoff of each kind, reclaim, khugepaged, set
fail/zswap/thp/pmd_swap/ram/..., expect, expect fails, show and check.
Ranges come from the regions that exist (whole, aligned and misaligned parts,
single pages, ranges that run past the end) and now and then name nothing.

Every step is checked:
- a command that succeeds leaves a machine whose invariants and data hold
  (check_invariants, check_data: every page of every process reads what the
  shadow says) -- the @invariant;
- a command that is refused (MmError, ExpectError) leaves the whole state
  identical to before (a full state dump compared), unless the error says the
  kernel itself had a partial effect;
- a command that only looks (show, expect, check) changes nothing either;
- nothing else escapes: no Python exception, no VmBug, no data mismatch
  reported by `check RANGE`.

`STATS` counts the steps and refusals of every run, per mode, for the summary
the reliability conftest prints.
"""

from __future__ import annotations

import io
import time
from collections import Counter

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from mmsh_state import diff_dumps, state_dump
from mmshell.lang.errors import LangError
from mmshell.lang.execute import READ_ONLY, ExpectError, execute
from mmshell.lang.parser import Command, parse_line
from mmshell.lang.session import Session
from mmshell.mm.check import check_invariants
from mmshell.mm.check_data import check_data
from mmshell.mm.config import Config
from mmshell.mm.errors import MmError

K, M = 1 << 10, 1 << 20

#: Offsets into a region and lengths of ranges: aligned, misaligned to 2 MiB, past the end.
OFFSETS = (0, 0, 4 * K, 12 * K, M, 2 * M - 4 * K, 2 * M, 2 * M + 4 * K, 3 * M, 4 * M, 6 * M, 0x800)
LENGTHS = (None, None, "page", 4 * K, 8 * K, 64 * K, M, 2 * M - 4 * K, 2 * M, 2 * M + 4 * K, 3 * M, 4 * M, 8 * M)
SIZES = (4 * K, 64 * K, M, 2 * M, 2 * M, 2 * M + 4 * K, 3 * M, 4 * M, 4 * M, 6 * M, 8 * M)
ADVICES = ("hugepage", "nohugepage", "pageout", "cold", "free", "dontneed", "collapse")
PROTS = ("rw", "r", "none")
POINTS = ("thp_alloc", "swap_cluster", "memcg_charge", "zswap", "split_race", "rmap_split", "swap_cont")
DEVICES = ("s0", "s1", "s2")
KINDS = ("zram", "disk", "file")
VIEWS = ("vmas", "pt", "swap", "swapcache", "vmstat", "smaps", "pagemap", "meminfo")
EXPECT_PATHS = ("vmstat.pswpout", "vmstat.thp_swpout_pmd", "vmstat.nope", "mthp.swpout", "mthp.bogus",
                "smaps.{r}.Rss", "smaps.{r}.Swap", "smaps.{r}.Nope", "pmd.{r}", "pte.{r}+4K",
                "pagemap.{r}+8K.swapped", "pagemap.{r}.nope", "swap.s0.used", "swapmap.s0.0x200",
                "swapcache.s0.1", "swapmap.s0.0x7fffffff", "meminfo.MemFree", "pid", "bogus.path")

idx = st.integers(0, 7)
#: (region index, offset, length) in one draw: fewer choices per step, faster generation.
ranges = st.sampled_from([(i, off, ln) for i in range(4) for off in OFFSETS for ln in LENGTHS])

#: Steps, refusals and seconds per mode, over every run of the session (see conftest).
STATS: dict[str, Counter] = {}


def size_text(n: int) -> str:
    for shift, unit in ((20, "M"), (10, "K")):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return hex(n)


class MmshMachine(RuleBasedStateMachine):
    """One machine driven by random .mmsh commands; PMD_SWAP picks the mode."""

    PMD_SWAP = True
    STATS_KEY: str | None = None        # where STATS counts this machine (default: its mode)

    def __init__(self) -> None:
        super().__init__()
        self.s = Session.boot(Config(pmd_swap=self.PMD_SWAP))
        self.serial = 0
        self.changed = True
        self.stats = STATS.setdefault(self.STATS_KEY or self.mode, Counter())
        self.stats["runs"] += 1
        self.t0 = time.perf_counter()

    @property
    def mode(self) -> str:
        return "series" if self.PMD_SWAP else "mainline"

    # -- running commands -----------------------------------------------------------------
    def run(self, text: str) -> None:
        """Parse `text` and run each command as one checked step; a line that does not parse runs nothing."""
        try:
            commands = parse_line(text)
        except LangError:
            self.stats["steps"] += 1
            self.stats["refused syntax"] += 1
            self.changed = False
            return
        for cmd in commands:
            self.step(cmd)

    def step(self, cmd: Command) -> None:
        before = state_dump(self.s)
        self.stats["steps"] += 1
        t = time.perf_counter()
        try:
            out = execute(self.s, cmd)
        except (MmError, ExpectError) as e:
            self.stats["seconds"] += time.perf_counter() - t
            self.refused(cmd, e, before)
            return
        self.stats["seconds"] += time.perf_counter() - t
        assert not (cmd.name == "check" and out.failed_expect), out.failed_expect
        if _only_looks(cmd):
            after = state_dump(self.s)
            assert after == before, (f"'{cmd.text}' only looks but changed the state: "
                                     + "; ".join(diff_dumps(before, after)))
            self.changed = False
        else:
            self.changed = True

    def refused(self, cmd: Command, e: Exception, before: dict) -> None:
        errno = getattr(e, "errno", "expect")
        self.stats["refused"] += 1
        self.stats[f"refused {_inner(cmd).name} {errno}"] += 1
        assert errno != "EIO", f"'{cmd.text}' found lost data: {e}"
        assert not (cmd.name == "check" and cmd.args.get("range") is None), f"check found: {e}"
        if getattr(e, "partial", None):
            self.stats["partial"] += 1
            self.changed = True
            return
        after = state_dump(self.s)
        assert after == before, (f"refused '{cmd.text}' ({e}) changed the state: "
                                 + "; ".join(diff_dumps(before, after)))
        self.changed = False

    @invariant()
    def machine_holds(self) -> None:
        self.stats["rules"] += 1        # invariants run after every rule (and after boot)
        if not self.changed:
            return
        k = self.s.kernel
        problems = check_invariants(k) + check_data(k)
        assert not problems, "\n".join(problems[:20])

    def teardown(self) -> None:
        self.stats["wall"] += time.perf_counter() - self.t0

    # -- words ----------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(self.s.names())

    def region(self, i: int) -> str:
        names = self.names()
        return names[i % len(names)] if names else "nowhere"

    def range_text(self, i: int, off: int, length) -> str:
        name = self.region(i)
        start = name if off == 0 else f"{name}+{size_text(off)}"
        if length is None:      # from the offset to the end of the region
            rest = max(4 * K, self.s.names().get(name, (0, 4 * K))[1] - off)
            return name if off == 0 else f"{start}:{size_text(rest)}"
        if length == "page":
            return start if off else f"{name}+0"
        return f"{start}:{size_text(length)}"

    def pid(self, j: int) -> int:
        pids = sorted(self.s.kernel.mms)
        return pids[j % len(pids)] if j < 6 else self.s.kernel.next_pid + 1

    # -- set-up -----------------------------------------------------------------------------
    @initialize(ram=st.sampled_from(("8M", "16M", "16M", "32M", "64M")),
                swap=st.sampled_from(("", "8M", "16M", "32M")),
                kind=st.sampled_from(KINDS), thp=st.sampled_from(("always", "madvise", "never")),
                regions=st.sampled_from(("mmap a 4M hugepage; mmap b 3M", "mmap a 8M hugepage; mmap b 2M",
                                         "mmap a 2M; mmap b 6M hugepage", "mmap a 4M; mmap b 4M nohugepage")))
    def boot(self, ram: str, swap: str, kind: str, thp: str, regions: str) -> None:
        self.run(f"set ram {ram}; set thp {thp}")
        if swap:
            self.run(f"swapon s0 {swap} kind {kind}")
        self.run(regions)

    # -- memory ---------------------------------------------------------------------------
    @rule(size=st.sampled_from(SIZES), prot=st.sampled_from((None, None, "rw", "r", "none")),
          advice=st.sampled_from((None, "hugepage", "hugepage", "nohugepage")),
          at=st.sampled_from((None, None, None, "near", "fixed", "misaligned", "taken")), i=idx)
    def mmap(self, size: int, prot, advice, at, i: int) -> None:
        self.serial += 1
        name = f"r{self.serial}" if at != "taken" else self.region(i)
        text = f"mmap {name} {size_text(size)}"
        if prot:
            text += f" prot {prot}"
        if advice:
            text += f" {advice}"
        if at == "near":
            text += f" at {self.region(i)}+{size_text(SIZES[i])}"
        elif at == "fixed":
            text += f" at {0x6000_0000_0000 + i * 4 * M:#x}"
        elif at == "misaligned":
            text += f" at {0x6000_0000_0000 + i * 4 * M + 0x800:#x}"
        self.run(text)

    @rule(r=ranges)
    def munmap(self, r: tuple) -> None:
        self.run(f"munmap {self.range_text(*r)}")

    @rule(r=ranges)
    def touch_write(self, r: tuple) -> None:
        self.run(f"touch {self.range_text(*r)}")

    @rule(r=ranges)
    def touch_read(self, r: tuple) -> None:
        self.run(f"touch {self.range_text(*r)} read")

    @rule(r=ranges)
    def check_range(self, r: tuple) -> None:
        self.run(f"check {self.range_text(*r)}")

    @rule(r=ranges, advice=st.sampled_from(ADVICES))
    def madvise(self, r: tuple, advice: str) -> None:
        self.run(f"madvise {self.range_text(*r)} {advice}")

    @rule(r=ranges)
    def pageout(self, r: tuple) -> None:
        self.run(f"madvise {self.range_text(*r)} pageout")

    @rule(r=ranges, prot=st.sampled_from(PROTS))
    def mprotect(self, r: tuple, prot: str) -> None:
        self.run(f"mprotect {self.range_text(*r)} {prot}")

    @rule(r=ranges, size=st.sampled_from((None, None, 4 * K, 2 * M, 3 * M, 8 * M)),
          at=st.sampled_from((None, None, "fixed", "near")))
    def mremap(self, r: tuple, size, at) -> None:
        self.serial += 1
        text = f"mremap {self.range_text(*r)} m{self.serial}"
        if size:
            text += f" size {size_text(size)}"
        if at == "fixed":
            text += f" at {0x6100_0000_0000 + r[0] * 2 * M:#x}"
        elif at == "near":
            text += f" at {self.region(r[0] + 1)}"
        self.run(text)

    @rule(r=ranges)
    def uffd_register(self, r: tuple) -> None:
        self.run(f"uffd register {self.range_text(*r)}")

    @rule(r=st.sampled_from([(i, off, ln) for i in range(4) for off in OFFSETS
                             for ln in (None, 4 * K, 64 * K, 2 * M, 4 * M)]),
          dst=st.sampled_from(("new", "new", "new_huge", "other")), doff=st.sampled_from((0, 0, 4 * K, 2 * M)))
    def uffd_move(self, r: tuple, dst: str, doff: int) -> None:
        src = self.range_text(*r)
        if dst == "other":
            self.run(f"uffd move {src} {self.region(r[0] + 1)}+{size_text(doff) if doff else '0'}")
            return
        self.serial += 1
        name = f"u{self.serial}"
        self.run(f"mmap {name} 8M{' hugepage' if dst == 'new_huge' else ''}; uffd register {name}")
        self.run(f"uffd move {src} {name}+{size_text(doff) if doff else '0'}")

    @rule(size=st.sampled_from((None, None, 4 * K, M, 2 * M, 8 * M)))
    def reclaim(self, size) -> None:
        self.run("reclaim" if size is None else f"reclaim {size_text(size)}")

    @rule()
    def khugepaged(self) -> None:
        self.run("khugepaged")

    # -- processes ----------------------------------------------------------------------
    @rule()
    def fork(self) -> None:
        if len(self.s.kernel.mms) < 5:
            self.run("fork")

    @rule(j=idx)
    def switch(self, j: int) -> None:
        self.run(f"switch {self.pid(j)}")

    @rule(j=idx)
    def exit(self, j: int) -> None:
        self.run("exit" if j == 0 else f"exit {self.pid(j)}")

    @rule(j=idx, r=ranges,
          what=st.sampled_from(("touch {r}", "touch {r} read", "madvise {r} pageout", "munmap {r}",
                                "check {r}", "madvise {r} dontneed", "fork", "exit")))
    def at_pid(self, j: int, r: tuple, what: str) -> None:
        self.run(f"@{self.pid(j)} " + what.format(r=self.range_text(*r)))

    # -- swap and settings -------------------------------------------------------------------
    @rule(d=st.sampled_from(DEVICES), size=st.sampled_from(("8M", "16M", "4M", "1M", "20K", "32K", "65G")),
          kind=st.sampled_from(KINDS), prio=st.sampled_from((None, None, -1, 5, 40000)))
    def swapon(self, d: str, size: str, kind: str, prio) -> None:
        self.run(f"swapon {d} {size} kind {kind}" + (f" prio {prio}" if prio is not None else ""))

    @rule(j=idx)
    def swapoff(self, j: int) -> None:
        active = [si.name for si in self.s.kernel.active_swap()]
        self.run(f"swapoff {active[j % len(active)] if active and j < 6 else DEVICES[j % 3]}")

    @rule(point=st.sampled_from(POINTS), mode=st.sampled_from(("once", "once", "on", "off")))
    def set_fail(self, point: str, mode: str) -> None:
        self.run(f"set fail {point} {mode}")

    @rule(on=st.booleans())
    def set_zswap(self, on: bool) -> None:
        self.run(f"set zswap {'on' if on else 'off'}")

    @rule(mode=st.sampled_from(("always", "madvise", "never")))
    def set_thp(self, mode: str) -> None:
        self.run(f"set thp {mode}")

    @rule(what=st.sampled_from(("set pmd_swap on", "set pmd_swap off", "set ram 8M", "set ram 16M", "set ram 12M",
                                "set ram 64M", "set ram 1P", "set use_zero_page off", "set use_zero_page on",
                                "set max_ptes_swap 0", "set max_ptes_none 0", "set max_ptes_shared 0",
                                "set max_ptes_swap 64", "set max_ptes_none 511", "set max_ptes_shared 256",
                                "set page_cluster 0", "set page_cluster 5", "set page_cluster 3",
                                "trace on", "trace off")))
    def set_other(self, what: str) -> None:
        self.run(what)

    # -- looking ------------------------------------------------------------------------------
    @rule()
    def check_all(self) -> None:
        self.run("check")

    @rule(i=idx, path=st.sampled_from(EXPECT_PATHS), op=st.sampled_from(("==", "!=", "<", ">=")),
          value=st.sampled_from(("0", "1", "512", "2048kB", "swap", "huge")))
    def expect(self, i: int, path: str, op: str, value: str) -> None:
        self.run(f"expect {path.format(r=self.region(i))} {op} {value}")

    @rule(r=ranges,
          what=st.sampled_from(("munmap {r}", "touch {r}", "madvise {r} pageout", "mprotect {r} none",
                                "swapoff s1", "exit 1", "expect vmstat.nope == 1", "set ram 8M")))
    def expect_fails(self, r: tuple, what: str) -> None:
        self.run("expect fails " + what.format(r=self.range_text(*r)))

    @rule(view=st.sampled_from(VIEWS), r=ranges)
    def show(self, view: str, r: tuple) -> None:
        from mmshell.views.console import make_console
        from mmshell.views.render import render_view, view_json

        arg = ""
        if view in ("pt", "pagemap"):
            arg = " " + self.range_text(*r)
        elif view == "smaps":
            arg = " " + self.region(r[0])
        for cmd in parse_line(f"show {view}{arg}"):
            before = state_dump(self.s)
            try:
                out = execute(self.s, cmd)
            except MmError as e:
                self.refused(cmd, e, before)
                continue
            for name, opts in out.views:
                view_json(self.s, name, opts)
                if r[0] == 0:       # rich rendering is slow: one show in four
                    make_console(file=io.StringIO()).print(render_view(self.s, name, opts))
            assert state_dump(self.s) == before, f"'show {view}' changed the state"
            self.stats["steps"] += 1


def _inner(cmd: Command) -> Command:
    while cmd.name in ("at", "if", "expect_fails") and "command" in cmd.args:
        cmd = cmd.args["command"]
    return cmd


def _only_looks(cmd: Command) -> bool:
    """Commands that must leave the state exactly as it was (trace flips a switch, so it does not count)."""
    if cmd.name == "expect_fails":
        return False        # the inner command may succeed, and then it has its effect
    if cmd.name == "check":
        return cmd.args.get("range") is None
    return cmd.name in READ_ONLY and cmd.name != "trace"
