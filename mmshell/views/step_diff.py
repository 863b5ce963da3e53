"""What a step changed, at the finest grain: PTEs, swap slots, VMAs.

A step summary names what changed, not the whole of what it changed in:

- `pte_diff`: of a PTE table that stayed a table, only the PTEs whose entry changed,
  found by merging the two tables' runs (each run is one entry sliding by one pfn or
  slot per index, so a piece where both sides are one run is changed throughout or not
  at all); `pte_changes` pairs them, one line per run (`PTE 3: swap s0 slot 0x203 excl
  → present pfn 0x1 W excl`, `PTEs 16-18: …`);
- `slot_changes`: the swap slots whose count or cache bit changed, each range once
  (`slot 0x203: count 1 → free`), from the swap_map runs before and after;
- `vma_changes`: VMAs mapped, unmapped, or with other permissions or flags (mmap,
  munmap, mprotect, madvise hugepage, uffd register), by (start, end).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .describe import PmdDesc, PteRun
from .fmt import slots_text
from .fold import PmdGroup

#: swap_map runs as (first, last, count, cache), as a step Digest keeps them.
SlotRun = tuple[int, int, int, bool]
#: A VMA as a step Digest keeps it: (start, end) -> "perms flags".
VmaKey = tuple[int, int]


def _part(run: PteRun, lo: int, hi: int) -> PteRun:
    """PTEs lo..hi of run (its base slid to lo where it slides)."""
    return PteRun(lo, hi, run.kind, run.base + (lo - run.lo) if run.slides else run.base, run.dev, run.flags)


def _joins(a: PteRun, b: PteRun) -> bool:
    """Whether b continues a as one run (the next index, the same entry sliding on)."""
    return (b.lo == a.hi + 1 and (a.kind, a.dev, a.flags) == (b.kind, b.dev, b.flags)
            and (b.base == a.base + a.n if a.slides else b.base == a.base))


def _joined(pairs: list[tuple[PteRun, PteRun]]) -> tuple[tuple[PteRun, ...], tuple[PteRun, ...]]:
    """Changed pieces (old, new) joined where both sides continue, so that run j of the old
    PTEs and run j of the new cover the same indices (`PTEs 0-2: old → new`)."""
    olds: list[PteRun] = []
    news: list[PteRun] = []
    for a, b in pairs:
        if olds and _joins(olds[-1], a) and _joins(news[-1], b):
            olds[-1] = PteRun(olds[-1].lo, a.hi, olds[-1].kind, olds[-1].base, olds[-1].dev, olds[-1].flags)
            news[-1] = PteRun(news[-1].lo, b.hi, news[-1].kind, news[-1].base, news[-1].dev, news[-1].flags)
        else:
            olds.append(a)
            news.append(b)
    return tuple(olds), tuple(news)


def pte_diff(old: PmdDesc, new: PmdDesc) -> tuple[PmdDesc, PmdDesc]:
    """Of two descriptions of one PTE table, the PTEs that differ, old and new, as `ptes`
    descriptions (`PTE 3: ...`), run j of one over the same indices as run j of the other;
    both empty when the tables are alike."""
    pairs: list[tuple[PteRun, PteRun]] = []
    bounds = sorted({r.lo for r in old.runs} | {r.lo for r in new.runs} | {old.runs[-1].hi + 1})
    i = j = 0
    for lo, nxt in zip(bounds, bounds[1:]):
        while old.runs[i].hi < lo:
            i += 1
        while new.runs[j].hi < lo:
            j += 1
        a, b = _part(old.runs[i], lo, nxt - 1), _part(new.runs[j], lo, nxt - 1)
        if a != b:
            pairs.append((a, b))
    olds, news = _joined(pairs)
    return PmdDesc("ptes", "", olds), PmdDesc("ptes", "", news)


def pte_changes(old: PmdGroup, new: PmdGroup) -> list[dict]:
    """The changed PTEs of a PTE-level change (the `ptes` descriptions pte_diff gave, folded
    over neighbouring tables as `show pt` folds them): [{"first", "last", "old", "new"}],
    old/new the entries without their indices (`swap s0 slot 0x203 excl`)."""
    ob, nb = old.bases, new.bases
    return [{"first": a.lo, "last": a.hi, "old": a.body(ob[j] if ob else None), "new": b.body(nb[j] if nb else None)}
            for j, (a, b) in enumerate(zip(old.descs[0].runs, new.descs[0].runs))]


def pte_change_text(c: dict) -> str:
    """`PTE 3: swap s0 slot 0x203 excl → present pfn 0x1 W excl`, `PTEs 0-2: …`."""
    idx = f"PTE {c['first']}" if c["first"] == c["last"] else f"PTEs {c['first']}-{c['last']}"
    return f"{idx}: {c['old']} → {c['new']}"


def slot_changes(before: Sequence[SlotRun], after: Sequence[SlotRun]) -> list[dict]:
    """The slots whose (count, cache) changed: [{"first", "last", "old", "new"}], old/new
    {"count", "cache"} or None for a free slot; like neighbours folded into one range."""
    bounds = sorted({r[0] for r in before} | {r[1] + 1 for r in before} | {r[0] for r in after}
                    | {r[1] + 1 for r in after})
    runs_b, runs_a = sorted(before), sorted(after)
    out: list[dict] = []
    ib = ia = 0
    for lo, nxt in zip(bounds, bounds[1:]):
        while ib < len(runs_b) and runs_b[ib][1] < lo:
            ib += 1
        while ia < len(runs_a) and runs_a[ia][1] < lo:
            ia += 1
        old = _state(runs_b, ib, lo)
        new = _state(runs_a, ia, lo)
        if old == new:
            continue
        prev = out[-1] if out else None
        if prev is not None and prev["last"] == lo - 1 and (prev["old"], prev["new"]) == (old, new):
            prev["last"] = nxt - 1
        else:
            out.append({"first": lo, "last": nxt - 1, "old": old, "new": new})
    return out


def _state(runs: Sequence[SlotRun], i: int, slot: int) -> dict | None:
    if i < len(runs) and runs[i][0] <= slot <= runs[i][1]:
        return {"count": runs[i][2], "cache": runs[i][3]}
    return None


def slot_state_text(state: dict | None) -> str:
    """`free`, `count 1`, `count 0 +cache`."""
    if state is None:
        return "free"
    return f"count {state['count']}" + (" +cache" if state["cache"] else "")


def slot_change_text(c: dict) -> str:
    """`slot 0x203: count 1 → free`."""
    return f"{slots_text(c['first'], c['last'])}: {slot_state_text(c['old'])} → {slot_state_text(c['new'])}"


def vma_changes(before: Mapping[VmaKey, str], after: Mapping[VmaKey, str]) -> list[dict]:
    """VMAs unmapped, mapped or changed, in address order: [{"start", "end", "old", "new"}],
    old/new the VMA's "perms flags" or None where there is no such VMA."""
    out = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old != new:
            out.append({"start": key[0], "end": key[1], "old": old, "new": new})
    return out
