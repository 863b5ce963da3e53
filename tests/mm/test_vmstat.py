"""/proc/vmstat and the hugepages-2048kB stats (mmshell/mm/vmstat.py; mm/vmstat.c vmstat_text,
include/linux/vm_event_item.h; kernel-semantics.md §1.10).

Counters carry their exact /proc names, in the kernel's order; a name the
simulation does not model is refused, not shown as a made-up 0; the series'
`thp_swpout_pmd` exists only with the series (after thp_swpout_fallback, its
one-line vm_event_item.h hunk) and counts once per PMD swap entry installed.
"""

from __future__ import annotations

import pytest

from mm_unit import THP, Counters, assert_consistent, boot, mmap_thp, pageout, swapon
from mmshell.mm.task_mmu import vmstat_snapshot
from mmshell.mm.vmstat import EVENTS, GAUGES, MTHP_GAUGES, MTHP_STATS, SERIES_ONLY, VmStat

#: The /proc/vmstat lines of 6.18.44 (the measured kernel) around the modelled counters,
#: in file order, including neighbours the simulation does not model.
KERNEL_6_18_44 = (
    "nr_free_pages", "nr_zone_inactive_anon", "nr_zone_active_anon", "nr_inactive_anon", "nr_active_anon",
    "nr_anon_pages", "nr_anon_transparent_hugepages", "nr_page_table_pages", "nr_swapcached",
    "pgpgin", "pgpgout", "pswpin", "pswpout", "pgfree", "pgactivate", "pgdeactivate", "pglazyfree",
    "pgfault", "pgmajfault", "pglazyfreed", "pgrefill", "pgreuse", "pgsteal_kswapd", "pgsteal_direct",
    "pageoutrun", "pgrotated", "drop_pagecache",
    "thp_migration_success", "thp_migration_fail", "thp_migration_split",
    "thp_fault_alloc", "thp_fault_fallback", "thp_fault_fallback_charge", "thp_collapse_alloc",
    "thp_collapse_alloc_failed", "thp_file_alloc", "thp_file_fallback", "thp_file_fallback_charge",
    "thp_file_mapped", "thp_split_page", "thp_split_page_failed", "thp_deferred_split_page",
    "thp_underused_split_page", "thp_split_pmd", "thp_scan_exceed_none_pte", "thp_scan_exceed_swap_pte",
    "thp_scan_exceed_share_pte", "thp_split_pud", "thp_zero_page_alloc", "thp_zero_page_alloc_failed",
    "thp_swpout", "thp_swpout_fallback", "swap_ra", "swap_ra_hit", "swpin_zero", "swpout_zero",
    "zswpin", "zswpout", "zswpwb",
)


def test_counters_are_exported_in_the_kernels_proc_vmstat_order() -> None:
    """Gauges first, then events, each in 6.18.44's /proc/vmstat order."""
    mainline = [n for n in GAUGES + EVENTS if n not in SERIES_ONLY]
    assert mainline == [n for n in KERNEL_6_18_44 if n in set(mainline)]


def test_every_modelled_mainline_counter_is_a_real_6_18_counter() -> None:
    """No invented names: everything but the series' counter exists in 6.18.44 (§1.10: there is
    no thp_swpin / thp_swpin_fallback in mainline 6.18)."""
    assert set(GAUGES + EVENTS) - set(KERNEL_6_18_44) == {"thp_swpout_pmd"}
    assert "thp_swpin" not in EVENTS and "thp_swpin_fallback" not in EVENTS


def test_thp_swpout_pmd_is_the_series_only_counter_right_after_thp_swpout_fallback() -> None:
    assert SERIES_ONLY == frozenset({"thp_swpout_pmd"})
    i = EVENTS.index("thp_swpout_pmd")
    assert EVENTS[i - 2:i] == ("thp_swpout", "thp_swpout_fallback")


def test_mthp_stats_are_the_hugepages_2048kB_stats_directory_listed() -> None:
    """hugepages-2048kB/stats/ as `ls` lists it (the build-specific anon_fault_declined left out);
    nr_anon and nr_anon_partially_mapped are gauges."""
    assert list(MTHP_STATS) == sorted(MTHP_STATS)
    assert {"swpout", "swpout_fallback", "swpin", "swpin_fallback", "swpin_fallback_charge",
            "split", "nr_anon"} <= set(MTHP_STATS)
    assert MTHP_GAUGES == frozenset({"nr_anon", "nr_anon_partially_mapped"})


@pytest.mark.parametrize("pmd_swap", [True, False], ids=["series", "mainline"])
def test_vmstat_snapshot_shows_thp_swpout_pmd_only_with_the_series(pmd_swap: bool) -> None:
    """A mainline kernel has no such line at all (not a 0); the rest is GAUGES then EVENTS."""
    k = boot(pmd_swap)
    snap = vmstat_snapshot(k)
    want = [n for n in GAUGES + EVENTS if pmd_swap or n not in SERIES_ONLY]
    assert list(snap) == want
    assert ("thp_swpout_pmd" in snap) is pmd_swap


@pytest.mark.parametrize("pmd_swap, moved", [
    (True, {"pswpout": 512, "thp_swpout": 1, "thp_swpout_pmd": 1, "mthp.swpout": 1, "pgfree": 512,
            "mthp.nr_anon": -1}),
    (False, {"pswpout": 512, "thp_swpout": 1, "thp_split_pmd": 1, "mthp.swpout": 1, "pgfree": 512,
             "mthp.nr_anon": -1}),
], ids=["series", "mainline"])
def test_thp_swapout_counters(pmd_swap: bool, moved: dict[str, int]) -> None:
    """§3.2 end state on zram: thp_swpout +1, pswpout +512, mthp swpout +1, the folio freed at
    once (mthp nr_anon -1); mainline splits the PMD (thp_split_pmd +1), the series installs a
    PMD swap entry instead (thp_swpout_pmd +1, decision 1)."""
    k = boot(pmd_swap)
    swapon(k)
    a = mmap_thp(k)
    c = Counters(k)
    pageout(k, a, THP)
    assert c.moved() == moved
    assert vmstat_snapshot(k)["nr_anon_transparent_hugepages"] == 0
    assert_consistent(k)


def test_an_unmodelled_counter_is_refused_by_name() -> None:
    """count_vm_event() of a name the simulation does not model fails rather than inventing it."""
    vs = VmStat()
    vs.count("pgfault")
    vs.count_mthp("swpout", 2)
    assert (vs.events["pgfault"], vs.mthp["swpout"]) == (1, 2)
    with pytest.raises(KeyError):
        vs.count("thp_file_alloc")
    with pytest.raises(KeyError):
        vs.count_mthp("anon_fault_declined")
