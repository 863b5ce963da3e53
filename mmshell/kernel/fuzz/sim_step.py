"""What the simulator did at the step of a difference, for the known patterns (known.py) whose
condition the script's text alone cannot state: whether a `reclaim` ran out of swap space, whether
a partly mapped THP was on the LRU when it began, whether its first look activated a folio.

The script is replayed in the simulator `kernel diff` runs it in (`diff.sim_session`)
up to and including the step; a replay is cached, since a step's differences come together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from ...lang.errors import LangError
from ...lang.parser import Command
from ...lang.runner import run_text
from ...lang.session import Session
from ..diff import sim_session
from ...mm.errors import MmError, VmBug
from ...mm.folio import PG
from ...mm.vmscan import get_nr_swap_pages

__all__ = ["SimStep", "sim_step"]


@dataclass(frozen=True)
class SimStep:
    """The simulator's machine around one step of a script."""

    #: /proc/vmstat events the step moved (name -> how much)
    events: dict[str, int] = field(default_factory=dict)
    #: large folios on the LRU that were partly unmapped (PG_partially_mapped), before the step
    partially_mapped_before: int = 0
    #: free slots on the devices that take new swap, after the step
    swap_free_after: int = 0
    #: swap-backed folios still on the LRU after the step (what a reclaim could not take)
    anon_on_lru_after: int = 0

    @property
    def ran_out_of_swap(self) -> bool:
        """The step left no free slot and swap-backed folios on the LRU."""
        return self.swap_free_after == 0 and self.anon_on_lru_after > 0


def _partially_mapped(s: Session) -> int:
    mem = s.kernel.mem
    return sum(1 for pfn in s.kernel.lru.oldest_first()
               if mem.nr_pages(pfn) > 1 and mem.test(pfn, PG.PARTIALLY_MAPPED))


def _anon_on_lru(s: Session) -> int:
    mem = s.kernel.mem
    return sum(1 for pfn in s.kernel.lru.oldest_first() if mem.test(pfn, PG.SWAPBACKED))


@lru_cache(maxsize=32)
def sim_step(lines: tuple[str, ...]) -> SimStep | None:
    """The simulator around the last of `lines` (the script up to the step), or None when the
    script cannot be replayed there (it does not parse, or the step is not reached)."""
    if not lines:
        return None
    target = len(lines)
    session = sim_session()
    seen: list[tuple[dict[str, int], int]] = []      # the events and partly mapped THPs before it

    def before(cmd: Command) -> None:
        if cmd.line == target and not seen:
            seen.append((dict(session.kernel.vmstat.events), _partially_mapped(session)))

    try:
        run_text(session, "\n".join(lines) + "\n", "known.mmsh", before=before)
    except (LangError, MmError, VmBug):
        return None
    if not seen:
        return None
    (start, partial), k = seen[0], session.kernel
    moved = {name: v - start.get(name, 0) for name, v in k.vmstat.events.items() if v != start.get(name, 0)}
    return SimStep(moved, partial, get_nr_swap_pages(k), _anon_on_lru(session))
