"""`show pagemap RANGE`: /proc/PID/pagemap words decoded and folded into runs.

A run continues while every bit but the pfn / swap offset is equal and those
advance by one page (the small zero page repeats one pfn, so a run of it keeps
the same word): `a+0x0-a+0x1ff000 (512) swapped s0 slots 0x200-0x3ff excl=0`.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Callable, Iterable

from rich.console import Group
from rich.text import Text

from mmshell.mm.constants import PAGE_SHIFT
from mmshell.mm.mm_types import MmStruct
from mmshell.mm.task_mmu import PM_PRESENT, PM_SWAP, PM_SWAP_TYPE_BITS, PagemapEntry, pagemap_read

from .fmt import AddrNamer, Names, device_name, fold_words, hex_range, slots_text
from .widgets import KIND_STYLE, Trimmed, cell, view_table

if TYPE_CHECKING:
    from mmshell.mm.kernel import Kernel

#: Runs shown before the rest are summarised.
MAX_ROWS = 64


def pagemap_steps(word: int) -> tuple[int, ...]:
    """The steps a run of pagemap words from `word` may take (views/fmt.fold_words): a pfn, a swap offset."""
    if word & PM_PRESENT:
        return (1, 0)
    if word & PM_SWAP:
        return (1 << PM_SWAP_TYPE_BITS,)
    return (0,)


def pagemap_runs(k: "Kernel", words: list[int], start: int) -> list[dict]:
    """Fold pagemap words (one per page from `start`) into runs of plain data."""
    return fold_pagemap(words, start, lambda swp_type: device_name(k, swp_type))


def fold_pagemap(words: Iterable[int], start: int, device: Callable[[int], str]) -> list[dict]:
    """Fold pagemap words (one per page from `start`) into runs of plain data; `device`
    names a swap type."""
    arr = array("Q", words)
    out = []
    for lo, hi, step in fold_words(arr, pagemap_steps):
        e = PagemapEntry(arr[lo])
        kind = "present" if e.present else "swapped" if e.swapped else "none"
        run = {"start": start + (lo << PAGE_SHIFT), "end": start + ((hi - 1) << PAGE_SHIFT), "pages": hi - lo,
               "kind": kind, "present": e.present, "swapped": e.swapped, "file": e.file,
               "exclusive": e.exclusive, "uffd_wp": e.uffd_wp, "soft_dirty": e.soft_dirty}
        if e.present:
            run["pfn"] = e.pfn
            run["pfn_last"] = e.pfn + (hi - lo - 1 if step else 0)
        elif e.swapped:
            run["swap_type"] = e.swap_type
            run["device"] = device(e.swap_type)
            run["swap_offset"] = e.swap_offset
            run["swap_offset_last"] = e.swap_offset + hi - lo - 1
        out.append(run)
    return out


def run_entry_text(run: dict) -> str:
    """`swapped s0 slots 0x200-0x3ff excl=0`, `present pfn 0x200..0x3ff excl=1`, `none`."""
    if run["kind"] == "present":
        text = f"present pfn {hex_range(run['pfn'], run['pfn_last'])} excl={run['exclusive']}"
    elif run["kind"] == "swapped":
        text = (f"swapped {run['device']} {slots_text(run['swap_offset'], run['swap_offset_last'])}"
                f" excl={run['exclusive']}")
    else:
        return "none"
    for bit in ("file", "uffd_wp", "soft_dirty"):
        if run[bit]:
            text += f" {bit}=1"
    return text


class PagemapView:
    """The pagemap entries of [start, end) in one process, folded.

    to_json(): {"pid", "start", "end", "runs": [{"start", "end" (last page), "pages", "kind",
    "present", "swapped", "file", "exclusive", "uffd_wp", "soft_dirty", and "pfn", "pfn_last"
    or "swap_type", "device", "swap_offset", "swap_offset_last"}]}.
    """

    def __init__(self, k: "Kernel", mm: MmStruct, start: int, end: int, names: Names | None = None) -> None:
        self._fill(mm.pid, start, end, names, pagemap_runs(k, pagemap_read(k, mm, start, end), start))

    def _fill(self, pid: int, start: int, end: int, names: Names | None, runs: list[dict]) -> None:
        self.pid = pid
        self.start, self.end = start, end
        self.namer = AddrNamer(names)
        self.runs = runs

    @classmethod
    def of(cls, pid: int, start: int, end: int, names: Names | None, runs: list[dict]) -> "PagemapView":
        """The view of runs a backend folded (fold_pagemap)."""
        view = cls.__new__(cls)
        view._fill(pid, start, end, names, runs)
        return view

    def __rich__(self) -> Trimmed:
        table = view_table(f"pagemap of pid {self.pid}", "pages", "n", "entry", right=("n",))
        rows = self.runs if len(self.runs) <= MAX_ROWS else self.runs[:MAX_ROWS - 1]
        for r in rows:
            a, b = self.namer.addr(r["start"]), self.namer.addr(r["end"])
            table.add_row(cell(a if r["pages"] == 1 else f"{a}-{b}"), cell(f"({r['pages']})"),
                          cell(run_entry_text(r), KIND_STYLE.get(r["kind"], "")))
        parts: list = [table]
        if len(rows) < len(self.runs):
            parts.append(Text(f"… {len(self.runs) - len(rows)} more runs", style="dim"))
        return Trimmed(Group(*parts))

    def to_json(self) -> dict:
        return {"pid": self.pid, "start": self.start, "end": self.end, "runs": self.runs}
