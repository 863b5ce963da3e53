"""Swap I/O (mm/page_io.c): writing a folio out and reading slots back in.

The device's "bytes" are `SwapInfo.data`; an all-zero folio is recorded in the
zeromap without I/O (swpout_zero), and with zswap enabled the pages go to zswap
(zswpout) instead of the device.  Reads count pswpin / swpin_zero / zswpin per
page, and the PMD-size mTHP `swpin` once per large folio read from the device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import HPAGE_PMD_NR
from .folio import PG
from .swapops import SwpEntry

if TYPE_CHECKING:
    from .kernel import Kernel
    from .swap_info import SwapInfo


def swap_writeout(k: "Kernel", pfn: int) -> bool:
    """swap_writeout(): write the swap-cache folio at pfn to its slots; it ends clean.

    True when the folio went to the device (__swap_writepage: under writeback
    until the I/O completes); False when no I/O was needed (zero-filled:
    zeromap; zswap_store), so reclaim can free it at once, on any device.
    """
    mem = k.mem
    entry = k.folio_swap[pfn]
    si = k.swp_info(entry.type)
    nr = mem.nr_pages(pfn)
    off = entry.offset
    values = mem.data[pfn:pfn + nr]
    si.data[off:off + nr] = values
    mem.clear(pfn, PG.DIRTY)
    if not any(values):
        # is_folio_zero_filled(): no I/O, the zeromap remembers.
        si.zeromap[off:off + nr] = b"\x01" * nr
        si.zswap[off:off + nr] = bytes(nr)
        k.vmstat.count("swpout_zero", nr)
        k.trace("swap_zeromap_folio_set")
        return False
    si.zeromap[off:off + nr] = bytes(nr)
    if k.config.zswap:
        si.zswap[off:off + nr] = b"\x01" * nr
        k.vmstat.count("zswpout", nr)
        if nr > 1:
            k.vmstat.count_mthp("zswpout")
        k.trace("zswap_store")
        return False
    si.zswap[off:off + nr] = bytes(nr)
    k.vmstat.count("pswpout", nr)
    if nr == HPAGE_PMD_NR:
        k.vmstat.count("thp_swpout")
        k.vmstat.count_mthp("swpout")
    k.trace("__swap_writepage")
    return True


def zswap_invalidate_loaded(k: "Kernel", pfn: int, si: "SwapInfo", off: int, nr: int) -> None:
    """zswap_load() into the swap cache: "the swapcache can be the authoritative owner of the
    page", so zswap drops its copy of each slot it loaded (xa_erase(), zswap_entry_free()) and
    marks the folio dirty: reclaim writes it out again (zswpout), it is not freed as a clean
    swap-cache folio.  A folio read past the swap cache (the SWP_SYNCHRONOUS_IO fault of a
    page mapped once, which frees the slot right after) leaves zswap its copy.

    Measured on 6.18.44 (kernel fuzz seed 21212 script 85): 512 pages swapped to zswap over
    a disk, 16 read back by `check`, then `reclaim`: zswpout +16; the simulation freed 15 of
    them clean and wrote 1."""
    si.zswap[off:off + nr] = bytes(nr)
    k.mem.set(pfn, PG.DIRTY)


def swap_read_folio(k: "Kernel", pfn: int, entry: SwpEntry) -> None:
    """swap_read_folio(): fill the folio at pfn from the slots starting at entry."""
    mem = k.mem
    si = k.swp_info(entry.type)
    nr = mem.nr_pages(pfn)
    off = entry.offset
    mem.data[pfn:pfn + nr] = si.data[off:off + nr]
    zero = si.zeromap[off:off + nr].count(1)
    zsw = si.zswap[off:off + nr].count(1)
    dev = nr - zero - zsw
    if zero:
        k.vmstat.count("swpin_zero", zero)
    if zsw:
        k.vmstat.count("zswpin", zsw)
        if mem.test(pfn, PG.SWAPCACHE):
            zswap_invalidate_loaded(k, pfn, si, off, nr)
    if dev:
        k.vmstat.count("pswpin", dev)
    if nr == HPAGE_PMD_NR and dev:
        k.vmstat.count_mthp("swpin")
    mem.set(pfn, PG.UPTODATE)
    if k.tracing:
        k.trace(f"swap_read_folio(order={mem.order[pfn]})")
