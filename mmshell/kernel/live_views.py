"""The live kernel as the views read it (views/source.py's ViewObserver), from what it exports.

| view | read from |
|---|---|
| `pt`, the step summary's page tables | per 2 MiB block in use (PAGEMAP_SCAN): `PAGE_IS_HUGE` on every |
|   | page is a PMD mapping (`PAGE_IS_PFNZERO`: the huge zero page); else a table, its 512 |
|   | entries from /proc/PID/pagemap (pfn or swap type and offset, uffd-wp), a present page |
|   | of a large folio marked from /proc/kpageflags (`(THP)`: the 512 pages of its aligned |
|   | block are one compound page, else `(large)`) |
| `map` | map_cells.py: the same pagemap and kpageflags, and /proc/kpagecount |
| `vmas`, the summary's VMAs | /proc/PID/smaps: range, perms and VmFlags of each VMA meeting the regions |
| `smaps` | /proc/PID/smaps, whole VMAs |
| `pagemap` | /proc/PID/pagemap (as root: PFNs and swap offsets visible) |
| `vmstat` | /proc/vmstat and hugepages-2048kB/stats, as moved since the script began |
| `meminfo` | /proc/meminfo, as moved since the script began (MemTotal as is) |
| `swap`, the summary's swap use | /proc/swaps (Used) and what the run set up (name, kind, priority) |

What user space cannot see is left out and said once under the view
(:meth:`LiveViews.unseen`): the W, D and PageAnonExclusive bits of an entry,
swap_map counts and the swap cache per slot, the clusters of a device, a PMD
swap entry of the series or a migration entry (pagemap reports a swap entry
per page, so either is drawn as a table of swap entries).  `show swapcache`, `show walks` and `show swap
NAME map` are refused (lang/registry.py LIVE_VIEWS).
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.text import Text

from ..mm.task_mmu import SMAPS_FIELDS, PagemapEntry
from ..mm.vma import VM
from ..views.cells import PTRS, PmdCells
from ..views.describe import NONE, PmdDesc, PteRun
from ..views.fmt import AddrNamer, fold_words
from ..views.pagemap import fold_pagemap, pagemap_steps
from ..views.source import VmaFacts, observed_view
from ..views.step import DeviceDigest, Digest
from ..views.vmas import FLAG_WORDS
from . import procfs
from .devices import DeviceError
from .session import STEP_VMSTAT
from .map_cells import KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL, kpage_words, live_map_cells
from .syscalls import PAGE_IS_HUGE, PAGE_IS_PFNZERO

if TYPE_CHECKING:
    from .session import LiveSession

PAGE = 4096
HPAGE = PAGE * PTRS
#: The VmFlags mnemonic (fs/proc/task_mmu.c show_smap_vma_flags) of each vm_flag `show vmas` names.
VMFLAG_MNEMONIC = {VM.HUGEPAGE: "hg", VM.NOHUGEPAGE: "nh", VM.UFFD_MISSING: "um", VM.UFFD_WP: "uw",
                   VM.LOCKED: "lo"}
#: The /proc/meminfo fields the simulator models (mm/task_mmu.meminfo), in its order.
MEMINFO_FIELDS = ("MemTotal", "MemFree", "AnonPages", "AnonHugePages", "SwapCached", "SwapTotal", "SwapFree",
                  "PageTables", "Active(anon)", "Inactive(anon)")
#: What each view cannot show on the live kernel, said in one line under it.
UNSEEN = {
    "pt": "live: pagemap exports no W, D or PageAnonExclusive bit, and a PMD swap entry or a migration "
          "entry reads as 512 swap entries (drawn as a table of them)",
    "map": "live: a swap entry's swap count and swap cache are not exported, so `s` has no overlay",
    "vmas": "live: the VMAs that meet the script's regions (the rest of the worker is the runner's); "
            "an anonymous VMA's vm_pgoff is not exported",
    "smaps": "live: whole VMAs as /proc/PID/smaps reports them (a VMA merged with a neighbour is not "
             "cut at the region)",
    "vmstat": "live: each counter as moved since the script began",
    "swap": "live: swap_map (each slot's count and cache bit) and the clusters are not exported",
}


class LiveViews:
    """One live session read for the views: its current pid, region names, processes, devices."""

    def __init__(self, s: "LiveSession") -> None:
        self.s = s
        assert s.machine.baseline is not None
        self.base = s.machine.baseline

    @property
    def pid(self) -> int:
        return self.s.pid

    def names(self, pid: int | None = None) -> dict[str, tuple[int, int]]:
        return self.s.names(pid)

    def unseen(self, view: str) -> str | None:
        return UNSEEN.get(view)

    def pids(self) -> list[int]:
        return sorted(p for p, _ in self.s.live_pids())

    def view(self, name: str, opts: Mapping[str, Any] | None = None, previous: Any = None) -> Any:
        try:
            return observed_view(self, name, opts, previous)
        except OSError as e:        # a worker gone since its step ran: its /proc files with it
            return Unreadable(f"show {name}: cannot read it from /proc: {e}")

    def _device(self, swp_type: int) -> str:
        dev = self.s.devices.by_type(swp_type)
        return dev.name if dev is not None else f"type{swp_type}"

    # -- VMAs -------------------------------------------------------------------------------------------
    def _smaps(self, pid: int) -> list[procfs.Vma]:
        regions = list(self.names(pid).values())
        return [v for v in procfs.smaps(self.s.kpid(pid))
                if any(v.start < st + n and st < v.end for st, n in regions)]

    def vma_facts(self, pid: int) -> list[VmaFacts]:
        return [(v.start, v.end, v.perms, None,
                 [word for flag, word in FLAG_WORDS if VMFLAG_MNEMONIC[flag] in v.flags])
                for v in self._smaps(pid)]

    def smaps_rows(self, pid: int, name: str | None) -> list[dict[str, Any]]:
        names = self.names(pid)
        namer = AddrNamer(names)
        vmas = self._smaps(pid)
        if name is not None:
            start, length = names[name]
            vmas = [v for v in vmas if v.start < start + length and start < v.end]
        return [{"start": v.start, "end": v.end, "vma": [v.start, v.end],
                 "regions": namer.overlapping(v.start, v.end),
                 **{f: v.fields[f] for f in SMAPS_FIELDS if f in v.fields}} for v in vmas]

    # -- page tables -------------------------------------------------------------------------------------
    def _blocks(self, pid: int, start: int | None, end: int | None) -> list[int]:
        """The 2 MiB blocks of the script's VMAs in [start, end) that hold a page table or a PMD mapping."""
        kpid = self.s.kpid(pid)
        blocks: list[int] = []
        for lo, hi in self.s.scan_ranges(pid):
            lo, hi = max(lo, start or 0), min(hi, end if end is not None else hi)
            for a, b, _cat in procfs.pagemap_scan(kpid, lo, hi) if lo < hi else ():
                first = max(a & ~(HPAGE - 1), blocks[-1] + HPAGE if blocks else 0)
                blocks += range(first, b, HPAGE)
        return sorted(set(blocks))

    def pmd_descs(self, pid: int, start: int | None, end: int | None) -> list[tuple[int, PmdDesc]]:
        kpid = self.s.kpid(pid)
        out = []
        for blk in self._blocks(pid, start, end):
            desc = block_desc(kpid, blk, self._device)
            if desc.kind != "none":
                out.append((blk // HPAGE, desc))
        return out

    def map_cells(self, pid: int, start: int | None, end: int | None) -> list[PmdCells]:
        ranges = ([(start, end - start)] if start is not None and end is not None
                  else sorted(self.names(pid).values()))
        return live_map_cells(self.s.kpid(pid), ranges)

    def pagemap_runs(self, pid: int, start: int, end: int) -> list[dict[str, Any]]:
        words = procfs.pagemap_words(self.s.kpid(pid), start, (end - start) // PAGE)
        return fold_pagemap(words, start, self._device)

    # -- counters and devices ------------------------------------------------------------------------------
    def counters(self, every: bool) -> tuple[dict[str, int], dict[str, int]]:
        now = procfs.vmstat()
        names = now if every else [n for n in STEP_VMSTAT if n in now]
        vm = {n: now[n] - self.base.vmstat.get(n, 0) for n in names}
        mthp = {n: v - self.base.mthp.get(n, 0) for n, v in procfs.mthp_stats().items()}
        return vm, mthp

    def meminfo_fields(self) -> tuple[str, dict[str, int]]:
        now = procfs.meminfo()
        fields = {f: now[f] - (0 if f == "MemTotal" else self.base.meminfo.get(f, 0))
                  for f in MEMINFO_FIELDS if f in now}
        return "/proc/meminfo, moved since the script began (MemTotal as is)", fields

    def swap_facts(self, names: list[str] | None) -> list[dict[str, Any]]:
        out = []
        for dev in sorted(self.s.devices.devices.values(), key=lambda d: d.type):
            if dev.active and (names is None or dev.name in names):
                try:
                    used = self.s.devices.used_pages(dev.name)
                except DeviceError:     # not in /proc/swaps (as the step's counters leave it out)
                    continue
                out.append({"name": dev.name, "type": dev.type, "kind": dev.kind, "prio": dev.prio,
                            "pages": dev.size // PAGE, "size": dev.size, "used": used, "used_kb": used * 4,
                            "clusters": None, "runs": None, "zeromap": None, "zswap": None, "cached": None})
        return out

    def digest(self) -> Digest:
        pmds: dict[int, dict[int, PmdDesc]] = {}
        vmas: dict[int, tuple[tuple[int, int], ...]] = {}
        vma_text: dict[int, dict[tuple[int, int], str]] = {}
        for spid, _kpid in sorted(self.s.live_pids()):
            try:
                facts = self.vma_facts(spid)
                descs = dict(self.pmd_descs(spid, None, None))
            except OSError:         # a worker gone since its step ran: the summary says it went
                continue
            vmas[spid] = tuple((lo, hi) for lo, hi, *_ in facts)
            vma_text[spid] = {(lo, hi): " ".join([perms, *flags]) for lo, hi, perms, _off, flags in facts}
            pmds[spid] = descs
        swap = {d["name"]: DeviceDigest(d["used"], ()) for d in self.swap_facts(None)}
        vm, mthp = self.counters(False)
        return Digest(pmds, swap, vm, mthp, vmas, {}, vma_text)


class Unreadable:
    """A view that could not be read (one line), in place of the view."""

    def __init__(self, line: str) -> None:
        self.line = line

    def __rich__(self) -> Text:
        return Text(self.line)

    def to_json(self) -> dict[str, str]:
        return {"error": self.line}


# -- one PMD slot from pagemap ---------------------------------------------------------------------------

def _flags(e: PagemapEntry) -> tuple[str, ...]:
    """The flag words pagemap can give of an entry (views/describe.py's words): uffd-wp."""
    return ("uffd-wp",) if e.uffd_wp else ()


def _is_thp(pfn: int) -> bool:
    """Whether the 512-aligned pfn block of a large folio's page is one compound page (a THP)."""
    words = kpage_words("/proc/kpageflags", pfn & ~(PTRS - 1), PTRS)
    return (len(words) == PTRS and bool(words[0] & KPF_COMPOUND_HEAD)
            and all(w & KPF_COMPOUND_TAIL for w in words[1:]))


def _present_runs(lo: int, hi: int, e: PagemapEntry) -> list[PteRun]:
    """PTEs lo..hi-1 mapping pfns e.pfn, e.pfn+1 ..., split where the page's folio turns large
    or small: `(THP)` on a page of a THP, `(large)` on a page of another large folio."""
    n = hi - lo
    flags = kpage_words("/proc/kpageflags", e.pfn, n) if e.pfn else []
    large = [bool(f & (KPF_COMPOUND_HEAD | KPF_COMPOUND_TAIL)) for f in flags] or [False] * n
    marks: dict[int, tuple[str, ...]] = {}
    out: list[PteRun] = []
    i = 0
    while i < n:
        j = i + 1
        while j < n and large[j] == large[i]:
            j += 1
        mark: tuple[str, ...] = ()
        if large[i]:
            blk = (e.pfn + i) & ~(PTRS - 1)
            if blk not in marks:
                marks[blk] = ("(THP)",) if _is_thp(blk) else ("(large)",)
            mark = marks[blk]
        out.append(PteRun(lo + i, lo + j - 1, "present", e.pfn + i, "", _flags(e) + mark))
        i = j
    return out


def block_desc(kpid: int, blk: int, device: Any) -> PmdDesc:
    """The PmdDesc of the 2 MiB block at blk in process kpid (NONE when no table maps it);
    `device` names a swap type."""
    scan = procfs.pagemap_scan(kpid, blk, blk + HPAGE)
    if not scan:
        return NONE
    huge = zero = 0
    for a, b, cat in scan:
        n = (min(b, blk + HPAGE) - max(a, blk)) // PAGE
        huge += n if cat & PAGE_IS_HUGE else 0
        zero += n if cat & PAGE_IS_PFNZERO else 0
    words = list(procfs.pagemap_words(kpid, blk, PTRS))
    if huge == PTRS:
        e = PagemapEntry(words[0])
        if zero == PTRS:
            return PmdDesc("huge", "huge zero page", (PteRun(0, PTRS - 1, "zero", e.pfn, "", _flags(e)),))
        return PmdDesc("huge", "THP", (PteRun(0, PTRS - 1, "present", e.pfn, "", _flags(e)),))
    zero_addrs = {a for a0, b, cat in scan if cat & PAGE_IS_PFNZERO
                  for a in range(max(a0, blk), min(b, blk + HPAGE), PAGE)}
    arr = array("Q", words + [0] * (PTRS - len(words)))
    runs: list[PteRun] = []
    for lo, hi, _step in fold_words(arr, pagemap_steps):
        e = PagemapEntry(arr[lo])
        if e.present and blk + lo * PAGE in zero_addrs:
            runs.append(PteRun(lo, hi - 1, "zero", e.pfn, "", _flags(e)))
        elif e.present:
            runs += _present_runs(lo, hi, e)
        elif e.swapped:
            runs.append(PteRun(lo, hi - 1, "swap", e.swap_offset, device(e.swap_type), _flags(e)))
        else:
            runs.append(PteRun(lo, hi - 1, "none"))
    return PmdDesc("table", "", tuple(runs))

