"""Batched order-0 reclaim (mmshell/mm/vmscan_batch.py), against shrink_folio_list one folio at a time.

shrink_folio_list() takes a run of order-0 folios mapped by consecutive PTEs of one
table at once, and shrink_lruvec() hands it the LRU's runs of order-0 swap-backed
folios as one list; the contract is "exactly what reclaiming them one by one does".
Each case runs the same script twice, once as it is and once with both batches
turned off (every folio through the per-folio path), and requires every step to
print the same and the whole machine (tests/mmsh_state.py: page tables, mem_map,
allocator, swap devices and cache, LRU order, counters, shadow) to come out the
same.  Each case also names whether the batch must have taken a run, so a case
that stops reaching it fails.
"""

from __future__ import annotations

import pytest

from mmsh_helpers import run
from mmsh_state import diff_dumps, kernel_dump
from mmshell.mm import vmscan

SMALL = "set thp never\nswapon z 64M\n"

CASES: dict[str, tuple[str, bool]] = {
    # script, and whether a batch must have run
    "reclaim all": (SMALL + "mmap a 3M\ntouch a\nreclaim\ncheck a\n", True),
    "reclaim SIZE": (SMALL + "mmap a 3M\ntouch a\nreclaim 1100K\nreclaim 5K\ncheck a\n", True),
    "pageout part of a range": (SMALL + "mmap a 3M\ntouch a\nmadvise a+100K:2400K pageout\n"
                                "touch a:8K read\nmadvise a pageout\ncheck a\n", True),
    "several processes": (SMALL + "mmap a 1M\ntouch a\nfork\n@2 mmap b 1M\n@2 touch b\n@2 touch a:64K\n"
                          "touch a+512K:88K\nmmap c 256K\ntouch c\nreclaim\ncheck\n", True),
    "shared after fork": (SMALL + "mmap a 2M\ntouch a\nfork\n@2 touch a+4K:8K\n@2 touch a+1M:76K\n"
                          "madvise a pageout\n@2 madvise a pageout\nreclaim\ncheck\n", True),
    "cached folios (disk, readahead)": ("set thp never\nswapon d 64M kind disk\nmmap a 1M\ntouch a\nreclaim\n"
                                        "touch a+64K:4K read\ntouch a+300K:40K read\nreclaim\n"
                                        "touch a:512K read\nreclaim\ncheck\n", False),
    "cached folios (zram, swapped in shared)": (SMALL + "mmap a 1M\ntouch a\nfork\nreclaim\ntouch a read\n"
                                                "touch a:100K\nreclaim\ncheck\n", True),
    "swap nearly full": ("set thp never\nswapon z 600K prio 10\nswapon y 200K prio 1\nmmap a 1M\ntouch a\n"
                         "reclaim\ncheck a\n", True),
    "equal priorities take turns": ("set thp never\nswapon z 2M prio 5\nswapon y 2M prio 5\nmmap a 1M\n"
                                    "touch a\nreclaim\ncheck a\n", False),
    "fault point memcg_charge once": (SMALL + "mmap a 1M\ntouch a\nset fail memcg_charge once\nreclaim\n"
                                      "set fail memcg_charge off\nreclaim\ncheck a\n", True),
    "fault point swap_cont on": (SMALL + "mmap a 512K\ntouch a\nset fail swap_cont on\nreclaim\n"
                                 "madvise a pageout\ncheck a\n", False),
    "zero-filled, zswap and lazyfree": ("set thp never\nset zswap on\nswapon z 64M\nmmap a 1M\ntouch a read\n"
                                        "touch a:256K\nmadvise a+128K:256K free\nreclaim\ncheck a\n", True),
    "mainline THP split, partially mapped": ("set pmd_swap off\nswapon z 64M\nmmap a 4M hugepage\ntouch a\n"
                                             "munmap a+1M:4K\nreclaim\nmadvise a:1M pageout\n"
                                             "madvise a+2M:2M pageout\ncheck\n", True),
    "mremap and a hole": (SMALL + "mmap a 1M\ntouch a\nmremap a+256K:256K b\nmunmap a+600K:4K\n"
                          "madvise a+512K:88K dontneed\ntouch a+700K:20K\nreclaim\ncheck\n", True),
    "direct reclaim": ("set thp never\nset ram 8M\nswapon z 64M\nmmap a 6M\ntouch a\nmmap b 4M\ntouch b\n"
                       "check\n", False),
}


def _reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every folio through shrink_folio_list's per-folio path."""
    monkeypatch.setattr(vmscan, "shrink_order0_run", lambda k, todo: 0)
    monkeypatch.setattr(vmscan, "_scannable_run", lambda k, lru, i, cap: i + 1)


@pytest.mark.parametrize("case", list(CASES))
def test_batched_reclaim_equals_one_folio_at_a_time(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    script, batches = CASES[case]
    taken: list[int] = []
    batch = vmscan.shrink_order0_run

    def counting(k, todo):
        n = batch(k, todo)
        taken.append(n)
        return n

    with monkeypatch.context() as m:
        m.setattr(vmscan, "shrink_order0_run", counting)
        batched = run(script, pmd_swap=True).ok()
    assert any(n > 1 for n in taken) == batches, taken
    with monkeypatch.context() as m:
        _reference(m)
        reference = run(script, pmd_swap=True).ok()
    steps = [(r.text, r.kind, r.error, repr(r.output)) for r in batched.records]
    assert steps == [(r.text, r.kind, r.error, repr(r.output)) for r in reference.records]
    a, b = kernel_dump(batched.k), kernel_dump(reference.k)
    assert a == b, diff_dumps(a, b)
