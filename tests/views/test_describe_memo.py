"""describe_table remembers the runs of tables with no present entry (views/describe.py).

Such a table's description reads only its words and the devices' names, so the
runs are kept under those; a table with present entries reads page flags too
and is folded every time.  Each case compares with folding afresh.
"""

from __future__ import annotations

import pytest

from mmsh_helpers import run
from mmshell.mm.errors import VmBug
from mmshell.mm.folio import PG
from mmshell.mm.pgtable import PmdKind
from mmshell.views import describe
from mmshell.views.describe import describe_table
from mmshell.views.digest_cache import DigestCache

SCRIPT = ("swapon sda 8M kind disk prio 10\nswapon z 16M prio 5\nmmap a 4M hugepage\ntouch a\n"
          "madvise a pageout\ntouch a+2M+0x3000:4K\n")


def tables(k):
    return [p.table.ptes for p in k.mms[1].pmds.values() if p.kind is PmdKind.TABLE]


def test_a_swapped_table_is_described_once_then_remembered() -> None:
    k = run(SCRIPT, False).ok().k
    swapped = [t for t in tables(k) if not any(w & 3 == 1 for w in t)]
    assert swapped
    describe._NOT_PRESENT.clear()
    first = describe_table(k, swapped[0])
    assert describe_table(k, swapped[0]) is first == describe._fold_table(k, swapped[0])
    assert {r.dev for r in first if r.kind == "swap"} == {"sda"}


def test_a_renamed_device_or_a_changed_word_is_described_afresh() -> None:
    k = run(SCRIPT, False).ok().k
    ptes = next(t for t in tables(k) if not any(w & 3 == 1 for w in t))
    before = describe_table(k, ptes)
    k.swap_info[0].name = "sdb"
    renamed = describe_table(k, ptes)
    assert renamed == describe._fold_table(k, ptes)
    assert {r.dev for r in renamed if r.kind == "swap"} == {"sdb"}
    k.swap_info[0].name = "sda"
    ptes[7] = 0
    changed = describe_table(k, ptes)
    assert changed != before and changed == describe._fold_table(k, ptes)


def test_a_table_with_present_entries_reads_its_page_flags_each_time() -> None:
    k = run(SCRIPT, False).ok().k
    ptes = next(t for t in tables(k) if any(w & 3 == 1 for w in t))
    pfn = next(w >> 12 for w in ptes if w & 3 == 1)
    before = describe_table(k, ptes)
    k.mem.flags[pfn] ^= PG.ANON_EXCLUSIVE
    assert describe_table(k, ptes) != before
    assert describe_table(k, ptes) == describe._fold_table(k, ptes)


def test_the_memo_is_bounded(monkeypatch) -> None:
    k = run(SCRIPT, False).ok().k
    ptes = next(t for t in tables(k) if not any(w & 3 == 1 for w in t))
    monkeypatch.setattr(describe, "_MEMO_RUNS", 40)
    describe._NOT_PRESENT.clear()
    describe._memo_runs = 0
    sizes = []
    for i in range(30):
        ptes[0] = (i + 1) << 17 | 2            # another swap entry: another key
        describe_table(k, ptes)
        assert describe._memo_runs <= 40
        sizes.append(len(describe._NOT_PRESENT))
    assert max(sizes) > 1 and min(sizes[1:]) == 1        # it filled up and was emptied


def test_the_step_digest_check_still_sees_a_swapped_table_changed_behind_its_back() -> None:
    """The digest cache's check (views/digest_cache.py, verify=True) describes a kept process
    afresh: a remembered table whose words changed is a new key, so the change shows."""
    k = run(SCRIPT + "fork\n", False).ok().k
    cache = DigestCache(verify=True)
    cache.digest(k)
    cache.digest(k)                                 # the child's swapped tables are remembered now
    mm = dict.__getitem__(k.mms, 2)                 # behind the PidTable's back
    ptes = next(p.table.ptes for p in mm.pmds.values()
                if p.kind is PmdKind.TABLE and not any(w & 3 == 1 for w in p.table.ptes))
    ptes[3] ^= 1 << 6                               # uffd-wp on one swap PTE
    with pytest.raises(VmBug, match="pid 2 changed"):
        cache.digest(k)
