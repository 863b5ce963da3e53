"""userfaultfd registration and UFFDIO_MOVE (mm/userfaultfd.c move_pages).

UFFDIO_MOVE moves pages from a source range to an unpopulated, registered
destination, between two writable VMAs with the same protections
(validate_move_areas, else EINVAL).  A whole aligned PMD moves as one (move_pages_huge_pmd: the THP
must be exclusive to this process, else EBUSY; the huge zero page moves as it is;
patch 10/13: a PMD swap entry moves through move_swap_pmd, exclusive required, a
PMD-size swap-cache folio moving with it: decision 5).  Anything else goes PTE by PTE
(move_pages_pte): a large folio is split first, a PMD swap entry and the huge zero
page's PMD too (a zero-page PTE moves as it is, move_zeropage_pte); a present page must be
PageAnonExclusive, a swap entry must carry the exclusive bit and its
swap-cache folio, if any, must be small, else EBUSY (so a PMD swap entry whose
PMD-size folio is still cached cannot move split: EBUSY, as in mainline).  The
folio's anon_vma and index follow the move (folio_move_anon_rmap).

move_pages() goes through the range in order and stops at the first page it refuses: what
it moved before stays moved, and the ioctl returns EAGAIN with `move` set to the bytes
moved (userfaultfd_move(): a short move is EAGAIN), or the page's own error if nothing
moved.  A source PMD that does not move whole is split (split_huge_pmd()) before its pages
are looked at, so a refusal in its extent leaves it split even when nothing moved
(measured on 6.18: the destination's first page populated, `thp_split_pmd +1`, EEXIST).
The simulation finds the first refusal before changing anything, moves what comes before
it, and raises the refusal with that partial effect (mm/errors.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import (HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SHIFT, PAGE_SIZE, PMD_MASK, PMD_SIZE, pmd_index,
                        pte_index)
from .errors import MmError
from .folio import PG
from .huge_memory import move_pages_huge_pmd
from .huge_split import split_folio, split_huge_pmd_locked
from .memory import anon_vma_prepare
from .mm_types import MmStruct
from .mmap import page_aligned, vma_merge_around, vma_range
from .pagewalk import pmd_addr_end
from .pgtable_generic import pte_alloc_one
from .pud import pmd_table_present
from .pgtable import (F_SPECIAL, F_SWP_EXCLUSIVE, Pmd, PmdKind, PteTable, is_swap_pte, pmd_pgtable, pte_pfn,
                      pte_present, pte_swp_offset, pte_swp_type)
from .rmap import folio_move_anon_rmap
from .vma import VM, VmArea

if TYPE_CHECKING:
    from .kernel import Kernel


def sys_uffd_register(k: "Kernel", mm: MmStruct, start: int, length: int) -> None:
    """UFFDIO_REGISTER (MISSING mode) over whole VMAs of the range."""
    page_aligned("uffd register", start, length)
    end = start + length
    addr = start
    for vma in mm.vmas_in(start, end):
        if vma.start > addr:
            break
        addr = vma.end
    if addr < end:
        raise MmError("EINVAL", "uffd register", f"range has a hole at {max(addr, start):#x}")
    # userfaultfd_register_range() -> vma_modify_flags_uffd(): each registered VMA merges with
    # its neighbours; a neighbour outside the range is not merged with its own other neighbour
    # (in a forked child, two inherited VMAs that could merge stay apart: kernel fuzz seed 15151
    # script 141)
    for vma in vma_range(k, mm, start, end):
        vma.flags |= VM.UFFD_MISSING
    for vma in list(mm.vmas_in(start, end)):
        if vma in mm.vmas:
            vma_merge_around(k, mm, vma)
    k.trace("userfaultfd_register")


def sys_uffd_move(k: "Kernel", mm: MmStruct, src: int, dst: int, length: int) -> int:
    """UFFDIO_MOVE of [src, src+length) to dst; returns the bytes moved (all of them).

    What move_pages() changes before it refuses stays changed, and the refusal says so
    (the contract's partial effect): uffd_move_lock() gives the destination VMA its anon_vma
    (uffd_lock_vma(): "we know we're going to need to use anon_vma") before any other check,
    and a page refused in move_pages_pte() has had its destination PTE table allocated
    (pte_alloc(dst_pmd)), which stays, empty, after the refusal (measured on 6.18.44: an
    ENOENT move of a never-touched page beside a touched one leaves `pmd.DST == table`)."""
    page_aligned("uffd move", src, length)
    page_aligned("uffd move", dst, length)
    if src < dst + length and dst < src + length:
        raise MmError("EINVAL", "uffd move", "source and destination overlap")
    dvma = mm.find_vma(dst)
    # uffd_move_lock(): a start address in no VMA is ENOENT; then move_pages(): a range that
    # runs past its VMA's end is EINVAL (measured on 6.18: both, source and destination).
    if dvma is None:
        raise MmError("ENOENT", "uffd move", f"destination {dst:#x} is not in a mapped VMA")
    prepared = not dvma.anon_vma
    anon_vma_prepare(k, mm, dvma)
    try:
        return _move_pages(k, mm, dvma, src, dst, length, prepared)
    except MmError as e:
        if prepared and e.partial is None:
            e.partial = _done_first(["the destination VMA got its anon_vma"])
        raise


def _done_first(what: list[str]) -> str:
    """The partial effect of a refused move: what it did before it refused."""
    return " and ".join(what) + " first, as the kernel does"


def _move_pages(k: "Kernel", mm: MmStruct, dvma: VmArea, src: int, dst: int, length: int,
                prepared: bool) -> int:
    """move_pages() once uffd_move_lock() found the destination VMA and prepared its anon_vma
    (`prepared`: it had none before)."""
    svma = mm.find_vma(src)
    if svma is None:
        raise MmError("ENOENT", "uffd move", f"source {src:#x} is not in a mapped VMA")
    if src + length > svma.end:
        raise MmError("EINVAL", "uffd move", f"source {src:#x}+{length:#x} runs past the end of its VMA")
    if dst + length > dvma.end:
        raise MmError("EINVAL", "uffd move", f"destination {dst:#x}+{length:#x} runs past the end of its VMA")
    validate_move_areas(svma, dvma)
    refusal = _first_refusal(k, mm, src, dst, length)
    stop = length if refusal is None else refusal[0]
    k.trace("move_pages")
    done = 0
    split = False
    while done < stop:
        s, d = src + done, dst + done
        extent = pmd_addr_end(s, src + length) - s
        pmd = mm.pmds.get(pmd_index(s))
        if pmd is not None and _moves_whole(k, mm, pmd, d, extent):
            move_pages_huge_pmd(k, mm, dvma, s, d)
        elif pmd is not None:
            if pmd.kind in (PmdKind.HUGE, PmdKind.SWAP, PmdKind.ZERO):
                split_huge_pmd_locked(k, mm, svma, s & PMD_MASK)
                split = True
            _move_ptes(k, mm, dvma, s, d, min(extent, stop - done) >> PAGE_SHIFT)
        done += extent
    moved = min(done, stop)
    if moved:
        k.shadow.move(mm.pid, src, mm.pid, dst, moved)
    if refusal is None:
        return length
    at, err = refusal
    if _splits_before_refusing(k, mm, src + at, dst + at, src + length, err):
        split_huge_pmd_locked(k, mm, svma, (src + at) & PMD_MASK)
        split = True
    table = _pte_alloc_before_refusing(k, mm, src + at, dst + at)
    if moved:
        # userfaultfd_move(): a move shorter than asked is EAGAIN, `move` the bytes moved
        raise MmError("EAGAIN", "uffd move", f"a short move, stopped by {err.errno}: {err.detail}",
                      partial=f"moved {moved} of {length} bytes, as the kernel does")
    first = [what for what, did in (("the destination VMA got its anon_vma", prepared),
                                    ("the source PMD was split", split),
                                    ("an empty PTE table was allocated at the destination", table)) if did]
    if first:
        raise MmError(err.errno, "uffd move", err.detail, partial=_done_first(first))
    raise err


def _pte_alloc_before_refusing(k: "Kernel", mm: MmStruct, s: int, d: int) -> bool:
    """move_pages(): a page refused by move_pages_pte() (its source PMD a PTE table, or split
    to one just before) had its destination PTE table allocated first (pte_alloc(dst_pmd)),
    empty when nothing had moved into it; True if one was allocated here.  A source PMD that
    is none is ENOENT, and a THP refused whole is EBUSY, before that allocation."""
    pmd = mm.pmds.get(pmd_index(s))
    if pmd is None or pmd.kind is not PmdKind.TABLE or pmd_index(d) in mm.pmds:
        return False
    mm.pmds[pmd_index(d)] = Pmd(PmdKind.TABLE, table=PteTable())
    pte_alloc_one(k, mm)
    return True


def _splits_before_refusing(k: "Kernel", mm: MmStruct, s: int, d: int, end: int, err: MmError) -> bool:
    """move_pages(): the refused page s opens a PMD extent whose THP or huge zero page PMD is
    split before move_pages_pte() looks at the page (it does not move whole, and a THP
    passed the anon-exclusive test); a destination PMD that is itself huge is EEXIST first.
    A PMD swap entry (patch 10/13) is left as it is: what the series does there is not
    measured, and a refusal of its pages (not exclusive, cached in a large folio) changes
    nothing, as decision 5 has it."""
    pmd = mm.pmds.get(pmd_index(s))
    if pmd is None or pmd.kind not in (PmdKind.HUGE, PmdKind.ZERO):
        return False
    dpmd = mm.pmds.get(pmd_index(d))
    if dpmd is not None and dpmd.kind is not PmdKind.TABLE:
        return False
    if _moves_whole(k, mm, pmd, d, pmd_addr_end(s, end) - s):
        return False
    return not (pmd.kind is PmdKind.HUGE and err.errno == "EBUSY")


def _moves_whole(k: "Kernel", mm: MmStruct, pmd: Pmd, dst: int, extent: int) -> bool:
    """move_pages(): the PMD-level entry of the extent moves as one (move_pages_huge_pmd), not split.

    The extent must be a whole aligned PMD going to an aligned, unpopulated destination PMD
    (!move_splits_huge_pmd() and pmd_none(dst)).  patch 10/13: a PMD swap entry moves whole
    unless some of its slots are cached as smaller folios (which move_swap_pte moves one by one).
    """
    if pmd.kind not in (PmdKind.HUGE, PmdKind.SWAP, PmdKind.ZERO) or extent != PMD_SIZE or dst & ~PMD_MASK \
            or pmd_index(dst) in mm.pmds:
        return False
    if pmd.kind is PmdKind.SWAP:
        cache = k.swp_info(pmd.swp_type).cache
        if cache.any_in(pmd.swp_offset, HPAGE_PMD_NR):
            cached = cache.get(pmd.swp_offset)
            return cached is not None and k.mem.order[cached] == HPAGE_PMD_ORDER
    return True


def _page_entry(mm: MmStruct, addr: int) -> tuple[Pmd | None, int]:
    pmd = mm.pmds.get(pmd_index(addr))
    if pmd is None:
        return None, 0
    if pmd.kind is PmdKind.TABLE:
        return pmd, pmd_pgtable(pmd).ptes[pte_index(addr)]
    return pmd, -1


def validate_move_areas(svma: VmArea, dvma: VmArea) -> None:
    """validate_move_areas(): the VMA checks move_pages() makes before looking at any page.

    Both VMAs must have the same access flags (VM_READ/WRITE/EXEC) and page protection,
    both be mlocked or neither, and the source be writable (so both are); the destination
    must be registered with userfaultfd.  Each is EINVAL.  vm_page_prot is left out: for
    two private anonymous VMAs it follows from their access flags.
    """
    access = VM.READ | VM.WRITE | VM.EXEC
    if svma.flags & access != dvma.flags & access:
        raise MmError("EINVAL", "uffd move", "source and destination have different protections")
    if svma.flags & VM.LOCKED != dvma.flags & VM.LOCKED:
        raise MmError("EINVAL", "uffd move", "one of source and destination is mlocked, the other not")
    if not svma.flags & VM.WRITE:
        raise MmError("EINVAL", "uffd move", "source and destination are not writable")
    if not dvma.flags & VM.UFFD_MISSING:
        raise MmError("EINVAL", "uffd move", "destination is not registered with userfaultfd")


def _first_refusal(k: "Kernel", mm: MmStruct, src: int, dst: int, length: int) -> tuple[int, MmError] | None:
    """The first page (offset into the range) move_pages() refuses, and its error, found
    before anything moves; None if it moves it all."""
    try:
        _validate(k, mm, src, dst, length)
    except _Refused as r:
        return r.offset, r.error
    return None


class _Refused(Exception):
    """The first page move_pages() refuses: its offset into the range, and the error."""

    def __init__(self, offset: int, error: MmError) -> None:
        super().__init__(error)
        self.offset, self.error = offset, error


def _refusal(off: int, errno: str, detail: str) -> _Refused:
    return _Refused(off, MmError(errno, "uffd move", detail))


def _validate(k: "Kernel", mm: MmStruct, src: int, dst: int, length: int) -> None:
    """Every refusal move_pages could meet, in the order it meets them (raises _Refused).

    move_pages() looks at each extent in this order: a destination PMD that is itself huge
    (pmd_trans_huge(dst_pmdval)) is EEXIST; then the source PMD: a present THP is refused
    EBUSY if it is not PageAnonExclusive, whether it moves whole (move_pages_huge_pmd()) or
    is to be split (the check before split_huge_pmd()), and a source PMD that is none is
    ENOENT; only then does move_pages_pte() look at the pages, the destination PTE first
    (not none: EEXIST), then the source PTE (none: ENOENT), then its folio or swap entry
    (EBUSY).  So a shared source THP is EBUSY, unsplit, even into a populated destination
    page (measured on 6.18.44: kernel fuzz seed 16161 script 2541).  Before all of these, a
    source whose 1 GiB has no PMD table page at all (mm_find_pmd() finds no PUD entry, pud.py)
    is ENOENT, even into a destination PMD that is huge (seed 17171 script 3331).
    """
    mem = k.mem
    whole: dict[int, bool] = {}     # source PMD index -> it moves whole (_moves_whole)
    for off in range(0, length, PAGE_SIZE):
        if not pmd_table_present(mm, src + off):
            raise _refusal(off, "ENOENT", f"source page {src + off:#x} is not populated (no PMD table)")
        dpmd, dpte = _page_entry(mm, dst + off)
        if dpmd is not None and dpmd.kind is not PmdKind.TABLE:
            raise _refusal(off, "EEXIST", f"destination {dst + off:#x} is already populated")
        pmd, pte = _page_entry(mm, src + off)
        where = f"{src + off:#x}"
        if pmd is None:
            raise _refusal(off, "ENOENT", f"source page {where} is not populated")
        if pmd.kind is PmdKind.HUGE and (mem.folio_mapcount(pmd.pfn) != 1
                                         or not mem.test(pmd.pfn, PG.ANON_EXCLUSIVE)):
            raise _refusal(off, "EBUSY", f"THP at {where} is shared (not anon-exclusive)")
        if dpte:
            raise _refusal(off, "EEXIST", f"destination {dst + off:#x} is already populated")
        if pmd.kind is PmdKind.TABLE and pte == 0:
            raise _refusal(off, "ENOENT", f"source page {where} is not populated")
        if pmd.kind is PmdKind.HUGE:
            pass            # exclusive: moved whole, or split and its pages moved one by one
        elif pmd.kind is PmdKind.SWAP:
            if not pmd.flags & F_SWP_EXCLUSIVE:
                raise _refusal(off, "EBUSY", f"PMD swap entry at {where} is not exclusive")
            base = (src + off) & PMD_MASK
            if base not in whole:
                first = max(src, base)
                extent = pmd_addr_end(first, src + length) - first
                whole[base] = _moves_whole(k, mm, pmd, dst + (first - src), extent)
            if not whole[base]:
                # split and moved PTE by PTE: move_swap_pte() refuses a slot cached in a large folio
                cached = k.swp_info(pmd.swp_type).cache.get(pmd.swp_offset + ((src + off - base) >> PAGE_SHIFT))
                if cached is not None and mem.order[cached]:
                    raise _refusal(off, "EBUSY", f"swap entry at {where} is cached in a large folio")
        elif pmd.kind is PmdKind.ZERO:
            pass            # moved whole, or split into zero-page PTEs that move as they are
        elif pte_present(pte) and not pte & F_SPECIAL:
            page = pte_pfn(pte)
            head = mem.folio_of(page)
            if mem.folio_maybe_mapped_shared(head) or not mem.flags[page] & PG.ANON_EXCLUSIVE:
                raise _refusal(off, "EBUSY", f"page at {where} is not exclusive to this process")
        elif is_swap_pte(pte):
            if not pte & F_SWP_EXCLUSIVE:
                raise _refusal(off, "EBUSY", f"swap entry at {where} is not exclusive")
            si = k.swp_info(pte_swp_type(pte))
            cached = si.cache.get(pte_swp_offset(pte))
            if cached is not None and mem.order[cached]:
                raise _refusal(off, "EBUSY", f"swap entry at {where} is cached in a large folio")


def _move_ptes(k: "Kernel", mm: MmStruct, dvma: VmArea, src: int, dst: int, nr: int) -> None:
    mem = k.mem
    for j in range(nr):
        s, d = src + (j << PAGE_SHIFT), dst + (j << PAGE_SHIFT)
        stable = pmd_pgtable(mm.pmds[pmd_index(s)])
        si_ = pte_index(s)
        pte = stable.ptes[si_]
        if pte_present(pte) and not pte & F_SPECIAL:
            head = mem.folio_of(pte_pfn(pte))
            if mem.order[head]:
                split_folio(k, head)
                pte = stable.ptes[si_]
            folio_move_anon_rmap(k, pte_pfn(pte), dvma, d)
        elif is_swap_pte(pte):
            si = k.swp_info(pte_swp_type(pte))
            cached = si.cache.get(pte_swp_offset(pte))
            if cached is not None:
                folio_move_anon_rmap(k, cached, dvma, d)
        dpmd = mm.pmds.get(pmd_index(d))
        if dpmd is None:
            dpmd = mm.pmds[pmd_index(d)] = Pmd(PmdKind.TABLE, table=PteTable())
            pte_alloc_one(k, mm)
        pmd_pgtable(dpmd).ptes[pte_index(d)] = pte
        stable.ptes[si_] = 0
    k.trace("move_pages_pte")
