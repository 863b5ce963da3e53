"""The .mmsh language as a Hypothesis state machine: every rule is a command, run as text.

`MmshMachine` boots a small machine (8-64 MiB of RAM, a swap device or two of
any kind) and applies random commands to it through the parser and the
executor, as a user at the prompt would.  The commands name things that exist:
ranges are drawn inside what a VMA of the named region maps now (whole parts,
2 MiB-aligned and misaligned pieces, single pages, halves of a THP), pids are
live processes, devices are active ones, new names are fresh.  Deliberately
wrong commands (unknown names, misaligned or out-of-range addresses, dead pids,
bad sizes, unknown paths, typos) come from one rule of their own, a small share
counted apart (`deliberate`).

Besides the single commands, scenario rules make the states that single
commands rarely combine: a child that unmaps or moves part of its copy and
reads a page (readahead caches small folios of a PMD swap entry's slots), a
THP left mapped across a VMA edge (half mremapped, munmapped or mprotected),
UFFDIO_MOVE of a populated or swapped (disk: still cached) range to an
unaligned destination or in part, memory fragmented before a swapoff on a
small machine, 62 processes sharing a swap entry before a fork whose count
continuation fails, and a drain (whole reclaim until the LRU must be empty).

Every step is checked:
- a command that succeeds leaves a machine whose invariants and data hold
  (check_invariants, check_data: every page of every process reads what the
  shadow says) -- the @invariant;
- the oracles of mmsh_oracles.py: a fork splits nothing unless F4, no PMD-size
  swap-in after zswap was enabled, a drain empties the LRU;
- a command that is refused (MmError, ExpectError) leaves the whole state
  identical to before (a full state dump compared), unless the error says the
  kernel itself had a partial effect;
- a command that only looks (show, expect, check) changes nothing either;
- nothing else escapes: no Python exception, no VmBug, no data mismatch
  reported by `check RANGE`.

A failure raises (Hypothesis shrinks it), except in reach mode (mmsh_reach.py).
`STATS` counts the steps and refusals of every run, per mode, for the summary
the reliability conftest prints.
"""

from __future__ import annotations

import io
import time
from collections import Counter

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import mmsh_coverage
import mmsh_oracles as oracles
import mmsh_reach as reach
from mmsh_state import diff_dumps, state_dump
from mmshell.lang.errors import LangError
from mmshell.lang.execute import ExpectError, execute
from mmshell.lang.registry import unwrap
from mmshell.lang.parser import Command, parse_line
from mmshell.lang.session import Session
from mmshell.mm.check import check_invariants
from mmshell.mm.check_data import check_data
from mmshell.mm.config import Config
from mmshell.mm.errors import MmError, VmBug
from mmshell.mm.constants import SWAP_MAP_MAX
from mmshell.mm.pgtable import PmdKind
from mmshell.mm.vma import VM
from mmshell.views.digest_cache import DigestCache

K, M = 1 << 10, 1 << 20

#: Offsets into a mapped piece and lengths of ranges (clamped to the piece): aligned, misaligned to 2 MiB.
OFFSETS = (0, 0, 0, 4 * K, 12 * K, 256 * K, M, 2 * M - 4 * K, 2 * M, 2 * M + 4 * K, 3 * M, 4 * M)
LENGTHS = (None, "page", "page", 4 * K, 8 * K, 64 * K, 64 * K, M, 2 * M - 4 * K, 2 * M, 2 * M, 2 * M + 4 * K)
SIZES = (4 * K, 64 * K, M, 2 * M, 2 * M, 2 * M + 4 * K, 3 * M, 4 * M, 4 * M, 6 * M, 8 * M)
ADVICES = ("hugepage", "nohugepage", "pageout", "pageout", "cold", "free", "dontneed", "collapse")
PROTS = ("rw", "rw", "r", "none")
POINTS = ("thp_alloc", "swap_cluster", "memcg_charge", "zswap", "split_race", "rmap_split", "swap_cont")
KINDS = ("zram", "disk", "disk", "file")
VIEWS = ("vmas", "pt", "map", "swap", "swapcache", "vmstat", "smaps", "pagemap", "meminfo", "walks")
#: Paths of `expect` that every machine has ({r} a live region, {a} an address in it, {d} an active device).
EXPECT_PATHS = ("vmstat.pswpout", "vmstat.pswpin", "vmstat.thp_split_pmd", "mthp.swpout", "mthp.swpin",
                "smaps.{r}.Rss", "smaps.{r}.Swap", "smaps.{r}.AnonHugePages", "pmd.{a}", "pte.{a}",
                "pagemap.{a}.swapped", "pagemap.{a}.present", "swap.{d}.used", "swapmap.{d}.0x200",
                "swapcache.{d}.0x200", "meminfo.MemFree", "meminfo.SwapFree", "pid")
#: Commands that must be refused: the deliberately invalid share ({r} a live region, {p} a page of it).
INVALID = ("touch nosuch", "munmap nosuch+4K:4K", "madvise {r}+0x800:4K pageout", "munmap {r}+0x800:4K",
           "mmap x{n} 4K at 0x600000000800", "touch 0x10000000:4K", "mprotect {r}+0x800:4K r",
           "mremap nosuch m{n}", "uffd register nosuch", "uffd move nosuch {r}", "exit 1", "exit 77",
           "switch 77", "@77 touch {r}", "swapoff nosuch", "swapon x{n} 20K", "swapon x{n} 65G",
           "swapon x{n} 40001", "set ram 9M", "set ram 1P", "set max_ptes_swap 999", "expect bogus.path == 1",
           "expect vmstat.nope == 1", "expect smaps.nosuch.Rss == 0", "expect pmd.{p} < huge",
           "mmap {r} 4K", "mmap x{n} 1P", "touch {r}+64T:4K", "touch", "mmap x{n}", "madvise {r} sideways",
           "touch {r} sideways", "frobnicate", "swapon", "@ touch {r}", "expect fails")

#: (piece index, offset, length) in one draw: fewer choices per step, faster generation.
ranges = st.tuples(st.integers(0, 15), st.sampled_from(OFFSETS), st.sampled_from(LENGTHS))
idx = st.integers(0, 7)

#: Steps, refusals and seconds per mode, over every run of the session (see conftest).
STATS: dict[str, Counter] = {}


def size_text(n: int) -> str:
    for shift, unit in ((20, "M"), (10, "K")):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return hex(n)


def at_text(name: str, off: int) -> str:
    return name if off == 0 else f"{name}+{size_text(off)}"


class MmshMachine(RuleBasedStateMachine):
    """One machine driven by random .mmsh commands; PMD_SWAP picks the mode."""

    PMD_SWAP = True
    STATS_KEY: str | None = None        # where STATS counts this machine (default: its mode)

    def __init__(self) -> None:
        super().__init__()
        self.s = Session.boot(Config(pmd_swap=self.PMD_SWAP))
        self.serial = 0
        self.digests = DigestCache(verify=True)
        self.changed = True
        self.dead = False               # reach mode: a failure of another class ended this example
        self.script: list[str] = []
        self.stats = STATS.setdefault(self.STATS_KEY or self.mode, Counter())
        self.stats["runs"] += 1
        self.example = self.stats["runs"]
        self.t0 = time.perf_counter()
        mmsh_coverage.begin(self.example)

    @property
    def mode(self) -> str:
        return "series" if self.PMD_SWAP else "mainline"

    # -- failures ----------------------------------------------------------------------------
    def fail(self, text: str, state_holds: bool = False) -> None:
        """A check failed: raise (Hypothesis shrinks it), or in reach mode record its class.

        In reach mode a failure of another class ends the example (it is dead: its later
        rules run nothing), unless the state still holds (an oracle's complaint about what a
        step did, a VmBug after which the machine was restored): then the example goes on."""
        if reach.REACH:
            defect = reach.classify(text)
            reach.record(defect, self.mode, self.example, len(self.script), self.stats["rules"],
                         self.script, text)
            if reach.REACH != defect:
                self.dead = not state_holds
                self.changed = self.changed and state_holds
                return
        raise AssertionError(text)

    def ensure(self, ok: bool, text) -> None:
        if not ok:
            self.fail(text() if callable(text) else text)

    # -- running commands -----------------------------------------------------------------
    def run(self, text: str, deliberate: bool = False) -> bool:
        """Parse `text` and run each command as one checked step; False if any was refused.

        A line that does not parse runs nothing (a refusal of the syntax)."""
        if self.dead:
            return False
        self.script.append(text)
        try:
            commands = parse_line(text)
        except LangError:
            self.count(deliberate, "syntax")
            self.changed = False
            return False
        ok = True
        for cmd in commands:
            ok = self.step(cmd, deliberate) and ok
            if self.dead:
                return False
        return ok

    def count(self, deliberate: bool, refusal: str | None = None) -> None:
        st_ = self.stats
        st_["steps"] += 1
        if deliberate:
            st_["deliberate"] += 1
        if refusal is None:
            return
        st_["refused"] += 1
        st_[f"refused {'deliberate' if deliberate else 'random'}"] += 1
        st_[f"refused {refusal}"] += 1

    def step(self, cmd: Command, deliberate: bool = False) -> bool:
        k = self.s.kernel
        before = state_dump(self.s)
        inner = _inner(cmd)
        watch = oracles.Before(k) if inner.name in ("fork", *oracles.FAULTING) else None
        t = time.perf_counter()
        try:
            out = execute(self.s, cmd)
        except (MmError, ExpectError) as e:
            self.stats["seconds"] += time.perf_counter() - t
            self.refused(cmd, e, before, deliberate)
            return False
        except VmBug as e:
            self.count(deliberate)
            self.fail(f"'{cmd.text}': {e}", state_holds=True)     # execute() restored the machine
            return False
        self.stats["seconds"] += time.perf_counter() - t
        self.count(deliberate)
        if cmd.name == "check" and out.failed_expect:
            self.fail(out.failed_expect)
            return True
        if _only_looks(cmd):
            after = state_dump(self.s)
            self.ensure(after == before, lambda: f"'{cmd.text}' only looks but changed the state: "
                        + "; ".join(diff_dumps(before, after)))
            self.changed = False
            return True
        self.changed = True
        if watch is not None:
            k = self.s.kernel
            problem = oracles.fork_oracle(k, watch) if inner.name == "fork" else oracles.zswap_oracle(k, watch)
            if problem:
                self.fail(f"'{cmd.text}': {problem}", state_holds=True)
        return True

    def refused(self, cmd: Command, e: Exception, before: dict, deliberate: bool) -> None:
        errno = getattr(e, "errno", "expect")
        self.count(deliberate, f"{_inner(cmd).name} {errno}")
        if errno == "EIO":
            self.fail(f"'{cmd.text}' found lost data: {e}")
        elif cmd.name == "check" and cmd.args.get("range") is None:
            self.fail(f"check found: {e}")
        if self.dead:
            return
        if getattr(e, "partial", None):
            self.stats["partial"] += 1
            self.changed = True
            return
        after = state_dump(self.s)
        self.ensure(after == before, lambda: f"refused '{cmd.text}' ({e}) changed the state: "
                    + "; ".join(diff_dumps(before, after)))
        self.changed = False

    @invariant()
    def machine_holds(self) -> None:
        self.stats["rules"] += 1        # invariants run after every rule (and after boot)
        if not self.changed or self.dead:
            return
        k = self.s.kernel
        problems = check_invariants(k) + check_data(k)
        if problems:
            self.fail("\n".join(problems[:20]))
        try:                            # every process the rules changed was reached (the step summary's cache)
            self.digests.digest(k)
        except VmBug as e:
            self.fail(str(e))

    def teardown(self) -> None:
        mmsh_coverage.end()
        self.stats["wall"] += time.perf_counter() - self.t0

    # -- words: things that exist -----------------------------------------------------------
    def pids(self) -> list[int]:
        return sorted(self.s.kernel.mms)

    def pid(self, j: int) -> int:
        pids = self.pids()
        return pids[j % len(pids)]

    def child(self, j: int) -> int | None:
        """A live pid other than 1 (None when pid 1 is alone)."""
        pids = self.pids()[1:]
        return pids[j % len(pids)] if pids else None

    def fresh(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    def pieces(self, pid: int | None = None, need: VM = VM(0)) -> list[tuple[str, int, int]]:
        """(region name, offset, length) of every part of a named region a VMA maps now,
        in process pid (default: the current one), whose VMA has the flags `need`."""
        pid = self.s.pid if pid is None else pid
        mm = self.s.kernel.mms.get(pid)
        if mm is None:
            return []
        out = []
        for name, (start, length) in sorted(self.s.regions.get(pid, {}).items()):
            end = start + length
            for v in mm.vmas_in(start, end):
                if v.flags & need == need:
                    lo, hi = max(v.start, start), min(v.end, end)
                    out.append((name, lo - start, hi - lo))
        return out

    def region(self, i: int, pid: int | None = None) -> str:
        """A region name with something mapped ('nosuch' when there is none)."""
        names = sorted({p[0] for p in self.pieces(pid)})
        return names[i % len(names)] if names else "nosuch"

    def range_text(self, r: tuple, pid: int | None = None, need: VM = VM(0)) -> str | None:
        """A range inside one mapped piece, shaped by (piece, offset, length); None if nothing is mapped."""
        pieces = self.pieces(pid, need) or self.pieces(pid)
        if not pieces:
            return None
        i, off, length = r
        name, base, size = pieces[i % len(pieces)]
        off = min(off, size - 4 * K)
        if length == "page":
            return at_text(name, base + off) if base + off else f"{name}+0"
        if length is None:
            length = size - off
            if base == 0 and off == 0 and self.s.names(pid).get(name, (0, -1))[1] == size:
                return name             # the whole region, by its bare name
        length = min(length, size - off)
        return f"{at_text(name, base + off)}:{size_text(length)}"

    def thp_unit(self, i: int, pid: int | None = None) -> tuple[str, int] | None:
        """(region, offset) of a 2 MiB-aligned, wholly mapped 2 MiB of a region, or None."""
        units, huge = [], []
        mm = self.s.kernel.mms.get(self.s.pid if pid is None else pid)
        for name, base, size in self.pieces(pid, VM.READ | VM.WRITE):
            start = self.s.names(pid)[name][0] + base
            first = (start + 2 * M - 1) & ~(2 * M - 1)
            for a in range(first, start + size - 2 * M + 1, 2 * M):
                units.append((name, base + a - start))
                pmd = mm.pmds.get(a >> 21) if mm is not None else None
                if pmd is not None and pmd.kind in (PmdKind.HUGE, PmdKind.SWAP):
                    huge.append(units[-1])
        pick = huge if huge and i % 2 else units      # half the time a unit that holds a THP
        return pick[i % len(pick)] if pick else None

    # -- set-up -----------------------------------------------------------------------------
    @initialize(ram=st.sampled_from(("8M", "12M", "16M", "16M", "32M", "32M", "64M")),
                swap=st.sampled_from(("", "8M", "16M", "16M", "32M")),
                kind=st.sampled_from(KINDS), second=st.sampled_from((None, None, "zram", "disk")),
                thp=st.sampled_from(("always", "madvise", "madvise", "never")),
                regions=st.sampled_from(("mmap a 4M hugepage; mmap b 3M", "mmap a 8M hugepage; mmap b 2M",
                                         "mmap a 2M; mmap b 6M hugepage", "mmap a 4M; mmap b 4M nohugepage",
                                         "mmap a 6M hugepage; mmap b 4M hugepage")))
    def boot(self, ram: str, swap: str, kind: str, second, thp: str, regions: str) -> None:
        self.run(f"set ram {ram}; set thp {thp}")
        if swap:
            self.run(f"swapon s0 {swap} kind {kind}")
        if second:
            self.run(f"swapon s1 8M kind {second} prio 5")
        self.run(regions)

    # -- memory ---------------------------------------------------------------------------
    @rule(size=st.sampled_from(SIZES), prot=st.sampled_from((None, None, None, "rw", "r", "none")),
          advice=st.sampled_from((None, "hugepage", "hugepage", "nohugepage")),
          at=st.sampled_from((None, None, None, None, "near", "fixed")), i=idx)
    def mmap(self, size: int, prot, advice, at, i: int) -> None:
        text = f"mmap {self.fresh('r')} {size_text(size)}"
        if prot:
            text += f" prot {prot}"
        if advice:
            text += f" {advice}"
        if at == "near" and self.pieces():
            name, base, length = self.pieces()[i % len(self.pieces())]
            text += f" at {at_text(name, base + length)}"       # just after a mapped piece: may be taken
        elif at == "fixed":
            text += f" at {0x6000_0000_0000 + self.serial * 16 * M:#x}"
        self.run(text)

    @rule(r=ranges)
    def munmap(self, r: tuple) -> None:
        if (rng := self.range_text(r)) is not None:
            self.run(f"munmap {rng}")

    @rule(r=ranges)
    def touch_write(self, r: tuple) -> None:
        if (rng := self.range_text(r, need=VM.READ | VM.WRITE)) is not None:
            self.run(f"touch {rng}")

    @rule(r=ranges)
    def touch_read(self, r: tuple) -> None:
        if (rng := self.range_text(r, need=VM.READ)) is not None:
            self.run(f"touch {rng} read")

    @rule(r=ranges)
    def check_range(self, r: tuple) -> None:
        if (rng := self.range_text(r, need=VM.READ)) is not None:
            self.run(f"check {rng}")

    @rule(r=ranges, advice=st.sampled_from(ADVICES))
    def madvise(self, r: tuple, advice: str) -> None:
        if (rng := self.range_text(r)) is not None:
            self.run(f"madvise {rng} {advice}")

    @rule(r=ranges, prot=st.sampled_from(PROTS))
    def mprotect(self, r: tuple, prot: str) -> None:
        if (rng := self.range_text(r)) is not None:
            self.run(f"mprotect {rng} {prot}")

    @rule(r=ranges, size=st.sampled_from((None, None, 4 * K, 2 * M, 3 * M, 8 * M)),
          at=st.sampled_from((None, None, "fixed", "near")))
    def mremap(self, r: tuple, size, at) -> None:
        if (rng := self.range_text(r)) is None:
            return
        text = f"mremap {rng} {self.fresh('m')}"
        if size:
            text += f" size {size_text(size)}"
        if at == "fixed":
            text += f" at {0x6100_0000_0000 + self.serial * 16 * M + (r[0] % 2) * M:#x}"
        elif at == "near":
            text += f" at {self.region(r[0] + 1)}"          # onto a mapping: MREMAP_FIXED unmaps it
        self.run(text)

    @rule(r=ranges)
    def uffd_register(self, r: tuple) -> None:
        if (rng := self.range_text(r)) is not None:
            self.run(f"uffd register {rng}")

    @rule(r=ranges, dst=st.sampled_from(("new", "new", "new_huge", "registered")),
          doff=st.sampled_from((0, 0, 4 * K, M, 2 * M, 2 * M + 4 * K)))
    def uffd_move(self, r: tuple, dst: str, doff: int) -> None:
        """UFFDIO_MOVE of whatever a range holds now, to a registered destination."""
        if (src := self.range_text(r)) is not None:
            self.run(f"uffd move {src} {self.uffd_destination(dst, r[0], doff)}")

    def uffd_destination(self, dst: str, i: int, doff: int) -> str:
        if dst == "registered":
            regs = [p for p in self.pieces(need=VM.UFFD_MISSING)]
            if regs:
                name, base, _ = regs[i % len(regs)]
                return at_text(name, base + doff) if base + doff else f"{name}+0"
        name = self.fresh("u")
        self.run(f"mmap {name} 8M{' hugepage' if dst == 'new_huge' else ''}; uffd register {name}")
        return at_text(name, doff) if doff else f"{name}+0"

    @rule(size=st.sampled_from((None, None, 4 * K, M, 2 * M, 8 * M)))
    def reclaim(self, size) -> None:
        self.run("reclaim" if size is None else f"reclaim {size_text(size)}")

    @rule()
    def khugepaged(self) -> None:
        self.run("khugepaged")

    # -- processes ----------------------------------------------------------------------
    @rule(j=idx)
    def fork(self, j: int) -> None:
        if len(self.s.kernel.mms) < 5:
            self.run("fork")
        else:
            self.run(f"exit {self.child(j)}")

    @rule(j=idx)
    def switch(self, j: int) -> None:
        self.run(f"switch {self.pid(j)}")

    @rule(j=idx)
    def exit(self, j: int) -> None:
        pid = self.child(j)
        if pid is None:
            self.run("fork")
        else:
            self.run("exit" if pid == self.s.pid else f"exit {pid}")

    @rule(j=idx, r=ranges,
          what=st.sampled_from(("touch {r}", "touch {r} read", "madvise {r} pageout", "munmap {r}",
                                "check {r}", "madvise {r} dontneed", "mremap {r} {n}", "fork", "exit")))
    def at_pid(self, j: int, r: tuple, what: str) -> None:
        pid = self.pid(j)
        if what == "exit":
            pid = self.child(j)
            if pid is None:
                return
        rng = self.range_text(r, pid, need=VM.READ | VM.WRITE)
        if rng is None and "{r}" in what:
            return
        self.run(f"@{pid} " + what.format(r=rng, n=self.fresh("m")))

    # -- scenarios: states that single random commands rarely combine -------------------------
    def unit_text(self, unit: tuple[str, int], off: int = 0, length: int = 2 * M) -> str:
        """The range `length` from `off` into a 2 MiB unit."""
        name, base = unit
        return f"{at_text(name, base + off) if base + off else name + '+0'}:{size_text(length)}"

    def make_thp(self, unit: tuple[str, int], out: str | None = None, armed: bool = False) -> None:
        """MADV_HUGEPAGE and a write fault make the unit one THP (`thp never` becomes `madvise`);
        `out` (a device kind) swaps it out to such a device (a PMD swap entry with the series;
        on a disk its folio stays in the swap cache).  Fault points stay armed only if `armed`."""
        if not armed:
            self.disarm()
        if self.s.kernel.config.thp.value == "never":
            self.run("set thp madvise")
        where = self.unit_text(unit)
        mm = self.s.kernel.mms[self.s.pid]
        pmd = mm.pmds.get((self.s.names()[unit[0]][0] + unit[1]) >> 21)
        small = pmd is not None and pmd.kind is PmdKind.TABLE     # small pages there: collapse them
        self.run(f"madvise {where} hugepage; {f'madvise {where} collapse; ' if small else ''}touch {where}")
        if out:
            self.ensure_swap(out)
            self.run(f"madvise {where} pageout")

    def ensure_swap(self, kind: str, fresh: bool = False) -> None:
        """Make the first device swap-out tries one of this kind, with room (a new one if need be,
        or if `fresh`: one whose swap_map has no count continuation page yet)."""
        active = self.s.kernel.active_swap()
        if not fresh and active and active[0].kind.value == kind and active[0].pages - active[0].inuse_pages > 1024:
            return
        prio = min(32767, max((si.prio for si in active), default=0) + 1)
        self.run(f"swapon {self.fresh('sw')} 16M kind {kind} prio {prio}")

    def swap_device(self, j: int) -> str | None:
        active = [si.name for si in self.s.kernel.active_swap()]
        return active[j % len(active)] if active else None

    def device_of(self, unit: tuple[str, int] | None, j: int) -> str | None:
        """The device that holds a swap entry of `unit` (its PMD swap entry first), else swap_device(j)."""
        slot = swap_slot(self.s.kernel, self.s.pid, self.s.names()[unit[0]][0] + unit[1], 2 * M) if unit else None
        return slot[0].name if slot else self.swap_device(j)

    @rule(r=ranges, part=st.sampled_from(("munmap", "munmap", "mremap", "mprotect", "dontneed")),
          cut=st.sampled_from(((M, 4 * K), (0, M), (M, M), (4 * K, 64 * K), (2 * M - 4 * K, 8 * K))),
          read=st.sampled_from((64 * K, 12 * K, M + 64 * K, 2 * M - 4 * K, 0)),
          then=st.sampled_from(("touch", "touch", "touch read", "swapoff", "")),
          out=st.sampled_from(("pageout, reclaim", "pageout, reclaim", "pageout", "")),
          armed=st.sampled_from((False, False, False, True)))
    def child_splits_its_copy(self, r: tuple, part: str, cut: tuple, read: int, then: str, out: str,
                              armed: bool) -> None:
        """Swap a THP out (whole reclaim then frees a disk's clean cached folio); fork; the child
        unmaps, moves, protects or drops part of its copy and reads one page of it (readahead
        caches small folios of the entry's slots); the parent touches it or swaps off the device
        that holds it (unuse_pmd over slots cached as small folios)."""
        unit = self.thp_unit(r[0])
        if unit is None or len(self.s.kernel.mms) >= 5:
            return
        self.make_thp(unit, out="disk" if out else None, armed=armed)
        if out.endswith("reclaim"):
            self.run("reclaim")
        if not self.run("fork"):
            return
        child = max(self.s.kernel.mms)
        cut_text = self.unit_text(unit, *cut)
        ops = {"munmap": f"munmap {cut_text}", "mremap": f"mremap {cut_text} {self.fresh('m')}",
               "mprotect": f"mprotect {cut_text} r", "dontneed": f"madvise {cut_text} dontneed"}
        self.run(f"@{child} {ops[part]}")
        if not cut[0] <= read < cut[0] + cut[1]:
            self.run(f"@{child} touch {self.unit_text(unit, read, 4 * K)} read")
        if then == "swapoff":
            if (dev := self.device_of(unit, r[0])) is not None:
                self.run(f"swapoff {dev}")
        elif then:
            self.run(f"touch {self.unit_text(unit)}{' read' if then.endswith('read') else ''}")

    @rule(r=ranges, how=st.sampled_from(("mremap", "mremap", "munmap", "mprotect", "uffd")),
          half=st.sampled_from(((M, M), (0, M), (4 * K, 4 * K), (M + 4 * K, 64 * K))),
          then=st.sampled_from(("drain", "drain", "reclaim", "pageout", "")), kind=st.sampled_from(KINDS),
          armed=st.sampled_from((False, False, False, True)))
    def thp_across_edge(self, r: tuple, how: str, half: tuple, then: str, kind: str, armed: bool) -> None:
        """A THP cut by a VMA edge: part of it mremapped away, unmapped, protected or moved by
        UFFDIO_MOVE; then reclaimed (a drain: whole reclaim must free it)."""
        unit = self.thp_unit(r[0])
        if unit is None:
            return
        self.make_thp(unit, armed=armed)
        part = self.unit_text(unit, *half)
        if how == "mremap":
            self.run(f"mremap {part} {self.fresh('m')}")
        elif how == "munmap":
            self.run(f"munmap {part}")
        elif how == "mprotect":
            self.run(f"mprotect {part} r")
        else:
            self.run(f"uffd move {part} {self.uffd_destination('new', r[0], half[0] % (2 * M))}")
        if then:
            self.ensure_swap(kind)
        if then == "drain":
            self.drain_now()
        elif then == "reclaim":
            self.run("reclaim")
        elif then == "pageout":
            self.run(f"madvise {self.unit_text(unit)} pageout")

    @rule(r=ranges, off=st.sampled_from((4 * K, 12 * K, 64 * K, M)), length=st.sampled_from((4 * K, 4 * K, 64 * K)),
          then=st.sampled_from(("pageout", "pageout", "reclaim", "pageout, touch")),
          kind=st.sampled_from((*KINDS, None)), armed=st.sampled_from((False, False, False, True)))
    def thp_below_its_moved_piece(self, r: tuple, off: int, length: int, then: str, kind: str | None,
                                  armed: bool) -> None:
        """Two pieces of a THP moved apart and back side by side: the pages from `off` go to a
        free 2 MiB (MREMAP_FIXED), the ones before `off`, grown to 2 MiB, to the 2 MiB just
        below them and are collapsed into a THP there.  The first VMA (same anon_vma) covers the
        THP's index range from `off` on, its first address in that range lying in the THP's
        PMD.  The THP is then reclaimed (to a device of `kind`, or to whatever swap there is,
        maybe none): the rmap walk must find it once, inside its own VMA."""
        unit = self.thp_unit(r[0])
        if unit is None:
            return
        self.make_thp(unit, armed=armed)
        dst = 0x6180_0000_0000 + self.serial * 16 * M
        self.run(f"mremap {self.unit_text(unit, off, length)} {self.fresh('m')} at {dst + 2 * M:#x}")
        thp = self.fresh("m")
        if not self.run(f"mremap {self.unit_text(unit, 0, off)} {thp} size 2M at {dst:#x}"):
            return
        self.run(f"madvise {thp} collapse")
        if kind is not None:
            self.ensure_swap(kind)
        self.run("reclaim" if then == "reclaim" else f"madvise {thp} pageout")
        if then.endswith("touch"):
            self.run(f"touch {thp}")

    @rule(r=ranges, swap=st.sampled_from(("pageout", "pageout", "pageout both", "")),
          dst=st.sampled_from(("new", "new_huge", "registered")),
          doff=st.sampled_from((4 * K, 4 * K, 0, M, 2 * M + 4 * K)),
          part=st.sampled_from(((0, 2 * M), (0, 2 * M), (0, M), (M, M), (4 * K, 64 * K), (0, 4 * M))),
          read=st.sampled_from((0, 4 * K, M, None)), drain=st.booleans(), kind=st.sampled_from(("disk", "zram")),
          armed=st.sampled_from((False, False, False, True)))
    def uffd_move_populated(self, r: tuple, swap: str, dst: str, doff: int, part: tuple, read, drain: bool,
                            kind: str, armed: bool) -> None:
        """A THP (swapped out: on a disk its folio stays cached), UFFDIO_MOVE of all or part of it
        to a destination that may not be 2 MiB-aligned, a read of the destination, a drain."""
        unit = self.thp_unit(r[0])
        if unit is None:
            return
        self.make_thp(unit, out=kind if swap else None, armed=armed)
        src = self.unit_text(unit, *part)
        to = self.uffd_destination(dst, r[0], doff)
        self.run(f"uffd move {src} {to}")
        if swap == "pageout both":
            self.run(f"madvise {src} pageout")
        if read is not None:
            dname, _, dpos = to.partition("+")
            self.run(f"touch {at_text(dname, _parse(dpos) + read) if _parse(dpos) + read else dname + '+0'} read")
        if drain:
            self.drain_now()

    @rule(r=ranges, stride=st.sampled_from((256 * K, M, M)), kind=st.sampled_from(("zram", "zram", "disk")),
          armed=st.sampled_from((False, False, False, True)))
    def fragment_then_swapoff(self, r: tuple, stride: int, kind: str, armed: bool) -> None:
        """Swap out a THP and reclaim (a disk's clean cached folio is freed, so swapoff has to
        allocate one; and there is room to fill), fill the free memory with small pages and
        unmap every other stride of them (frames to spare, but no whole 2 MiB block free), then
        swap off the device that holds the THP; the small pages go at the end.  A small
        machine only (8-16M: the fill is page by page)."""
        if self.s.kernel.config.ram > 16 * M:
            return
        if (unit := self.thp_unit(r[0])) is not None:
            self.make_thp(unit, out=kind, armed=armed)
            self.run("reclaim")
        k = self.s.kernel
        size = (k.mem.alloc.nr_free * 4 * K) & ~(2 * stride - 1)
        stride = max(stride, size // 24 & ~(4 * K - 1))
        if size < 4 * M:
            return
        name = self.fresh("f")
        if not self.run(f"mmap {name} {size_text(size)} nohugepage; touch {name}"):
            self.run(f"munmap {name}")
            return
        for o in range(0, size, 2 * stride):
            self.run(f"munmap {at_text(name, o) if o else name + '+0'}:{size_text(stride)}")
        if (dev := self.device_of(unit, 0)) is not None:
            self.run(f"swapoff {dev}")
        self.run(f"munmap {name}")

    @rule(r=ranges, off=st.booleans(), access=st.sampled_from(("", " read", "")),
          part=st.sampled_from(((0, 2 * M), (0, 4 * K), (M, 64 * K))), again=st.booleans(),
          kind=st.sampled_from(("zram", "zram", "disk")),
          armed=st.sampled_from((False, False, False, True)), gate=st.integers(0, 2))
    def zswap_midrun(self, r: tuple, off: bool, access: str, part: tuple, again: bool, kind: str, armed: bool,
                     gate: int) -> None:
        """Swap a THP out, turn zswap on (and maybe off again: it has been enabled), fault all or
        part of it back, and maybe swap it out again (now through zswap).  One time in three:
        zswap stays "ever enabled" for the rest of the run."""
        unit = self.thp_unit(r[0])
        if unit is None or gate:
            return
        self.make_thp(unit, out=kind, armed=armed)
        self.run("set zswap on")
        if off:
            self.run("set zswap off")
        self.run(f"touch {self.unit_text(unit, *part)}{access}")
        if again:
            self.run(f"madvise {self.unit_text(unit)} pageout")

    @precondition(lambda self: len(self.s.kernel.mms) < 5)
    @rule(gate=st.integers(0, 9), r=ranges, mode=st.sampled_from(("once", "once", "once", "on")),
          then=st.sampled_from(("", "reclaim", "touch")), kind=st.sampled_from(("zram", "disk")),
          armed=st.sampled_from((False, False, False, True)))
    def many_sharers(self, gate: int, r: tuple, mode: str, then: str, kind: str, armed: bool) -> None:
        """A THP swapped out; a child keeps only that part; 62 processes then share its swap
        entries (slot counts at SWAP_MAP_MAX), and its next fork needs a count continuation,
        which fails once (or for good); then they exit.  Rare (gate): ~130 commands."""
        unit = self.thp_unit(r[0])
        if gate or unit is None:
            return
        self.ensure_swap(kind, fresh=True)
        self.make_thp(unit, out=kind, armed=armed)
        if not self.run("fork"):
            return
        k = self.s.kernel
        c = max(k.mms)
        for name, off, length in self.pieces(c):
            if swap_slot(k, c, self.s.names(c)[name][0] + off, length) is None:
                self.run(f"@{c} munmap {at_text(name, off) if off else name + '+0'}:{size_text(length)}")
        slot = swap_slot(k, c)
        if slot is None:
            return
        si, off = slot
        first = k.next_pid
        while si.swap_count(off) < SWAP_MAP_MAX and k.next_pid - first < 64:
            if not self.run(f"@{c} fork"):
                break
        self.run(f"set fail swap_cont {mode}")
        self.run(f"@{c} fork")
        if then == "reclaim":
            self.run("reclaim")
        elif then and (rng := self.range_text((0, 0, None), c)) is not None:
            self.run(f"@{c} touch {rng}")
        self.run("set fail swap_cont off")
        for pid in [p for p in self.pids() if p >= first]:
            self.run(f"exit {pid}")

    @rule(gate=st.integers(0, 2))
    def drain(self, gate: int) -> None:
        """Now and then (one time in three): a drain."""
        if not gate:
            self.drain_now()

    def disarm(self) -> None:
        for point, mode in sorted(self.s.kernel.config.fail.items(), key=lambda pm: pm[0].value):
            if mode.value != "off":
                self.run(f"set fail {point.value} off")

    def drain_now(self) -> None:
        """Disarm every fault point, then whole reclaim until the LRU must be empty
        (mmsh_oracles.drain_oracle, when there is swap for every resident page)."""
        self.disarm()
        ready = oracles.drain_ready(self.s.kernel)
        for _ in range(3):
            self.run("reclaim")
        if ready and not self.dead:
            problem = oracles.drain_oracle(self.s.kernel)
            if problem:
                self.fail(problem, state_holds=True)

    # -- swap and settings -------------------------------------------------------------------
    @rule(size=st.sampled_from(("8M", "16M", "4M", "1M")), kind=st.sampled_from(KINDS),
          prio=st.sampled_from((None, None, -1, 5, 40000)))
    def swapon(self, size: str, kind: str, prio) -> None:
        self.run(f"swapon {self.fresh('sw')} {size} kind {kind}" + (f" prio {prio}" if prio is not None else ""))

    @rule(j=idx)
    def swapoff(self, j: int) -> None:
        active = [si.name for si in self.s.kernel.active_swap()]
        if active:
            self.run(f"swapoff {active[j % len(active)]}")
        else:
            self.run(f"swapon {self.fresh('sw')} 8M kind {KINDS[j % len(KINDS)]}")

    @rule(point=st.sampled_from(POINTS), mode=st.sampled_from(("once", "once", "on", "off", "off")))
    def set_fail(self, point: str, mode: str) -> None:
        self.run(f"set fail {point} {mode}")

    @rule(on=st.sampled_from((False, False, False, False, True)))
    def set_zswap(self, on: bool) -> None:
        """Rarely on (one time in five): once zswap has been enabled, no PMD swap entry is
        installed for the rest of the run (zswap_never_enabled() stays false), and most of issue
        9's states need one (zswap_midrun enables it too)."""
        self.run(f"set zswap {'on' if on else 'off'}")

    @rule(mode=st.sampled_from(("always", "madvise", "never")))
    def set_thp(self, mode: str) -> None:
        self.run(f"set thp {mode}")

    @rule(what=st.sampled_from(("set pmd_swap", "set use_zero_page off", "set use_zero_page on",
                                "set max_ptes_swap 0", "set max_ptes_none 0", "set max_ptes_shared 0",
                                "set max_ptes_swap 64", "set max_ptes_none 511", "set max_ptes_shared 256",
                                "set page_cluster 0", "set page_cluster 5", "set page_cluster 3",
                                "trace on", "trace off")))
    def set_other(self, what: str) -> None:
        if what == "set pmd_swap":
            k = self.s.kernel
            busy = any(p.kind is PmdKind.SWAP for mm in k.mms.values() for p in mm.pmds.values())
            on = k.config.pmd_swap != (not busy)    # switch only where the kernel lets it
            what = f"set pmd_swap {'on' if on else 'off'}"
        self.run(what)

    @precondition(lambda self: not any(p.kind is not PmdKind.TABLE for mm in self.s.kernel.mms.values()
                                       for p in mm.pmds.values()))
    @rule(mode=st.sampled_from(("lazy", "lazy", "eager")))
    def set_deposit(self, mode: str) -> None:
        """Lazy page-table deposit (set deposit lazy) while no PMD-level entry exists, so a
        good share of runs go on with no deposited tables and splits that allocate them."""
        self.run(f"set deposit {mode}")

    # -- looking ------------------------------------------------------------------------------
    @rule()
    def check_all(self) -> None:
        self.run("check")

    @rule(r=ranges, path=st.sampled_from(EXPECT_PATHS), op=st.sampled_from(("==", "!=", "<", ">=")),
          value=st.sampled_from(("0", "1", "512", "2048kB")), word=st.sampled_from(("swap", "huge", "table")))
    def expect(self, r: tuple, path: str, op: str, value: str, word: str) -> None:
        active = [si.name for si in self.s.kernel.active_swap()]
        if "{d}" in path and not active or "{a}" in path and not self.pieces():
            path = "vmstat.pgfault"
        addr = (self.range_text((r[0], r[1], "page")) or "").split(":")[0]
        p = path.format(r=self.region(r[0]), a=addr, d=active[r[0] % len(active)] if active else "")
        if p.startswith(("pmd.", "pte.")):
            op, value = op if op in ("==", "!=") else "==", word
        self.run(f"expect {p} {op} {value}")
        self.run(f"if pmd_swap on: expect vmstat.thp_swpout_pmd {op} {r[0]}")

    @rule(r=ranges,
          what=st.sampled_from(("munmap {r}", "touch {r}", "madvise {r} pageout", "mprotect {r} none",
                                "swapoff nosuch", "exit 1", "expect vmstat.nope == 1", "set ram 8M")))
    def expect_fails(self, r: tuple, what: str) -> None:
        if (rng := self.range_text(r)) is not None:
            self.run("expect fails " + what.format(r=rng))

    @rule(view=st.sampled_from(VIEWS), r=ranges)
    def show(self, view: str, r: tuple) -> None:
        from mmshell.views.console import make_console
        from mmshell.views.render import render_view, view_json

        arg = ""
        if view in ("pt", "map", "pagemap"):
            arg = " " + (self.range_text(r) or "")
        elif view == "smaps":
            arg = " " + self.region(r[0])
        for cmd in parse_line(f"show {view}{arg}".strip()):
            before = state_dump(self.s)
            try:
                out = execute(self.s, cmd)
            except MmError as e:
                self.refused(cmd, e, before, False)
                continue
            for name, opts in out.views:
                view_json(self.s, name, opts)
                if r[0] % 4 == 0:       # rich rendering is slow: one show in four
                    make_console(file=io.StringIO()).print(render_view(self.s, name, opts))
            self.ensure(state_dump(self.s) == before, f"'show {view}' changed the state")
            self.count(False)

    # -- the deliberately invalid share ----------------------------------------------------------
    @rule(what=st.sampled_from(INVALID), i=idx)
    def invalid(self, what: str, i: int) -> None:
        """A command that must be refused (and change nothing): a small, counted share."""
        r = self.region(i)
        self.run(what.format(r=r, p=r, n=self.fresh("")), deliberate=True)


def swap_slot(k, pid: int, start: int = 0, length: int = 1 << 48):
    """(swap_info, offset) of a swap entry of pid in [start, start + length), a PMD swap entry
    first; None when there is none."""
    mm = k.mms.get(pid)
    if mm is None:
        return None
    pmds = [(i << 21, p) for i, p in sorted(mm.pmds.items()) if i << 21 < start + length and (i + 1) << 21 > start]
    for base, pmd in pmds:
        if pmd.kind is PmdKind.SWAP:
            return k.swp_info(pmd.swp_type), pmd.swp_offset
    for base, pmd in pmds:
        if pmd.kind is PmdKind.TABLE and pmd.table is not None:
            for i, pte in enumerate(pmd.table.ptes):
                if pte & 3 == 2 and start <= base + (i << 12) < start + length:
                    return k.swp_info((pte >> 12) & 0x1F), pte >> 17
    return None


def _parse(text: str) -> int:
    """A size as size_text writes it (0 for none)."""
    if not text:
        return 0
    unit = {"K": K, "M": M}.get(text[-1])
    return int(text[:-1]) * unit if unit else int(text, 0)


def _inner(cmd: Command) -> Command:
    return unwrap(cmd, into_refusal=True)


def _only_looks(cmd: Command) -> bool:
    """Commands that must leave the state exactly as it was (trace flips a switch, so it does not count)."""
    if cmd.name == "expect_fails":
        return False        # the inner command may succeed, and then it has its effect
    return cmd.spec.only_looks(cmd.args) and cmd.name not in ("trace", "switch")
