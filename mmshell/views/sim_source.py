"""The simulated kernel as the views read it (views/source.py's ViewObserver): every fact exact.

Each reading is the one the simulator's own views make from the core
(views/render.py builds `show VIEW` from the kernel directly, and the views
built through :func:`views.source.observed_view` from these readings draw the
same: tests/views/test_view_source.py checks it), so nothing is unseen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmshell.mm.task_mmu import meminfo, pagemap_read, vmstat_snapshot

if TYPE_CHECKING:
    from .cells import PmdCells
    from .digest_cache import DigestCache
    from .describe import PmdDesc
    from .source import VmaFacts
    from .step import Digest


class SimViews:
    """One simulator session read for the views (its `.kernel`, `.pid`, `.names(pid)`)."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self._digests: DigestCache | None = None

    @property
    def k(self) -> Any:
        """The session's machine now (`reset` at the prompt boots another)."""
        return self.session.kernel

    @property
    def pid(self) -> int:
        return int(self.session.pid)

    def names(self, pid: int | None = None) -> dict[str, tuple[int, int]]:
        return self.session.names(pid)

    def pids(self) -> list[int]:
        return sorted(self.k.mms)

    def unseen(self, view: str) -> str | None:
        return None

    def vma_facts(self, pid: int) -> list[VmaFacts]:
        from .vmas import vma_flag_words

        return [(v.start, v.end, v.flag_string(), v.pgoff, vma_flag_words(v)) for v in self.k.mm(pid).vmas]

    def pmd_descs(self, pid: int, start: int | None, end: int | None) -> list[tuple[int, PmdDesc]]:
        from .pt import pmd_items

        return pmd_items(self.k, self.k.mm(pid), start, end)

    def map_cells(self, pid: int, start: int | None, end: int | None) -> list[PmdCells]:
        from .map import map_cells

        return map_cells(self.k, self.k.mm(pid), start, end)

    def pagemap_runs(self, pid: int, start: int, end: int) -> list[dict[str, Any]]:
        from .pagemap import pagemap_runs

        return pagemap_runs(self.k, pagemap_read(self.k, self.k.mm(pid), start, end), start)

    def smaps_rows(self, pid: int, name: str | None) -> list[dict[str, Any]] | None:
        return None             # views/smaps.py reads the core itself (parts of VMAs, smaps_range)

    def counters(self, every: bool) -> tuple[dict[str, int], dict[str, int]]:
        return vmstat_snapshot(self.k), dict(self.k.vmstat.mthp)

    def meminfo_fields(self) -> tuple[str, dict[str, int]]:
        return "/proc/meminfo", meminfo(self.k)

    def swap_facts(self, names: list[str] | None) -> list[dict[str, Any]]:
        from .swap import device_facts

        return [device_facts(si) for si in self.k.swap_info
                if si is not None and (names is None or si.name in names)]

    def digest(self) -> Digest:
        """The digest (views/step.py), the parts of the processes no step reached since the
        last one reused (views/digest_cache.py; checked against fresh ones with --debug-vm)."""
        if self._digests is None:
            from .digest_cache import DigestCache

            self._digests = DigestCache(verify=bool(getattr(self.session, "debug_vm", False)))
        return self._digests.digest(self.k)

    def view(self, name: str, opts: Any = None, previous: Any = None) -> Any:
        """The view of `show NAME`, as views/render.py builds it from the core."""
        from .render import build_view

        return build_view(self.session, name, opts, previous)
