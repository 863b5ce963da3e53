"""The summary of a compare: what the cover letter says the series changes, per mode.

`summarize(run, pte_tables, identical)` reads one mode's finished run, the PTE tables the
script allocated with each deposit and whether the swap_maps matched, into the keys of
`compare --json`'s summary:

| key | what | from |
|---|---|---|
| faults | page faults | /proc/vmstat pgfault |
| major_faults | faults that waited for I/O, once per fault | pgmajfault |
| pswpin | pages swapped in | pswpin |
| thp_split_pmd | PMDs split into PTE tables | thp_split_pmd |
| pte_tables | PTE table pages allocated, {"eager", "lazy"} deposit | simulator count |
| walker_visits | page-table entries the walkers visited (zap, mprotect, smaps, pagemap, mremap, fork, swapoff, madvise) | simulator count |
| walks | the same per walker | simulator count |
| anon_huge_kb | THPs mapped by PMD at the end | /proc/meminfo AnonHugePages |
| collapse_needed | 2 MiB ranges left PTE-mapped where a THP is allowed, each one collapse (khugepaged or MADV_COLLAPSE) to become a THP again | the page tables at the end |
| swap_map_identical | whether every device's swap_map (counts and cache bits) was the same in both modes after every step | the steps |
"""

from __future__ import annotations

from typing import Any

from ..mm.constants import PMD_SHIFT
from ..mm.huge_memory import thp_vma_allowable
from ..mm.kernel import Kernel
from ..mm.pgtable import PmdKind
from ..mm.task_mmu import meminfo, vmstat_snapshot
from ..views.walks import PTE_TABLES, sim_counts
from .record import Run

#: The summary's keys, in the order the table shows them.
KEYS = ("faults", "major_faults", "pswpin", "thp_split_pmd", "pte_tables", "walker_visits",
        "anon_huge_kb", "collapse_needed", "swap_map_identical")

#: How the table names each row (the JSON key, the words).
ROWS = (
    ("faults", "page faults (pgfault)"),
    ("major_faults", "major faults (pgmajfault)"),
    ("pswpin", "pages swapped in (pswpin)"),
    ("thp_split_pmd", "PMD splits (thp_split_pmd)"),
    ("pte_tables.eager", "PTE tables allocated, eager deposit"),
    ("pte_tables.lazy", "PTE tables allocated, set deposit lazy"),
    ("walker_visits", "page-table entries visited by walkers"),
    ("anon_huge_kb", "THPs mapped at the end (AnonHugePages kB)"),
    ("collapse_needed", "2 MiB ranges needing a collapse to be THPs again"),
    ("swap_map_identical", "swap_map identical in both modes at every step"),
)


def collapse_needed(k: Kernel) -> int:
    """PMD ranges mapped by a PTE table that maps something (a page or a swap entry), in a VMA
    where a THP is allowed over the whole range: each needs one collapse to be a THP again."""
    n = 0
    for mm in k.mms.values():
        for idx, pmd in mm.pmds.items():
            if pmd.kind is not PmdKind.TABLE or pmd.table is None or pmd.table.is_empty():
                continue
            addr = idx << PMD_SHIFT
            vma = mm.find_vma(addr)
            if vma is not None and thp_vma_allowable(k, vma, addr):
                n += 1
    return n


def summarize(run: Run, pte_tables: dict[str, int], identical: bool) -> dict[str, Any]:
    """One mode's summary (the module doc's keys); pte_tables is {"eager": n, "lazy": n}."""
    k = run.session.kernel
    vm = vmstat_snapshot(k)
    counts = sim_counts(k)
    walks = {name: n for name, n in counts.items() if name != PTE_TABLES}
    return {
        "faults": vm["pgfault"],
        "major_faults": vm["pgmajfault"],
        "pswpin": vm["pswpin"],
        "thp_split_pmd": vm["thp_split_pmd"],
        "pte_tables": dict(pte_tables),
        "walker_visits": sum(walks.values()),
        "walks": walks,
        "anon_huge_kb": meminfo(k)["AnonHugePages"],
        "collapse_needed": collapse_needed(k),
        "swap_map_identical": identical,
    }


def row_value(summary: dict[str, Any], key: str) -> Any:
    """A summary value by its row key (`pte_tables.lazy` reaches into the dict)."""
    head, _, tail = key.partition(".")
    value = summary[head]
    return value[tail] if tail else value
