"""`show walks`: entries visited per walker and PTE tables allocated, simulator counts."""

from __future__ import annotations

from mmshell.mm.pagewalk import WALKER_FUNCTION, Walker
from mmshell.mm.mmap import sys_munmap
from mmshell.views.walks import PTE_TABLES, WalksView, sim_counts

M = 1 << 20


def test_zap_of_a_swapped_thp_visits_1_entry_with_the_series_512_in_mainline(machine, text, pmd_swap) -> None:
    """munmap of a swapped-out THP: zap_huge_pmd reaches one PMD swap entry (1 visit); in
    mainline zap_pte_range reads the 512 swap PTEs the split left."""
    m = machine(pmd_swap=pmd_swap)
    m.mmap("a", 2 * M)
    m.touch("a")
    m.madvise("a", "pageout")
    before = sim_counts(m.k)
    sys_munmap(m.k, m.mm, *m.names["a"])
    view = WalksView(sim_counts(m.k), before)
    js = view.to_json()
    zap = next(r for r in js["walks"] if r["walker"] == "zap")
    assert zap["delta"] == (1 if pmd_swap else 512)
    assert js[PTE_TABLES] == {"value": 1, "delta": 0}          # the THP fault's deposit
    assert [r["walker"] for r in js["walks"]] == [w.value for w in Walker]
    out = text(view)
    assert "simulator counts, not /proc/vmstat" in out
    for w in Walker:                                            # the legend: each walker's kernel function
        assert WALKER_FUNCTION[w].split(":")[0] in out
    assert any(ln.split()[:2] == ["*", "zap"] for ln in out.splitlines())


def test_walks_are_no_vmstat_names(machine) -> None:
    """The simulator's counts never appear among /proc/vmstat's names."""
    from mmshell.mm.task_mmu import vmstat_snapshot
    m = machine()
    assert not set(sim_counts(m.k)) & set(vmstat_snapshot(m.k))
