"""The machinery of the transactional guarantee: the snapshot, and the shadow's moves.

`snapshot()` must be a deep copy (equal state, no mutable object shared with
the original) of every machine state the stateful test reaches; Shadow.move
and Shadow.zero, which visit only the chunks that exist, must agree with a
page-by-page model.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
from array import array

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mmsh_fuzz import session
from mmsh_state import kernel_dump
from mmshell.lang.snapshot import _slot_names, snapshot
from mmshell.mm.shadow import Shadow

P, M2 = 4096, 2 << 20


def _mutable_objects(root) -> dict[int, object]:
    seen: dict[int, object] = {}
    todo = [root]
    while todo:
        o = todo.pop()
        t = type(o)
        if id(o) in seen or t in (int, str, bool, bytes, float, type(None), range, tuple) \
                or isinstance(o, enum.Enum) or (dataclasses.is_dataclass(o) and t.__dataclass_params__.frozen):
            if t is tuple:
                todo.extend(o)
            continue
        seen[id(o)] = o
        if isinstance(o, dict):
            todo.extend(o.keys())
            todo.extend(o.values())
        elif isinstance(o, (list, set)):
            todo.extend(o)
        elif hasattr(o, "__dict__") or hasattr(t, "__slots__"):
            todo.extend(getattr(o, n) for n in _slot_names(t) if hasattr(o, n))
            todo.extend(getattr(o, "__dict__", {}).values())
    return seen


def test_snapshot_is_a_deep_copy() -> None:
    s = session()
    state = (s.kernel, s.pid, s.regions)
    copied = snapshot(state)
    assert kernel_dump(copied[0]) == kernel_dump(s.kernel) == kernel_dump(copy.deepcopy(state)[0])
    assert copied[1:] == state[1:]
    shared = _mutable_objects(state).keys() & _mutable_objects(copied).keys()
    assert not shared, [type(_mutable_objects(state)[i]).__name__ for i in shared]


def test_snapshot_keeps_aliasing() -> None:
    inner = {"x": [1, 2]}
    outer = [inner, inner, (inner,)]
    c = snapshot(outer)
    assert c[0] is c[1] is c[2][0] and c[0] is not inner and c == outer


@st.composite
def shadow_ops(draw):
    base = 0x7F00_0000_0000
    writes = draw(st.lists(st.tuples(st.integers(0, 8 * 512 - 1), st.integers(1, 600), st.integers(0, 5)),
                           max_size=20))
    ops = draw(st.lists(st.tuples(st.booleans(), st.integers(0, 8 * 512 - 1), st.integers(1, 6 * 512),
                                  st.integers(0, 40 * 512)), min_size=1, max_size=4))
    return base, writes, ops


@pytest.mark.slow
@settings(max_examples=400, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(shadow_ops())
def test_shadow_move_and_zero_agree_with_a_page_model(case) -> None:
    base, writes, ops = case
    sh, model = Shadow(), {}
    for page, n, v in writes:
        for j in range(n):
            addr = base + (page + j) * P
            if addr // M2 != (base + page * P) // M2:
                break
            sh.set_run(1, addr, array("Q", [v]))
            model[addr] = v
    for is_move, src_page, npages, dst_page in ops:
        src, length = base + src_page * P, npages * P
        dst = base + (50 * 512 + dst_page) * P
        if is_move:
            values = {i: model.get(src + i * P, 0) for i in range(npages)}
            for i in range(npages):
                model.pop(src + i * P, None)
                model.pop(dst + i * P, None)
            model.update({dst + i * P: v for i, v in values.items() if v})
            sh.move(1, src, 1, dst, length)
        else:
            for i in range(npages):
                model.pop(src + i * P, None)
            sh.zero(1, src, src + length)
        for addr in list(model) + [src + i * P for i in range(0, npages, 5)]:
            assert sh.get(1, addr) == model.get(addr, 0)
