"""What a step changed at the finest grain: PTEs, swap slots and VMAs, not whole descriptions.

A step that maps one page of a 512-entry table changed one PTE: `pte_changes`
gives that PTE (index, old -> new) from the two tables' runs, merged into runs
where old and new both continue (`PTEs 0-2: swap z slots 0x200-0x202 excl ->
present pfn 0x1..0x3 W excl`).  `slot_changes` does the same for swap_map:
one freed slot is that slot (`slot 0x201: count 1 -> free`), not three runs
replaced.  `vma_changes` lists the VMAs that appeared, went or changed flags
(mmap, munmap, mprotect, uffd register), which leave no trace in a page table.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from mmshell.mm.vma import VM

from .describe import PTRS, PmdDesc, PteRun
from .fmt import slots_text

#: A page's entry as a comparable key: kind, device, flags, number (pfn or offset; 0 when none).
_Key = tuple[str, str, tuple[str, ...], int]


def _keys(desc: PmdDesc) -> list[_Key]:
    out: list[_Key] = [("none", "", (), 0)] * PTRS
    for r in desc.runs:
        for i in range(r.lo, r.hi + 1):
            out[i] = (r.kind, r.dev, r.flags, r.base + (i - r.lo) if r.slides else r.base)
    return out


def _continues(a: _Key, b: _Key) -> bool:
    """Whether entry b can follow entry a in one run (same kind and flags, numbers sliding)."""
    if a[:3] != b[:3]:
        return False
    return b[3] == a[3] + 1 if a[0] in ("present", "swap") else b[3] == a[3]


def pte_changes(old: PmdDesc, new: PmdDesc) -> list[tuple[PteRun, PteRun]] | None:
    """The PTEs that differ between two PTE tables, as (old run, new run) pairs over the same
    indices; None unless both are tables."""
    if old.kind != "table" or new.kind != "table":
        return None
    a, b = _keys(old), _keys(new)
    out: list[list[int]] = []
    for i in range(PTRS):
        if a[i] == b[i]:
            continue
        if out and out[-1][1] == i - 1 and _continues(a[i - 1], a[i]) and _continues(b[i - 1], b[i]):
            out[-1][1] = i
        else:
            out.append([i, i])
    return [(PteRun(lo, hi, a[lo][0], a[lo][3], a[lo][1], a[lo][2]),
             PteRun(lo, hi, b[lo][0], b[lo][3], b[lo][1], b[lo][2])) for lo, hi in out]


def pte_change_text(old: PteRun, new: PteRun) -> str:
    """`PTE 1: swap z slot 0x201 excl → present pfn 0x1 W excl`, `PTEs 0-2: ...`."""
    idx = f"PTE {old.lo}" if old.lo == old.hi else f"PTEs {old.lo}-{old.hi}"
    return f"{idx}: {old.body()} → {new.body()}"


#: A swap_map run as the step digest keeps it: (first, last, count, cache).
Run = tuple[int, int, int, bool]


def _value(runs: Sequence[Run], firsts: list[int], slot: int) -> tuple[int, bool] | None:
    i = bisect_right(firsts, slot) - 1
    if i >= 0 and slot <= runs[i][1]:
        return runs[i][2], runs[i][3]
    return None


def slot_state(v: tuple[int, bool] | None) -> str:
    """`free`, `count 1`, `count 0 +cache`."""
    if v is None:
        return "free"
    return f"count {v[0]}" + (" +cache" if v[1] else "")


def slot_changes(before: Sequence[Run], after: Sequence[Run]) -> list[tuple[int, int, str, str]]:
    """(first, last, old, new) of the slot ranges whose count or cache bit changed, merged
    where the change is alike; found from the runs' boundaries, never slot by slot."""
    b_set, a_set = set(before), set(after)
    changed = [r for r in before if r not in a_set] + [r for r in after if r not in b_set]
    if not changed:
        return []
    lo, hi = min(r[0] for r in changed), max(r[1] for r in changed) + 1
    b_runs, a_runs = sorted(before), sorted(after)
    b_firsts, a_firsts = [r[0] for r in b_runs], [r[0] for r in a_runs]
    points = sorted({lo, hi} | {p for r in (*b_runs, *a_runs) for p in (r[0], r[1] + 1) if lo < p < hi})
    out: list[tuple[int, int, str, str]] = []
    for p, q in zip(points, points[1:]):
        old, new = slot_state(_value(b_runs, b_firsts, p)), slot_state(_value(a_runs, a_firsts, p))
        if old == new:
            continue
        if out and out[-1][1] == p - 1 and out[-1][2:] == (old, new):
            out[-1] = (out[-1][0], q - 1, old, new)
        else:
            out.append((p, q - 1, old, new))
    return out


def slot_change_text(first: int, last: int, old: str, new: str) -> str:
    return f"{slots_text(first, last)}: {old} → {new}"


#: A VMA as the step digest keeps it: (start, end, vm_flags).
Vma = tuple[int, int, int]


def vma_words(flags: int) -> str:
    """`rw-p`, with `hugepage`, `nohugepage`, `uffd` where set."""
    f = VM(flags)
    words = [("r" if f & VM.READ else "-") + ("w" if f & VM.WRITE else "-") + "-p"]
    words += [w for w, bit in (("hugepage", VM.HUGEPAGE), ("nohugepage", VM.NOHUGEPAGE),
                               ("uffd", VM.UFFD_MISSING)) if f & bit]
    return " ".join(words)


def vma_changes(before: Sequence[Vma], after: Sequence[Vma]) -> list[tuple[str, Vma]]:
    """("+", vma) for each VMA that is new or changed, ("-", vma) for each gone or changed, in
    address order."""
    b, a = set(before), set(after)
    out = [("-", v) for v in before if v not in a] + [("+", v) for v in after if v not in b]
    return sorted(out, key=lambda x: (x[1][0], x[0] == "+"))
