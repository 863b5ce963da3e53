"""Flushing the per-CPU folio batches of every CPU at the end of a live step.

The kernel keeps folios in small per-CPU batches (mm/swap.c `cpu_fbatches`: lru_add,
lru_rotate, lru_deactivate, lru_lazyfree ..., FOLIO_BATCH_SIZE 31 each) before it
moves them on the LRU, and a batched folio holds one more reference.  The workers
all run on one CPU, whose batches the runner flushes after every step
(`op_drain`).  The end of an asynchronous swap write (a disk or a swap file) runs
on the CPU that takes the block device's interrupt, often another one:
folio_end_writeback() -> folio_rotate_reclaimable() puts the folio reclaim wrote
into that CPU's lru_rotate batch, where it stays until 31 more arrive or something
on that CPU drains it.  While it is there, do_swap_page()'s
should_try_to_free_swap() sees `folio_ref_count() == 1 + folio_nr_pages() + 1` and
keeps a write-faulted page in the swap cache.

Measured on 6.18.44 (2 CPUs, virtio-blk interrupts on CPU 1, workers on CPU 0):
`swapon f0 256K kind file; mmap a 2M; touch a; madvise a pageout; touch a` leaves
page 62 in the swap cache every time; draining CPU 1 after the pageout leaves
none, draining CPU 0 or waiting does not.  How many stay (1 there; 0 to 29 of 512
pages on a 64 MiB file, from run to run of one script; 21, 16 and 0 in three runs
of a 55-line script) depends on whether each write ends before or after
reclaim has put its folio back on the LRU (a folio not on the LRU is not rotated)
and on what other processes drain on that CPU: I/O timing, which no script
decides.  So the runner ends a step as the simulator does, with no folio in any
CPU's batch: it waits for the writeback to end, then flushes every CPU's batches
the way the worker flushes its own (MADV_COLD of an untouched page runs
lru_add_drain() on the CPU it runs on).  The workers' CPU too: the loop device's
writes end in an unbound worker, which runs on any CPU, the workers' included, and
the worker's own flush came before the writes ended.  Measured on 6.18.44 (kernel
fuzz seed 20202 script 3830: 130 pages written to a 4M disk, then written again):
with every CPU but the workers' flushed, 0, 2 or 6 pages (130 = 4 x 31 + 6) stayed
in the swap cache, from run to run; with the workers' CPU flushed too, none.
"""

from __future__ import annotations

import os
import time

from . import procfs
from . import syscalls as sc

__all__ = ["drain_cpus", "settle", "wait_writeback"]

PAGE = 4096
#: How long to wait for the swap writes of a step to end (a few ms on a disk; the rest of the
#: machine's writeback counts too, so the wait is bounded).
WRITEBACK_WAIT = 0.5

_PAGE: int | None = None


def wait_writeback(limit: float = WRITEBACK_WAIT) -> None:
    """Until nr_writeback is 0 (every folio under writeback, the machine's included), or limit."""
    end = time.monotonic() + limit
    while procfs.vmstat().get("nr_writeback", 0) > 0 and time.monotonic() < end:
        time.sleep(0.002)


def drain_cpus(cpus: set[int] | None = None) -> None:
    """lru_add_drain() on each of `cpus` (default: every CPU this thread may run on): the
    calling thread moves to each in turn (sched_setaffinity of thread 0 moves this thread
    only) and advises MADV_COLD on an untouched page of its own, then gets its old CPU set
    back."""
    global _PAGE
    if _PAGE is None:
        _PAGE = sc.mmap(0, PAGE, sc.PROT_READ | sc.PROT_WRITE, sc.MAP_PRIVATE)
    allowed = os.sched_getaffinity(0)
    try:
        for cpu in sorted(allowed if cpus is None else cpus):
            os.sched_setaffinity(0, {cpu})
            sc.madvise(_PAGE, PAGE, sc.MADV_COLD)
    finally:
        os.sched_setaffinity(0, allowed)


def settle(cpus: set[int] | None = None) -> None:
    """Once the swap writes have ended (wait_writeback()), flush the folio batches of each of
    `cpus` (drain_cpus()): no folio those writes rotated keeps a batch's reference."""
    wait_writeback()
    drain_cpus(cpus)
