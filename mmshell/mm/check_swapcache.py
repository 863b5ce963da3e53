"""The swap cache's folios, checked at once: the invariant checker's fast path (check.py).

Each folio in the swap cache (`Kernel.folio_swap`: head pfn -> its first slot) has
PG_swapcache, its first slot naturally aligned, and every one of its slots in the
device's swap table pointing back to it; then, since a table entry holds one
folio, the folios of a device own exactly as many slots as the table holds when
the table holds no other.  `swap_cache_owners` decides this in C over all the
order-0 folios of a device at once (map and compress over the pfns and their
slots) and per large folio, and returns how many slots the folios of each device
own; None sends check.py to its folio by folio and slot by slot loops, which
name what is wrong.  (The kernel checks none of this; CONFIG_DEBUG_VM's
VM_BUG_ONs in the swap cache code catch some of it as it happens.)
"""

from __future__ import annotations

from collections import Counter
from itertools import compress, repeat
from operator import and_, attrgetter, eq, not_
from typing import TYPE_CHECKING

from .folio import PG

if TYPE_CHECKING:
    from .kernel import Kernel

_TYPE, _OFFSET = attrgetter("type"), attrgetter("offset")


def swap_cache_owners(k: "Kernel") -> Counter[int] | None:
    """Swap type -> slots its swap-cache folios own, when every folio holds as check.py
    requires (aligned, PG_swapcache, its slots point back to it); None when one may not."""
    owned: Counter[int] = Counter()
    fs = k.folio_swap
    if not fs:
        return owned
    mem = k.mem
    pfns = list(fs)
    entries = list(fs.values())
    types = list(map(_TYPE, entries))
    offs = list(map(_OFFSET, entries))
    try:
        if not all(map(and_, map(mem.flags.__getitem__, pfns), repeat(int(PG.SWAPCACHE)))):
            return None
        orders = list(map(mem.order.__getitem__, pfns))
        for j in compress(range(len(pfns)), orders):        # large folios, one by one
            nr, off = 1 << orders[j], offs[j]
            si = k.swap_info[types[j]]
            if si is None or off < 0 or off % nr or si.cache.table[off:off + nr].count(pfns[j]) != nr:
                return None
            owned[types[j]] += nr
        small = list(map(not_, orders))
        if not any(small):
            return owned
        pfns, types, offs = (list(compress(x, small)) for x in (pfns, types, offs))
        kinds = set(types)
        for t in kinds:                                     # order-0 folios, a device at once
            si = k.swap_info[t]
            if si is None:
                return None
            p, o = pfns, offs
            if len(kinds) > 1:
                these = list(map(eq, types, repeat(t)))
                p, o = list(compress(pfns, these)), list(compress(offs, these))
            if min(o) < 0 or list(map(si.cache.table.__getitem__, o)) != p:
                return None
            owned[t] += len(p)
    except IndexError:
        return None
    return owned
