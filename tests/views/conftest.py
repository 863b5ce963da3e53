"""A tiny machine built with the mm core directly, and plain-text rendering at a fixed width."""

from __future__ import annotations

import pytest

from mmshell.lang.registry import ADVICE
from mmshell.mm.access import access_range
from mmshell.mm.config import Config, ThpMode
from mmshell.mm.kernel import Kernel
from mmshell.mm.madvise import sys_madvise
from mmshell.mm.mmap import sys_mmap
from mmshell.mm.swap_info import SwapKind
from mmshell.mm.swapfile import sys_swapon
from mmshell.mm.vma import VM
from mmshell.views.console import render_text

K, M, G = 1 << 10, 1 << 20, 1 << 30
WIDTH = 100


class Machine:
    """One process (pid 1), one swap device `s0`, named regions like the language keeps them."""

    def __init__(self, pmd_swap: bool = True, ram: int = G, thp: ThpMode = ThpMode.MADVISE,
                 swap: int = 64 * M, kind: SwapKind = SwapKind.ZRAM) -> None:
        self.k = Kernel(Config(pmd_swap=pmd_swap, ram=ram, thp=thp))
        self.mm = self.k.mm(1)
        self.names: dict[str, tuple[int, int]] = {}
        if swap:
            sys_swapon(self.k, "s0", swap, kind, None)

    def mmap(self, name: str, size: int, advice: str | None = "hugepage") -> int:
        start = sys_mmap(self.k, self.mm, size, VM.READ | VM.WRITE, ADVICE[advice] if advice else None, None)
        self.names[name] = (start, size)
        return start

    def span(self, name: str, off: int = 0, length: int | None = None) -> tuple[int, int]:
        start, size = self.names[name]
        return start + off, start + off + (size - off if length is None else length)

    def touch(self, name: str, off: int = 0, length: int | None = None, write: bool = True) -> None:
        access_range(self.k, self.mm, *self.span(name, off, length), write)

    def madvise(self, name: str, advice: str, off: int = 0, length: int | None = None) -> None:
        start, end = self.span(name, off, length)
        sys_madvise(self.k, self.mm, start, end - start, ADVICE[advice])


def _text(view, width: int = WIDTH) -> str:
    return render_text(view, width)


@pytest.fixture(params=[True, False], ids=["series", "mainline"])
def pmd_swap(request) -> bool:
    return request.param


@pytest.fixture
def machine():
    """The Machine class, to build states in a test."""
    return Machine


@pytest.fixture
def text():
    """render(view, width=100) -> the view as plain text at a fixed width, no colour."""
    return _text


@pytest.fixture(scope="module")
def gib_states() -> dict[str, Machine]:
    """1 GiB of THPs: present, and swapped out in each mode (built once per module)."""
    out = {}
    for label, pmd_swap, pageout in (("present", True, False), ("series", True, True),
                                     ("mainline", False, True)):
        m = Machine(pmd_swap=pmd_swap, ram=2 * G, swap=2 * G)
        m.mmap("a", G)
        m.touch("a")
        if pageout:
            m.madvise("a", "pageout")
        out[label] = m
    return out
