"""The data half of CONFIG_DEBUG_VM: every page reads what was last written to it.

`check_data(k)` compares every page of every process, and every swap slot it
references, with the shadow record of what it should read (mm/shadow.py): a page
that was written must still be mapped, present or swapped.  It reads without
faulting anything in, compares a PMD's 512 pages at once where it can, and
walks page by page only to name what differs.  It returns readable problems; an
empty list means all is well.  (The kernel keeps no such record: this is how the
simulation proves that no data is lost.)
"""

from __future__ import annotations

from array import array
from itertools import compress, repeat
from operator import and_, eq, rshift
from typing import TYPE_CHECKING

from . import pte_masks as bm
from .constants import HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SHIFT, PMD_SHIFT
from .pgtable import (F_SPECIAL, KIND_MASK, KIND_PRESENT, KIND_SWAP, PFN_SHIFT, SWP_TYPE_BITS, SWP_TYPE_MASK,
                      SWP_TYPE_SHIFT, Pmd, PmdKind, is_swap_pte, pte_pfn, pte_present, pte_swp_offset, pte_swp_type)

if TYPE_CHECKING:
    from .kernel import Kernel
    from .swap_info import SwapInfo

#: A PTE's low byte -> 1 where _read_entry reads it as not mapped (neither present nor swap).
_NOT_MAPPED = bytes(int(b & KIND_MASK not in (KIND_PRESENT, KIND_SWAP)) for b in range(256))


def check_data(k: "Kernel") -> list[str]:
    """Every page of every process reads what the shadow says it should.

    A present or swapped page is read without faulting; a page that is not
    mapped at all (none PMD or PTE) reads zeros when faulted, so its shadow
    value must be 0: anything else was written and then lost.
    """
    problems: list[str] = []
    for pid in sorted(k.shadow.procs.keys() - k.mms.keys()):
        problems.append(f"the shadow still records pages of pid {pid}, which has exited")
    for pid, mm in sorted(k.mms.peek_items()):
        shadow = k.shadow.procs.peek(pid) or {}
        for pmdi in sorted(shadow.keys() - mm.pmds.keys()):
            chunk = shadow[pmdi]
            if any(chunk):
                i = next(j for j, v in enumerate(chunk) if v)
                problems.append(f"pid {pid} page {(pmdi << PMD_SHIFT) + (i << PAGE_SHIFT):#x}: last written "
                                f"{chunk[i]:#x} but not mapped (reads zero)")
        for pmdi, pmd in sorted(mm.pmds.items()):
            written = shadow.get(pmdi)
            if _pmd_reads_shadow(k, pmd, written if written is not None else bm.ZEROS_Q):
                continue
            base = pmdi << PMD_SHIFT
            for i in range(HPAGE_PMD_NR):
                want = written[i] if written is not None else 0
                got = _read_entry(k, pmd, i)
                if got == _UNREADABLE:
                    problems.append(f"pid {pid} page {base + (i << PAGE_SHIFT):#x}: maps a frame or swap "
                                    "slot that does not exist")
                    continue
                if got is None:
                    if want:
                        problems.append(f"pid {pid} page {base + (i << PAGE_SHIFT):#x}: last written {want:#x} "
                                        "but not mapped (reads zero)")
                    continue
                if got != want:
                    problems.append(f"pid {pid} page {base + (i << PAGE_SHIFT):#x}: reads {got:#x}, "
                                    f"last written {want:#x}")
                if len(problems) > 20:
                    return problems
    return problems


def _pmd_reads_shadow(k: "Kernel", pmd: Pmd, chunk: array) -> bool:
    """Fast path of check_data for one PMD: whether every page reads its shadow value.

    Exactly what reading the 512 pages one by one with _read_entry says (a page not
    mapped must read 0, an unreadable one never matches), a PMD or a table at once:
    tests/mm/test_check_data.py holds the two against each other on the states the
    random suites build and on corrupted copies of them."""
    mem = k.mem
    kind = pmd.kind
    if kind is PmdKind.HUGE:
        return mem.data[pmd.pfn:pmd.pfn + HPAGE_PMD_NR] == chunk
    if kind is PmdKind.ZERO:
        return chunk == bm.ZEROS_Q
    if kind is PmdKind.SWAP:
        si = k.swap_info[pmd.swp_type]
        off = pmd.swp_offset
        if si is None or off < 0 or off + HPAGE_PMD_NR > si.pages:
            return False
        if not si.cache.any_in(off, HPAGE_PMD_NR):
            return si.data[off:off + HPAGE_PMD_NR] == chunk
        folio = si.cache.get(off, 0)
        entry = k.folio_swap.get(folio) if folio else None
        if folio and entry is not None and entry.offset == off and mem.order[folio] == HPAGE_PMD_ORDER \
                and folio + HPAGE_PMD_NR <= mem.nr_frames:
            return mem.data[folio:folio + HPAGE_PMD_NR] == chunk
        return _slots_read(k, si, list(range(off, off + HPAGE_PMD_NR))) == chunk.tolist()
    if kind is not PmdKind.TABLE:
        return chunk == bm.ZEROS_Q          # nothing mapped: every page reads 0
    if pmd.table is None:
        return False                        # _read_entry: unreadable
    ptes = pmd.table.ptes
    raw = ptes.tobytes()
    anon, special, swap = bm.pte_masks(raw)
    if 1 in special and any(compress(chunk, special)):
        return False
    if 1 in anon:
        pfns = list(map(rshift, compress(ptes, anon), repeat(PFN_SHIFT)))
        if max(pfns) >= mem.nr_frames or list(map(mem.data.__getitem__, pfns)) != list(compress(chunk, anon)):
            return False
    not_mapped = raw[0::8].translate(_NOT_MAPPED)
    if 1 in not_mapped and any(compress(chunk, not_mapped)):
        return False
    if 1 not in swap:
        return True
    words = list(compress(ptes, swap))
    want = list(compress(chunk, swap))
    keys = list(map(rshift, words, repeat(SWP_TYPE_SHIFT)))        # pte_swp_type/offset of each, in C
    types = list(map(and_, keys, repeat(SWP_TYPE_MASK)))
    offs = list(map(rshift, keys, repeat(SWP_TYPE_BITS)))
    first = types[0]
    if types.count(first) == len(types):    # one device (the common case)
        si = k.swap_info[first]
        return si is not None and _slots_read(k, si, offs) == want
    for type_ in set(types):                # PTEs of one table on several devices
        si = k.swap_info[type_]
        sel = list(map(eq, types, repeat(type_)))
        if si is None or _slots_read(k, si, list(compress(offs, sel))) != list(compress(want, sel)):
            return False
    return True


def _slots_read(k: "Kernel", si: "SwapInfo", offs: list[int]) -> list[int] | None:
    """What the slots `offs` of device si read (as _read_slot reads each: the swap-cache
    folio's page, else the device's copy); None when one of them is unreadable."""
    if max(offs) >= si.pages or min(offs) < 0:
        return None
    out = list(map(si.data.__getitem__, offs))
    if not si.cache:
        return out
    heads = list(map(si.cache.table.__getitem__, offs))
    if not any(heads):
        return out
    data, nr_frames, folio_swap = k.mem.data, k.mem.nr_frames, k.folio_swap
    for j in compress(range(len(offs)), heads):
        head = heads[j]
        entry = folio_swap.get(head)
        if entry is None:
            return None
        pfn = head + offs[j] - entry.offset
        if not 0 <= pfn < nr_frames:
            return None
        out[j] = data[pfn]
    return out


#: What _read_entry gives for a swap entry whose slot nothing holds (a dangling entry).
_UNREADABLE = -1


def _read_entry(k: "Kernel", pmd: Pmd, i: int) -> int | None:
    """The value page i of this PMD reads without faulting; None if not mapped."""
    if pmd.kind is PmdKind.HUGE:
        return _read_frame(k, pmd.pfn + i)
    if pmd.kind is PmdKind.ZERO:
        return 0
    if pmd.kind is PmdKind.SWAP:
        return _read_slot(k, pmd.swp_type, pmd.swp_offset + i)
    if pmd.kind is PmdKind.TABLE:
        if pmd.table is None:
            return _UNREADABLE
        pte = pmd.table.ptes[i]
        if pte_present(pte):
            return 0 if pte & F_SPECIAL else _read_frame(k, pte_pfn(pte))
        if is_swap_pte(pte):
            return _read_slot(k, pte_swp_type(pte), pte_swp_offset(pte))
    return None


def _read_frame(k: "Kernel", pfn: int) -> int:
    return k.mem.data[pfn] if 0 <= pfn < k.mem.nr_frames else _UNREADABLE


def _read_slot(k: "Kernel", type_: int, off: int) -> int:
    """What a swap slot reads: its swap-cache folio's page, else the device's copy."""
    si = k.swap_info[type_]
    if si is None or not 0 <= off < si.pages:
        return _UNREADABLE
    folio = si.cache.get(off)
    if folio is None:
        return si.data[off]
    entry = k.folio_swap.get(folio)
    return _read_frame(k, folio + (off - entry.offset)) if entry is not None else _UNREADABLE
