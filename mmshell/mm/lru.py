"""The anon LRU lists of the one node as the kernel keeps them (include/linux/mm_inline.h).

In the kernel each folio is on its LRU list through `struct list_head lru` in `struct
folio`, and each list is a sentinel `struct list_head` in `lruvec->lists[]`:
lruvec_add_folio_tail() is a list_add_tail(), lruvec_del_folio() a list_del(),
folio_activate() moves the folio from the inactive list to the tail of the active one
(lru_activate), and NR_INACTIVE_ANON / NR_ACTIVE_ANON count the pages on each.

`Lru` is the same intrusive doubly linked list: per-frame arrays `prev` and `next`, indexed
by pfn + 2, with the inactive list's sentinel at index 0 and the active one's at 1, and a
per-frame byte saying which list the folio is on (0: none, 1: inactive, 2: active: the
kernel's PG_lru and PG_active, kept apart here because the flags are moved by their own
callers).  Adding at the tail, deleting, activating and deactivating are O(1); the runs the
batched paths add are linked with slice assignments of `ramp` (ramp[i] == i, grown by int
lane arithmetic as frames come into use), and a run of neighbours they free is cut out at
once.  The lists are walked oldest first.  13 bytes a frame in all, made at `set ram`; a
command's checkpoint copies the next links below the high-water mark (4 bytes a frame ever
linked).

Left out: the file lists and the unevictable list (only anonymous memory is simulated),
the per-memcg lruvecs (one node, one lruvec), the per-CPU folio batches that delay
lru_add / lru_activate (here a folio is on its list at once), MGLRU, and the page counts
(counted when asked, `lru_pages`, from the folios' orders).
"""

from __future__ import annotations

import sys
from array import array
from collections import Counter, deque
from itertools import compress, islice, repeat
from operator import ne
from typing import Iterable

from .errors import VmBug
from .lanes import is_run

INACTIVE, ACTIVE = 0, 1     # the sentinels' indexes, and lruvec->lists[] order
_OFF = 2                    # index of pfn p: p + _OFF
PFN_OFFSET = _OFF           # for loops that read Lru.which themselves (which[pfn + PFN_OFFSET])

_ONE = array("i", [1]).tobytes()


def grow_ramp(ramp: array, end: int) -> None:
    """Extend `ramp` (an array("i") with ramp[i] == i) to `end` entries, each doubling step as
    whole-table int lane arithmetic (mm/lanes.py): the next n entries are the first n plus n
    lanes of len(ramp), one big-int multiply and add of 4-byte lanes that stay below 2**31, so
    no lane carries into the next.  The same table as ramp.extend(range(len(ramp), end))."""
    order = sys.byteorder
    while len(ramp) < end:
        have = len(ramp)
        n = min(have, end - have)
        low = int.from_bytes(ramp[:n].tobytes(), order)
        ramp.frombytes((low + have * int.from_bytes(_ONE * n, order)).to_bytes(4 * n, order))


class Lru:
    """The anon LRU lists of the one node (lruvec->lists[LRU_INACTIVE_ANON/LRU_ACTIVE_ANON])."""

    __slots__ = ("prev", "next", "which", "nr", "hwm", "ramp")

    def __init__(self, nr_frames: int) -> None:
        n = nr_frames + _OFF
        self.prev = array("i", [0]) * n
        self.next = array("i", [0]) * n
        self.which = array("B", [0]) * n      # 0: on no list, 1 + the sentinel of the list it is on
        self.prev[ACTIVE] = self.next[ACTIVE] = ACTIVE   # INACTIVE's already point at 0
        self.nr = [0, 0]                # folios on each list
        self.hwm = _OFF                 # above every index ever linked: what a checkpoint copies
        self.ramp = array("i", range(_OFF))     # ramp[i] == i: a run's links are slices of it (_ramp)

    def _ramp(self, end: int) -> array:
        """`ramp` with ramp[i] == i below `end` at least: grown (at least doubled) as runs reach
        higher frames, so a machine pays for it as its frames come into use, not at boot."""
        ramp = self.ramp
        if len(ramp) < end:
            grow_ramp(ramp, min(len(self.which), max(end, 2 * len(ramp))))
        return ramp

    # -- one folio ----------------------------------------------------------------
    def list_add_tail(self, pfn: int, head: int = INACTIVE) -> None:
        """lruvec_add_folio_tail(): at the tail (newest end) of list `head`.  A folio already
        on that list stays where it is."""
        i = pfn + _OFF
        w = self.which[i]
        if w:
            if w == head + 1:
                return
            raise VmBug(f"folio {pfn:#x} added to an LRU list while on the other one")
        self._link(i, self.prev[head], head, head)
        if i >= self.hwm:
            self.hwm = i + 1

    def _link(self, i: int, a: int, b: int, head: int) -> None:
        """list_add(): index i, on no list, between the neighbours a and b of list `head`."""
        prev, nxt = self.prev, self.next
        nxt[a] = i
        prev[i] = a
        nxt[i] = b
        prev[b] = i
        self.which[i] = head + 1
        self.nr[head] += 1

    def list_del(self, pfn: int) -> int:
        """lruvec_del_folio(): off whichever list it is on; returns that list + 1, or 0."""
        i = pfn + _OFF
        w = self.which[i]
        if w:
            prev, nxt = self.prev, self.next
            a, b = prev[i], nxt[i]
            nxt[a] = b
            prev[b] = a
            self.which[i] = 0
            self.nr[w - 1] -= 1
        return w

    def add(self, pfn: int) -> None:
        """A new folio: at the tail of the inactive list (folio_add_lru)."""
        self.list_add_tail(pfn, INACTIVE)

    def delete(self, pfn: int) -> None:
        self.list_del(pfn)

    def activate(self, pfn: int) -> None:
        """folio_activate(): from the inactive list to the tail of the active one."""
        if self.which[pfn + _OFF] == INACTIVE + 1:
            self.list_del(pfn)
            self.list_add_tail(pfn, ACTIVE)

    def deactivate(self, pfn: int) -> bool:
        """lru_deactivate: from the active list to the tail of the inactive one."""
        if self.which[pfn + _OFF] == ACTIVE + 1:
            self.list_del(pfn)
            self.list_add_tail(pfn, INACTIVE)
            return True
        return False

    def move_tail(self, pfn: int) -> bool:
        """lru_move_tail() (folio_rotate_reclaimable(), at the end of a write reclaim asked
        for): from whichever list it is on to the oldest end of the inactive one, where reclaim
        looks first (the kernel's list tail; this list's head).  False when it is on none."""
        i = pfn + _OFF
        if not self.which[i]:
            return False
        self.list_del(pfn)
        self._link(i, INACTIVE, self.next[INACTIVE], INACTIVE)
        return True

    def is_active(self, pfn: int) -> bool:
        return 0 <= pfn < len(self.which) - _OFF and self.which[pfn + _OFF] == ACTIVE + 1

    def is_inactive(self, pfn: int) -> bool:
        return 0 <= pfn < len(self.which) - _OFF and self.which[pfn + _OFF] == INACTIVE + 1

    def on_lru(self, pfn: int) -> bool:
        return 0 <= pfn < len(self.which) - _OFF and self.which[pfn + _OFF] != 0

    # -- runs (the batched paths) -------------------------------------------------
    def add_run(self, p0: int, n: int, head: int = INACTIVE) -> None:
        """Folios p0 .. p0+n-1 (none on a list yet) at the tail of list `head`, in pfn order."""
        if n <= 0:
            return
        i0 = p0 + _OFF
        which = self.which
        if which[i0:i0 + n].count(0) != n:
            for p in range(p0, p0 + n):     # some already listed: one by one, as a dict update
                self.list_add_tail(p, head)
            return
        prev, nxt = self.prev, self.next
        t = prev[head]
        nxt[t] = i0
        prev[i0] = t
        ramp = self._ramp(i0 + n)
        nxt[i0:i0 + n - 1] = ramp[i0 + 1:i0 + n]
        prev[i0 + 1:i0 + n] = ramp[i0:i0 + n - 1]
        last = i0 + n - 1
        nxt[last] = head
        prev[head] = last
        which[i0:i0 + n] = array("B", [head + 1]) * n
        self.nr[head] += n
        if last >= self.hwm:
            self.hwm = last + 1

    def add_many(self, pfns: list[int], head: int = INACTIVE) -> None:
        """Folios `pfns` (none on a list yet) at the tail of list `head`, in that order."""
        if not pfns:
            return
        n, p0 = len(pfns), pfns[0]
        if is_run(pfns):
            self.add_run(p0, n, head)       # consecutive frames (a bulk allocation): slices
            return
        which = self.which
        idx = list(map(_OFF.__add__, pfns))
        if any(map(which.__getitem__, idx)) or len(set(idx)) != len(idx):
            for p in pfns:
                self.list_add_tail(p, head)
            return
        prev, nxt = self.prev, self.next
        chain = [prev[head], *idx, head]
        deque(map(nxt.__setitem__, chain[:-1], chain[1:]), maxlen=0)       # at C speed
        deque(map(prev.__setitem__, chain[1:], chain[:-1]), maxlen=0)
        deque(map(which.__setitem__, idx, repeat(head + 1)), maxlen=0)
        self.nr[head] += len(idx)
        top = max(idx)
        if top >= self.hwm:
            self.hwm = top + 1

    def add_split_in_place(self, p0: int, n: int) -> bool:
        """lru_add_split_folio() of a folio split where it lies on its list (not reclaim's
        split, whose new folios go on reclaim's own list): folio p0 keeps its place, and each
        new folio p0+1 .. p0+n-1 in turn is put just before the head on the newer side
        (list_add_tail(&new_folio->lru, &folio->lru)), so oldest first the list reads p0,
        p0+n-1, p0+n-2, .., p0+1: a split folio's pages keep its age.  False (nothing done)
        when p0 is on no list or a new folio is on one already."""
        i0 = p0 + _OFF
        w = self.which[i0]
        if not w or n <= 1 or self.which[i0 + 1:i0 + n].count(0) != n - 1:
            return False
        prev, nxt, which = self.prev, self.next, self.which
        idx = range(i0 + n - 1, i0, -1)
        chain = [i0, *idx, nxt[i0]]
        deque(map(nxt.__setitem__, chain[:-1], chain[1:]), maxlen=0)
        deque(map(prev.__setitem__, chain[1:], chain[:-1]), maxlen=0)
        which[i0 + 1:i0 + n] = array("B", [w]) * (n - 1)
        self.nr[w - 1] += n - 1
        if i0 + n - 1 >= self.hwm:
            self.hwm = i0 + n
        return True

    def delete_many(self, pfns: Iterable[int]) -> None:
        """lruvec_del_folio() of each of `pfns` that is on a list.  Where consecutive pfns of
        `pfns` are neighbours on a list (a run added in order), the run is unlinked at once:
        its ends are relinked, its inner links left as they are (the kernel's
        list_cut_position()); the pieces are found at C speed."""
        prev, nxt, which, nr = self.prev, self.next, self.which, self.nr
        if isinstance(pfns, list) and len(pfns) > 1 and self._delete_chain(pfns):
            return
        idx = list(map(_OFF.__add__, pfns))
        ws = list(map(which.__getitem__, idx))
        if ws.count(0):
            idx = list(compress(idx, ws))
        n = len(idx)
        if n < 8 or len(set(idx)) != n:
            self._delete_each(idx)
            return
        nr[INACTIVE] -= ws.count(INACTIVE + 1)
        nr[ACTIVE] -= ws.count(ACTIVE + 1)
        deque(map(which.__setitem__, idx, repeat(0)), maxlen=0)
        # piece ends: where the next pfn of `idx` is not the list's next folio
        ends = [*compress(range(n - 1), map(ne, map(nxt.__getitem__, idx), islice(idx, 1, None))), n - 1]
        start = 0
        for end in ends:
            a, b = prev[idx[start]], nxt[idx[end]]
            nxt[a] = b
            prev[b] = a
            start = end + 1

    def _delete_chain(self, pfns: list[int]) -> bool:
        """`pfns` is p0, p0+1, .. and each the list's next after the one before: unlink the run
        at once (the frees of a run of order-0 folios a split or a swap-in put there)."""
        n, p0 = len(pfns), pfns[0]
        if pfns[-1] - p0 != n - 1:
            return False
        i0 = p0 + _OFF
        last = i0 + n - 1
        nxt, which = self.next, self.which
        w = which[i0]
        if not w or nxt[i0:last] != self._ramp(last + 1)[i0 + 1:last + 1] or not is_run(pfns):
            return False
        prev = self.prev
        a, b = prev[i0], nxt[last]
        nxt[a] = b
        prev[b] = a
        which[i0:last + 1] = array("B", bytes(n))
        self.nr[w - 1] -= n
        return True

    def _delete_each(self, idx: list[int]) -> None:
        prev, nxt, which, nr = self.prev, self.next, self.which, self.nr
        for i in idx:
            w = which[i]
            if w:
                a, b = prev[i], nxt[i]
                nxt[a] = b
                prev[b] = a
                which[i] = 0
                nr[w - 1] -= 1

    # -- reading ------------------------------------------------------------------
    def nr_folios(self, head: int) -> int:
        return self.nr[head]

    def __len__(self) -> int:
        return self.nr[0] + self.nr[1]

    def folios(self, head: int) -> list[int]:
        """list_for_each_entry(): the folios of list `head`, oldest first."""
        nxt = self.next
        out: list[int] = []
        append = out.append
        i = nxt[head]
        for _ in range(self.nr[head]):
            append(i - _OFF)
            i = nxt[i]
        if i != head:
            raise VmBug(f"LRU list {head} does not end after its count of folios: its links are broken")
        return out

    def inactive(self) -> list[int]:
        return self.folios(INACTIVE)

    def active(self) -> list[int]:
        return self.folios(ACTIVE)

    def oldest_first(self) -> list[int]:
        return [*self.folios(INACTIVE), *self.folios(ACTIVE)]

    def check_links(self) -> list[str]:
        """The links are a list each: prev undoes next, each folio says it is on the list it
        is found on, and the counts are the lists' lengths."""
        prev, nxt, which = self.prev, self.next, self.which
        problems = []
        seen = 0
        for head, name in ((INACTIVE, "inactive"), (ACTIVE, "active")):
            n, i, bound = 0, head, len(which)
            while True:
                j = nxt[i]
                if not 0 <= j < bound or prev[j] != i:
                    problems.append(f"the {name} LRU list is broken after {i - _OFF:#x}")
                    break
                if j == head:
                    break
                if which[j] != head + 1:
                    problems.append(f"folio {j - _OFF:#x}: on the {name} LRU list but marked otherwise")
                n += 1
                if n > bound:
                    problems.append(f"the {name} LRU list loops")
                    break
                i = j
            if n != self.nr[head]:
                problems.append(f"the {name} LRU list holds {n} folios, its count says {self.nr[head]}")
            seen += n
        marked = len(which) - which.count(0)
        if marked != seen:
            problems.append(f"{marked} frames marked on an LRU list, {seen} on the lists")
        return problems

    def lru_pages(self, order: bytearray, head: int) -> int:
        """The pages of the folios on one list (the kernel keeps this as NR_INACTIVE_ANON /
        NR_ACTIVE_ANON; here it is counted when asked), `order` the folios' orders."""
        by_order = Counter(map(order.__getitem__, self.folios(head)))
        return sum(n << o for o, n in by_order.items())

    # -- a command's checkpoint (lang/snapshot.py, lang/undo.py) ------------------
    def checkpoint(self) -> tuple[array, array]:
        """The next links up to the high-water mark (4 bytes a frame, copied at C speed) and
        the counts: the prev links and the list marks follow from them (`rollback`)."""
        h = self.hwm
        return self.next[:h], array("q", (h, *self.nr))

    def rollback(self, saved: tuple[array, array]) -> None:
        """Put the lists back as `checkpoint` saw them (`saved` is left as it is): the next
        links copied back, the prev links and the marks rebuilt by walking each list."""
        nxt_saved, meta = saved
        h = meta[0]
        prev, nxt, which = self.prev, self.next, self.which
        nxt[:h] = nxt_saved
        top = max(self.hwm, h)
        which[:top] = array("B", bytes(top))
        for head in (INACTIVE, ACTIVE):
            mark, i, n = head + 1, head, meta[1 + head]
            for _ in range(n + 1):
                j = nxt[i]
                prev[j] = i
                if j == head:
                    break
                which[j] = mark
                i = j
            else:
                raise VmBug(f"LRU list {head} longer than its saved count")
        self.hwm = h
        self.nr = [meta[1], meta[2]]

    def __deepcopy__(self, memo: dict) -> "Lru":
        new = Lru.__new__(Lru)
        new.prev, new.next, new.which = self.prev[:], self.next[:], self.which[:]
        new.nr, new.hwm, new.ramp = list(self.nr), self.hwm, self.ramp[:]
        return new
