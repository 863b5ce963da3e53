"""`kernel diff`'s VMA comparison without the live kernel: the layout both backends read
(kernel/vma_layout.py), when it is read (the registry's `maps` trait), how a difference is
reported, and its fuzz signature."""

from __future__ import annotations

import pytest

from mmshell.kernel.diff import Side, compare_runs, run_sim
from mmshell.kernel.fuzz.run import signature
from mmshell.kernel.vma_layout import layout_difference, vma_layout
from mmshell.lang.parser import parse_script
from mmshell.lang.registry import COMMANDS, changes_vmas
from mmshell.views.source import VmaFacts

M = 1 << 20


class Facts:
    """A backend's VMAs and region names, as SimViews and LiveViews give them."""

    def __init__(self, names: dict[int, dict[str, tuple[int, int]]], vmas: dict[int, list[VmaFacts]]) -> None:
        self._names, self._vmas = names, vmas

    def pids(self) -> list[int]:
        return sorted(self._vmas)

    def names(self, pid: int | None = None) -> dict[str, tuple[int, int]]:
        return self._names[pid if pid is not None else 1]

    def vma_facts(self, pid: int) -> list[VmaFacts]:
        return self._vmas[pid]


def test_the_layout_is_named_by_region_and_leaves_out_what_one_side_cannot_see() -> None:
    # The simulator: a and b (4M, 2M) merged into one VMA, c a VMA of its own (hugepage), pgoff exact.
    sim = Facts({1: {"a": (0x40000000, 4 * M), "b": (0x40400000, 2 * M), "c": (0x50000000, 2 * M)}},
                {1: [(0x40000000, 0x40600000, "rw-p", 0x40000, []),
                     (0x50000000, 0x50200000, "rw-p", 0x50000, ["hugepage"])]})
    # The live kernel: other addresses, no pgoff, c merged with the worker's memory below it, and
    # the worker's own VMAs that meet no region.
    base = 0x7F0000000000
    live = Facts({1: {"a": (base, 4 * M), "b": (base + 4 * M, 2 * M), "c": (base + 64 * M, 2 * M)}},
                 {1: [(0x55550000, 0x55560000, "r-xp", None, []),
                      (base, base + 6 * M, "rw-p", None, []),
                      (base + 60 * M, base + 66 * M, "rw-p", None, ["hugepage"]),
                      (base + 80 * M, base + 81 * M, "rw-p", None, [])]})
    assert vma_layout(sim) == vma_layout(live) == {
        1: ((("a", "b"), "rw-p", ()), (("c",), "rw-p", ("hugepage",)))}


def test_part_of_a_region_is_named_by_its_offset_and_length() -> None:
    src = Facts({1: {"a": (0x40000000, 4 * M)}},
                {1: [(0x40000000, 0x40100000, "rw-p", 0, []), (0x40100000, 0x40400000, "r--p", 0, [])]})
    assert vma_layout(src) == {1: ((("a+0x0:1M",), "rw-p", ()), (("a+0x100000:3M",), "r--p", ()))}


def test_a_difference_lists_each_sides_own_vmas_of_the_processes_that_differ() -> None:
    same = (("x",), "rw-p", ())
    kernel = {1: ((("f", "d+0x1000:2M"), "rw-p", ("hugepage",)), same), 2: (same,)}
    sim = {1: ((("d+0x1000:2M",), "rw-p", ("hugepage",)), (("f",), "rw-p", ("hugepage",)), same), 2: (same,)}
    assert layout_difference(kernel, sim) == (
        "pid 1: f d+0x1000:2M rw-p hugepage (+1 same)",
        "pid 1: d+0x1000:2M rw-p hugepage, f rw-p hugepage (+1 same)")
    assert layout_difference(kernel, kernel) is None
    assert layout_difference({1: (same,)}, {1: (same,), 2: ()}) == ("pid 2: no process", "pid 2: no VMA")
    assert layout_difference({1: (same,)}, {1: ()}) == ("pid 1: x rw-p", "pid 1: no VMA")


def _side(text: str, line: int, **kw) -> Side:
    return Side(kind=kw.pop("kind", "ok"), error=kw.pop("error", None), text=text, line=line,
                source="t.mmsh", **kw)


def test_compare_runs_compares_layouts_only_where_both_sides_read_one() -> None:
    one = {1: ((("a", "b"), "rw-p", ()),)}
    two = {1: ((("a",), "rw-p", ()), (("b",), "rw-p", ()))}
    kern = [_side("mmap a 2M", 1, vmas=one), _side("mremap c b", 2, vmas=one), _side("touch a", 3)]
    sim = [_side("mmap a 2M", 1, vmas=one), _side("mremap c b", 2, vmas=two), _side("touch a", 3)]
    diffs, stats = compare_runs("t.mmsh", kern, sim)
    assert [(d.line, d.what, d.kernel, d.simulator) for d in diffs] == [
        (2, "vmas", "pid 1: a b rw-p", "pid 1: a rw-p, b rw-p")]
    assert stats["vmas"] == 2
    assert signature(diffs[0]) == ("vmas", "mremap")


@pytest.mark.parametrize("line, maps", [
    ("mmap a 2M", True), ("munmap a", True), ("mprotect a r", True), ("mremap a b", True),
    ("madvise a nohugepage", True), ("uffd register a", True), ("fork", True), ("exit 2", True),
    ("@2 mprotect a r", True), ("if thp never: munmap a", True), ("expect fails munmap a+1:4K", True),
    ("madvise a pageout", False), ("madvise a collapse", False), ("touch a", False), ("reclaim", False),
    ("khugepaged", False), ("uffd move a:4K b", False),
    ("show vmas", False), ("expect pmd.a == huge", False), ("set thp never", False)])
def test_the_steps_that_can_change_vmas_come_from_the_registry(line: str, maps: bool) -> None:
    assert changes_vmas(parse_script(line)[0]) is maps


def test_only_commands_that_act_have_the_maps_trait() -> None:
    assert not [c.name for c in COMMANDS if c.maps and c.read_only]
    assert changes_vmas(parse_script("mmap a 2M")[0]) is True


def test_the_simulator_side_reads_a_layout_after_each_step_that_can_change_vmas() -> None:
    text = "mmap a 2M\ntouch a\nmmap b 1M nohugepage\nmremap a:4K c\nfork\nexpect fails munmap zz\n"
    sides = run_sim("t.mmsh", text)
    got = {s.text: s.vmas for s in sides}
    assert got["touch a"] is None and got["expect fails munmap zz"] is not None
    assert got["mmap b 1M nohugepage"] == {1: ((("a",), "rw-p", ()), (("b",), "rw-p", ("nohugepage",)))}
    assert got["fork"] is not None and set(got["fork"]) == {1, 2} and got["fork"][1] == got["fork"][2]
    assert (("c",), "rw-p", ()) in got["mremap a:4K c"][1]
