"""The data checker's whole-PMD fast path (mm/check_data.py) against reading page by page.

`_pmd_reads_shadow` decides for one PMD at once whether every page reads its
shadow value; `check_data` walks the 512 pages with `_read_entry` only when it
says no, to name what differs.  Its answer must be exactly what the page-by-page
reading gives, in both directions: on the states the random suites build (PTE
tables whose swap entries lie on several devices, swap-cached slots among them,
present pages beside swap entries, PMD swap entries whose slots are cached whole
or in part) and on every corruption of one page's value, the shadow's or the
machine's (a device's copy, a cached folio's page, a swap table entry pointing
at a folio not in the swap cache).
"""

from __future__ import annotations

from array import array

import pytest

from mmsh_helpers import run
from mmshell.mm.check_data import _pmd_reads_shadow, _read_entry, _UNREADABLE, check_data
from mmshell.mm.constants import HPAGE_PMD_NR
from mmshell.mm.pgtable import PmdKind, is_swap_pte, pte_swp_offset, pte_swp_type
from mmshell.mm import pte_masks as bm

DISK_THEN_ZRAM = "swapon sda 1M kind disk prio 10\nswapon z 16M prio 5\n"
THP = "mmap a 2M hugepage\ntouch a\n"

#: name -> (mode, script, the states it must reach)
CASES = {
    # mainline: 256 PTE swap entries on sda (still cached: a disk), 256 on z
    "two devices, half cached": (False, DISK_THEN_ZRAM + THP + "madvise a pageout\n",
                                 {"types 2", "cached slot"}),
    "two devices, readahead": (False, DISK_THEN_ZRAM + THP + "madvise a pageout\ntouch a read\n"
                               "madvise a pageout\ntouch a+0x5000:4K read\ntouch a+1M+0x9000:4K\n",
                               {"types 2", "cached slot", "present beside swap"}),
    "readahead beside present": (False, "swapon sda 64M kind disk\n" + THP + "madvise a pageout\n"
                                 "touch a read\nmadvise a pageout\ntouch a+0x5000:4K read\n",
                                 {"cached slot", "present beside swap"}),
    "shared after fork": (False, "swapon sda 64M kind disk\n" + THP + "madvise a pageout\ntouch a read\n"
                          "madvise a pageout\nfork\n@2 touch a+0x3000:4K read\n",
                          {"cached slot", "present beside swap"}),
    # the series: a PMD swap entry whose THP stays in the swap cache (disk), and one
    # whose slots a child's readahead caches as small folios
    "PMD swap entry, THP cached": (True, "swapon sda 64M kind disk\n" + THP + "madvise a pageout\n",
                                   {"pmd swap cached whole"}),
    "PMD swap entry, small folios cached": (True, "swapon sda 64M kind disk\n" + THP + "madvise a pageout\n"
                                            "touch a read\nmadvise a pageout\nfork\n@2 munmap a+1M:1M\n"
                                            "@2 touch a+0x5000:4K read\n",
                                            {"pmd swap cached in part"}),
}


def one_by_one(k, pmd, chunk) -> bool:
    """check_data's page-by-page reading: every page reads its shadow value (0 where not mapped)."""
    for i in range(HPAGE_PMD_NR):
        got = _read_entry(k, pmd, i)
        if got == _UNREADABLE or (got or 0) != chunk[i]:
            return False
    return True


def agree(k, pmd, chunk) -> bool:
    fast, slow = _pmd_reads_shadow(k, pmd, chunk), one_by_one(k, pmd, chunk)
    assert fast == slow, f"fast path {fast}, page by page {slow} ({pmd.kind})"
    return fast


def states(k, pmd) -> set[str]:
    """What this PMD shows of the states the fast path has to cover."""
    out = set()
    if pmd.kind is PmdKind.SWAP:
        si = k.swap_info[pmd.swp_type]
        if si.cache.any_in(pmd.swp_offset, HPAGE_PMD_NR):
            whole = si.cache.get(pmd.swp_offset) is not None and k.mem.order[si.cache[pmd.swp_offset]] == 9
            out.add("pmd swap cached whole" if whole else "pmd swap cached in part")
    elif pmd.kind is PmdKind.TABLE:
        swaps = [p for p in pmd.table.ptes if is_swap_pte(p)]
        if len({pte_swp_type(p) for p in swaps}) > 1:
            out.add("types 2")
        if any(pte_swp_offset(p) in k.swap_info[pte_swp_type(p)].cache for p in swaps):
            out.add("cached slot")
        if swaps and any(p & 3 == 1 for p in pmd.table.ptes):
            out.add("present beside swap")
    return out


def page_sources(k, pmd) -> dict[str, int]:
    """One page index of each kind under this PMD (present, swap not cached, swap cached, none)."""
    out: dict[str, int] = {}
    for i in range(HPAGE_PMD_NR):
        if pmd.kind is PmdKind.TABLE:
            p = pmd.table.ptes[i]
            what = "none" if p & 3 == 0 else "present" if p & 3 == 1 else (
                "cached" if pte_swp_offset(p) in k.swap_info[pte_swp_type(p)].cache else "swap")
        elif pmd.kind is PmdKind.SWAP:
            what = "cached" if pmd.swp_offset + i in k.swap_info[pmd.swp_type].cache else "swap"
        else:
            what = pmd.kind.value
        out.setdefault(what, i)
    return out


def slot_of(k, pmd, i):
    if pmd.kind is PmdKind.SWAP:
        return k.swap_info[pmd.swp_type], pmd.swp_offset + i
    p = pmd.table.ptes[i]
    return k.swap_info[pte_swp_type(p)], pte_swp_offset(p)


@pytest.mark.parametrize("case", list(CASES))
def test_fast_path_says_what_reading_page_by_page_says(case: str) -> None:
    pmd_swap, script, wanted = CASES[case]
    k = run(script, pmd_swap).ok().k
    assert check_data(k) == []
    reached: set[str] = set()
    for pid, mm in k.mms.items():
        for pmdi, pmd in mm.pmds.items():
            reached |= states(k, pmd)
            chunk = k.shadow.procs.get(pid, {}).get(pmdi, bm.ZEROS_Q)
            assert agree(k, pmd, chunk)
            for what, i in page_sources(k, pmd).items():
                # the shadow says another value for one page of each kind
                wrong = array("Q", chunk)
                wrong[i] ^= 0x5A
                assert not agree(k, pmd, wrong), what
                if what not in ("swap", "cached"):
                    continue
                si, off = slot_of(k, pmd, i)
                if what == "swap":          # the device's copy changed
                    si.data[off] ^= 0x5A
                    assert not agree(k, pmd, chunk)
                    si.data[off] ^= 0x5A
                    continue
                head = si.cache[off]  # the cached folio's page changed; the device's copy does not count
                pfn = head + off - k.folio_swap[head].offset
                k.mem.data[pfn] ^= 0x5A
                assert not agree(k, pmd, chunk)
                k.mem.data[pfn] ^= 0x5A
                si.data[off] ^= 0x5A
                assert agree(k, pmd, chunk)
                si.data[off] ^= 0x5A
                si.cache[off] = 1          # a table entry whose folio is not in the swap cache: unreadable
                assert not agree(k, pmd, chunk)
                si.cache[off] = head
            assert agree(k, pmd, chunk)
    assert wanted <= reached, f"{case} did not reach {wanted - reached}"
