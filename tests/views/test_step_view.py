"""Step digests and what a step changed; the digest stays fast on a GiB."""

from __future__ import annotations

import json

from mmshell.views.step import StepView, digest
from mmsh_helpers import bounded_calls

M, G = 1 << 20, 1 << 30
#: Python calls the digest of a GiB (512 PMDs) may make: a few per PMD, never one per page (262,144).
DIGEST_WORK = 50_000


def squeeze(s: str) -> str:
    return " ".join(s.split())


def test_pageout_step(machine, text, pmd_swap) -> None:
    m = machine(pmd_swap=pmd_swap)
    m.mmap("a", 2 * M)
    m.touch("a")
    before = digest(m.k)
    m.madvise("a", "pageout")
    view = StepView(before, digest(m.k), m.names)
    out = squeeze(text(view))
    old = before.pmds[1][m.names["a"][0] >> 21].text()
    assert old.startswith("huge THP pfn ") and old.endswith("W D excl")
    if pmd_swap:
        assert f"a+0x0 1 {old} → swap s0 slots 0x200-0x3ff excl" in out
    else:
        assert f"a+0x0 1 {old} → table: 0-511 swap s0 slots 0x200-0x3ff excl" in out
    assert "swap s0: used 0 → 512 (+512) slots 0x200-0x3ff: free → count 1" in out
    assert "thp_swpout +1" in out and "pswpout +512" in out
    assert "mthp:" in out and "swpout +1" in out
    js = view.to_json()
    assert js["vmstat"]["thp_swpout"] == 1 and js["vmstat"]["pswpout"] == 512 and js["mthp"]["swpout"] == 1
    assert js["swap"] == [{"name": "s0", "before": 0, "after": 512, "delta": 512,
                           "slots": [{"first": 512, "last": 1023, "old": None, "new": {"count": 1, "cache": False}}]}]
    assert [(c["count"], c["level"], c["old"]) for c in js["pmds"]] == [(1, "pmd", old)]
    assert json.loads(json.dumps(js)) == js


def test_no_change(machine, text) -> None:
    m = machine()
    d = digest(m.k)
    view = StepView(d, digest(m.k))
    assert view.empty and text(view).strip() == "no change"


def test_new_mapping_and_names_per_pid(machine, text) -> None:
    m = machine()
    before = digest(m.k)
    m.mmap("a", 4 * M)
    m.touch("a")
    after = digest(m.k)
    out = squeeze(text(StepView(before, after, names_by_pid={1: m.names})))
    assert "a+0x0:4M 2 none → huge THP pfn" in out
    assert "thp_fault_alloc +2" in out


def test_swapon_is_reported(machine, text) -> None:
    from mmshell.mm.swap_info import SwapKind
    from mmshell.mm.swapfile import sys_swapon
    m = machine(swap=0)
    before = digest(m.k)
    sys_swapon(m.k, "z", 64 * M, SwapKind.ZRAM, None)
    assert "swap z: swapon, used 0" in text(StepView(before, digest(m.k)))


def test_gib_pageout_folds_into_one_change(gib_states, text) -> None:
    for label in ("series", "mainline"):
        m = gib_states[label]
        after = digest(m.k)
        present = digest(gib_states["present"].k)
        view = StepView(present, after, m.names)
        out = text(view)
        assert len(view.changes) == 1 and view.changes[0].count == 512, label
        assert len(out.splitlines()) < 30, label


def test_digest_is_fast_on_a_gib(gib_states) -> None:
    for label, m in gib_states.items():
        d = bounded_calls(DIGEST_WORK, digest, m.k)     # a call or two per PMD, none per page
        assert len(d.pmds[1]) == 512, label

