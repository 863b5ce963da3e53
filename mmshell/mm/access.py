"""The simulated CPU: user loads and stores that walk the page table and fault.

`access_range` is what `touch` and `check RANGE` do: for each page, in address
order, try the access against the page table as the MMU would; on a miss or a
protection fault call handle_mm_fault and try again.  A store writes a fresh
value into the page and sets the entry's dirty bit, as the hardware does.

Runs of pages that need no fault are handled a PMD at a time; a run of swap
PTEs on a synchronous device that each take the same do_swap_page path, a run
of none PTEs that each take do_anonymous_page, and a run of stores to the zero
page or to read-only small folios that each take do_wp_page (reuse or copy),
are handled as one batch with exactly the counters of the separate faults
(swapin_batch.py, anon_batch.py).
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .anon_batch import anon_fault_run
from .constants import HPAGE_PMD_NR, PAGE_SHIFT, pmd_index, pte_index
from .errors import MmError, VmBug
from .lanes import progression_int
from .memory import handle_mm_fault
from .mm_types import MmStruct
from .pagewalk import pmd_addr_end
from .progress import progress
from .pgtable import (F_DIRTY, F_SPECIAL, F_WRITE, F_YOUNG, KIND_MASK, KIND_PRESENT, PFN_SHIFT, Pmd, PmdKind,
                      pmd_pgtable, pte_present)
from .swapin_batch import swapin_sync_run
from .swapin_cached import swapin_cached_run
from .vma import VM

if TYPE_CHECKING:
    from .kernel import Kernel


@dataclass(slots=True)
class Mismatch:
    """A page that does not read what was last written to it."""

    pid: int
    addr: int
    expected: int
    actual: int


@dataclass(slots=True)
class AccessResult:
    pages: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)


def check_access(mm: MmStruct, start: int, end: int, write: bool, op: str) -> None:
    """Refuse before doing anything if some page of the range would raise SIGSEGV."""
    addr = start
    while addr < end:
        vma = mm.find_vma(addr)
        if vma is None:
            raise MmError("SIGSEGV", op, f"no mapping at {addr:#x}")
        need = VM.WRITE if write else VM.READ
        if not vma.flags & need:
            kind = "write to read-only" if write else "read of inaccessible"
            raise MmError("SIGSEGV", op, f"{kind} mapping at {addr:#x}")
        addr = min(end, vma.end)


def access_range(k: "Kernel", mm: MmStruct, start: int, end: int, write: bool,
                 verify: bool = False) -> AccessResult:
    """Load (or store to) every page of [start, end); with verify, compare against the shadow."""
    check_access(mm, start, end, write, "touch" if not verify else "check")
    result = AccessResult()
    addr = start
    total = (end - start) >> PAGE_SHIFT
    while addr < end:
        progress("fault", (addr - start) >> PAGE_SHIFT, total)
        nxt = pmd_addr_end(addr, end)
        _access_pmd_span(k, mm, addr, nxt, write, verify, result)
        addr = nxt
    return result


def _access_pmd_span(k: "Kernel", mm: MmStruct, start: int, end: int, write: bool, verify: bool,
                     result: AccessResult) -> None:
    addr = start
    while addr < end:
        pmd = mm.pmds.get(pmd_index(addr))
        if pmd is not None and pmd.kind in (PmdKind.HUGE, PmdKind.ZERO) and (not write or pmd.pmd_write()):
            _huge_run(k, mm, pmd, addr, end, write, verify, result)
            return
        if pmd is not None and pmd.kind is PmdKind.TABLE:
            n = _present_run(k, mm, pmd_pgtable(pmd).ptes, addr, end, write, verify, result)
            if n:
                addr += n << PAGE_SHIFT
                continue
            n = _swapin_batch(k, mm, addr, end, write) or anon_fault_run(k, mm, addr, end, write)
            if n:
                continue   # the batch mapped pages; the present run takes them next
        _fault_page(k, mm, addr, write)


def _fault_page(k: "Kernel", mm: MmStruct, addr: int, write: bool) -> None:
    vma = mm.find_vma(addr)
    if vma is None:
        raise VmBug(f"fault at {addr:#x}: no VMA, though check_access passed the range")
    stolen = k.vmstat.events["pgsteal_direct"]
    for _ in range(4):
        handle_mm_fault(k, mm, vma, addr, write)
        if _accessible(mm, addr, write):
            return
    if k.vmstat.events["pgsteal_direct"] != stolen:
        # Each retry's allocation ran direct reclaim, which took back the very page being
        # faulted in (the simulation does not pin it, nor age it by its young bit): nothing
        # else is reclaimable, which in the kernel ends in the OOM killer.
        raise MmError("ENOMEM", "fault", f"out of memory at {addr:#x}: reclaim keeps evicting the page "
                      "being faulted in (the kernel would OOM-kill)")
    raise VmBug(f"fault at {addr:#x} did not make the page accessible")


def _accessible(mm: MmStruct, addr: int, write: bool) -> bool:
    pmd = mm.pmds.get(pmd_index(addr))
    if pmd is None:
        return False
    if pmd.kind in (PmdKind.HUGE, PmdKind.ZERO):
        return not write or pmd.pmd_write()
    if pmd.kind is not PmdKind.TABLE:
        return False
    pte = pmd_pgtable(pmd).ptes[pte_index(addr)]
    return pte_present(pte) and (not write or bool(pte & F_WRITE))


def _huge_run(k: "Kernel", mm: MmStruct, pmd: Pmd, start: int, end: int, write: bool, verify: bool,
              result: AccessResult) -> None:
    i = pte_index(start)
    n = (end - start) >> PAGE_SHIFT
    pfn = pmd.pfn
    data = k.mem.data
    pmd.flags |= F_YOUNG
    if write:
        values = array("Q", k.next_write_values(n))
        data[pfn + i:pfn + i + n] = values
        k.shadow.set_run(mm.pid, start, values)
        pmd.flags |= F_DIRTY
    elif verify:
        _verify_run(k, mm.pid, start, data[pfn + i:pfn + i + n], result)
    result.pages += n


def _present_run(k: "Kernel", mm: MmStruct, ptes: array, start: int, end: int, write: bool,
                 verify: bool, result: AccessResult) -> int:
    """Access the leading run of PTEs that need no fault; return its length in pages.

    The PTE words are handled as bytes, a lane per byte position (the kind, F_WRITE,
    F_DIRTY and F_YOUNG bits all sit in each word's lowest byte), at C speed."""
    i0 = pte_index(start)
    n_max = (end - start) >> PAGE_SHIFT
    raw = bytearray(ptes[i0:i0 + n_max].tobytes())
    # present, and writable for a store: the kind bits and F_WRITE tested at once
    n = raw[_LO::8].translate(_RUN_WRITE if write else _RUN_READ).find(0)
    if n < 0:
        n = n_max
    if not n:
        return 0
    del raw[n << 3:]
    words = array("Q", raw)
    raw[_LO::8] = raw[_LO::8].translate(_OR_DIRTY_YOUNG if write else _OR_YOUNG)
    ptes[i0:i0 + n] = array("Q", raw)
    data = k.mem.data
    pfn_shift = PFN_SHIFT
    p0 = _consecutive_frames(words) if write or verify else None
    if write:
        values = k.next_write_values(n)
        if p0 is not None:
            data[p0:p0 + n] = array("Q", values)
        else:
            for j, v in zip(range(n), values):
                data[words[j] >> pfn_shift] = v
        k.shadow.set_run(mm.pid, start, array("Q", values))
    elif verify:
        if p0 is not None:
            got = data[p0:p0 + n]
        else:
            got = array("Q", (0 if w & F_SPECIAL else data[w >> pfn_shift] for w in words))
        _verify_run(k, mm.pid, start, got, result)
    result.pages += n
    return n


#: The byte of a PTE word, as `array.tobytes()` lays it out, that holds bits 0-7 (bits 8-15: _LO1).
_LO, _LO1 = (0, 1) if sys.byteorder == "little" else (7, 6)
_RUN_READ = bytes(int(b & KIND_MASK == KIND_PRESENT) for b in range(256))
_RUN_WRITE = bytes(int(b & (KIND_MASK | F_WRITE) == KIND_PRESENT | F_WRITE) for b in range(256))
_OR_YOUNG = bytes(b | F_YOUNG for b in range(256))
_OR_DIRTY_YOUNG = bytes(b | F_DIRTY | F_YOUNG for b in range(256))
_SPECIAL = bytes(int(bool(b & (F_SPECIAL >> 8))) for b in range(256))
#: bits 8-15 of a word with F_SPECIAL (bit 8) and the rest below PFN_SHIFT cleared
_PFN_BITS_8_15 = bytes(b & ~((1 << (PFN_SHIFT - 8)) - 1) for b in range(256))


def _consecutive_frames(words: array) -> int | None:
    """The first pfn if the present PTE words map consecutive frames (none special), else None."""
    raw = bytearray(words.tobytes())
    if raw[_LO1::8].translate(_SPECIAL).find(1) >= 0:
        return None
    raw[_LO::8] = bytes(len(words))
    raw[_LO1::8] = raw[_LO1::8].translate(_PFN_BITS_8_15)
    step = 1 << PFN_SHIFT
    first = words[0] & ~(step - 1)
    n = len(words)
    if (int.from_bytes(raw, sys.byteorder) != progression_int(first, step, n) if 0 < n <= HPAGE_PMD_NR
            else array("Q", raw) != array("Q", range(first, first + n * step, step))):
        return None
    return first >> PFN_SHIFT


def _verify_run(k: "Kernel", pid: int, start: int, got: array, result: AccessResult) -> None:
    want = k.shadow.get_run(pid, start, len(got))
    if got != want:
        for j, (w, g) in enumerate(zip(want, got)):
            if w != g:
                result.mismatches.append(Mismatch(pid, start + (j << PAGE_SHIFT), w, g))


def _swapin_batch(k: "Kernel", mm: MmStruct, start: int, end: int, write: bool) -> int:
    """Take the separate do_swap_page faults of a run of swap PTEs at once.

    Two cases are batched: the common synchronous-device case (count 1, not cached, no
    zeromap/zswap, exclusive entries, frames free without reclaim; swapin_batch.py), and a
    read of order-0 folios still in the swap cache (swapin_cached.py); anything else goes
    through handle_mm_fault page by page.  Returns the pages done.
    """
    return swapin_sync_run(k, mm, start, end, write) or swapin_cached_run(k, mm, start, end, write)
