"""Process exit (mmshell/mm/exit.py; kernel/exit.c -> mm/mmap.c exit_mmap).

kernel-semantics.md §3.6 and §1.4: exit zaps every VMA; a PMD swap entry (or
its 512 PTEs in mainline) drops one reference per slot; the exclusive bit that
fork cleared in the survivor is never set again (verified: UFFDIO_MOVE of the
parent's entries after the child exited still fails with EBUSY).
"""

from __future__ import annotations

import pytest

from mm_unit import RW, THP, assert_consistent, boot, mmap_thp, pmd_at, swapped_thp
from mmshell.mm.errors import MmError
from mmshell.mm.exit import exit_mmap
from mmshell.mm.fork import sys_fork
from mmshell.mm.mman import Madv
from mmshell.mm.mmap import sys_mmap
from mmshell.mm.pgtable import PmdKind
from mmshell.mm.userfaultfd import sys_uffd_move, sys_uffd_register


@pytest.mark.parametrize("pmd_swap", [True, False], ids=["series", "mainline"])
def test_exit_of_a_child_drops_its_references_but_not_the_parents(pmd_swap: bool) -> None:
    k, si, a = swapped_thp(pmd_swap)
    child = sys_fork(k, k.mm(1))
    assert set(si.swap_map[512:1024]) == {2}
    exit_mmap(k, child)
    assert 2 not in k.mms and 2 not in k.shadow.procs
    assert set(si.swap_map[512:1024]) == {1} and si.inuse_pages == 512
    assert k.mm(1).rss_swapents == 512
    assert_consistent(k)


def test_exclusive_is_not_restored_when_the_child_exits() -> None:
    """The parent's PMD swap entry stays non-exclusive: UFFDIO_MOVE is still EBUSY."""
    k, _, a = swapped_thp(True)
    exit_mmap(k, sys_fork(k, k.mm(1)))
    mm = k.mm(1)
    assert not pmd_at(k, a).pmd_swp_exclusive()
    d = sys_mmap(k, mm, THP, RW, Madv.MADV_HUGEPAGE, None)
    sys_uffd_register(k, mm, d, THP)
    with pytest.raises(MmError) as e:
        sys_uffd_move(k, mm, a, d, THP)
    assert e.value.errno == "EBUSY"
    assert_consistent(k)


def test_exit_frees_a_present_thp_only_when_its_last_mapping_goes() -> None:
    """zap_huge_pmd() in the child drops one PMD mapping; the THP lives on in the parent."""
    k = boot()
    a = mmap_thp(k)
    free = k.nr_free_frames()
    exit_mmap(k, sys_fork(k, k.mm(1)))
    assert k.nr_free_frames() == free and k.mem.entire_mapcount[0x200] == 1
    assert pmd_at(k, a).kind is PmdKind.HUGE
    assert_consistent(k)
