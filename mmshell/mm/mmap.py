"""Mappings (mm/mmap.c, mm/vma.c): mmap, munmap, VMA split and merge, unmap_page_range.

Private anonymous mappings only.  get_unmapped_area works top-down from
mmap_base as on x86-64; a mapping of 2 MiB or more is placed 2 MiB-aligned
(thp_get_unmapped_area).  Adjacent VMAs with the same flags and a compatible
anon_vma merge, as vma_merge does.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING

from .anon_vma_merge import vma_had_uncowed_parents
from .anon_vma_order import anon_vma_interval_tree_insert
from .constants import (MAX_MAP_COUNT, MAX_MAPPED, MMAP_BASE, PAGE_SHIFT, PAGE_SIZE, PMD_MASK, PMD_SHIFT, PMD_SIZE,
                        TASK_SIZE, pmd_index, pte_index)
from .errors import MmError
from .folio import PG, MemMap
from .huge_memory import zap_huge_pmd
from .huge_split import split_huge_pmd_locked
from .mm_types import MmStruct
from .mman import Madv
from . import pte_masks as bm
from .pagewalk import Walker, count_visits, walk_pmd_range
from .pgtable_generic import pte_free
from .pgtable import (F_SPECIAL, F_UFFD_WP, KIND_MASK, KIND_PRESENT, KIND_SWAP, PFN_SHIFT,
                      SWP_OFFSET_SHIFT, SWP_TYPE_MASK, SWP_TYPE_SHIFT, PmdKind, pmd_pgtable)
from .rmap import folio_remove_rmap_ptes
from .swap import folio_put_if_unused, free_order0_folios
from .swap_slots import free_swap_and_cache_nr
from .swap_state import folio_free_swap
from .swapops import SwpEntry
from .vma import VM, VmArea

if TYPE_CHECKING:
    from .kernel import Kernel


def page_aligned(op: str, addr: int, length: int, beyond: str = "EINVAL") -> None:
    """The checks every range system call makes first.

    A range past TASK_SIZE is EINVAL for munmap, mremap's new range and userfaultfd
    (validate_range); mmap (__get_unmapped_area), mprotect and madvise (no VMA there)
    give ENOMEM: `beyond`.
    """
    if addr & (PAGE_SIZE - 1):
        raise MmError("EINVAL", op, f"address {addr:#x} not page aligned")
    if length <= 0:
        raise MmError("EINVAL", op, "length must be positive")
    if addr + length > TASK_SIZE:
        raise MmError(beyond, op, f"range beyond the user address space (TASK_SIZE {TASK_SIZE:#x})")


def may_expand_vm(mm: MmStruct, op: str, grow: int) -> None:
    """may_expand_vm(): mapping `grow` more bytes must stay within the address-space limit.

    The simulation's RLIMIT_AS is MAX_MAPPED per process; past it the call fails
    ENOMEM, as mmap and mremap do when RLIMIT_AS is exceeded.
    """
    total = sum(v.end - v.start for v in mm.vmas) + grow
    if total > MAX_MAPPED:
        raise MmError("ENOMEM", op, f"{total >> 30}G would be mapped in pid {mm.pid}: beyond the simulation's "
                      f"limit of {MAX_MAPPED >> 40}T of address space per process")


def get_unmapped_area(mm: MmStruct, length: int, align: int) -> int:
    """Top-down search below mmap_base for a gap of `length`, aligned to `align`."""
    top = MMAP_BASE
    for vma in sorted(mm.vmas, key=lambda v: v.start, reverse=True):
        if vma.start >= top:
            top = min(top, vma.start)
            continue
        start = (top - length) & ~(align - 1)
        if start >= vma.end:
            return start
        top = vma.start
    start = (top - length) & ~(align - 1)
    if start < (1 << 32):
        raise MmError("ENOMEM", "mmap", "no free address range of that size")
    return start


def sys_mmap(k: "Kernel", mm: MmStruct, length: int, prot: VM, advice: Madv | None,
             at: int | None) -> int:
    """mmap(MAP_PRIVATE|MAP_ANONYMOUS[|MAP_FIXED_NOREPLACE]) + the optional
    madvise(MADV_HUGEPAGE or MADV_NOHUGEPAGE).

    Returns the address mapped, as mmap(2) does (the VMA may have merged with a neighbour).
    """
    if advice not in (None, Madv.MADV_HUGEPAGE, Madv.MADV_NOHUGEPAGE):
        raise MmError("EINVAL", "mmap", f"{advice.name} is not advice a new mapping takes here "
                      "(MADV_HUGEPAGE or MADV_NOHUGEPAGE)")
    if length <= 0:
        raise MmError("EINVAL", "mmap", "length must be positive")
    length = (length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    may_expand_vm(mm, "mmap", length)
    if at is None:
        addr = get_unmapped_area(mm, length, PMD_SIZE if length >= PMD_SIZE else PAGE_SIZE)
    else:
        page_aligned("mmap", at, length, beyond="ENOMEM")
        if at < (1 << 16):
            raise MmError("EPERM", "mmap", f"address {at:#x} is below mmap_min_addr")
        if mm.vmas_in(at, at + length):
            raise MmError("EEXIST", "mmap", f"{at:#x}+{length:#x} overlaps an existing mapping")
        addr = at
    flags = prot | VM.MAYREAD | VM.MAYWRITE | VM.SOFTDIRTY
    if flags & VM.WRITE:
        # accountable_mapping(): a private writable mapping is charged, VM_ACCOUNT.
        flags |= VM.ACCOUNT
    vma = VmArea(start=addr, end=addr + length, flags=flags, pgoff=addr >> PAGE_SHIFT)
    mm.insert_vma(vma)
    k.trace("do_mmap")
    vma_merge_around(k, mm, vma)
    if advice is not None:
        # The advice is a second call, madvise() after mmap() (what the live runner does): the
        # new range may first have merged with a neighbour, and the advice then splits it off
        # again with the neighbour's anon_vma (split_vma), so a 4K `mmap f 4K hugepage` beside
        # a faulted region can be collapsed or scanned by khugepaged at once (seed 12121
        # script 89).  Back-edge: madvise.py is built on this module; imported when called.
        from .madvise import madvise_thp_flags
        madvise_thp_flags(k, mm, addr, addr + length, advice is Madv.MADV_HUGEPAGE)
    return addr


def vmas_mergeable(a: VmArea, b: VmArea) -> bool:
    """Adjacent a (lower) and b (upper) can become one VMA.

    The anon_vmas must be one (is_mergeable_anon_vma(), mm/vma.c), or only one of the two
    VMAs has one and it is not a VMA cloned from a parent by fork: vma_had_uncowed_parents()
    ("the list_is_singular() test is to avoid merging VMA cloned from parents") refuses a
    VMA whose anon_vma_chain holds more than its own anon_vma.  So in a forked child a new
    mapping next to an inherited VMA stays a VMA of its own (measured on 6.18.44: kernel
    fuzz seed 15151 scripts 141 and 1023)."""
    if not (a.end == b.start and a.flags == b.flags and a.pgoff + ((a.end - a.start) >> PAGE_SHIFT) == b.pgoff):
        return False
    if a.anon_vma and b.anon_vma:
        return a.anon_vma == b.anon_vma and a.anon_vma_chain == b.anon_vma_chain
    return not vma_had_uncowed_parents(a) and not vma_had_uncowed_parents(b)


def are_anon_vmas_compatible(a: VmArea, b: VmArea) -> bool:
    """are_anon_vmas_compatible() (mm/vma.c): two VMAs one merge would join although they are
    not neighbours (the two sides of the range merged) have one anon_vma, or one has none."""
    return not a.anon_vma or not b.anon_vma or a.anon_vma == b.anon_vma


def vma_merge_sides(prev: VmArea | None, vma: VmArea, nxt: VmArea | None) -> tuple[bool, bool]:
    """Which neighbours the range of vma merges with: can_vma_merge_left() and
    can_vma_merge_right() (mm/vma.c, 6.18), as vma_merge_new_range() (mmap, copy_vma) and
    vma_merge_existing_range() (mprotect, madvise, uffd register) ask them.

    The left (lower) neighbour is asked first; the right one then merges too only if its
    anon_vma is compatible with the left one's (are_anon_vmas_compatible()), so a range each
    of whose neighbours could take it, but whose neighbours have different anon_vmas, merges
    with the one below.  Measured on 6.18.44 (kernel fuzz seed 16161 script 1973): a new
    mapping that fills the gap between two faulted VMAs merges with the lower one."""
    left = prev is not None and vmas_mergeable(prev, vma)
    right = nxt is not None and vmas_mergeable(vma, nxt)
    if left and right:
        assert prev is not None and nxt is not None
        right = are_anon_vmas_compatible(prev, nxt)
    return left, right


def vma_merge_around(k: "Kernel", mm: MmStruct, vma: VmArea) -> VmArea:
    """Merge vma with its neighbours where vma_merge would (vma_merge_sides()); return the
    surviving VMA (which vma_expand() takes out of the anon_vma trees and puts back behind
    the rest)."""
    i = mm.vmas.index(vma)
    left, right = vma_merge_sides(mm.vmas[i - 1] if i > 0 else None, vma,
                                  mm.vmas[i + 1] if i + 1 < len(mm.vmas) else None)
    if right:
        nxt = mm.vmas.pop(i + 1)
        vma.end = nxt.end
        anon_vma_interval_tree_insert(k, vma)
        if not vma.anon_vma:
            vma.anon_vma, vma.anon_vma_chain = nxt.anon_vma, nxt.anon_vma_chain
    if left:
        prev = mm.vmas[i - 1]
        prev.end = vma.end
        if not prev.anon_vma:
            prev.anon_vma, prev.anon_vma_chain = vma.anon_vma, vma.anon_vma_chain
        mm.vmas.pop(i)
        anon_vma_interval_tree_insert(k, prev)
        return prev
    return vma


def split_vma(k: "Kernel", mm: MmStruct, vma: VmArea, addr: int) -> VmArea:
    """__split_vma(): cut vma at addr; returns the upper part.

    A PMD-level entry straddling the cut is split first
    (vma_adjust_trans_huge -> split_huge_pmd_if_needed).
    """
    if addr & ~PMD_MASK:
        pmd = mm.pmds.get(pmd_index(addr))
        if pmd is not None and pmd.kind in (PmdKind.HUGE, PmdKind.ZERO, PmdKind.SWAP):
            split_huge_pmd_locked(k, mm, vma, addr & PMD_MASK)
    upper = VmArea(start=addr, end=vma.end, flags=vma.flags,
                   pgoff=vma.pgoff + ((addr - vma.start) >> PAGE_SHIFT),
                   anon_vma=vma.anon_vma, anon_vma_chain=vma.anon_vma_chain)
    vma.end = addr
    anon_vma_interval_tree_insert(k, upper, vma)     # anon_vma_clone(), then vma_complete()
    mm.insert_vma(upper)
    return upper


def vma_range(k: "Kernel", mm: MmStruct, start: int, end: int) -> list[VmArea]:
    """Split VMAs at start and end so that [start, end) is covered by whole VMAs."""
    for vma in mm.vmas_in(start, end):
        if vma.start < start:
            split_vma(k, mm, vma, start)
    for vma in mm.vmas_in(start, end):
        if vma.end > end:
            split_vma(k, mm, vma, end)
    return mm.vmas_in(start, end)


def munmap_splits(mm: MmStruct, start: int, end: int) -> list[int]:
    """The PMD slots a munmap of [start, end) splits: a PMD-level entry (a THP, the huge
    zero page or, with the series, a PMD swap entry) that the range covers in part.  At
    most two, the edges; the caller's limits count what each split adds (a table, and with
    lazy deposit a page-table page)."""
    edges = {start >> PMD_SHIFT} if start & ~PMD_MASK else set()
    if end & ~PMD_MASK:
        edges.add(end >> PMD_SHIFT)     # the slot holding the last byte, end - 1
    out = []
    for idx in sorted(edges):
        pmd = mm.pmds.get(idx)
        if pmd is not None and pmd.kind in (PmdKind.HUGE, PmdKind.ZERO, PmdKind.SWAP):
            out.append(idx)     # its VMA covers the whole 2 MiB: the table stays for the rest
    return out


def munmap_check(mm: MmStruct, start: int, length: int) -> int:
    """What do_vmi_munmap() checks before it changes anything: the range (EINVAL), and
    that a hole punched inside one VMA, which splits it in two, leaves map_count within
    vm.max_map_count (vms_gather_munmap_vmas(): ENOMEM).  The length rounded up to pages."""
    page_aligned("munmap", start, length)
    length = (length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    end = start + length
    first = next(iter(mm.vmas_in(start, end)), None)
    if first is not None and first.start < start and end < first.end and len(mm.vmas) >= MAX_MAP_COUNT:
        raise MmError("ENOMEM", "munmap", f"pid {mm.pid} would have {len(mm.vmas) + 1} VMAs: more than "
                      f"vm.max_map_count ({MAX_MAP_COUNT})")
    return length


def sys_munmap(k: "Kernel", mm: MmStruct, start: int, length: int) -> None:
    """munmap(): check (munmap_check), then split VMAs at the edges, zap the page tables,
    remove the VMAs.  Nothing after the check refuses: the shell takes no checkpoint
    around it (lang/registry.py, `checks_first`)."""
    length = munmap_check(mm, start, length)
    end = start + length
    k.trace("do_vmi_munmap")
    for vma in vma_range(k, mm, start, end):
        unmap_page_range(k, mm, vma, vma.start, vma.end)
        mm.vmas.remove(vma)
        free_pgtables(k, mm, vma.start, vma.end)
    k.shadow.zero(mm.pid, start, end)


def free_pgtables(k: "Kernel", mm: MmStruct, start: int, end: int) -> None:
    """free_pgtables(): PTE tables no VMA covers any more are freed."""
    for pmdi, pmd, _, _ in walk_pmd_range(k, mm, start, end, Walker.ZAP):
        if pmd is None or pmd.kind is not PmdKind.TABLE:
            continue
        lo = pmdi << PMD_SHIFT
        if not mm.vmas_in(lo, lo + PMD_SIZE):
            del mm.pmds[pmdi]
            pte_free(mm)


def unmap_page_range(k: "Kernel", mm: MmStruct, vma: VmArea, start: int, end: int) -> None:
    """zap_pmd_range(): whole PMD-level entries by zap_huge_pmd, partial ones split first."""
    for pmdi, pmd, addr, nxt in walk_pmd_range(k, mm, start, end, Walker.ZAP):
        if pmd is None:
            continue
        if pmd.kind in (PmdKind.HUGE, PmdKind.ZERO, PmdKind.SWAP):
            if addr & ~PMD_MASK == 0 and nxt - addr == PMD_SIZE:
                zap_huge_pmd(k, mm, addr)
                continue
            split_huge_pmd_locked(k, mm, vma, addr & PMD_MASK)
            pmd = mm.pmds[pmdi]
        if pmd.kind is PmdKind.TABLE:
            zap_pte_range(k, mm, pmd_pgtable(pmd).ptes, addr, nxt)


#: The bytes of a page's mapcount (array "i") of 1.
_ONE_MAP = array("i", [1]).tobytes()

def _zap_order0_run(k: "Kernel", mm: MmStruct, words: array) -> bool:
    """The loop of zap_pte_range() at once when every PTE maps the next frame of a run of order-0
    folios, each mapped only there (a range swapped in, or faulted, page by page): each page
    loses its one mapping and PageAnonExclusive (the loop writes back the flags it read, so
    a dirty PTE leaves no mark on a folio freed with it), and the run is freed together.
    False (nothing done) for anything else."""
    mem = k.mem
    raw = words.tobytes()
    n = len(words)
    page = words[0] >> PFN_SHIFT if n else 0
    if not n or page + n > mem.nr_frames or not bm.present_run_of(raw, page) \
            or 1 in raw[1::8].translate(bm.SPECIAL):
        return False
    flag_bytes = bytearray(mem.flags[page:page + n].tobytes())
    if 1 in flag_bytes[0::4].translate(bm.HEAD_OR_TAIL) or mem.mapcount[page:page + n].tobytes() != _ONE_MAP * n:
        return False
    mem.mapcount[page:page + n] = array("i", bytes(4 * n))
    flag_bytes[1::4] = flag_bytes[1::4].translate(bm.CLEAR_ANON_EXCL)
    mem.flags[page:page + n] = array("I", flag_bytes)
    mm.rss_anon -= n
    k.vmstat.nr_anon_pages -= n
    free_order0_folios(k, list(range(page, page + n)))
    return True


def _one_folio_run(mem: MemMap, words: array) -> tuple[int, int, bool] | None:
    """(first page, its uffd-wp bit, whether any PTE is dirty) when the PTE words map
    consecutive pages of one large folio, none special, all with the same uffd-wp bit (a THP
    mapped back from the swap cache, or split in place): what zap_pte_range's loop batches
    into one folio_remove_rmap_ptes().  None (the loop does it) for anything else."""
    n = len(words)
    if n < 2:
        return None
    raw = words.tobytes()
    page = words[0] >> PFN_SHIFT
    if page + n > mem.nr_frames or not bm.present_run_of(raw, page) or 1 in raw[1::8].translate(bm.SPECIAL):
        return None
    head = mem.folio_of(page)
    if not mem.order[head] or page + n > head + (1 << mem.order[head]):
        return None
    low = raw[0::8]
    clear = len(low.translate(None, bm.UFFD_WP_SET))       # the PTEs without uffd-wp
    if clear not in (0, n):
        return None
    return page, 0 if clear else F_UFFD_WP, bool(low.translate(None, bm.NOT_DIRTY))


def zap_pte_range(k: "Kernel", mm: MmStruct, ptes, start: int, end: int) -> None:
    """zap_pte_range(): drop present pages (rmap, rss) and swap entries (slot references).

    Swap entries go back in runs (free_swap_and_cache_nr); order-0 folios that
    lose their last mapping are freed together, as the mmu_gather batch does.  An
    anonymous folio does not take the dirty bit of a PTE zapped here
    (zap_present_folio_ptes(): "We don't need up-to-date accessed/dirty bits"), so a
    lazyfree folio another process had written stays clean once that one has gone.
    """
    mem = k.mem
    k.trace("zap_pte_range")
    i0 = pte_index(start)
    n = (end - start) >> PAGE_SHIFT
    count_visits(k, Walker.ZAP, n)
    words = ptes[i0:i0 + n]
    ptes[i0:i0 + n] = array("Q", bytes(8 * n))
    if _zap_order0_run(k, mm, words):
        return
    flags, mapcount = mem.flags, mem.mapcount
    small: list[int] = []
    large: list[int] = []
    run_type = run_off = run_n = 0
    # zap_present_ptes(): the PTEs mapping consecutive pages of one large folio go in one
    # batch (folio_pte_batch), so a folio whose every mapping goes at once is never seen
    # partially mapped (no deferred split).
    batch_page = batch_n = batch_wp = present = swapents = 0
    one = _one_folio_run(mem, words)
    if one is not None:
        # the loop's outcome for a run of one large folio's pages: one batch, every page present
        batch_page, batch_wp, dirty = one
        batch_n = present = len(words)
        if dirty:
            flags[mem.folio_of(batch_page)] |= PG.DIRTY
        words = array("Q")
    # pgtable.py's encoding as locals: this loop runs once per PTE zapped
    kind_mask, present_kind, swap_kind = KIND_MASK, KIND_PRESENT, KIND_SWAP
    pfn_shift, offset_shift = PFN_SHIFT, SWP_OFFSET_SHIFT
    type_shift, type_mask = SWP_TYPE_SHIFT, SWP_TYPE_MASK
    for w in words:
        kind = w & kind_mask
        if batch_n and not (kind == present_kind and not w & F_SPECIAL
                            and w >> pfn_shift == batch_page + batch_n
                            and mem.folio_of(w >> pfn_shift) == mem.folio_of(batch_page)
                            and w & F_UFFD_WP == batch_wp):
            folio_remove_rmap_ptes(k, batch_page, batch_n)
            large.append(mem.folio_of(batch_page))
            batch_n = 0
        if kind == swap_kind:
            swapents += 1
            t, off = (w >> type_shift) & type_mask, w >> offset_shift
            if run_n and t == run_type and off == run_off + run_n:
                run_n += 1
                continue
            if run_n:
                free_swap_and_cache_nr(k, SwpEntry(run_type, run_off), run_n)
            run_type, run_off, run_n = t, off, 1
        elif kind == present_kind and not w & F_SPECIAL:
            present += 1
            page = w >> pfn_shift
            f = flags[page]
            if not f & (PG.TAIL | PG.HEAD) and mapcount[page] == 1:
                mapcount[page] = 0
                flags[page] = f & ~PG.ANON_EXCLUSIVE
                small.append(page)
            elif batch_n:
                batch_n += 1
            elif f & (PG.TAIL | PG.HEAD):
                batch_page, batch_n, batch_wp = page, 1, w & F_UFFD_WP
            else:
                folio_remove_rmap_ptes(k, page, 1)
                large.append(mem.folio_of(page))
    if batch_n:
        folio_remove_rmap_ptes(k, batch_page, batch_n)
        large.append(mem.folio_of(batch_page))
    if run_n:
        free_swap_and_cache_nr(k, SwpEntry(run_type, run_off), run_n)
    mm.rss_swapents -= swapents
    mm.rss_anon -= present
    k.vmstat.nr_anon_pages -= len(small)
    free_order0_folios(k, small)
    for head in dict.fromkeys(large):
        if mem.flags[head] & PG.USED and not mem.folio_mapped(head):
            if mem.test(head, PG.SWAPCACHE):
                folio_free_swap(k, head)
            folio_put_if_unused(k, head)
