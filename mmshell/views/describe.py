"""What one PMD slot holds, as a small comparable value (shared by `show pt` and steps).

`describe_pmd(k, pmd)` gives a `PmdDesc`: the contract's word for the slot
(none / table / huge / swap / migration) and its entries as `PteRun`s.  A PTE
table's 512 words are folded into runs of like entries: a run continues while
the kind and flags are equal and the pfns (or swap offsets) are consecutive.
Runs are found with C-level slice comparisons (`fmt.fold_words`) and the page
flags of present runs are read as byte strings, so describing a table costs a
handful of C calls, not 512 Python steps.

Two PMDs have the same `shape` when they differ only in the sliding numbers
(pfn, swap offset): `fold.fold_pmds` groups such neighbours into one row.
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from mmshell.mm import pte_masks as bm
from mmshell.mm.folio import PG
from mmshell.mm.pgtable import (F_DIRTY, F_SOFT_DIRTY, F_SPECIAL, F_SWP_EXCLUSIVE, F_UFFD_WP, F_WRITE, KIND_MASK,
                                KIND_PRESENT, KIND_SWAP, PFN_SHIFT, SWP_OFFSET_SHIFT, Pmd, PmdKind, pte_swp_type)

from .fmt import byte_runs, device_name, fold_words, hex_range, slot_range

if TYPE_CHECKING:
    from mmshell.mm.kernel import Kernel

PTRS = 512


@dataclass(frozen=True, slots=True)
class PteRun:
    """PTE indices lo..hi (inclusive) holding like entries.

    kind: none, present, zero (the shared zero page), swap, or other; `base` is
    the first pfn (present), the first swap offset (swap), else 0.
    """

    lo: int
    hi: int
    kind: str
    base: int = 0
    dev: str = ""
    flags: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return self.hi - self.lo + 1

    @property
    def slides(self) -> bool:
        """Whether `base` is a number that slides from one PMD to the next."""
        return self.kind in ("present", "swap")

    @property
    def shape(self) -> tuple:
        return (self.lo, self.hi, self.kind, self.dev, self.flags, None if self.slides else self.base)

    def numbers(self, bases: list[int] | None = None) -> str:
        """The pfns or swap slots after their word: `pfn 0x200..0x3ff`, `slots 0x200-0x3ff`
        (fmt.hex_range, fmt.slot_range); over several PMDs (bases) folded into one range,
        or the first and last PMD's as `A … B`."""
        fmt = slot_range if self.kind == "swap" else hex_range
        bases = bases or [self.base]
        b0, n = bases[0], self.n
        if len(bases) == 1:
            text = fmt(b0, b0 + n - 1)
        elif n == PTRS and all(b == b0 + PTRS * i for i, b in enumerate(bases)):
            text = fmt(b0, bases[-1] + n - 1)
        else:
            text = f"{fmt(b0, b0 + n - 1)} … {fmt(bases[-1], bases[-1] + n - 1)}"
        if self.kind != "swap":
            return f"pfn {text}"
        return f"slot {text}" if len(bases) == 1 and n == 1 else f"slots {text}"

    def body(self, bases: list[int] | None = None) -> str:
        """The run without its indices: `swap s0 slots 0x200-0x3ff excl`."""
        tail = "".join(" " + f for f in self.flags)
        match self.kind:
            case "present":
                return f"present {self.numbers(bases)}{tail}"
            case "swap":
                return f"swap {self.dev} {self.numbers(bases)}{tail}"
            case "zero":
                return f"zero page{tail}"
            case "other":
                return f"entry {self.base:#x}"
        return f"none{tail}"

    def text(self, bases: list[int] | None = None) -> str:
        """`0-511 swap s0 slots 0x200-0x3ff`, `256-511 none`, `7 present pfn 0x1207 W D`."""
        idx = str(self.lo) if self.lo == self.hi else f"{self.lo}-{self.hi}"
        return f"{idx} {self.body(bases)}"

    def to_json(self) -> dict:
        out: dict = {"first": self.lo, "last": self.hi, "kind": self.kind}
        if self.kind == "present":
            out["pfn"] = self.base
        elif self.kind == "swap":
            out["device"] = self.dev
            out["offset"] = self.base
        elif self.kind == "other":
            out["word"] = self.base
        out["flags"] = list(self.flags)
        return out


@dataclass(frozen=True, slots=True)
class PmdDesc:
    """One PMD slot: `kind` is the contract's word, `label` says more (THP, huge zero page).

    Kind `ptes` is no slot's content but some PTEs of a table, the ones a step changed
    (step_diff.pte_diff): `PTE 3: present pfn 0x1 W excl`."""

    kind: str
    label: str = ""
    runs: tuple[PteRun, ...] = ()

    @property
    def shape(self) -> tuple:
        return (self.kind, self.label, tuple(r.shape for r in self.runs))

    def detail_lines(self, bases: list[list[int]] | None = None) -> list[str]:
        """The detail column: one line per run for a table; `bases[j]` folds run j over PMDs."""
        def b(j: int) -> list[int] | None:
            return bases[j] if bases else None

        if self.kind == "table":
            return [r.text(b(j)) for j, r in enumerate(self.runs)]
        if self.kind == "ptes":
            return [f"PTE {r.lo}: {r.body(b(j))}" if r.n == 1 else f"PTEs {r.lo}-{r.hi}: {r.body(b(j))}"
                    for j, r in enumerate(self.runs)]
        if not self.runs:
            return [self.label] if self.label else []
        r = self.runs[0]
        tail = "".join(" " + f for f in r.flags)
        if self.label == "THP":
            return [f"THP {r.numbers(b(0))}{tail}"]
        if self.kind == "swap":
            return [f"{r.dev} {r.numbers(b(0))}{tail}"]
        return [f"{self.label}{tail}"]

    def text(self, bases: list[list[int]] | None = None) -> str:
        """One line: `swap s0 slots 0x200-0x3ff excl`, `table: 0-255 present ...; 256-511 none`."""
        lines = self.detail_lines(bases)
        if self.kind == "table":
            return "table: " + "; ".join(lines)
        if self.kind == "ptes":
            return "; ".join(lines)
        if self.label == "huge zero page" or self.kind == "none":
            return " ".join(lines) or self.kind
        return f"{self.kind} {' '.join(lines)}".rstrip()

    def to_json(self) -> dict:
        return {"kind": self.kind, "label": self.label, "text": self.text(),
                "runs": [r.to_json() for r in self.runs]}


NONE = PmdDesc("none")

# -- page-flag bytes ----------------------------------------------------------------------

def _flag_byte(bit: int, itemsize: int) -> tuple[int, int]:
    """(byte index inside one flags item of `itemsize` bytes, mask) of PG bit `bit`."""
    i = bit.bit_length() - 1
    byte = i // 8 if sys.byteorder == "little" else itemsize - 1 - i // 8
    return byte, 1 << (i % 8)


def _table(mask: int) -> bytes:
    """A bytes.translate table: 1 where a byte has any bit of mask, else 0."""
    return bytes(1 if b & mask else 0 for b in range(256))


@lru_cache(maxsize=None)
def _flag_lanes(itemsize: int) -> tuple[int, bytes, int, bytes]:
    """Where to read PageAnonExclusive and HEAD|TAIL in mem_map.flags, as (byte, table) pairs."""
    ex_byte, ex_mask = _flag_byte(PG.ANON_EXCLUSIVE, itemsize)
    lg_byte, head = _flag_byte(PG.HEAD, itemsize)
    tail_byte, tail = _flag_byte(PG.TAIL, itemsize)
    assert tail_byte == lg_byte
    return ex_byte, _table(ex_mask), lg_byte, _table(head | tail)


def _pte_flags(w: int, kind: str, excl: bool = False) -> tuple[str, ...]:
    """Flag words in one order: W D excl uffd-wp sd (W/D only when present; excl as given)."""
    out = []
    if kind == "present":
        if w & F_WRITE:
            out.append("W")
        if w & F_DIRTY:
            out.append("D")
    if excl or (kind == "swap" and w & F_SWP_EXCLUSIVE):
        out.append("excl")
    if w & F_UFFD_WP:
        out.append("uffd-wp")
    if w & F_SOFT_DIRTY:
        out.append("sd")
    return tuple(out)


def _steps(w: int) -> tuple[int, ...]:
    kind = w & KIND_MASK
    if kind == KIND_PRESENT and not w & F_SPECIAL:
        return (1 << PFN_SHIFT,)
    if kind == KIND_SWAP:
        return (1 << SWP_OFFSET_SHIFT,)
    return (0,)


def _present_runs(k: "Kernel", lo: int, hi: int, w0: int) -> list[PteRun]:
    """Split a run of present PTEs where PageAnonExclusive or the folio's largeness changes."""
    mem = k.mem
    pfn0, n = w0 >> PFN_SHIFT, hi - lo
    item = mem.flags.itemsize
    ex_byte, ex_table, lg_byte, lg_table = _flag_lanes(item)
    raw = mem.flags[pfn0:pfn0 + n].tobytes()
    ex = raw[ex_byte::item].translate(ex_table)
    lg = raw[lg_byte::item].translate(lg_table)
    # one byte per page: 2*excl + large, combined without a Python loop
    key = ((int.from_bytes(ex, "big") << 1) | int.from_bytes(lg, "big")).to_bytes(n, "big")
    out = []
    for s, e, v in byte_runs(key):
        flags = list(_pte_flags(w0, "present", bool(v & 2)))
        if v & 1:
            order = mem.order[mem.folio_of(pfn0 + s)]
            flags.append("(THP)" if order == 9 else f"(order {order})")
        out.append(PteRun(lo + s, lo + e - 1, "present", pfn0 + s, "", tuple(flags)))
    return out


#: describe_table's runs of tables with no present entry, which read nothing but the table's
#: words and the devices' names: (the words' bytes, every device's name) -> runs.  A machine
#: keeps most tables as they were from one step to the next (a step summary, `show pt` again);
#: bounded, emptied when it holds _MEMO_RUNS runs.
_NOT_PRESENT: dict[tuple[bytes, tuple[str | None, ...]], tuple[PteRun, ...]] = {}
_MEMO_RUNS = 1 << 15
_memo_runs = 0


def describe_table(k: "Kernel", ptes: array) -> tuple[PteRun, ...]:
    """The 512 PTEs of a table folded into runs of like entries."""
    global _memo_runs
    raw = ptes.tobytes()
    if raw[0::8].translate(bm.PRESENT).count(1):
        return _fold_table(k, ptes)
    key = (raw, tuple(si.name if si is not None else None for si in k.swap_info))
    runs = _NOT_PRESENT.get(key)
    if runs is None:
        runs = _fold_table(k, ptes)
        if _memo_runs + len(runs) > _MEMO_RUNS:
            _NOT_PRESENT.clear()
            _memo_runs = 0
        _NOT_PRESENT[key] = runs
        _memo_runs += len(runs)
    return runs


def _fold_table(k: "Kernel", ptes: array) -> tuple[PteRun, ...]:
    out: list[PteRun] = []
    for lo, hi, _step in fold_words(ptes, _steps):
        w0 = ptes[lo]
        kind = w0 & KIND_MASK
        if w0 == 0:
            out.append(PteRun(lo, hi - 1, "none"))
        elif kind == KIND_PRESENT and w0 & F_SPECIAL:
            out.append(PteRun(lo, hi - 1, "zero", w0 >> PFN_SHIFT, "", _pte_flags(w0, "zero")))
        elif kind == KIND_PRESENT:
            out.extend(_present_runs(k, lo, hi, w0))
        elif kind == KIND_SWAP:
            out.append(PteRun(lo, hi - 1, "swap", w0 >> SWP_OFFSET_SHIFT, device_name(k, pte_swp_type(w0)),
                              _pte_flags(w0, "swap")))
        else:
            out.append(PteRun(lo, hi - 1, "other", w0))
    return tuple(out)


def describe_pmd(k: "Kernel", pmd: Pmd | None) -> PmdDesc:
    """What the slot holds (None: pmd_none)."""
    if pmd is None:
        return NONE
    match pmd.kind:
        case PmdKind.TABLE:
            assert pmd.table is not None
            return PmdDesc("table", "", describe_table(k, pmd.table.ptes))
        case PmdKind.HUGE:
            flags = _pte_flags(pmd.flags, "present", bool(k.mem.flags[pmd.pfn] & PG.ANON_EXCLUSIVE))
            return PmdDesc("huge", "THP", (PteRun(0, PTRS - 1, "present", pmd.pfn, "", flags),))
        case PmdKind.ZERO:
            return PmdDesc("huge", "huge zero page",
                           (PteRun(0, PTRS - 1, "zero", pmd.pfn, "", _pte_flags(pmd.flags, "zero")),))
        case PmdKind.SWAP:
            return PmdDesc("swap", "", (PteRun(0, PTRS - 1, "swap", pmd.swp_offset,
                                               device_name(k, pmd.swp_type), _pte_flags(pmd.flags, "swap")),))
        case PmdKind.MIGRATION:
            return PmdDesc("migration", f"migration entry pfn {pmd.pfn:#x}")
    return NONE
