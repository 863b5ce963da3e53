"""What one step changed: a `Digest` of the machine before and after, and the view of their difference.

`digest(k)` records, per process, its VMAs and every non-none PMD slot as the
`PmdDesc` `show pt` prints (PTE tables folded into runs with C-level slice
work, so a GiB of 512 tables digests in milliseconds), per swap device the used
count and swap_map runs, the counters, and the simulator's own counts.
`StepView(before, after)` shows what changed at the finest grain (step_diff.py):
the PTEs of a table that changed (`PTE 3: old → new`), or the whole PMD slot
where its kind changed (old -> new, neighbours folded as in `show pt`); the VMAs
mapped, unmapped or changed; per swap device its use and the slots that changed
(`slot 0x203: count 1 → free`); and the counter deltas (`thp_swpout +1`,
`pswpout +512`, mthp `swpout +1`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.text import Text

from mmshell.lang.counters import is_key
from mmshell.mm.constants import PMD_SHIFT
from mmshell.mm.task_mmu import vmstat_snapshot

from .describe import NONE, PmdDesc, describe_pmd
from .fold import PmdGroup, Spans, VmaIndex
from .fmt import AddrNamer, Names, fmt_size
from .step_diff import pte_change_text, pte_changes, pte_diff, slot_change_text, slot_changes, vma_changes
from .swap import swap_map_runs
from .vmas import vma_flag_words
from .walks import sim_counts
from .widgets import Packed, Trimmed, cell, view_table

if TYPE_CHECKING:
    from mmshell.mm.kernel import Kernel

#: swap_map run changes listed per device before the rest are summarised.
MAX_SWAP_LINES = 8


@dataclass(frozen=True, slots=True)
class DeviceDigest:
    """One swap device: slots in use and its swap_map runs as (first, last, count, cache)."""

    used: int
    runs: tuple[tuple[int, int, int, bool], ...]


@dataclass(slots=True)
class Digest:
    """The observable state a step can change, compact enough to take before and after every step."""

    pmds: dict[int, dict[int, PmdDesc]] = field(default_factory=dict)
    swap: dict[str, DeviceDigest] = field(default_factory=dict)
    vmstat: dict[str, int] = field(default_factory=dict)
    mthp: dict[str, int] = field(default_factory=dict)
    vmas: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    sim: dict[str, int] = field(default_factory=dict)     # walks.sim_counts: the simulator's own
    vma_text: dict[int, dict[tuple[int, int], str]] = field(default_factory=dict)   # "perms flags"
    #: digest_cache.py numbers the digests it makes (`serial`); `touched` holds the pids whose
    #: parts may differ from those of digest number `base` (every other pid's are the same objects).
    serial: int = field(default=0, compare=False)
    base: int = field(default=-1, compare=False)
    touched: frozenset[int] = field(default=frozenset(), compare=False)

    def to_json(self) -> dict:
        return {
            "pmds": {str(pid): {str(i): d.text() for i, d in pmds.items()} for pid, pmds in self.pmds.items()},
            "swap": {n: {"used": d.used, "runs": [list(r) for r in d.runs]} for n, d in self.swap.items()},
            "vmstat": dict(self.vmstat),
            "mthp": dict(self.mthp),
        }


def digest(k: "Kernel") -> Digest:
    """Capture the machine's page tables, swap devices and counters."""
    pmds: dict[int, dict[int, PmdDesc]] = {}
    vmas: dict[int, tuple[tuple[int, int], ...]] = {}
    vma_text: dict[int, dict[tuple[int, int], str]] = {}
    for pid in sorted(k.mms):
        vmas[pid], vma_text[pid], pmds[pid] = process_digest(k, k.mms.peek(pid))
    return machine_digest(k, pmds, vmas, vma_text)


def machine_digest(k: "Kernel", pmds: dict[int, dict[int, PmdDesc]], vmas: dict[int, tuple[tuple[int, int], ...]],
                   vma_text: dict[int, dict[tuple[int, int], str]]) -> Digest:
    """The digest of the machine given its processes' parts (process_digest)."""
    return Digest(pmds, swap_digest(k), vmstat_snapshot(k), dict(k.vmstat.mthp), vmas, sim_counts(k), vma_text)


def process_digest(k: "Kernel", mm: Any) -> tuple[tuple[tuple[int, int], ...], dict[tuple[int, int], str],
                                                  dict[int, PmdDesc]]:
    """One process's part of the digest: its VMAs, their "perms flags", its non-none PMD slots."""
    vmas = tuple((v.start, v.end) for v in mm.vmas)
    vma_text = {(v.start, v.end): " ".join([v.flag_string(), *vma_flag_words(v)]) for v in mm.vmas}
    per: dict[int, PmdDesc] = {}
    for idx in sorted(mm.pmds):
        desc = describe_pmd(k, mm.pmds[idx])
        if desc.kind != "none":
            per[idx] = desc
    return vmas, vma_text, per


def swap_digest(k: "Kernel") -> dict[str, DeviceDigest]:
    """Each swap device's used count and swap_map runs, by name."""
    swap = {}
    for si in k.swap_info:
        if si is not None:
            runs = tuple((r["first"], r["last"], r["count"], r["cache"]) for r in swap_map_runs(si))
            swap[si.name] = DeviceDigest(si.inuse_pages, runs)
    return swap


def deltas(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """Counters that changed, in `after`'s order (then ones only `before` has)."""
    out = {}
    for name in [*after, *(n for n in before if n not in after)]:
        d = after.get(name, 0) - before.get(name, 0)
        if d:
            out[name] = d
    return out


@dataclass(slots=True)
class PmdChange:
    """Adjacent PMD slots first..last of one process that changed alike: whole PMD-level
    entries, or (`level` pte) some PTEs of tables that stayed tables."""

    pid: int
    first: int
    last: int
    old: PmdGroup
    new: PmdGroup

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    @property
    def level(self) -> str:
        return "pte" if self.old.descs[0].kind == "ptes" else "pmd"

    def ptes(self) -> list[dict]:
        """A PTE-level change's changed PTEs, one per run ([] for a PMD-level change)."""
        return pte_changes(self.old, self.new) if self.level == "pte" else []

    def lines(self) -> list[str]:
        """The change as the step summary, explain and compare show it: `PTE 3: old → new`
        per changed run of PTEs, or the whole PMD slot `old`, `→ new`."""
        if self.level == "pte":
            return [pte_change_text(p) for p in self.ptes()]
        return [self.old.text(), f"→ {self.new.text()}"]


def pmd_changes(pid: int, before: Mapping[int, PmdDesc], after: Mapping[int, PmdDesc],
                namer: AddrNamer, spans_before: Spans = (), spans_after: Spans = ()) -> list[PmdChange]:
    """The slots whose description differs, folded where old and new both keep one shape,
    one region and one VMA before and after the step.  A table that stays a table is
    described by the PTEs that changed in it (step_diff.pte_diff)."""
    out: list[PmdChange] = []
    key_prev = None
    vmas_before, vmas_after = VmaIndex(spans_before), VmaIndex(spans_after)
    for idx in sorted(set(before) | set(after)):
        old, new = before.get(idx, NONE), after.get(idx, NONE)
        if old == new:
            continue
        if old.kind == new.kind == "table":
            old, new = pte_diff(old, new)
            if not old.runs:            # the same entries, told apart by nothing a view shows
                continue
        hit = namer.region(idx << PMD_SHIFT)
        key = (old.shape, new.shape, hit[0] if hit else None, vmas_before.meeting(idx), vmas_after.meeting(idx))
        last = out[-1] if out else None
        if last is not None and last.last == idx - 1 and key == key_prev:
            last.last = idx
            last.old.last = last.new.last = idx
            last.old.descs.append(old)
            last.new.descs.append(new)
        else:
            out.append(PmdChange(pid, idx, idx, PmdGroup(idx, idx, [old]), PmdGroup(idx, idx, [new])))
        key_prev = key
    return out


class StepView:
    """The difference between two digests.

    `names` labels addresses of every process; `names_by_pid` overrides it per pid.
    to_json(): {"processes": {"new": [pid], "gone": [pid]}, "vmas": [{"pid", "start", "end",
    "old", "new"}] (old/new "perms flags", null where there is no such VMA), "pmds": [{"pid",
    "start", "end" (last byte), "count", "level" (pmd, or pte: old/new are the PTEs that
    changed), "old", "new", and at level pte "ptes": [{"first", "last", "old", "new"}] (one
    per changed run of PTEs, old/new the entries)}], "swap": [{"name", "before", "after",
    "delta", "slots": [{"first", "last", "old", "new"}]}] (old/new {"count", "cache"}, null
    for a free slot), "vmstat": {name: delta}, "mthp": {name: delta}}.  `counters` (`set
    counters`) key leaves the counters that restate another out of the text, not the JSON.
    """

    def __init__(self, before: Digest, after: Digest, names: Names | None = None,
                 names_by_pid: Mapping[int, Names] | None = None, counters: str = "all") -> None:
        self.counters = counters        # `set counters`: key leaves out the ones that restate another
        pids = sorted(after.touched if after.base == before.serial else set(before.pmds) | set(after.pmds))
        self.new_pids = [p for p in pids if p in after.pmds and p not in before.pmds]
        self.gone_pids = [p for p in pids if p in before.pmds and p not in after.pmds]
        self.namers: dict[int, AddrNamer] = {}
        self.changes: list[PmdChange] = []
        for pid in pids:
            if before.pmds.get(pid) is after.pmds.get(pid) is not None:
                continue                # the same part of both digests: untouched (digest_cache.py)
            pid_names = names_by_pid.get(pid, names) if names_by_pid else names
            self.namers[pid] = namer = AddrNamer(pid_names)
            self.changes += pmd_changes(pid, before.pmds.get(pid, {}), after.pmds.get(pid, {}), namer,
                                        before.vmas.get(pid, ()), after.vmas.get(pid, ()))
        # a process that appeared or went is said so once, not VMA by VMA
        self.vmas = [{"pid": pid, **c} for pid in pids if pid in before.vma_text and pid in after.vma_text
                     and before.vma_text[pid] is not after.vma_text[pid]
                     for c in vma_changes(before.vma_text[pid], after.vma_text[pid])]
        self.swap: list[dict[str, Any]] = []
        for name in [*after.swap, *(n for n in before.swap if n not in after.swap)]:
            b, a = before.swap.get(name), after.swap.get(name)
            if a == b:
                continue
            self.swap.append({
                "name": name, "before": b.used if b else None, "after": a.used if a else None,
                "delta": (a.used if a else 0) - (b.used if b else 0),
                "slots": slot_changes(b.runs if b else (), a.runs if a else ()),
            })
        self.vmstat = deltas(before.vmstat, after.vmstat)
        self.mthp = deltas(before.mthp, after.mthp)

    @property
    def empty(self) -> bool:
        return not (self.changes or self.vmas or self.swap or self.vmstat or self.mthp or self.new_pids
                    or self.gone_pids)

    def vma_label(self, v: dict) -> str:
        """A changed VMA's start, named after its region (`a+0x0`), or its address."""
        label = self.namers[v["pid"]].label(v["start"]) if v["pid"] in self.namers else ""
        return label or f"{v['start']:#x}"

    def where(self, c: PmdChange) -> str:
        """Where a change is: `a+0x0`, `a+0x0:4M`, or the address range."""
        start, end = c.first << PMD_SHIFT, (c.last + 1) << PMD_SHIFT
        label = self.namers[c.pid].label(start)
        if c.count == 1:
            return label or f"{start:#x}"
        return f"{label}:{fmt_size(end - start)}" if label else f"{start:#x}-{end - 1:#x}"

    def __rich__(self) -> Trimmed:
        if self.empty:
            return Trimmed(Group(Text("no change", style="dim")))
        parts: list = []
        for what, pids in (("new process", self.new_pids), ("process gone", self.gone_pids)):
            for pid in pids:
                parts.append(Text(f"{what}: {pid}"))
        if self.vmas:
            table = view_table("VMAs", "pid", "where", "address", "change")
            for v in self.vmas:
                table.add_row(cell(v["pid"]), cell(self.vma_label(v)), cell(f"{v['start']:#x}-{v['end']:#x}"),
                              cell(f"{v['old'] or 'unmapped'} → {v['new'] or 'unmapped'}"))
            parts.append(table)
        if self.changes:
            table = view_table("page tables", "pid", "where", "PMDs", "change", right=("PMDs",))
            for c in self.changes:
                table.add_row(cell(c.pid), cell(self.where(c)), cell(c.count), cell("\n".join(c.lines())))
            parts.append(table)
        for s in self.swap:
            if s["before"] is None:
                lines = [f"swap {s['name']}: swapon, used {s['after']}"]
            elif s["after"] is None:
                lines = [f"swap {s['name']}: swapoff, was used {s['before']}"]
            else:
                lines = [f"swap {s['name']}: used {s['before']} → {s['after']} ({s['delta']:+d})"]
            runs = [f"  {slot_change_text(c)}" for c in s["slots"]]
            if len(runs) > MAX_SWAP_LINES:
                runs = runs[:MAX_SWAP_LINES - 1] + [f"  … {len(runs) - MAX_SWAP_LINES + 1} more"]
            parts.append(Text("\n".join(lines + runs)))
        for family, moved in (("vmstat", self.vmstat), ("mthp", self.mthp)):
            shown = [f"{n} {d:+d}" for n, d in moved.items() if self.counters == "all" or is_key(family, n)]
            if shown:
                parts.append(Packed(f"{family}: ", shown))
        return Trimmed(Group(*parts))

    def to_json(self) -> dict:
        pmds = [{"pid": c.pid, "start": c.first << PMD_SHIFT, "end": ((c.last + 1) << PMD_SHIFT) - 1,
                 "count": c.count, "level": c.level, "old": c.old.text(), "new": c.new.text(),
                 **({"ptes": c.ptes()} if c.level == "pte" else {})}
                for c in self.changes]
        return {"processes": {"new": self.new_pids, "gone": self.gone_pids}, "vmas": self.vmas, "pmds": pmds,
                "swap": self.swap, "vmstat": self.vmstat, "mthp": self.mthp}
