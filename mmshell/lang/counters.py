"""What each counter the simulation shows counts, and which kernel function counts it.

One table, declared once: `help COUNTER` (`help thp_swpout_pmd`, `help
mthp.swpin`, `help smaps.SwapPss`), `help counters`, the step summary's choice
of counters (`set counters key|all`) and `explain` all read it.

A counter is *key* when it teaches something of its own.  The others restate a
counter shown beside them (`nr_zone_inactive_anon` is `nr_inactive_anon` of the
one zone; `pgfree` is the rise of `nr_free_pages`; the PMD-size mTHP stats
repeat their vmstat twins): `set counters key`, the default, leaves them out
of the step summary, `set counters all` shows them.  `explain` names every
counter that moved, key or not.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..mm.task_mmu import SMAPS_FIELDS
from ..mm.vmstat import EVENTS, GAUGES, MTHP_STATS

__all__ = ["CounterDoc", "COUNTERS", "counter_doc", "counter_topics", "is_key", "counters_help"]


@dataclass(frozen=True, slots=True)
class CounterDoc:
    """One counter: its family (vmstat, mthp, smaps, meminfo), what it counts, which
    kernel function counts it, and the counter it restates (None: it is key)."""

    family: str
    name: str
    what: str
    counted_by: str
    restates: str | None = None
    gauge: bool = False

    @property
    def topic(self) -> str:
        """The name `help` takes: vmstat counters bare, the others FAMILY.NAME."""
        return self.name if self.family == "vmstat" else f"{self.family}.{self.name}"

    @property
    def key(self) -> bool:
        return self.restates is None

    def text(self) -> str:
        kind = "gauge (a level, kept up to date)" if self.gauge else "event (a running count)"
        lines = [f"{self.topic}:  {self.what}", f"  kind:  {kind}", f"  counted by:  {self.counted_by}"]
        if self.restates:
            lines.append(f"  restates {self.restates}: hidden from the step summary "
                         "unless `set counters all`")
        return "\n".join(lines)


def _v(name: str, what: str, by: str, restates: str | None = None) -> CounterDoc:
    return CounterDoc("vmstat", name, what, by, restates, gauge=name in GAUGES)


def _m(name: str, what: str, by: str, restates: str | None = None, gauge: bool = False) -> CounterDoc:
    return CounterDoc("mthp", name, what, by, restates, gauge)


def _s(name: str, what: str,
       by: str = "smaps_pte_entry / smaps_pmd_entry (fs/proc/task_mmu.c)") -> CounterDoc:
    return CounterDoc("smaps", name, what, by, None, gauge=True)


def _i(name: str, what: str, by: str) -> CounterDoc:
    return CounterDoc("meminfo", name, what, by, None, gauge=True)


COUNTERS: tuple[CounterDoc, ...] = (
    # /proc/vmstat gauges
    _v("nr_free_pages", "free page frames in the buddy allocator",
       "the page allocator (__mod_zone_freepage_state)",
       "the pages the step allocated or freed (nr_anon_pages, nr_page_table_pages, nr_swapcached)"),
    _v("nr_zone_inactive_anon", "anonymous pages on the inactive LRU list of the one zone",
       "update_lru_size (lruvec_add_folio / lruvec_del_folio)", "nr_inactive_anon"),
    _v("nr_zone_active_anon", "anonymous pages on the active LRU list of the one zone",
       "update_lru_size (lruvec_add_folio / lruvec_del_folio)", "nr_active_anon"),
    _v("nr_inactive_anon", "anonymous pages on the inactive LRU list, where reclaim looks first",
       "update_lru_size (lruvec_add_folio / lruvec_del_folio)",
       "nr_anon_pages and nr_swapcached (every such page is on one LRU list), moved by "
       "pgactivate / pgdeactivate"),
    _v("nr_active_anon", "anonymous pages on the active LRU list",
       "update_lru_size (lruvec_add_folio / lruvec_del_folio)",
       "nr_anon_pages and nr_swapcached, moved by pgactivate / pgdeactivate"),
    _v("nr_anon_pages", "anonymous pages mapped by some page table (NR_ANON_MAPPED)",
       "folio_add_new_anon_rmap / __folio_remove_rmap (mm/rmap.c)"),
    _v("nr_anon_transparent_hugepages", "anonymous THPs mapped by a PMD (NR_ANON_THPS)",
       "folio_add_new_anon_rmap / __folio_remove_rmap at RMAP_LEVEL_PMD"),
    _v("nr_page_table_pages", "pages holding PTE tables, deposited ones included (NR_PAGETABLE)",
       "pagetable_pte_ctor / pagetable_dtor (pte_alloc, pgtable_trans_huge_deposit)"),
    _v("nr_swapcached", "pages in the swap cache (NR_SWAPCACHE)",
       "__swap_cache_add_folio / __swap_cache_del_folio (mm/swap_state.c)"),
    # /proc/vmstat events
    _v("pswpin", "pages read in from a swap device", "swap_read_folio > count_vm_events(PSWPIN)"),
    _v("pswpout", "pages written out to a swap device", "__swap_writepage > count_swpout_vm_event"),
    _v("pgfree", "pages freed to the buddy allocator", "free_unref_folios / __free_pages_ok",
       "nr_free_pages (its rise)"),
    _v("pgactivate", "folios moved to the active LRU list",
       "folio_activate / shrink_folio_list (activate_locked)"),
    _v("pgdeactivate", "folios moved to the inactive LRU list (MADV_COLD, MADV_PAGEOUT)",
       "lru_deactivate_fn / madvise_cold_or_pageout_pte_range"),
    _v("pglazyfree", "pages marked lazily freeable by MADV_FREE", "lru_lazyfree_fn (madvise_free_pte_range)"),
    _v("pgfault", "page faults, one per fault however many pages it maps",
       "handle_mm_fault > count_vm_event(PGFAULT)"),
    _v("pgmajfault", "faults that had to read from swap (a major fault)",
       "do_swap_page / do_huge_pmd_swap_page > count_vm_event(PGMAJFAULT)"),
    _v("pglazyfreed", "lazyfree pages reclaim dropped without swapping them (clean since MADV_FREE)",
       "shrink_folio_list / try_to_unmap_one (discard)"),
    _v("pgreuse", "write faults that reused the page in place instead of copying it",
       "wp_page_reuse / do_huge_pmd_wp_page"),
    _v("pgsteal_direct", "pages reclaimed by direct reclaim, run by an allocation that found no free memory",
       "shrink_inactive_list under try_to_free_pages"),
    _v("pgrotated", "folios moved to the oldest end of the inactive list when the write reclaim "
       "started ended (a disk or a swap file), so the next reclaim frees them first",
       "folio_end_writeback > folio_rotate_reclaimable > lru_move_tail"),
    _v("thp_fault_alloc", "THPs allocated and mapped by a PMD at a fault",
       "__do_huge_pmd_anonymous_page (do_huge_pmd_anonymous_page)"),
    _v("thp_fault_fallback", "THP faults that fell back to small pages (no THP, or no charge)",
       "do_huge_pmd_anonymous_page / __do_huge_pmd_anonymous_page"),
    _v("thp_fault_fallback_charge", "of thp_fault_fallback, those whose memcg charge failed",
       "__do_huge_pmd_anonymous_page (mem_cgroup_charge failed)"),
    _v("thp_collapse_alloc", "THPs khugepaged allocated to collapse a PTE table into",
       "collapse_huge_page > alloc_charge_folio"),
    _v("thp_collapse_alloc_failed", "khugepaged collapses abandoned because no THP could be allocated",
       "collapse_huge_page > alloc_charge_folio"),
    _v("thp_split_page", "THP folios split into 512 small folios", "__folio_split (split_folio)"),
    _v("thp_split_page_failed", "THP folio splits that failed (extra references)", "__folio_split"),
    _v("thp_deferred_split_page", "THPs queued to be split later, because they became partly mapped",
       "deferred_split_folio"),
    _v("thp_underused_split_page", "THPs on the deferred split queue split by the shrinker because "
       "most of their pages were never written (zero-filled: thp_underused)", "deferred_split_scan"),
    _v("thp_split_pmd", "PMD entries split into a table of 512 PTEs (a huge mapping, or with the "
       "series a PMD swap entry)", "__split_huge_pmd / __split_huge_pmd_locked"),
    _v("thp_scan_exceed_none_pte", "ranges khugepaged skipped: more empty PTEs than max_ptes_none",
       "hpage_collapse_scan_pmd"),
    _v("thp_scan_exceed_swap_pte", "ranges khugepaged skipped: more swap PTEs than max_ptes_swap",
       "hpage_collapse_scan_pmd"),
    _v("thp_scan_exceed_share_pte", "ranges khugepaged skipped: more shared pages than max_ptes_shared",
       "hpage_collapse_scan_pmd"),
    _v("thp_zero_page_alloc", "times the huge zero page was allocated (once, at the first read fault)",
       "get_huge_zero_folio"),
    _v("thp_zero_page_alloc_failed", "huge zero page allocations that failed", "get_huge_zero_folio"),
    _v("thp_swpout", "THPs written to swap whole, in one 2 MiB cluster, without a split",
       "__swap_writepage > count_swpout_vm_event"),
    _v("thp_swpout_fallback", "THPs split before swap-out because no whole 2 MiB swap cluster was had",
       "shrink_folio_list (folio_alloc_swap failed, then split_folio_to_list)"),
    _v("thp_swpout_pmd", "THPs whose PMD mapping became one PMD swap entry (the series only)",
       "try_to_unmap_one > set_pmd_swap_entry (patch 12/13)"),
    _v("swap_ra", "pages read ahead of need by swap readahead",
       "swap_cluster_readahead / swap_vma_readahead"),
    _v("swap_ra_hit", "read-ahead pages a later fault found in the swap cache",
       "swap_cache_get_folio > swap_update_readahead"),
    _v("swpin_zero", "pages swapped in as zeroes from the zeromap, with no read",
       "swap_read_folio > swap_read_folio_zeromap"),
    _v("swpout_zero", "all-zero pages recorded in the zeromap at swap-out, with no write",
       "swap_writeout > is_folio_zero_filled"),
    _v("zswpin", "pages loaded back from zswap's compressed pool", "zswap_load"),
    _v("zswpout", "pages stored compressed in zswap instead of written to the device", "zswap_store"),
    _v("zswpwb", "zswap pages written back to the swap device", "zswap_writeback_entry"),
    # /sys/kernel/mm/transparent_hugepage/hugepages-2048kB/stats
    _m("anon_fault_alloc", "PMD-size anonymous folios allocated at a fault", "count_mthp_stat in "
       "__do_huge_pmd_anonymous_page", "thp_fault_alloc"),
    _m("anon_fault_fallback", "PMD-size fault allocations that fell back", "count_mthp_stat in "
       "do_huge_pmd_anonymous_page", "thp_fault_fallback"),
    _m("anon_fault_fallback_charge", "of those, the memcg charge failures", "count_mthp_stat in "
       "__do_huge_pmd_anonymous_page", "thp_fault_fallback_charge"),
    _m("nr_anon", "PMD-size anonymous folios in use", "__folio_mod_stat", "nr_anon_transparent_hugepages",
       gauge=True),
    _m("nr_anon_partially_mapped", "PMD-size anonymous folios on the deferred split queue, partly mapped",
       "deferred_split_folio / __folio_unqueue_deferred_split", gauge=True),
    _m("shmem_alloc", "PMD-size shmem folios allocated (anonymous memory never moves it)",
       "shmem_alloc_and_add_folio"),
    _m("shmem_fallback", "PMD-size shmem allocations that fell back", "shmem_alloc_and_add_folio"),
    _m("shmem_fallback_charge", "of those, the charge failures", "shmem_alloc_and_add_folio"),
    _m("split", "PMD-size folios split", "count_mthp_stat in __folio_split", "thp_split_page"),
    _m("split_deferred", "PMD-size folios queued for a deferred split", "deferred_split_folio",
       "thp_deferred_split_page"),
    _m("split_failed", "PMD-size folio splits that failed", "__folio_split", "thp_split_page_failed"),
    _m("swpin", "PMD-size folios swapped in whole, in one fault (with the series: do_huge_pmd_swap_page)",
       "count_mthp_stat in swap_read_folio"),
    _m("swpin_fallback", "PMD-size swap-ins that fell back to small pages (the entry was split)",
       "alloc_swap_folio; with the series do_huge_pmd_swap_page's fallback"),
    _m("swpin_fallback_charge", "of those, the memcg charge failures",
       "alloc_swap_folio; with the series do_huge_pmd_swap_page"),
    _m("swpout", "PMD-size folios swapped out whole", "count_swpout_vm_event in __swap_writepage",
       "thp_swpout"),
    _m("swpout_fallback", "PMD-size folios split before swap-out", "shrink_folio_list",
       "thp_swpout_fallback"),
    _m("zswpout", "PMD-size folios stored in zswap", "zswap_store"),
    # /proc/PID/smaps, per region (kB)
    _s("Size", "the region's length", "show_smap (vma->vm_end - vma->vm_start)"),
    _s("KernelPageSize", "the page size the kernel maps the region with"),
    _s("MMUPageSize", "the page size the MMU maps the region with"),
    _s("Rss", "memory of the region mapped right now (resident), whatever other processes map"),
    _s("Pss", "Rss, each page divided by the number of processes mapping it (proportional share)"),
    _s("Pss_Dirty", "the dirty part of Pss"),
    _s("Shared_Clean", "resident clean pages another process maps too"),
    _s("Shared_Dirty", "resident dirty pages another process maps too"),
    _s("Private_Clean", "resident clean pages only this process maps"),
    _s("Private_Dirty", "resident dirty pages only this process maps"),
    _s("Referenced", "resident pages marked accessed (young)"),
    _s("Anonymous", "resident anonymous pages"),
    _s("LazyFree", "pages MADV_FREE marked, which reclaim may drop without swap"),
    _s("AnonHugePages", "resident anonymous memory mapped by PMDs (whole THPs)", "smaps_pmd_entry"),
    _s("Swap", "memory of the region that is out on swap (swap entries, PTE or PMD)",
       "smaps_pte_entry / smaps_pmd_entry (with the series, a PMD swap entry counts 2 MiB)"),
    _s("SwapPss", "Swap, each slot divided by its swap count (the processes that share it)",
       "smaps_pte_entry / smaps_pmd_entry (swp_swapcount)"),
    _s("Locked", "memory locked with mlock (never here)"),
    _s("THPeligible", "1 when a THP may back some 2 MiB of the region", "thp_vma_allowable_orders"),
    # /proc/meminfo (kB)
    _i("MemTotal", "the simulated RAM (set ram)", "si_meminfo (totalram_pages)"),
    _i("MemFree", "free memory (nr_free_pages in kB)", "si_meminfo"),
    _i("AnonPages", "mapped anonymous memory (nr_anon_pages in kB)", "meminfo_proc_show"),
    _i("AnonHugePages", "anonymous memory in PMD-mapped THPs", "meminfo_proc_show (NR_ANON_THPS)"),
    _i("SwapCached", "memory in the swap cache (nr_swapcached in kB)", "meminfo_proc_show"),
    _i("SwapTotal", "the size of every swap device, less its header page", "si_swapinfo"),
    _i("SwapFree", "swap not in use", "si_swapinfo"),
    _i("PageTables", "memory in page tables (nr_page_table_pages in kB)", "meminfo_proc_show"),
    _i("Active(anon)", "anonymous memory on the active LRU list", "meminfo_proc_show"),
    _i("Inactive(anon)", "anonymous memory on the inactive LRU list", "meminfo_proc_show"),
)

_BY_TOPIC = {c.topic: c for c in COUNTERS}
_BY_FAMILY = {(c.family, c.name): c for c in COUNTERS}


def counter_doc(topic: str) -> CounterDoc:
    """The doc of `topic` (`thp_swpout`, `vmstat.thp_swpout`, `mthp.swpin`, `smaps.SwapPss`,
    `smaps.a.SwapPss`); KeyError if there is none."""
    if topic.startswith("vmstat."):
        topic = topic[len("vmstat."):]
    parts = topic.split(".")
    if len(parts) == 3 and parts[0] == "smaps":           # smaps.REGION.FIELD
        topic = f"smaps.{parts[2]}"
    return _BY_TOPIC[topic]


def family_doc(family: str, name: str) -> CounterDoc | None:
    return _BY_FAMILY.get((family, name))


def counter_topics() -> tuple[str, ...]:
    """Every counter `help` takes by name."""
    return tuple(_BY_TOPIC)


def is_key(family: str, name: str) -> bool:
    """Whether the step summary shows this counter under `set counters key`."""
    doc = _BY_FAMILY.get((family, name))
    return doc is None or doc.key


def counters_help() -> str:
    """`help counters`: the key counters, and the ones the step summary hides by default."""
    key = [c.topic for c in COUNTERS if c.family in ("vmstat", "mthp") and c.key]
    hidden = [c for c in COUNTERS if c.family in ("vmstat", "mthp") and not c.key]
    lines = ["The step summary lists the counters that moved. `set counters key` (the",
             "default) shows the ones that teach; `set counters all` also shows these,",
             "which restate another counter:"]
    lines += [f"  {c.topic:<32}  restates {c.restates}" for c in hidden]
    lines += ["", "help COUNTER says what one counts and which kernel function counts it:",
              "help thp_swpout_pmd, help mthp.swpin, help smaps.SwapPss, help meminfo.SwapFree.",
              "", "Key counters: " + ", ".join(key) + "."]
    return "\n".join(lines)


def _check_complete() -> None:
    """Every counter the simulation exports has its doc (an import-time check)."""
    missing = ([n for n in (*GAUGES, *EVENTS) if ("vmstat", n) not in _BY_FAMILY]
               + [n for n in MTHP_STATS if ("mthp", n) not in _BY_FAMILY]
               + [n for n in SMAPS_FIELDS if ("smaps", n) not in _BY_FAMILY])
    if missing:
        raise RuntimeError(f"counters without a doc: {missing}")


_check_complete()
