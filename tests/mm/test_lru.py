"""mm/lru.py: the intrusive LRU lists keep the order two insertion-ordered dicts would
(head pfn -> None, oldest first), through every operation, a checkpoint and a rollback."""

import copy
from array import array
import random

import pytest

from mmshell.mm.lru import ACTIVE, INACTIVE, Lru, grow_ramp

FRAMES = 200


class Model:
    """The lists as dicts: what Lru replaced."""

    def __init__(self) -> None:
        self.lists: list[dict[int, None]] = [{}, {}]

    def add(self, pfn: int, head: int) -> None:
        if pfn not in self.lists[1 - head]:
            self.lists[head][pfn] = None

    def delete(self, pfn: int) -> None:
        for lst in self.lists:
            lst.pop(pfn, None)

    def split_in_place(self, p0: int, n: int) -> bool:
        """p0's new folios p0+1 .. p0+n-1 just after it, the last first (oldest first)."""
        for lst in self.lists:
            if p0 in lst and not any(p in other for other in self.lists for p in range(p0 + 1, p0 + n)):
                order = list(lst)
                i = order.index(p0) + 1
                order[i:i] = range(p0 + n - 1, p0, -1)
                lst.clear()
                lst.update(dict.fromkeys(order))
                return n > 1
        return False

    def move_tail(self, pfn: int) -> bool:
        """To the oldest end of the inactive list, from either list."""
        if not any(pfn in lst for lst in self.lists):
            return False
        self.delete(pfn)
        self.lists[INACTIVE] = {pfn: None, **self.lists[INACTIVE]}
        return True

    def move(self, pfn: int, head: int) -> bool:
        if pfn in self.lists[1 - head]:
            del self.lists[1 - head][pfn]
            self.lists[head][pfn] = None
            return True
        return False


def _same(lru: Lru, model: Model) -> None:
    assert lru.inactive() == list(model.lists[INACTIVE]) and lru.active() == list(model.lists[ACTIVE])
    assert (lru.nr_folios(INACTIVE), lru.nr_folios(ACTIVE)) == tuple(map(len, model.lists))
    assert lru.check_links() == []
    for pfn in range(FRAMES):
        assert lru.is_active(pfn) == (pfn in model.lists[ACTIVE])
        assert lru.is_inactive(pfn) == (pfn in model.lists[INACTIVE])


def _step(rng: random.Random, lru: Lru, model: Model) -> None:
    op = rng.randrange(9)
    pfn = rng.randrange(FRAMES)
    head = rng.choice((INACTIVE, ACTIVE))
    if op == 0 and not (lru.is_active(pfn) if head == INACTIVE else lru.is_inactive(pfn)):
        lru.list_add_tail(pfn, head)
        model.add(pfn, head)
    elif op == 1:
        lru.delete(pfn)
        model.delete(pfn)
    elif op == 2:
        lru.activate(pfn)
        model.move(pfn, ACTIVE)
    elif op == 3:
        assert lru.deactivate(pfn) == model.move(pfn, INACTIVE)
    elif op == 4:
        n = rng.randrange(1, 40)
        p0 = rng.randrange(FRAMES - n)
        if not any(lru.on_lru(p) for p in range(p0, p0 + n)) or rng.random() < 0.3:
            if not model.lists[1 - head].keys() & set(range(p0, p0 + n)):
                lru.add_run(p0, n, head)
                for p in range(p0, p0 + n):
                    model.add(p, head)
    elif op == 5:
        pfns = rng.sample(range(FRAMES), rng.randrange(1, 30))
        if not model.lists[1 - head].keys() & set(pfns):
            lru.add_many(pfns, head)
            for p in pfns:
                model.add(p, head)
    elif op == 8:
        assert lru.move_tail(pfn) == model.move_tail(pfn)
    elif op == 7:
        n = rng.randrange(1, 40)
        p0 = rng.randrange(FRAMES - n)
        assert lru.add_split_in_place(p0, n) == model.split_in_place(p0, n)
    else:
        listed = lru.oldest_first()
        if listed:
            i = rng.randrange(len(listed))
            pfns = listed[i:i + rng.randrange(1, 60)]       # runs in list order, as the batch paths free
            if rng.random() < 0.5:
                rng.shuffle(pfns)
            pfns += rng.sample(range(FRAMES), rng.randrange(3))     # some on no list, some twice
            lru.delete_many(pfns)
            for p in pfns:
                model.delete(p)


@pytest.mark.parametrize("seed", range(20))
def test_lru_matches_the_dicts_it_replaced(seed: int) -> None:
    rng = random.Random(seed)
    lru, model = Lru(FRAMES), Model()
    saved = None
    for n in range(400):
        _step(rng, lru, model)
        _same(lru, model)
        if n % 50 == 10:
            saved = lru.checkpoint(), [dict(lst) for lst in model.lists]
        elif n % 50 == 40 and saved is not None:
            lru.rollback(saved[0])
            model.lists = [dict(lst) for lst in saved[1]]
            _same(lru, model)
    twin = copy.deepcopy(lru)
    _same(twin, model)
    assert twin.lru_pages(bytearray(FRAMES), INACTIVE) == len(model.lists[INACTIVE])


@pytest.mark.parametrize("have", [2, 3, 257])
def test_grow_ramp_is_the_range_it_replaces(have: int) -> None:
    """The lane-arithmetic growth of the shared ramp leaves exactly array("i", range(end)),
    through several doublings and to ends that are no power of two."""
    for end in (have, have + 1, 4097, (1 << 20) + 7):
        ramp = array("i", range(have))
        grow_ramp(ramp, end)
        assert ramp == array("i", range(max(have, end)))


def test_a_run_far_up_links_from_the_grown_ramp() -> None:
    """A run above every frame linked so far grows the machine's ramp past it; its links are
    what the per-folio adds give, and a deep copy has a ramp of its own."""
    lru, each = Lru(5000), Lru(5000)
    lru.add_run(4000, 900)
    for p in range(4000, 4900):
        each.add(p)
    assert len(lru.ramp) >= 4902 and lru.ramp[:4902] == array("i", range(4902))
    assert lru.folios(INACTIVE) == each.folios(INACTIVE) == list(range(4000, 4900))
    assert (lru.prev[4002:4902], lru.next[4002:4902]) == (each.prev[4002:4902], each.next[4002:4902])
    assert copy.deepcopy(lru).ramp is not lru.ramp
