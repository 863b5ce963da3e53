"""`show VIEW` on the live kernel: the same facts as the simulator's views, as plain lines,
read from /proc.  `show swapcache` is not observable (the swap cache is not exported)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from ..lang.values import pages
from ..views.fmt import slots_text
from . import procfs
from .observe import pmd_kind
from ..mm.task_mmu import PagemapEntry

if TYPE_CHECKING:
    from .session import LiveSession

PAGE = 4096
HPAGE = 2 << 20
_SMAPS_SHOWN = ("Rss", "AnonHugePages", "Swap", "SwapPss", "Private_Dirty", "LazyFree", "THPeligible")
_MEMINFO = ("AnonPages", "AnonHugePages", "SwapCached", "SwapTotal", "SwapFree", "PageTables",
            "Active(anon)", "Inactive(anon)")


def show_view(s: "LiveSession", view: str, rng: tuple[int, int] | None, name: str | None,
              all_: bool) -> list[str]:
    kpid = s.kpid()
    if view == "vmas":
        return [f"{lo:#x}-{hi:#x} {perms} {s.describe(lo)}" for lo, hi, perms, path in procfs.maps(kpid)
                if _in_regions(s, lo, hi)] or ["no mappings in the script's regions"]
    if view == "smaps":
        lines = []
        for v in procfs.smaps(kpid):
            if name is not None:
                start, length = s.names()[name]
                if not (v.start < start + length and v.end > start):
                    continue
            elif not _in_regions(s, v.start, v.end):
                continue
            fields = "  ".join(f"{f} {v.fields.get(f, 0)}" for f in _SMAPS_SHOWN)
            lines.append(f"{v.start:#x}-{v.end:#x} {s.describe(v.start)}  {fields}  "
                         f"VmFlags {' '.join(sorted(v.flags))}")
        return lines or ["no VMA"]
    if view == "pagemap":
        assert rng is not None
        return _pagemap_runs(s, kpid, rng[0], rng[0] + rng[1])
    if view == "pt":
        ranges = [rng] if rng is not None else sorted(s.names().values())
        lines = []
        for start, length in ranges:
            for blk in _pmds_in_use(kpid, start & ~(HPAGE - 1), start + length):
                kind = pmd_kind(kpid, blk)
                lines.append(f"PMD {s.describe(blk)} ({blk:#x}): {kind}")
                if kind == "table":
                    lines += ["  " + r for r in _pagemap_runs(s, kpid, blk, blk + HPAGE)]
        return lines or ["no PMD in use"]
    if view == "map":
        return _map_lines(s, kpid, rng)
    if view == "swap":
        lines = []
        for dev in s.devices.devices.values():
            if dev.active:
                lines.append(f"{dev.name}: {dev.kind} {dev.path} type {dev.type} priority {dev.prio} "
                             f"size {dev.size >> 10} kB used {pages(s.devices.used_pages(dev.name))}")
        lines.append("(swap_map counts are not exported; swapmap.NAME.OFF counts the page-table "
                     "entries holding a slot)")
        return lines
    if view == "swapcache":
        return ["swap cache: not observable on the live kernel (not exported); swapcache.NAME.OFF "
                "asks mincore() about one slot through a mapping of it"]
    if view == "vmstat":
        base = s.machine.baseline
        assert base is not None
        from .session import STEP_VMSTAT
        now = procfs.vmstat()
        items = [(k, v - base.vmstat.get(k, 0)) for k, v in now.items() if k != "nr_free_pages"
                 and (all_ or k in STEP_VMSTAT)]
        items = [(k, d) for k, d in items if all_ or d]
        title = ("every counter" if all_ else "the THP and swap counters") + " since the script's start"
        return [f"vmstat, {title}: " + ("  ".join(f"{k} {d:+d}" for k, d in items) or "no change")]
    if view == "meminfo":
        base = s.machine.baseline
        assert base is not None
        now = procfs.meminfo()
        return ["meminfo (kB, change since the script's start): "
                + "  ".join(f"{k} {now[k] - base.meminfo.get(k, 0):+d}" for k in _MEMINFO if k in now)]
    return [f"show {view}: no live view"]


def _map_lines(s: "LiveSession", kpid: int, rng: tuple[int, int] | None) -> list[str]:
    """`show map`: the simulator's picture (views/map.py) of the cells read from /proc."""
    from ..views.console import render_text
    from ..views.map import MapView
    from .map_cells import live_map_cells

    ranges = [rng] if rng is not None else sorted(s.names().values())
    view = MapView(s.pid, live_map_cells(kpid, ranges), s.names())
    return render_text(view, 80).splitlines() + [
        "(live: a swap entry's swap count and swap cache are not exported, so `s` has no overlay)"]


def _pmds_in_use(kpid: int, start: int, end: int) -> list[int]:
    """The 2 MiB blocks of [start, end) where PAGEMAP_SCAN finds a page table or a huge mapping
    (however large the range, as many as the blocks in use)."""
    blocks: list[int] = []
    for a, b, _cat in procfs.pagemap_scan(kpid, start, end):
        blk = max(a & ~(HPAGE - 1), blocks[-1] + HPAGE if blocks else 0)
        blocks += range(blk, b, HPAGE)
    return blocks


def _in_regions(s: "LiveSession", lo: int, hi: int) -> bool:
    return any(lo < st + n and st < hi for st, n in s.names().values())


def _describe_word(w: int) -> str:
    e = PagemapEntry(w)
    if e.present:
        return "present" + (" excl" if e.exclusive else "") + (" file/zero" if e.file else "")
    if e.swapped:
        return f"swap type {e.swap_type}"
    return "none"


def _pagemap_words(kpid: int, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(address, pages, word) blocks of alike pagemap words over [start, end): what PAGEMAP_SCAN
    reports nothing for (no VMA, no page table) is one block of empty words, the rest is read
    a chunk at a time (procfs.pagemap_words)."""
    addr = start
    for a, b, _cat in procfs.pagemap_scan(kpid, start, end):
        a, b = max(a, start), min(b, end)
        if a > addr:
            yield addr, (a - addr) // PAGE, 0
        for i, w in enumerate(procfs.pagemap_words(kpid, a, (b - a) // PAGE)):
            yield a + i * PAGE, 1, w
        addr = max(addr, b)
    if addr < end:
        yield addr, (end - addr) // PAGE, 0


def _pagemap_runs(s: "LiveSession", kpid: int, start: int, end: int) -> list[str]:
    """One line per run of alike pagemap words (memory: the lines, whatever the range)."""
    lines: list[str] = []
    run: tuple[int, str, int, int] | None = None     # first page, kind, first word, last word

    def flush(upto: int) -> None:
        if run is None:
            return
        first, kind, w0, w1 = run
        text = f"{s.describe(first)}..+{(upto - first) // 1024}K {kind}"
        if w0 >> 62 == 1:
            text += " " + slots_text(PagemapEntry(w0).swap_offset, PagemapEntry(w1).swap_offset)
        lines.append(text)

    end_of_run = start
    for addr, n, w in _pagemap_words(kpid, start, end):
        kind = _describe_word(w)
        if run is not None and run[1] == kind:
            run = (run[0], kind, run[2], w)
        else:
            flush(addr)
            run = (addr, kind, w, w)
        end_of_run = addr + n * PAGE
    flush(end_of_run)
    return lines
