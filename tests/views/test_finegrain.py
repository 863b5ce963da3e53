"""finegrain.py: changed slot ranges found from run boundaries agree with a slot-by-slot diff."""

from __future__ import annotations

import random

from mmshell.views.finegrain import slot_changes, slot_state


def runs_of(values: list) -> list[tuple[int, int, int, bool]]:
    out: list[tuple[int, int, int, bool]] = []
    for i, v in enumerate(values):
        if v is None:
            continue
        if out and out[-1][1] == i - 1 and out[-1][2:] == v:
            out[-1] = (out[-1][0], i, *v)
        else:
            out.append((i, i, *v))
    return out


def test_slot_changes_match_a_slot_by_slot_diff() -> None:
    rng = random.Random(11)
    choices = [None, (1, False), (0, True), (2, False), (1, True)]
    for _ in range(300):
        n = rng.randrange(1, 40)
        old = [rng.choice(choices) for _ in range(n)]
        new = [v if rng.random() < 0.7 else rng.choice(choices) for v in old]
        got = slot_changes(runs_of(old), runs_of(new))
        expanded = {}
        for first, last, o, nw in got:
            for i in range(first, last + 1):
                expanded[i] = (o, nw)
        want = {i: (slot_state(a), slot_state(b)) for i, (a, b) in enumerate(zip(old, new))
                if slot_state(a) != slot_state(b)}
        assert expanded == want
        for (_, l1, *c1), (f2, _, *c2) in zip(got, got[1:]):      # merged where alike
            assert not (f2 == l1 + 1 and c1 == c2)
