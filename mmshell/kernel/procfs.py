"""Readers of what the kernel exports: /proc/vmstat, the 2 MiB mTHP stats, /proc/meminfo,
/proc/PID/smaps, /proc/PID/maps, /proc/PID/pagemap (words and PAGEMAP_SCAN).

Only reading; no state.  A pagemap word is decoded by the one PagemapEntry
(mm/task_mmu.py, as Documentation/admin-guide/mm/pagemap.rst says), the
simulator's own.  Reading PFNs and offsets needs CAP_SYS_ADMIN, which a live
run has.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from . import syscalls

MTHP_STATS_DIR = Path("/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/stats")
STAT_REFRESH = Path("/proc/sys/vm/stat_refresh")
PAGE = 4096


def refresh_vmstat() -> None:
    """Fold the per-CPU vmstat deltas into the global counters (vm.stat_refresh).

    Without this the gauges (nr_swapcached, nr_anon_pages, ...) can lag by up
    to the per-CPU threshold; the event counters are always summed exactly.
    """
    try:
        STAT_REFRESH.write_text("1")
    except OSError:
        pass     # older kernels return EINVAL when a counter is transiently negative


def vmstat(refresh: bool = True) -> dict[str, int]:
    if refresh:
        refresh_vmstat()
    out = {}
    for line in Path("/proc/vmstat").read_text().splitlines():
        name, _, value = line.partition(" ")
        out[name] = int(value)
    return out


def mthp_stats() -> dict[str, int]:
    out = {}
    for f in sorted(MTHP_STATS_DIR.iterdir()):
        try:
            out[f.name] = int(f.read_text())
        except (OSError, ValueError):
            pass
    return out


def meminfo() -> dict[str, int]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        out[name.strip()] = int(rest.split()[0])
    return out


@dataclass(frozen=True, slots=True)
class Vma:
    """One VMA of /proc/PID/smaps: its range, permissions, kB fields and VmFlags."""

    start: int
    end: int
    perms: str
    path: str
    fields: dict[str, int]
    flags: frozenset[str]


_VMA_HEAD = re.compile(r"[0-9a-f]+-[0-9a-f]+ ")


def smaps(pid: int) -> list[Vma]:
    text = Path(f"/proc/{pid}/smaps").read_text()
    out: list[Vma] = []
    head: tuple[int, int, str, str] | None = None
    fields: dict[str, int] = {}
    flags: frozenset[str] = frozenset()

    def flush() -> None:
        if head is not None:
            out.append(Vma(head[0], head[1], head[2], head[3], fields, flags))

    for line in text.splitlines():
        if not _VMA_HEAD.match(line):
            key, _, rest = line.partition(":")
            if key == "VmFlags":
                flags = frozenset(rest.split())
            else:
                words = rest.split()
                if words:
                    try:
                        fields[key] = int(words[0])
                    except ValueError:
                        pass
            continue
        flush()
        parts = line.split(None, 5)
        lo, _, hi = parts[0].partition("-")
        head = (int(lo, 16), int(hi, 16), parts[1], parts[5] if len(parts) > 5 else "")
        fields, flags = {}, frozenset()
    flush()
    return out


def maps(pid: int) -> list[tuple[int, int, str, str]]:
    """(start, end, perms, path) of each VMA, from /proc/PID/maps."""
    out = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split(None, 5)
        lo, _, hi = parts[0].partition("-")
        out.append((int(lo, 16), int(hi, 16), parts[1], parts[5] if len(parts) > 5 else ""))
    return out


# -- pagemap ----------------------------------------------------------------------------------------

#: Pages of pagemap read at a time: 512 KiB of words, whatever the range (a range can be 4T).
PAGEMAP_CHUNK = 1 << 16


def pagemap_words(pid: int, start: int, npages: int) -> Iterator[int]:
    """The pagemap words of npages pages from start, read PAGEMAP_CHUNK pages at a time."""
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    try:
        first = start // PAGE
        for off in range(0, npages, PAGEMAP_CHUNK):
            n = min(PAGEMAP_CHUNK, npages - off)
            data = os.pread(fd, 8 * n, (first + off) * 8)
            yield from struct.unpack(f"<{len(data) // 8}Q", data)
            if len(data) < 8 * n:
                return
    finally:
        os.close(fd)


def pagemap(pid: int, addr: int) -> int:
    """The pagemap word of the page holding addr."""
    return next(pagemap_words(pid, addr & ~(PAGE - 1), 1), 0)


def pagemap_scan(pid: int, start: int, end: int, categories: int = syscalls.PAGE_IS_ALL
                 ) -> list[tuple[int, int, int]]:
    """PAGEMAP_SCAN runs (start, end, PAGE_IS_* categories) of [start, end) in pid that have one
    of `categories`.  Pages in no VMA or under no page table are never reported, so the runs
    are as many as the distinct stretches of pages that exist, however large the range."""
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return syscalls.pagemap_scan(fd, start, end, anyof=categories)
    finally:
        os.close(fd)


def page_runs(pid: int, start: int, end: int, categories: int) -> Iterator[tuple[int, int]]:
    """(first page, end) of every run of pages in [start, end) with one of `categories`
    (PAGE_IS_PRESENT, PAGE_IS_SWAPPED ...), clipped to the range."""
    for a, b, _cat in pagemap_scan(pid, start, end, categories):
        a, b = max(a, start), min(b, end)
        if a < b:
            yield a, b


def process_state(pid: int) -> str | None:
    """The state letter of /proc/PID/stat (R, S, Z ...), or None when the pid is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()[0]


def kernel_threads_named(prefix: str) -> list[str]:
    """The names (comm) of the machine's tasks whose name starts with prefix, e.g. "kdamond"."""
    names = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                comm = Path(entry.path, "comm").read_text().strip()
            except OSError:
                continue                # the task exited meanwhile
            if comm.startswith(prefix):
                names.append(comm)
    return sorted(names)
