"""`show vmstat [all]`: counters in kernel order, changes marked, the mTHP section."""

from __future__ import annotations

from mmshell.mm.task_mmu import vmstat_snapshot
from mmshell.views.vmstat import MTHP_DIR, VmstatView

M = 1 << 20


def marked(out: str) -> dict[str, str]:
    """counter -> change, for the rows marked '*'."""
    rows = {}
    for ln in out.splitlines():
        parts = ln.split()
        if parts and parts[0] == "*":
            rows[parts[1]] = parts[-1]
    return rows


def test_changes_since_previous_are_marked(machine, text, pmd_swap) -> None:
    m = machine(pmd_swap=pmd_swap)
    m.mmap("a", 2 * M)
    m.touch("a")
    before, before_mthp = vmstat_snapshot(m.k), dict(m.k.vmstat.mthp)
    m.madvise("a", "pageout")
    view = VmstatView(vmstat_snapshot(m.k), m.k.vmstat.mthp, before, previous_mthp=before_mthp)
    out = text(view)
    changes = marked(out)
    assert changes["thp_swpout"] == "+1"
    assert changes["pswpout"] == "+512"
    assert changes["swpout"] == "+1"                 # the mTHP stat
    assert changes["nr_anon_pages"] == "-512"
    assert "pgfault" in out and "pgfault" not in changes
    assert MTHP_DIR in out and out.index(MTHP_DIR) > out.index("thp_swpout")
    if pmd_swap:
        assert changes["thp_swpout_pmd"] == "+1"
    else:
        assert "thp_swpout_pmd" not in out and changes["thp_split_pmd"] == "+1"
    js = view.to_json()
    assert {"name": "pswpout", "value": 512, "delta": 512} in js["vmstat"]
    assert {"name": "swpout", "value": 1, "delta": 1} in js[MTHP_DIR]


def test_nonzero_only_unless_all(machine, text) -> None:
    m = machine()
    snap = vmstat_snapshot(m.k)
    some = VmstatView(snap, m.k.vmstat.mthp)
    every = VmstatView(snap, m.k.vmstat.mthp, show_all=True)
    assert all(r["value"] for r in some.to_json()["vmstat"])
    assert [r["name"] for r in every.to_json()["vmstat"]] == list(snap)   # kernel order
    assert "zswpwb" in text(every) and "zswpwb" not in text(some)
    assert "*" not in text(some)
    assert f"{MTHP_DIR}: all zero" in text(some)
