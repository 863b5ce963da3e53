"""/proc/vmstat and the PMD-size mTHP stats (mm/vmstat.c, include/linux/vm_event_item.h,
mm/huge_memory.c `hugepages-2048kB/stats`).

Only the counters the simulation models are exported, under their exact names
and in the kernel's /proc/vmstat order (read off 6.18.44).  A counter the
simulation does not model is refused by name rather than shown as a made-up 0.
`thp_swpout_pmd` exists only with the series (it sits after thp_swpout_fallback,
its one-line vm_event_item.h hunk; the position is inferred).
"""

from __future__ import annotations

#: Gauges, in /proc/vmstat order; their values are computed from the machine state.
GAUGES: tuple[str, ...] = (
    "nr_free_pages",
    "nr_zone_inactive_anon",
    "nr_zone_active_anon",
    "nr_inactive_anon",
    "nr_active_anon",
    "nr_anon_pages",
    "nr_anon_transparent_hugepages",
    "nr_page_table_pages",
    "nr_swapcached",
)

#: Events, in /proc/vmstat order.
EVENTS: tuple[str, ...] = (
    "pswpin",
    "pswpout",
    "pgfree",
    "pgactivate",
    "pgdeactivate",
    "pglazyfree",
    "pgfault",
    "pgmajfault",
    "pglazyfreed",
    "pgreuse",
    "pgsteal_direct",
    "pgrotated",
    "thp_fault_alloc",
    "thp_fault_fallback",
    "thp_fault_fallback_charge",
    "thp_collapse_alloc",
    "thp_collapse_alloc_failed",
    "thp_split_page",
    "thp_split_page_failed",
    "thp_deferred_split_page",
    "thp_underused_split_page",
    "thp_split_pmd",
    "thp_scan_exceed_none_pte",
    "thp_scan_exceed_swap_pte",
    "thp_scan_exceed_share_pte",
    "thp_zero_page_alloc",
    "thp_zero_page_alloc_failed",
    "thp_swpout",
    "thp_swpout_fallback",
    "thp_swpout_pmd",
    "swap_ra",
    "swap_ra_hit",
    "swpin_zero",
    "swpout_zero",
    "zswpin",
    "zswpout",
    "zswpwb",
)

#: Only a kernel with the series has this one.
SERIES_ONLY: frozenset[str] = frozenset({"thp_swpout_pmd"})

#: /sys/kernel/mm/transparent_hugepage/hugepages-2048kB/stats/, in directory order.
MTHP_STATS: tuple[str, ...] = (
    "anon_fault_alloc",
    "anon_fault_fallback",
    "anon_fault_fallback_charge",
    "nr_anon",
    "nr_anon_partially_mapped",
    "shmem_alloc",
    "shmem_fallback",
    "shmem_fallback_charge",
    "split",
    "split_deferred",
    "split_failed",
    "swpin",
    "swpin_fallback",
    "swpin_fallback_charge",
    "swpout",
    "swpout_fallback",
    "zswpout",
)

#: mTHP stats that are gauges (maintained, not counted).
MTHP_GAUGES: frozenset[str] = frozenset({"nr_anon", "nr_anon_partially_mapped"})


class VmStat:
    """Event counters (count_vm_event) and the maintained gauges.

    Maintained gauges are the ones the kernel updates in the rmap code
    (NR_ANON_MAPPED, NR_ANON_THPS) and in the swap cache (NR_SWAPCACHE);
    `check.py` recomputes each from a census.
    """

    __slots__ = ("events", "mthp", "nr_anon_pages", "nr_anon_thps", "nr_swapcached")

    def __init__(self) -> None:
        self.events: dict[str, int] = dict.fromkeys(EVENTS, 0)
        self.mthp: dict[str, int] = dict.fromkeys(MTHP_STATS, 0)
        self.nr_anon_pages = 0
        self.nr_anon_thps = 0
        self.nr_swapcached = 0

    def count(self, name: str, nr: int = 1) -> None:
        """count_vm_events(name, nr)."""
        self.events[name] += nr

    def count_mthp(self, name: str, nr: int = 1) -> None:
        """count_mthp_stat(HPAGE_PMD_ORDER, name)."""
        self.mthp[name] += nr
