"""Byte masks for checking whole arrays at once: PTE tables, page-flags words, swap_map.

Each table maps one byte of an entry (the low byte, bits 0-7, or the second,
bits 8-15, of a PTE word or a page-flags word; or a swap_map byte) to 1 where a
property holds and 0 elsewhere, so `bytes.translate` over a strided slice of a
table's bytes gives a 0/1 mask of 512 entries, and `itertools.compress` picks
the entries where it holds.  Used by the invariant checker (check.py) and the
data checker (check_data.py), which run after every step of a debug_vm session,
and by try_to_unmap's per-table batch (rmap.py), which builds a run of swap PTEs
from their low bytes.
"""

from __future__ import annotations

import sys
from array import array

from .constants import HPAGE_PMD_NR, SWAP_COUNT_MASK, SWAP_HAS_CACHE, SWAP_MAP_BAD
from .folio import PG
from .lanes import progression_int
from .errors import VmBug
from .pgtable import (F_DIRTY, F_SPECIAL, F_SWP_EXCLUSIVE, F_UFFD_WP, KIND_MASK, KIND_PRESENT, KIND_SWAP, PFN_SHIFT,
                      SWP_KEPT)

# Per-byte tables over the low byte (bits 0-7) and the second byte (bits 8-15) of a
# PTE word, a page-flags word, or a swap_map byte: 1 where the property holds.
PRESENT = bytes(int(b & KIND_MASK == KIND_PRESENT) for b in range(256))
SWAP = bytes(int(b & KIND_MASK == KIND_SWAP) for b in range(256))
BAD_KIND = bytes(int(b & KIND_MASK == 3) for b in range(256))
SWP_EXCL = bytes(int(b & KIND_MASK == KIND_SWAP and bool(b & F_SWP_EXCLUSIVE)) for b in range(256))
SPECIAL = bytes(int(bool(b & (F_SPECIAL >> 8))) for b in range(256))
NOT_SPECIAL = bytes(int(not b & (F_SPECIAL >> 8)) for b in range(256))
COUNT = bytes(0 if b == SWAP_MAP_BAD else b & SWAP_COUNT_MASK for b in range(256))
CACHE_BIT = bytes(int(b != SWAP_MAP_BAD and bool(b & SWAP_HAS_CACHE)) for b in range(256))
IS_ZERO = bytes(int(b == 0) for b in range(256))
NONZERO = bytes(int(b != 0) for b in range(256))


def flag_mask(flag: int, byte: int) -> bytes:
    """Translate table for one page flag, as seen in byte `byte` of the flags word."""
    return bytes(int(bool(b & (flag >> (8 * byte)))) for b in range(256))


USED, HEAD, TAIL, SWAPCACHE, LRU = (flag_mask(f, 0) for f in (PG.USED, PG.HEAD, PG.TAIL, PG.SWAPCACHE, PG.LRU))
HEAD_OR_TAIL = flag_mask(PG.HEAD | PG.TAIL, 0)
ZERO = flag_mask(PG.ZERO, 1)
ANON_EXCLUSIVE = flag_mask(PG.ANON_EXCLUSIVE, 1)
ZEROS_Q = array("Q", bytes(8 * HPAGE_PMD_NR))
EMPTY_TABLE = bytes(8 * HPAGE_PMD_NR)


# try_to_unmap_one's swap PTE bits from the present PTE's low byte and PageAnonExclusive
# (the second byte of the page-flags word); the tables hold only while those bits sit there.
if SWP_KEPT | F_SWP_EXCLUSIVE | KIND_MASK | F_DIRTY > 0xFF or not 0xFF < PG.ANON_EXCLUSIVE <= 0xFFFF \
        or not 8 <= PFN_SHIFT < 16:
    raise VmBug("pte_masks: the swap PTE bits or PG_anon_exclusive moved out of the bytes the tables read")
#: present PTE low byte -> the swap PTE's low byte without the exclusive bit (kind swap, kept bits)
SWAP_LOW = bytes(KIND_SWAP | (b & SWP_KEPT) for b in range(256))
#: page-flags second byte -> F_SWP_EXCLUSIVE where PageAnonExclusive
SWP_EXCL_OF_PAGE = bytes(F_SWP_EXCLUSIVE if b & (PG.ANON_EXCLUSIVE >> 8) else 0 for b in range(256))
#: page-flags second byte with PageAnonExclusive cleared
CLEAR_ANON_EXCL = bytes(b & ~(PG.ANON_EXCLUSIVE >> 8) for b in range(256))
#: page-flags second byte with PageAnonExclusive set
SET_ANON_EXCL = bytes(b | (PG.ANON_EXCLUSIVE >> 8) for b in range(256))
#: the low-byte values of a PTE that is not dirty (deleted by translate: what stays is dirty)
NOT_DIRTY = bytes(b for b in range(256) if not b & F_DIRTY)
#: a PTE word's second byte with the bits below the pfn cleared
PFN_BITS_1 = bytes(b & (0xFF << (PFN_SHIFT - 8)) & 0xFF for b in range(256))
#: the low-byte values of a PTE with uffd-wp set (deleted by translate: what stays has it clear)
UFFD_WP_SET = bytes(b for b in range(256) if b & F_UFFD_WP)

#: The byte of a page-flags word (array "I") that holds bits 8-15.
FLAGS_BYTE1 = 1 if sys.byteorder == "little" else 2
#: The bytes of up to 512 mapcounts (array "i") of 0, and 512 mapcounts of 1.
NO_MAPS = bytes(4 * HPAGE_PMD_NR)
ONE_MAP = array("i", [1]) * HPAGE_PMD_NR


def set_anon_exclusive(flags: array, p: int, n: int) -> None:
    """SetPageAnonExclusive() on the n pages from p: translate over their flags' second bytes."""
    raw = bytearray(flags[p:p + n].tobytes())
    raw[FLAGS_BYTE1::4] = raw[FLAGS_BYTE1::4].translate(SET_ANON_EXCL)
    flags[p:p + n] = array("I", raw)


def present_run_of(raw: bytes, page: int) -> bool:
    """Whether the PTE words `raw` (their bytes) are all present and map page, page + 1, ... in
    order: the kind bits of each low byte, and the words with the bits below the pfn cleared
    against the progression of pfns, compared as one int each."""
    n = len(raw) // 8
    if raw[0::8].translate(PRESENT) != b"\x01" * n:
        return False
    pfns = bytearray(raw)
    pfns[0::8] = bytes(n)
    pfns[1::8] = pfns[1::8].translate(PFN_BITS_1)
    if not 0 < n <= HPAGE_PMD_NR:
        return pfns == array("Q", range(page << PFN_SHIFT, (page + n) << PFN_SHIFT, 1 << PFN_SHIFT)).tobytes()
    return int.from_bytes(pfns, sys.byteorder) == progression_int(page << PFN_SHIFT, 1 << PFN_SHIFT, n)


def and_masks(*masks: bytes | bytearray) -> bytes:
    """Byte-wise AND of 0/1 masks of equal length."""
    n = len(masks[0])
    acc = int.from_bytes(masks[0], "little")
    for m in masks[1:]:
        acc &= int.from_bytes(m, "little")
    return acc.to_bytes(n, "little")


def not_mask(mask: bytes) -> bytes:
    """1 where `mask` is 0, 0 where it is 1."""
    return mask.translate(IS_ZERO)


def nonzero_bits(raw: bytes, width: int) -> int:
    """An int with a non-zero byte i exactly where element i of `raw` (`width` bytes each) is non-zero."""
    acc = 0
    for lane in range(width):
        acc |= int.from_bytes(raw[lane::width], "little")
    return acc


def pte_masks(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """(present anon, present special, swap) masks over the 512 PTEs of a table (its bytes)."""
    low, second = raw[0::8], raw[1::8]
    present = low.translate(PRESENT)
    return (and_masks(present, second.translate(NOT_SPECIAL)), and_masks(present, second.translate(SPECIAL)),
            low.translate(SWAP))
