"""`check` at the prompt never fails silently: a machine corrupted on purpose, every problem printed.

Each corruption breaks one thing the checker knows about (a swap count, a
mapcount, a gauge, a page's contents, a PTE outside its VMA...); `check`
must be refused with one error line followed by every problem, one per line,
naming what is wrong.  A random corruption of any array never makes the
checker itself crash.
"""

from __future__ import annotations

import io
import os
import random
from array import array

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mmsh_fuzz import session
from mmshell.lang.runner import run_text
from mmshell.mm.check import check_invariants
from mmshell.mm.check_data import check_data
from mmshell.mm.constants import PMD_SHIFT
from mmshell.mm.folio import PG
from mmshell.mm.pgtable import PmdKind
from mmshell.mm.shadow import ProcShadow


def _first_table(k):
    for mm in k.mms.values():
        for pmdi, pmd in sorted(mm.pmds.items()):
            if pmd.kind is PmdKind.TABLE and any(p & 3 == 1 and not p & 0x100 for p in pmd.table.ptes):
                return mm, pmdi, pmd
    raise AssertionError("no PTE table")


def _a_swapped_slot(k):
    for si in k.swap_info:
        if si is not None:
            for off in range(1, si.pages):
                if si.swap_count(off):
                    return si, off
    raise AssertionError("no swap slot in use")


def _present_pte(k):
    mm, pmdi, pmd = _first_table(k)
    i = next(i for i, p in enumerate(pmd.table.ptes) if p & 3 == 1 and not p & 0x100)
    return mm, pmdi, pmd, i


def c_swap_count(k):
    si, off = _a_swapped_slot(k)
    si.swap_map[off] += 1
    return f"slot {off:#x}: count"


def c_swap_count_low(k):
    si, off = _a_swapped_slot(k)
    si.swap_map[off] -= 1
    return f"slot {off:#x}: count"


def c_count_nothing_references(k):
    si, _ = _a_swapped_slot(k)
    off = max(o for o in range(1, si.pages) if not si.swap_map[o])
    si.swap_map[off] = 1
    return f"slot {off:#x}: count 1 but 0 entries"


def c_swap_pte_beyond_device(k):
    mm, pmdi, pmd, i = _present_pte(k)
    si, _ = _a_swapped_slot(k)
    pmd.table.ptes[i] = (si.pages << 17) | (si.type << 12) | 2
    return "beyond the device"


def c_cache_bit(k):
    si, off = _a_swapped_slot(k)
    si.swap_map[off] ^= 0x40
    return "cache bit"


def c_inuse(k):
    si, _ = _a_swapped_slot(k)
    si.inuse_pages += 3
    return "inuse_pages"


def c_mapcount(k):
    mm, pmdi, pmd, i = _present_pte(k)
    k.mem.mapcount[pmd.table.ptes[i] >> 12] += 1
    return "mapcount"


def c_rss(k):
    k.mms[1].rss_anon -= 1
    return "MM_ANONPAGES"


def c_swapents(k):
    k.mms[1].rss_swapents += 2
    return "MM_SWAPENTS"


def c_gauge(k):
    k.vmstat.nr_anon_pages += 1
    return "nr_anon_pages"


def c_swapcached(k):
    k.vmstat.nr_swapcached += 1
    return "nr_swapcached"


def c_page_contents(k):
    mm, pmdi, pmd, i = _present_pte(k)
    k.mem.data[pmd.table.ptes[i] >> 12] ^= 0xDEAD
    return "last written"


def c_lost_pte(k):
    mm, pmdi, pmd, i = _present_pte(k)
    page = pmd.table.ptes[i] >> 12
    pmd.table.ptes[i] = 0
    k.mem.mapcount[page] -= 1
    mm.rss_anon -= 1
    k.vmstat.nr_anon_pages -= 1
    return "not mapped (reads zero)"


def c_frame_free_and_used(k):
    mm, pmdi, pmd, i = _present_pte(k)
    k.mem.alloc._free[pmd.table.ptes[i] >> 12] = 1
    return "in use and free"


def c_lru(k):
    k.lru.delete(k.lru.inactive()[0])
    return "not on the LRU"


def c_leak(k):
    pfn = k.mem.folio_alloc(0)
    k.mem.set(pfn, PG.ANON)
    k.lru.add(pfn)
    return "leaked"


def c_pte_outside_vma(k):
    mm = k.mms[1]
    mm.vmas.sort(key=lambda v: v.start)
    v = mm.vmas[0]
    mm, pmdi, pmd, i = _present_pte(k)
    # a stray swap PTE at the page below the lowest VMA, in a table of its own
    addr = v.start - 4096
    from mmshell.mm.pgtable import PteTable, mk_table_pmd

    t = mm.pmds.setdefault(addr >> PMD_SHIFT, mk_table_pmd(PteTable()))
    if t.table is not None:
        t.table.ptes[(addr >> 12) & 511] = (7 << 17) | 2
    return "outside every VMA"


def c_exclusive_shared(k):
    mm2 = k.mms[2]
    for pmd in mm2.pmds.values():
        if pmd.kind is PmdKind.TABLE:
            for i, p in enumerate(pmd.table.ptes):
                if p & 3 == 2:
                    pmd.table.ptes[i] = p | 0x80
                    return f"pte {i}: exclusive swap entry"
    raise AssertionError("no shared swap PTE")


def c_pmd_swap_in_mainline(k):
    k.config.pmd_swap = False
    return "PMD swap entry in mainline mode"


def c_rmap_index(k):
    mm, pmdi, pmd, i = _present_pte(k)
    k.mem.index[k.mem.folio_of(pmd.table.ptes[i] >> 12)] += 1
    return "not found there by the rmap walk"


def c_two_folios_one_slot(k):
    from mmshell.mm.swap_state import add_to_swap_cache
    from mmshell.mm.swapops import SwpEntry

    si, off = _a_swapped_slot(k)
    small = [p >> 12 for pmd in k.mms[1].pmds.values() if pmd.kind is PmdKind.TABLE for p in pmd.table.ptes
             if p & 3 == 1 and not p & 0x100 and not k.mem.order[k.mem.folio_of(p >> 12)]]
    for pfn in small[:2]:
        add_to_swap_cache(k, pfn, SwpEntry(si.type, off))
    return "cached by two folios"


def c_lru_flag(k):
    k.mem.clear(k.lru.inactive()[0], PG.LRU)
    return "without PG_lru"


def c_shadow(k):
    k.shadow.procs[1][next(iter(k.shadow.procs[1]))][0] ^= 1
    return "last written"


def _pmd_of_kind(k, kind):
    for pmd in k.mms[1].pmds.values():
        if pmd.kind is kind:
            return pmd
    raise AssertionError(f"no {kind.value} PMD")


def c_deposit(k):
    pmd = _pmd_of_kind(k, PmdKind.HUGE)
    pmd.deposited = not pmd.deposited
    return "a deposited table"


def c_table_deposit(k):
    _pmd_of_kind(k, PmdKind.TABLE).deposited = True
    return "a PTE table PMD has a deposit"


def c_pmd_swap_misaligned(k):
    _pmd_of_kind(k, PmdKind.SWAP).swp_offset += 1
    return "not 512-aligned"


def c_frame_neither_free_nor_used(k):
    free = k.mem.alloc._free
    free[free.index(1)] = 0
    return "neither free nor in use"


def c_order0_order(k):
    mm, pmdi, pmd, i = _present_pte(k)
    k.mem.order[pmd.table.ptes[i] >> 12] = 1
    return "an order-0 frame records a non-zero order"


def c_zero_flag(k):
    k.mem.clear(k.zero_pfn, PG.ZERO)
    return "the zero pages are not the frames marked PG_zero"


def c_entire_mapcount(k):
    k.mem.entire_mapcount[_pmd_of_kind(k, PmdKind.HUGE).pfn] += 1
    return "entire_mapcount"


def c_thp_exclusive_shared(k):
    k.mem.set(_pmd_of_kind(k, PmdKind.HUGE).pfn, PG.ANON_EXCLUSIVE)    # shared with the child since fork
    return "PageAnonExclusive but mapped 2 times"


def c_rmap_thp_index(k):
    k.mem.index[_pmd_of_kind(k, PmdKind.HUGE).pfn] += 1
    return "not found there by the rmap walk"


def c_small_folio_off_lru(k):
    k.lru.delete(next(p for p in k.lru.inactive() + k.lru.active() if not k.mem.order[p]))
    return "not on the LRU"


def c_thp_gauges(k):
    k.vmstat.nr_anon_thps += 1
    k.vmstat.mthp["nr_anon"] += 1
    k.vmstat.mthp["nr_anon_partially_mapped"] += 1
    return "nr_anon_transparent_hugepages"


def c_header_slot(k):
    si, _ = _a_swapped_slot(k)
    si.swap_map[0] = 0
    return "header slot overwritten"


def c_free_slot_data(k):
    si, _ = _a_swapped_slot(k)
    off = max(o for o in range(1, si.pages) if not si.swap_map[o])
    si.data[off] = 0x77
    return "free slot keeps data"


def c_table_gone(k):
    _first_table(k)[2].table = None
    return "a PTE table PMD has no table"


def c_malformed_pte(k):
    mm, pmdi, pmd, i = _present_pte(k)
    pmd.table.ptes[i] |= 3
    return "PTE table holds malformed entries"


def c_special_pte(k):
    mm, pmdi, pmd, i = _present_pte(k)
    pmd.table.ptes[i] |= 0x100
    return "a special PTE maps something other than the zero page"


def c_swap_pte_of_no_device(k):
    mm, pmdi, pmd, i = _present_pte(k)
    pmd.table.ptes[i] = (0x300 << 17) | (5 << 12) | 2
    return "which is not an active device"


def c_malformed_vma(k):
    v = k.mms[1].vmas[-1]
    v.end = v.start
    return "malformed VMA"


def c_stray_head(k):
    mm, pmdi, pmd, i = _present_pte(k)
    k.mem.set(pmd.table.ptes[i] >> 12, PG.HEAD)
    return "head pages are not 2 MiB-aligned folios in use"


def c_tail_lost(k):
    k.mem.clear(_pmd_of_kind(k, PmdKind.HUGE).pfn + 1, PG.TAIL)
    return "tail pages out of shape"


def c_thp_order(k):
    k.mem.order[_pmd_of_kind(k, PmdKind.HUGE).pfn] = 3
    return "large folio of order 3"


def c_shadow_of_exited(k):
    k.shadow.procs[99] = ProcShadow({0: array("Q", [1]) * 512})
    return "pid 99, which has exited"


def c_shadow_unmapped_pmd(k):
    shadow = k.shadow.procs[1]
    pmdi = next(i for i in range(1, 1 << 20) if i not in k.mms[1].pmds and i not in shadow)
    shadow[pmdi] = array("Q", [7]) * 512
    return "but not mapped (reads zero)"


CORRUPTIONS = [c_swap_count, c_swap_count_low, c_count_nothing_references, c_swap_pte_beyond_device,
               c_cache_bit, c_inuse, c_mapcount, c_rss, c_swapents, c_gauge, c_swapcached,
               c_page_contents, c_lost_pte, c_frame_free_and_used, c_lru, c_leak, c_pte_outside_vma,
               c_exclusive_shared, c_pmd_swap_in_mainline, c_shadow, c_rmap_index, c_two_folios_one_slot,
               c_lru_flag, c_deposit, c_table_deposit, c_pmd_swap_misaligned, c_frame_neither_free_nor_used,
               c_order0_order, c_zero_flag, c_entire_mapcount, c_thp_exclusive_shared, c_rmap_thp_index,
               c_small_folio_off_lru, c_thp_gauges, c_header_slot, c_free_slot_data, c_table_gone,
               c_malformed_pte, c_special_pte, c_swap_pte_of_no_device, c_malformed_vma, c_stray_head,
               c_tail_lost, c_thp_order, c_shadow_of_exited, c_shadow_unmapped_pmd]


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=[c.__name__[2:] for c in CORRUPTIONS])
def test_check_prints_every_problem(corrupt) -> None:
    s = session()
    assert run_text(s, "check", "-c").exit_status() == 0
    want = corrupt(s.kernel)
    problems = check_invariants(s.kernel) + check_data(s.kernel)
    assert problems and any(want in p for p in problems), problems
    records = []
    outcome = run_text(s, "check", "-c", records.append)
    assert outcome.exit_status() == 2
    (rec,) = records
    head, *lines = rec.error.split("\n")
    assert head.startswith("-c:1: check: EFAULT: ") and f"{len(problems)} problem(s)" in head, head
    assert lines == [f"  {p}" for p in problems]


def test_check_prints_through_the_command_line(capsys) -> None:
    """The shell's printer shows the problems too (mmshell -c, mmshell run, the prompt)."""
    from mmshell.report import StepPrinter

    s = session()
    c_rss(s.kernel)
    c_gauge(s.kernel)
    stream = io.StringIO()
    printer = StepPrinter(s, stream=stream)
    run_text(s, "check", "-c", printer)
    text = stream.getvalue()
    assert "EFAULT: 2 problem(s)" in text and "MM_ANONPAGES" in text and "nr_anon_pages" in text, text


ARRAYS = ("flags", "order", "mapcount", "entire_mapcount", "data", "index", "anon_vma")


@pytest.mark.slow
@settings(max_examples=int(os.environ.get("MMSHELL_CORRUPT_EXAMPLES", 300)), deadline=None, database=None,
          derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 2**32 - 1), st.sampled_from(ARRAYS + ("swap_map", "pte", "cache", "lru")))
def test_checker_survives_any_corruption(seed: int, where: str) -> None:
    """Random damage is reported as problems (or is harmless); the checker never raises."""
    rng = random.Random(seed)
    k = session().kernel
    if where in ARRAYS:
        arr = getattr(k.mem, where)
        i = rng.randrange(len(arr))
        value = rng.choice([0, 1, 2, 0x1FF, rng.randrange(256), -1])
        if isinstance(arr, bytearray) or getattr(arr, "typecode", "") in "BIHLQ":
            value &= 0xFF if isinstance(arr, bytearray) else 0xFFFF
        arr[i] = value
    elif where == "swap_map":
        si, _ = _a_swapped_slot(k)
        si.swap_map[rng.randrange(si.pages)] = rng.randrange(256)
    elif where == "pte":
        mm, pmdi, pmd = _first_table(k)
        pmd.table.ptes[rng.randrange(512)] = rng.choice([0, rng.randrange(1 << 40), (99999 << 12) | 1,
                                                         (31 << 12) | 2, (1 << 60) | 2])
    elif where == "cache":
        si, off = _a_swapped_slot(k)
        si.cache[off] = rng.randrange(k.mem.nr_frames)
    else:
        pfn = rng.randrange(k.mem.nr_frames)
        if k.lru.on_lru(pfn):
            k.lru.delete(pfn)
        else:
            k.lru.add(pfn)
    check_invariants(k)
    check_data(k)
