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
from operator import rshift
from typing import TYPE_CHECKING

from . import pte_masks as bm
from .constants import HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SHIFT, PMD_SHIFT
from .pgtable import (F_SPECIAL, PFN_SHIFT, Pmd, PmdKind, is_swap_pte, pte_pfn, pte_present, pte_swp_offset,
                      pte_swp_type)

if TYPE_CHECKING:
    from .kernel import Kernel


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
    """Fast path of check_data for one PMD: True when every page surely reads its shadow value."""
    mem = k.mem
    if pmd.kind is PmdKind.HUGE:
        return mem.data[pmd.pfn:pmd.pfn + HPAGE_PMD_NR] == chunk
    if pmd.kind is PmdKind.ZERO:
        return chunk == bm.ZEROS_Q
    if pmd.kind is PmdKind.SWAP:
        si = k.swap_info[pmd.swp_type]
        off = pmd.swp_offset
        if si is None or off + HPAGE_PMD_NR > si.pages:
            return False
        if not si.cache.any_in(off, HPAGE_PMD_NR):
            return si.data[off:off + HPAGE_PMD_NR] == chunk
        folio = si.cache.get(off)
        return folio is not None and mem.order[folio] == HPAGE_PMD_ORDER \
            and k.folio_swap[folio].offset == off and mem.data[folio:folio + HPAGE_PMD_NR] == chunk
    if pmd.kind is not PmdKind.TABLE or pmd.table is None:
        return False
    ptes = pmd.table.ptes
    raw = ptes.tobytes()
    anon, special, swap = bm.pte_masks(raw)
    if any(compress(chunk, special)):
        return False
    pfns = list(map(rshift, compress(ptes, anon), repeat(PFN_SHIFT)))
    if pfns and max(pfns) >= mem.nr_frames:
        return False
    if list(map(mem.data.__getitem__, pfns)) != list(compress(chunk, anon)):
        return False
    if any(compress(chunk, raw[0::8].translate(bm.KIND_NONE))):
        return False
    words = list(compress(ptes, swap))
    if not words:
        return True
    types = set(map(pte_swp_type, words))
    if len(types) != 1:
        return False
    si = k.swap_info[types.pop()]
    if si is None:
        return False
    offs = list(map(pte_swp_offset, words))
    if max(offs) >= si.pages or (si.cache and any(off in si.cache for off in offs)):
        return False
    return list(map(si.data.__getitem__, offs)) == list(compress(chunk, swap))


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
