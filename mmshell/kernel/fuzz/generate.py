"""Random mainline scripts of kernel-observable commands, for `mmshell kernel fuzz`.

A script is a list of command lines, deterministic for its seed (`SEED:INDEX`,
`random.Random` seeded with that text).  Each candidate command is tried in the
simulator (mainline mode) before it is kept: an accepted
one stays, a refused one is kept now and then as `expect fails COMMAND` (the
kernel must refuse it too) and otherwise dropped, so a script is rarely cut
short by a refusal.  After a command that changes something, `expect PATH ==
VALUE` lines read what the simulator says the kernel should show (smaps fields
of the regions, the PMD kind of a 2 MiB block, pagemap counts over a region, one
page's PTE and the device its swap entry names, each device's Used):
`kernel diff` compares each such value, and every step's counter changes.  Slot numbers are
not read (`pagemap.ADDR.swap_offset`, `swapmap.NAME.OFF`, `swapcache.NAME.OFF`): the kernel's
order-0 slot allocator (a per-CPU cursor through a cluster, clusters on free, nonfull and
fragmented lists) is not modelled (docs/semantics.md, "What the simulation leaves out").

What the generator leaves out, and why (docs/kernel.md, "What `kernel diff`
compares"):

* only commands the live runner runs: no `set fail`, `set ram`, `trace`,
  `set pmd_swap on`, no views;
* swap readahead is off (`set page_cluster 0`: only the faulting slot is read): the
  kernel's VMA-based readahead window (centred on the fault, clipped to the VMA and the
  PMD, adapting to hits) is not modelled; the simulator reads an aligned window;
* THP is never turned on again after `set thp never` (it would start the
  khugepaged thread, which scans at once: a collapse one step before the
  simulator's);
* no `khugepaged` while THP is `always`: every process of the machine is then
  khugepaged's, so one full pass takes as long as the machine makes it (and its
  THP counters are not compared);
* no access to a missing page of a userfaultfd-registered range (the live
  runner refuses it: a userfault no thread handles);
* `check` without a range only as the last line: on the kernel it reads every present
  page, and the MMU sets their accessed bits, which the simulator's check (of its own
  state) does not; a later `khugepaged` then finds referenced pages the simulator does
  not (docs/kernel.md, "What `kernel diff` compares");
* `reclaim` always reclaims everything: which folios `reclaim SIZE` takes depends on
  the kernel's LRU aging (referenced bits, active/inactive balancing), which the
  simulator does not model, and on the runner's own pages charged to the cgroup;
* no `reclaim` while `max_ptes_none` is below 511 and a swap device is on: whether the
  deferred split shrinker splits an underused THP before the LRU pass swaps it out whole
  depends on the kernel's reclaim priorities (mm/vmscan.py, `shrink_lruvec`);
* no `reclaim` while a MADV_FREE folio has been written again: reclaim makes it swap-backed
  again and activates it; the kernel's memory-cgroup reclaim does not come back to it in the
  same `reclaim` (measured), the simulator's next pass swaps it out (it does not model the
  active/inactive balancing that decides this);
* no `reclaim` that would fill the swap space (the swap-backed pages to write at least the
  free slots): which folios get the last slots then depends on the kernel's LRU aging (a
  THP mapped by PTEs is activated and comes after the small pages, or not: measured, 3 runs
  of 5 split it), and once no slot is free the kernel's reclaim stops scanning anonymous
  memory (`get_scan_count()`: SCAN_FILE), so the folios whose write to a disk or swap file
  had not ended when the scan last came by stay in the swap cache (measured: 8 to 770 of
  1,023 from run to run); the simulator frees a written folio in the next pass only;
* `mmap ... at` and `mremap ... at` pick free addresses in a window of their
  own, or where the script's own mappings are, never the worker's memory.

Sizes are kept small (regions up to 8 MiB, at most 48 MiB mapped per process,
swap devices up to 64 MiB) so a script runs in about a second on the kernel.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

from ...lang.expect_paths import PathError
from ...lang.sim_observer import evaluate
from ...lang.runner import StepRecord, run_text
from ...lang.session import Session
from ...lang.values import format_offset, format_size
from ...mm.config import Config
from ...mm.errors import MmError
from ...mm.folio import PG
from ...mm.pgtable import F_DIRTY, F_SPECIAL, PmdKind, pmd_pgtable, pte_pfn, pte_present
from ...mm.vma import VM
from ...mm.vmscan import get_nr_swap_pages

K = 1 << 10
M = 1 << 20
PAGE = 4 * K
HPAGE = 2 * M

#: The first lines of every script: mainline, what `kernel diff` compares with (a no-op there),
#: and no swap readahead (see the module's docstring).
HEADER = ("set pmd_swap off", "set page_cluster 0")
#: Commands per script (not counting the `expect` lines), the default and the bounds.
DEFAULT_STEPS = 20
MIN_STEPS = 5
MAX_STEPS = 60
#: Bounds that keep one live run small and quick.
MAX_REGION = 8 * M
MAX_MAPPED_PER_PROCESS = 48 * M
MAX_PROCESSES = 4
MAX_DEVICES = 3
#: Where `at` puts a mapping that is not next to another: far below the simulator's top-down
#: placement (MMAP_BASE) and far from the worker's own heap and libraries.
AT_WINDOW = 0x6000_0000_0000

#: Region sizes: 2 MiB multiples, and sizes that are not (a THP cannot fill them), one that is
#: not even a page multiple (the kernel rounds it up).
SIZES = (4 * K, 16 * K, 64 * K, M, 2 * M, 2 * M, 2 * M, 4 * M, 4 * M, 2 * M + 4 * K, 3 * M, 6 * M, 8 * M,
         M + 12 * K, 5000)
ADVICES = (("pageout", 8), ("cold", 1), ("free", 2), ("dontneed", 2), ("collapse", 2), ("hugepage", 2),
           ("nohugepage", 1))
SMAPS = ("Rss", "Rss", "Swap", "Swap", "AnonHugePages", "SwapPss", "Pss", "LazyFree", "Anonymous")
PAGEMAP_COUNTS = ("present", "swapped", "exclusive")
#: Commands after which nothing observable changed: no `expect` lines after them.
LOOKING = ("expect", "expect_fails", "switch", "check", "set")


@dataclass
class Script:
    """One generated script: its seed and its command lines (the first is HEADER)."""

    seed: str
    lines: list[str] = field(default_factory=list)
    refused_tries: int = 0             # candidates the simulator refused and the generator dropped
    tries: int = 0                     # candidates tried

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    @property
    def commands(self) -> int:
        """Lines that are not `expect` lines."""
        return sum(1 for ln in self.lines if not is_expect(ln))


def is_expect(line: str) -> bool:
    """An `expect PATH OP VALUE` line (also under `@PID`), not `expect fails`."""
    words = line.split()
    if words and words[0].startswith("@"):
        words = words[1:]
    return bool(words) and words[0] == "expect" and words[1:2] != ["fails"]


class SimModel:
    """The simulator as the generator asks it: run a line, read a path, list processes and regions."""

    def __init__(self) -> None:
        # The invariant checker is left to `kernel diff`'s own simulator run (it takes most of
        # a step's time): a simulator bug shows there as a difference.
        self.session = Session.boot(Config(pmd_swap=False))

    def run(self, line: str) -> StepRecord:
        """Run one line; a refused one leaves the machine as it was (the simulator's contract),
        but for a partial effect the kernel has too (`_partial`)."""
        records: list[StepRecord] = []
        run_text(self.session, line, "fuzz", records.append)
        return records[-1]

    def value(self, path: str, pid: int | None = None) -> int | str | None:
        """What `expect PATH` reads in process pid (default: the current one); None for an error."""
        s = self.session
        saved = s.pid
        try:
            s.pid = s.pid if pid is None else pid
            return evaluate(s, path)
        except (PathError, MmError):
            return None
        finally:
            s.pid = saved

    @property
    def pid(self) -> int:
        return self.session.pid

    def pids(self) -> list[int]:
        return sorted(self.session.kernel.mms)

    def regions(self, pid: int | None = None) -> dict[str, tuple[int, int]]:
        return dict(self.session.names(pid))

    def thp(self) -> str:
        return str(self.session.kernel.config.thp.value)

    def redirtied_lazyfree(self) -> bool:
        """Whether a MADV_FREE folio (not swap-backed) is mapped by a dirty PTE or PMD: written
        again after the advice, so that reclaim makes it swap-backed again and activates it."""
        mem = self.session.kernel.mem
        for mm in self.session.kernel.mms.values():
            for pmd in mm.pmds.values():
                if pmd.kind is PmdKind.HUGE:
                    if pmd.flags & F_DIRTY and not mem.test(pmd.pfn, PG.SWAPBACKED):
                        return True
                elif pmd.kind is PmdKind.TABLE:
                    for pte in pmd_pgtable(pmd).ptes:
                        if (pte & F_DIRTY and pte_present(pte) and not pte & F_SPECIAL
                                and not mem.test(mem.folio_of(pte_pfn(pte)), PG.SWAPBACKED)):
                            return True
        return False

    def swap_fills_at_reclaim(self) -> bool:
        """Whether `reclaim` would take the last free swap slot: a device is on, has free slots,
        and the swap-backed folios not yet in the swap cache need at least as many."""
        k = self.session.kernel
        free = get_nr_swap_pages(k)
        if not free:
            return False
        mem = k.mem
        need = sum(mem.nr_pages(pfn) for pfn in k.lru.oldest_first()
                   if mem.test(pfn, PG.SWAPBACKED) and not mem.test(pfn, PG.SWAPCACHE))
        return need >= free

    def uffd_armed(self, pid: int, start: int, end: int) -> bool:
        """Whether a VMA of [start, end) in pid is registered with a userfaultfd (missing mode)."""
        mm = self.session.kernel.mms.get(pid)
        return mm is not None and any(v.flags & VM.UFFD_MISSING for v in mm.vmas_in(start, end))


def size_text(n: int) -> str:
    return format_size(n)


class Generator:
    """Makes one script from its seed (see the module's docstring)."""

    def __init__(self, seed: str, steps: int = DEFAULT_STEPS) -> None:
        self.rng = random.Random(seed)
        self.script = Script(seed)
        self.sim = SimModel()
        self.steps = max(MIN_STEPS, min(steps, MAX_STEPS))
        self.serial = 0
        self.devices: dict[str, str] = {}        # active device name -> kind
        self.device_serial = 0
        self.thp_never = False
        self.stopped = False
        self.budget = 0                          # set by generate()

    # -- the script ------------------------------------------------------------------------------
    def generate(self) -> Script:
        for line in HEADER:
            self._try(_constant(line))
        # Commands after the header, the final `check` included: MIN_STEPS .. steps.
        self.budget = self.rng.randint(MIN_STEPS, self.steps) - 1
        if self.rng.random() < 0.85:
            self._try(self._swapon)
        self._try(self._mmap)
        for _ in range(4 * self.steps):
            if self.stopped or self._left() <= 0:
                break
            self._step()
        if not self.stopped:
            self._try(lambda: "check")
            self._observe(final=True)
        return self.script

    def _step(self) -> bool:
        """One command, tried up to a few times until the simulator accepts one."""
        makers = self._makers()
        names = [m[0] for m in makers]
        weights = [m[1] for m in makers]
        for _ in range(6):
            maker = makers[names.index(self.rng.choices(names, weights)[0])][2]
            if self._try(maker):
                return True
            if self.stopped:
                return False
        return False

    def _left(self) -> int:
        """Commands the script may still have before its final `check`."""
        return self.budget - (self.script.commands - len(HEADER))

    def _try(self, maker: Callable[[], str | list[str] | None]) -> bool:
        made = maker()
        if made is None:
            return False
        lines = [made] if isinstance(made, str) else made
        if self.budget and len(lines) > self._left():
            return False
        for i, line in enumerate(lines):
            self.script.tries += 1
            rec = self.sim.run(line)
            if rec.kind == "bug":
                # A simulator bug (an invariant broke): the script ends here, the kernel will not.
                self._keep(line)
                self.stopped = True
                return True
            if rec.kind == "refused":
                self.script.refused_tries += 1
                if _partial(rec) or (i == len(lines) - 1 and self.rng.random() < 0.2
                                     and _may_expect_refusal(rec)):
                    # a refusal with a partial effect (madvise or mprotect over a hole, a uffd
                    # move that stops part-way) changed the simulator: the script keeps it
                    self._keep(f"expect fails {line}")
                    return True
                return i > 0
            self._keep(line)
            self._track(line)
            if _inner_name(line) not in LOOKING:
                self._observe(line)
        return True

    def _track(self, line: str) -> None:
        """What the generator remembers of an accepted line: the active devices, `thp never`."""
        words = line.split()
        if words[0] == "swapon":
            self.devices[words[1]] = words[words.index("kind") + 1]
        elif words[0] == "swapoff":
            self.devices.pop(words[1], None)
        elif words[:3] == ["set", "thp", "never"]:
            self.thp_never = True

    def _keep(self, line: str) -> None:
        self.script.lines.append(line)

    def _makers(self) -> list[tuple[str, float, Callable[[], str | list[str] | None]]]:
        pids = self.sim.pids()
        have_regions = bool(self.sim.regions())
        out: list[tuple[str, float, Callable[[], str | list[str] | None]]] = [
            ("mmap", 8 if len(self.sim.regions()) < 6 else 1, self._mmap),
            ("swapon", 3 if len(self.devices) < MAX_DEVICES else 0, self._swapon),
            ("set", 3, self._set),
            ("reclaim", 4 if self._reclaim_modelled() else 0, self._reclaim),
            ("khugepaged", 2 if self.sim.thp() != "always" else 0, lambda: "khugepaged"),
        ]
        if have_regions:
            out += [("touch", 18, self._touch), ("madvise", 16, self._madvise),
                    ("mprotect", 3, self._mprotect), ("munmap", 3, self._munmap), ("mremap", 4, self._mremap),
                    ("uffd", 4, self._uffd), ("check", 3, self._check),
                    ("fork", 3 if len(pids) < MAX_PROCESSES else 0, lambda: "fork")]
        if len(pids) > 1:
            out += [("at", 5, self._at), ("switch", 2, self._switch), ("exit", 2, self._exit)]
        if self.devices:
            out.append(("swapoff", 2, self._swapoff))
        return [m for m in out if m[1] > 0]

    # -- words ---------------------------------------------------------------------------------
    def _name(self) -> str:
        self.serial += 1
        n = self.serial - 1
        return "abcdefghijklmnopqrstuvwxyz"[n] if n < 26 else f"r{n}"

    def _region(self, pid: int | None = None) -> tuple[str, int, int] | None:
        regions = self.sim.regions(pid)
        if not regions:
            return None
        name = self.rng.choice(sorted(regions))
        start, length = regions[name]
        return name, start, length

    def _range(self, pid: int | None = None, whole: float = 0.35) -> tuple[str, int, int] | None:
        """A range of one of pid's regions as text, and its (start, length)."""
        r = self._region(pid)
        if r is None:
            return None
        name, start, length = r
        if self.rng.random() < whole:
            return name, start, length
        pages = length // PAGE
        if length >= HPAGE and self.rng.random() < 0.4:
            off = self.rng.randrange(length // HPAGE) * HPAGE
            ln = min(HPAGE, length - off)
        else:
            off = self.rng.choice([0, 0, PAGE * self.rng.randrange(pages), (length // 2) & ~(PAGE - 1),
                                   min(M, length - PAGE)])
            rest = length - off
            ln = min(rest, self.rng.choice([PAGE, 4 * PAGE, 16 * PAGE, M, HPAGE, rest, rest]))
        ln = max(PAGE, ln & ~(PAGE - 1))
        text = name if off == 0 else f"{name}+{format_offset(off)}"
        return f"{text}:{size_text(ln)}", start + off, ln

    def _populated(self, rng_text: str, length: int, pid: int | None = None) -> bool:
        """Every page of the range is present or swapped (so no access raises a userfault)."""
        present = self.sim.value(f"pagemap.{rng_text}:{size_text(length)}.present" if ":" not in rng_text
                                 else f"pagemap.{rng_text}.present", pid)
        swapped = self.sim.value(f"pagemap.{rng_text}:{size_text(length)}.swapped" if ":" not in rng_text
                                 else f"pagemap.{rng_text}.swapped", pid)
        return isinstance(present, int) and isinstance(swapped, int) and present + swapped == length // PAGE

    def _accessible(self, rng_text: str, start: int, length: int, pid: int | None = None) -> bool:
        p = self.sim.pid if pid is None else pid
        return not self.sim.uffd_armed(p, start, start + length) or self._populated(rng_text, length, pid)

    def _mapped(self, pid: int | None = None) -> int:
        return sum(n for _, n in self.sim.regions(pid).values())

    # -- commands ------------------------------------------------------------------------------
    def _mmap(self) -> str | list[str] | None:
        size = self.rng.choice(SIZES)
        if self._mapped() + size > MAX_MAPPED_PER_PROCESS:
            return None
        name = self._name()
        text = f"mmap {name} {size_text(size)}"
        roll = self.rng.random()
        if roll < 0.04:
            text += " prot r"
        elif roll < 0.07:
            text += " prot none"
        roll = self.rng.random()
        text += " hugepage" if roll < 0.55 else " nohugepage" if roll < 0.65 else ""
        roll = self.rng.random()
        if roll < 0.08:
            text += f" at {self._free_address(size):#x}"
        elif roll < 0.16:
            r = self._region()
            if r is not None:      # just below another region: the two VMAs may merge
                text += f" at {r[1] - ((size + PAGE - 1) & ~(PAGE - 1)):#x}"
        if " prot " not in text and self.rng.random() < 0.6:     # most mappings are written at once
            return [text, f"touch {name}"]
        return text

    def _free_address(self, size: int) -> int:
        base = AT_WINDOW + self.rng.randrange(64) * 16 * M
        return base + (PAGE * self.rng.randrange(1, 8) if self.rng.random() < 0.3 else 0)

    def _touch(self) -> str | None:
        r = self._range()
        if r is None or not self._accessible(*r):
            return None
        return f"touch {r[0]}" + (" read" if self.rng.random() < 0.35 else "")

    def _check(self) -> str | None:
        """`check RANGE`; `check` of everything comes only last (see the module's docstring)."""
        r = self._range()
        if r is None or not self._accessible(*r):
            return None
        return f"check {r[0]}"

    def _madvise(self) -> str | None:
        r = self._range()
        if r is None:
            return None
        advice = self.rng.choices([a for a, _ in ADVICES], [w for _, w in ADVICES])[0]
        return f"madvise {r[0]} {advice}"

    def _mprotect(self) -> str | None:
        r = self._range()
        if r is None:
            return None
        return f"mprotect {r[0]} {self.rng.choice(('r', 'rw', 'rw', 'none'))}"

    def _munmap(self) -> str | None:
        r = self._range(whole=0.15)
        return None if r is None else f"munmap {r[0]}"

    def _mremap(self) -> str | None:
        r = self._range(whole=0.5)
        if r is None:
            return None
        text = f"mremap {r[0]} {self._name()}"
        roll = self.rng.random()
        new = r[2]
        if roll < 0.3:
            new = self.rng.choice([PAGE, M, HPAGE, 2 * HPAGE, r[2] // 2 or PAGE, r[2] + HPAGE])
            text += f" size {size_text(new)}"
        if self._mapped() + max(0, new - r[2]) > MAX_MAPPED_PER_PROCESS:
            return None
        if self.rng.random() < 0.3:
            text += f" at {self._free_address(new):#x}"
        return text

    def _uffd(self) -> str | list[str] | None:
        """UFFDIO_MOVE into a registered region (made and registered first when there is none)."""
        regions = self.sim.regions()
        pid = self.sim.pid
        registered = [n for n, (s, ln) in sorted(regions.items()) if self.sim.uffd_armed(pid, s, s + ln)]
        sources = [n for n in sorted(regions) if n not in registered]
        if not registered or self.rng.random() < 0.2:
            size = self.rng.choice([2 * M, 4 * M, M])
            if self._mapped() + size > MAX_MAPPED_PER_PROCESS:
                return None
            name = self._name()
            return [f"mmap {name} {size_text(size)}" + (" hugepage" if self.rng.random() < 0.6 else ""),
                    f"uffd register {name}"]
        if not sources:
            return None
        dst = self.rng.choice(registered)
        dstart, dlen = regions[dst]
        src = self.rng.choice(sources)
        sstart, slen = regions[src]
        if self.rng.random() < 0.4 and slen >= HPAGE and dlen >= HPAGE:
            soff = self.rng.randrange(slen // HPAGE) * HPAGE
            ln = HPAGE
        else:
            soff = PAGE * self.rng.randrange(slen // PAGE)
            ln = min(slen - soff, self.rng.choice([PAGE, 4 * PAGE, 64 * K, M, HPAGE]))
        ln = min(ln, dlen)
        doff = self.rng.choice([0, 0, PAGE, 64 * K, M, HPAGE])
        doff = doff if doff + ln <= dlen else 0
        s_text = src if soff == 0 else f"{src}+{format_offset(soff)}"
        d_text = dst if doff == 0 else f"{dst}+{format_offset(doff)}"
        return f"uffd move {s_text}:{size_text(ln)} {d_text}"

    def _at(self) -> str | None:
        others = [p for p in self.sim.pids() if p != self.sim.pid]
        pid = self.rng.choice(others)
        r = self._range(pid)
        if r is None:
            return None
        what = self.rng.choice(("touch", "touch", "read", "pageout", "dontneed", "munmap", "check", "fork"))
        if what in ("touch", "read", "check") and not self._accessible(*r, pid=pid):
            return None
        if what == "fork" and len(self.sim.pids()) >= MAX_PROCESSES:
            return None
        inner = {"touch": f"touch {r[0]}", "read": f"touch {r[0]} read", "pageout": f"madvise {r[0]} pageout",
                 "dontneed": f"madvise {r[0]} dontneed", "munmap": f"munmap {r[0]}", "check": f"check {r[0]}",
                 "fork": "fork"}[what]
        return f"@{pid} {inner}"

    def _switch(self) -> str:
        return f"switch {self.rng.choice([p for p in self.sim.pids() if p != self.sim.pid])}"

    def _exit(self) -> str | None:
        others = [p for p in self.sim.pids() if p != 1]
        if not others:
            return None
        pid = self.rng.choice(others)
        return "exit" if pid == self.sim.pid and self.rng.random() < 0.5 else f"exit {pid}"

    def _swapon(self) -> str:
        kind = self.rng.choices(("zram", "disk", "file"), (6, 3, 1))[0]
        name = f"{kind[0]}{self.device_serial}"
        self.device_serial += 1
        size = self.rng.choice((64 * M, 64 * M, 32 * M, 16 * M, 4 * M))
        text = f"swapon {name} {size_text(size)} kind {kind}"
        if self.rng.random() < 0.2:
            text += f" prio {self.rng.choice((-1, 0, 5, 10))}"
        return text

    def _swapoff(self) -> str:
        return f"swapoff {self.rng.choice(sorted(self.devices))}"

    def _reclaim(self) -> str:
        return "reclaim"

    def _reclaim_modelled(self) -> bool:
        """Not while an underused THP could be split or swapped out whole (max_ptes_none below
        511 and a swap device): the kernel's choice depends on its reclaim priorities; nor
        while a MADV_FREE folio was written again, nor when the swap space would fill (see the
        module's docstring)."""
        if self.sim.session.kernel.config.max_ptes_none != 511 and self.devices:
            return False
        return not self.sim.redirtied_lazyfree() and not self.sim.swap_fills_at_reclaim()

    def _set(self) -> str:
        what = self.rng.choices(("thp", "max_ptes_none", "max_ptes_swap", "max_ptes_shared", "use_zero_page",
                                 "zswap"), (4, 2, 2, 1, 1, 1))[0]
        if what == "thp":
            if self.thp_never:
                return "set thp never"
            value = self.rng.choice(("always", "madvise", "madvise", "never"))
            return f"set thp {value}"
        if what == "use_zero_page":
            return f"set use_zero_page {self.rng.choice(('on', 'off'))}"
        if what == "zswap":
            return f"set zswap {self.rng.choice(('on', 'off', 'off'))}"
        values = {"max_ptes_none": (0, 64, 511, 511), "max_ptes_swap": (0, 8, 64, 511),
                  "max_ptes_shared": (0, 256, 511)}[what]
        return f"set {what} {self.rng.choice(values)}"

    # -- expectations --------------------------------------------------------------------------
    def _observe(self, line: str = "", final: bool = False) -> None:
        """Keep `expect PATH == VALUE` lines of what the simulator shows now."""
        if not final and self.rng.random() < 0.25:
            return
        paths = self._paths(line)
        count = len(paths) if final else self.rng.randint(1, 3)
        chosen = paths if final else self.rng.sample(paths, min(count, len(paths)))
        for pid, path in chosen:
            value = self.sim.value(path, pid)
            if value is None:
                continue
            prefix = f"@{pid} " if pid != self.sim.pid else ""
            self._keep(f"{prefix}expect {path} == {value}")

    def _paths(self, line: str) -> list[tuple[int, str]]:
        """Observable paths worth reading after `line`: of the regions it names first."""
        pid = self.sim.pid
        words = line.replace(":", " ").replace("+", " ").split()
        regions = self.sim.regions()
        named = [n for n in sorted(regions) if n in words]
        pool = named or sorted(regions)
        out: list[tuple[int, str]] = []
        for name in pool[:3]:
            start, length = regions[name]
            out.append((pid, f"smaps.{name}.{self.rng.choice(SMAPS)}"))
            out.append((pid, f"pagemap.{name}:{size_text(length)}.{self.rng.choice(PAGEMAP_COUNTS)}"))
            block = self.rng.randrange(max(1, length // HPAGE))
            out.append((pid, f"pmd.{name}" + (f"+{format_offset(block * HPAGE)}" if block else "")))
            page = PAGE * self.rng.randrange(length // PAGE or 1)
            where = name if page == 0 else f"{name}+{format_offset(page)}"
            out.append((pid, f"pte.{where}"))
            if self.sim.value(f"pagemap.{where}.swapped") == 1:
                out.append((pid, f"pagemap.{where}.swap_type"))
        for dev in sorted(self.devices):
            out.append((pid, f"swap.{dev}.used"))
        others = [p for p in self.sim.pids() if p != pid]
        if others:
            other = self.rng.choice(others)
            r = self._region(other)
            if r is not None:
                out.append((other, f"smaps.{r[0]}.{self.rng.choice(SMAPS)}"))
        return out


def _constant(line: str) -> Callable[[], str]:
    return lambda: line


def _inner_name(line: str) -> str:
    words = line.split()
    if words and words[0].startswith("@"):
        words = words[1:]
    if words[:2] == ["expect", "fails"]:
        return "expect_fails"
    return words[0] if words else ""


def _partial(rec: StepRecord) -> bool:
    """A refusal after a partial effect the kernel has too (mm/errors.py: its message says what
    was changed, "..., as the kernel does")."""
    return "as the kernel does)" in (rec.error or "")


def _may_expect_refusal(rec: StepRecord) -> bool:
    """A refusal worth asking the kernel for: one in the kernel's terms, not one of the
    simulation's own limits."""
    error = rec.error or ""
    return "simulation" not in error and "not simulated" not in error


def generate(seed: str, steps: int = DEFAULT_STEPS) -> Script:
    """The script for `seed` (e.g. `7:12`, the 12th script of seed 7)."""
    return Generator(seed, steps).generate()
