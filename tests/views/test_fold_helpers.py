"""The folding primitives: word runs (PTE tables, pagemap), byte runs (swap_map), region names."""

from __future__ import annotations

from array import array

from hypothesis import given, strategies as st

from mmshell.mm.pgtable import F_DIRTY, F_SWP_EXCLUSIVE, F_WRITE, mk_pte, swp_entry_to_pte
from mmshell.views.describe import _steps as pte_steps
from mmshell.views.fmt import AddrNamer, bit_runs, byte_runs, fmt_size, fold_words


def linear_runs(words: list[int], steps) -> list[list]:
    """The obvious scan: a run continues while the next word is the previous plus its step."""
    out: list[list] = []
    for i, w in enumerate(words):
        if out:
            lo, hi, step = out[-1]
            gap = w - words[hi - 1]
            if step is None and gap in steps(words[lo]):
                out[-1] = [lo, i + 1, gap]
                continue
            if step is not None and gap == step:
                out[-1][1] = i + 1
                continue
        out.append([i, i + 1, None])
    return out


def pte_word(kind: int, n: int, flags: int) -> int:
    if kind == 0:
        return 0
    if kind == 1:
        return mk_pte(0x1000 + n, flags & (F_WRITE | F_DIRTY))
    return swp_entry_to_pte(kind - 2, 0x200 + n, flags & F_SWP_EXCLUSIVE)


# a PTE table made of a few runs: (kind, length, start number, flags, gap before the next)
chunk = st.tuples(st.integers(0, 3), st.integers(1, 200), st.integers(0, 5000),
                  st.sampled_from([0, F_WRITE, F_WRITE | F_DIRTY, F_SWP_EXCLUSIVE]))


@given(st.lists(chunk, min_size=1, max_size=12))
def test_fold_words_matches_a_linear_scan(chunks) -> None:
    words: list[int] = []
    for kind, length, base, flags in chunks:
        words += [pte_word(kind, base + i, flags) for i in range(length)]
    words = words[:512]
    assert fold_words(array("Q", words), pte_steps) == linear_runs(words, pte_steps)


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 9000), st.integers(0, 5000)),
                min_size=1, max_size=5))
def test_fold_words_of_a_long_range_matches_a_linear_scan(runs) -> None:
    """Slices longer than the lanes compared at once (a live pagemap of gigabytes) are
    compared a block at a time, with the same runs."""
    words: list[int] = []
    for kind, length, base in runs:
        words += [pte_word(kind, base + i, 0) for i in range(length)]
    assert fold_words(array("Q", words), pte_steps) == linear_runs(words, pte_steps)


def test_fold_words_uniform_table_is_one_run() -> None:
    words = array("Q", [swp_entry_to_pte(0, 512 + i, F_SWP_EXCLUSIVE) for i in range(512)])
    assert fold_words(words, pte_steps) == [[0, 512, 1 << 17]]
    assert fold_words(array("Q", bytes(8 * 512)), pte_steps) == [[0, 512, 0]]


def test_fold_words_near_the_top_of_64_bits() -> None:
    top = (1 << 64) - 3
    assert fold_words(array("Q", [top, top + 1, top + 2]), lambda w: (1,)) == [[0, 3, 1]]


@given(st.binary(max_size=3000), st.sampled_from([None, 0, 1]))
def test_byte_runs(data, skip) -> None:
    expect = []
    i = 0
    while i < len(data):
        j = i
        while j < len(data) and data[j] == data[i]:
            j += 1
        if data[i] != skip:
            expect.append((i, j, data[i]))
        i = j
    assert byte_runs(bytearray(data), skip) == expect


def test_byte_runs_long_runs_and_special_bytes() -> None:
    data = bytearray(20000)
    data[5000:13000] = b"\\" * 8000
    data[13000:13002] = b"]^"
    assert byte_runs(data, skip=0) == [(5000, 13000, 0x5C), (13000, 13001, 0x5D), (13001, 13002, 0x5E)]
    assert bit_runs(bytes([0, 0, 1, 1, 1, 0])) == [(0, 2, 0), (2, 5, 1), (5, 6, 0)]


def test_addr_namer() -> None:
    namer = AddrNamer({"a": (0x40000000, 4 << 20), "b": (0x40200000, 1 << 20)})
    assert namer.addr(0x40000000) == "a+0x0"
    assert namer.addr(0x40200000) == "b+0x0"          # the newest binding wins: b was mapped over a
    assert namer.addr(0x40300000) == "a+0x300000"
    assert namer.addr(0x1000) == "0x1000"
    assert namer.overlapping(0x40000000, 0x40200000) == ["a+0x0:2M"]
    assert namer.overlapping(0x3FE00000, 0x40600000) == ["a+0x0:2M", "b", "a+0x300000:1M"]
    assert namer.first_start_in(0x40100000, 0x40300000) == ("b", 0x40200000)
    assert not AddrNamer(None)


def test_addr_namer_names_what_is_mapped_now() -> None:
    # `mmap a 2M; munmap a; mmap b 2M` at the same address: b is there now, though a still
    # resolves to its own range; a later binding over part of b wins there
    namer = AddrNamer({"a": (0x40000000, 2 << 20), "b": (0x40000000, 2 << 20), "c": (0x40100000, 4096)})
    assert namer.addr(0x40000000) == "b+0x0"
    assert namer.addr(0x40100000) == "c+0x0" and namer.addr(0x40101000) == "b+0x101000"
    assert namer.overlapping(0x40000000, 0x40200000) == ["b+0x0:1M", "c", "b+0x101000:1020K"]
    assert [fmt_size(n) for n in (0, 4096, 2 << 20, 1 << 30, 4097)] == ["0", "4K", "2M", "1G", "4097"]
