"""Tests for mmshell.lang.parser: every contract form, round trips, errors, fuzzing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mmshell.lang import registry
from mmshell.lang.errors import LangError
from mmshell.lang.grammar import Kind
from mmshell.lang.parser import (
    MAX_DEPTH, Command, expected_next, parse_command, parse_line, parse_script, split_path,
)
from mmshell.lang.values import Addr, Range
from mmsh_helpers import bounded_calls

M = 1 << 20


def R(text: str) -> Range:
    return Range.parse(text)


def A(text: str) -> Addr:
    return Addr.parse(text)


#: The extra words of `set display VIEW...` that every other `set` leaves empty.
NO_MORE = {"more1": None, "more2": None, "more3": None}


def show(view: str, range: Range | None = None, name: str | None = None, all: bool = False,
         map: bool = False) -> dict[str, Any]:
    return {"view": view, "range": range, "name": name, "all": all, "map": map}


def mmap(name: str, size: int, prot: str = "rw", advice: str | None = None, at: Addr | None = None) -> dict[str, Any]:
    return {"name": name, "size": size, "prot": prot, "advice": advice, "at": at}


TOUCH_A = Command("touch", {"range": R("a"), "access": "write"})
EXPECT_PMD = Command("expect", {"path": "pmd.a", "op": "==", "value": "swap"})

# Every form of mmsh-language.md, with the Command.args the executor relies on.
CONTRACT: list[tuple[str, str, dict[str, Any]]] = [
    # machine set-up
    ("set pmd_swap on", "set", {"setting": "pmd_swap", "value": True, "point": None, **NO_MORE}),
    ("set pmd_swap off", "set", {"setting": "pmd_swap", "value": False, "point": None, **NO_MORE}),
    ("set thp always", "set", {"setting": "thp", "value": "always", "point": None, **NO_MORE}),
    ("set thp madvise", "set", {"setting": "thp", "value": "madvise", "point": None, **NO_MORE}),
    ("set thp never", "set", {"setting": "thp", "value": "never", "point": None, **NO_MORE}),
    ("set zswap on", "set", {"setting": "zswap", "value": True, "point": None, **NO_MORE}),
    ("set zswap off", "set", {"setting": "zswap", "value": False, "point": None, **NO_MORE}),
    ("set ram 1G", "set", {"setting": "ram", "value": 1 << 30, "point": None, **NO_MORE}),
    ("set ram 64M", "set", {"setting": "ram", "value": 64 * M, "point": None, **NO_MORE}),
    ("set fail thp_alloc on", "set", {"setting": "fail", "point": "thp_alloc", "value": "on", **NO_MORE}),
    ("set fail swap_cluster off", "set", {"setting": "fail", "point": "swap_cluster", "value": "off", **NO_MORE}),
    ("set fail memcg_charge once", "set", {"setting": "fail", "point": "memcg_charge", "value": "once", **NO_MORE}),
    ("set use_zero_page off", "set", {"setting": "use_zero_page", "value": False, "point": None, **NO_MORE}),
    ("set max_ptes_swap 0", "set", {"setting": "max_ptes_swap", "value": 0, "point": None, **NO_MORE}),
    ("set max_ptes_none 511", "set", {"setting": "max_ptes_none", "value": 511, "point": None, **NO_MORE}),
    ("set max_ptes_shared 0x100", "set", {"setting": "max_ptes_shared", "value": 256, "point": None, **NO_MORE}),
    ("swapon s0 1G", "swapon", {"name": "s0", "size": 1 << 30, "kind": "zram", "prio": None}),
    ("swapon s0 1G kind zram", "swapon", {"name": "s0", "size": 1 << 30, "kind": "zram", "prio": None}),
    ("swapon d 64M kind disk", "swapon", {"name": "d", "size": 64 * M, "kind": "disk", "prio": None}),
    ("swapon f 8M kind file prio 5", "swapon", {"name": "f", "size": 8 * M, "kind": "file", "prio": 5}),
    ("swapon f 8M prio -2 kind file", "swapon", {"name": "f", "size": 8 * M, "kind": "file", "prio": -2}),
    ("swapoff s0", "swapoff", {"name": "s0"}),
    # processes
    ("fork", "fork", {}),
    ("switch 2", "switch", {"pid": 2}),
    ("@2 touch a", "at", {"pid": 2, "command": TOUCH_A}),
    ("exit", "exit", {"pid": None}),
    ("exit 3", "exit", {"pid": 3}),
    # memory operations
    ("mmap a 4M", "mmap", mmap("a", 4 * M)),
    ("mmap a 4M prot r", "mmap", mmap("a", 4 * M, "r")),
    ("mmap a 4M prot none hugepage", "mmap", mmap("a", 4 * M, "none", "hugepage")),
    ("mmap a 4M nohugepage", "mmap", mmap("a", 4 * M, advice="nohugepage")),
    ("mmap a 2M prot rw hugepage at 0x40000000", "mmap", mmap("a", 2 * M, advice="hugepage", at=A("0x40000000"))),
    ("mmap a 2M at 0x40000000 hugepage prot r", "mmap", mmap("a", 2 * M, "r", "hugepage", A("0x40000000"))),
    ("mmap b 2M at a+4M", "mmap", mmap("b", 2 * M, at=A("a+4M"))),
    ("munmap a", "munmap", {"range": R("a")}),
    ("munmap a+2M:4K", "munmap", {"range": R("a+2M:4K")}),
    ("munmap 0x40000000:2M", "munmap", {"range": Range(Addr(None, 0x40000000), 2 * M)}),
    ("touch a", "touch", {"range": R("a"), "access": "write"}),
    ("touch a+0x1000 read", "touch", {"range": Range(Addr("a", 0x1000), None), "access": "read"}),
    ("touch a:4K write", "touch", {"range": R("a:4K"), "access": "write"}),
    ("check", "check", {"range": None}),
    ("check a+2M", "check", {"range": R("a+2M")}),
    *[(f"madvise a {adv}", "madvise", {"range": R("a"), "advice": adv}) for adv in
      ("hugepage", "nohugepage", "pageout", "cold", "free", "dontneed", "collapse")],
    *[(f"mprotect a+2M:4K {p}", "mprotect", {"range": R("a+2M:4K"), "prot": p}) for p in ("rw", "r", "none")],
    ("mremap a b", "mremap", {"range": R("a"), "newname": "b", "size": None, "at": None}),
    ("mremap a:2M b size 4M", "mremap", {"range": R("a:2M"), "newname": "b", "size": 4 * M, "at": None}),
    ("mremap a b at 0x80000000 size 2M", "mremap",
     {"range": R("a"), "newname": "b", "size": 2 * M, "at": Addr(None, 0x80000000)}),
    ("uffd register b", "uffd_register", {"range": R("b")}),
    ("uffd move a:2M b", "uffd_move", {"src": R("a:2M"), "dst": Addr("b", 0)}),
    ("uffd move a+2M:4K b+0x1000", "uffd_move", {"src": R("a+2M:4K"), "dst": Addr("b", 4096)}),
    ("reclaim", "reclaim", {"size": None}),
    ("reclaim 2M", "reclaim", {"size": 2 * M}),
    ("khugepaged", "khugepaged", {}),
    # views
    ("show vmas", "show", show("vmas")),
    ("show pt", "show", show("pt")),
    ("show pt a+2M:2M", "show", show("pt", R("a+2M:2M"))),
    ("show swap", "show", show("swap")),
    ("show swap s0", "show", show("swap", name="s0")),
    ("show swap s0 map", "show", show("swap", name="s0", map=True)),
    ("show swap map", "show", show("swap", map=True)),
    ("show map", "show", show("map")),
    ("show map a+2M:2M", "show", show("map", R("a+2M:2M"))),
    ("show swapcache", "show", show("swapcache")),
    ("show vmstat", "show", show("vmstat")),
    ("show vmstat all", "show", show("vmstat", all=True)),
    ("show smaps", "show", show("smaps")),
    ("show smaps a", "show", show("smaps", name="a")),
    ("show pagemap a:8K", "show", show("pagemap", R("a:8K"))),
    ("show meminfo", "show", show("meminfo")),
    ("trace on", "trace", {"on": True}),
    ("trace off", "trace", {"on": False}),
    # conditions
    ("if pmd_swap on: expect pmd.a == swap", "if", {"setting": "pmd_swap", "value": True, "command": EXPECT_PMD}),
    ("if pmd_swap off : expect pmd.a == swap", "if",
     {"setting": "pmd_swap", "value": False, "command": EXPECT_PMD}),
    ("if thp never: touch a", "if", {"setting": "thp", "value": "never", "command": TOUCH_A}),
    ("if zswap on: touch a", "if", {"setting": "zswap", "value": True, "command": TOUCH_A}),
    ("if ram 1G: touch a", "if", {"setting": "ram", "value": 1 << 30, "command": TOUCH_A}),
    # expectations
    ("expect vmstat.thp_swpout == 1", "expect", {"path": "vmstat.thp_swpout", "op": "==", "value": "1"}),
    ("expect vmstat.thp_swpout_pmd != 0", "expect", {"path": "vmstat.thp_swpout_pmd", "op": "!=", "value": "0"}),
    ("expect mthp.swpout < 2", "expect", {"path": "mthp.swpout", "op": "<", "value": "2"}),
    ("expect smaps.a.AnonHugePages <= 2048kB", "expect",
     {"path": "smaps.a.AnonHugePages", "op": "<=", "value": "2048kB"}),
    ("expect pmd.a+2M > none", "expect", {"path": "pmd.a+2M", "op": ">", "value": "none"}),
    ("expect pte.a+0x1000 >= present", "expect", {"path": "pte.a+0x1000", "op": ">=", "value": "present"}),
    ("expect pagemap.a+0x1000.swap_offset == 0x200", "expect",
     {"path": "pagemap.a+0x1000.swap_offset", "op": "==", "value": "0x200"}),
    ("expect swap.s0.used == 512", "expect", {"path": "swap.s0.used", "op": "==", "value": "512"}),
    ("expect swapmap.s0.0x200 == 2", "expect", {"path": "swapmap.s0.0x200", "op": "==", "value": "2"}),
    ("expect swapcache.s0.0 == 1", "expect", {"path": "swapcache.s0.0", "op": "==", "value": "1"}),
    ("expect meminfo.SwapFree == 0", "expect", {"path": "meminfo.SwapFree", "op": "==", "value": "0"}),
    ("expect pid == 2", "expect", {"path": "pid", "op": "==", "value": "2"}),
    ("expect fails touch a", "expect_fails", {"command": TOUCH_A}),
    ("expect fails expect pmd.a == swap", "expect_fails", {"command": EXPECT_PMD}),
    # script
    ("help", "help", {"topic": None}),
    ("help mmap", "help", {"topic": "mmap"}),
    ("help uffd move", "help", {"topic": "uffd move"}),
    ("help pmd_swap", "help", {"topic": "pmd_swap"}),
    ("source lib/setup.mmsh", "source", {"path": "lib/setup.mmsh"}),
]


@pytest.mark.parametrize("text, name, args", CONTRACT, ids=[c[0] for c in CONTRACT])
def test_contract(text: str, name: str, args: dict[str, Any]) -> None:
    [cmd] = parse_line(text, line=7)
    assert cmd.name == name
    assert dict(cmd.args) == args
    assert (cmd.line, cmd.column, cmd.text) == (7, 1, text)
    again = parse_command(str(cmd))
    assert again == cmd and dict(again.args) == dict(cmd.args)
    assert str(again) == str(cmd)


EXAMPLES = [(spec.name, ex) for spec in registry.COMMANDS for ex in spec.examples]


@pytest.mark.parametrize("name, text", EXAMPLES, ids=[e[1] for e in EXAMPLES])
def test_registry_examples_round_trip(name: str, text: str) -> None:
    cmd = parse_command(text)
    assert cmd.name == name
    assert parse_command(str(cmd)) == cmd


@pytest.mark.parametrize("text, canonical", [
    ("touch a write", "touch a"),
    ("mmap a 2097152 prot rw", "mmap a 2M"),
    ("mmap a 0x200000 at 1073741824 hugepage", "mmap a 2M hugepage at 0x40000000"),
    ("swapon s0 1024M kind zram", "swapon s0 1G"),
    ("if pmd_swap on : fork", "if pmd_swap on: fork"),
    ("uffd move a+0x200000:0x1000 b+0", "uffd move a+2M:4K b"),
    ("touch a+0", "touch a:4K"),
    ("set ram 1073741824", "set ram 1G"),
    ("@0x2   touch\ta", "@2 touch a"),
])
def test_canonical_form(text: str, canonical: str) -> None:
    assert str(parse_command(text)) == canonical


def test_command_is_hashable_and_equality_ignores_position() -> None:
    a, b = parse_script("touch a\n   touch   a")
    assert a == b and hash(a) == hash(b)
    assert (a.line, a.column, b.line, b.column) == (1, 1, 2, 4)
    assert b.text == "touch   a"
    assert a.spec is registry.command("touch")


def test_lines_comments_and_separators() -> None:
    script = "\ufeff# a comment\n\nmmap a 2M # trailing\r\n  touch a ; check a;;fork;\n\t# only\n"
    cmds = parse_script(script, first_line=10)
    assert [(c.name, c.line, c.column, c.text) for c in cmds] == [
        ("mmap", 12, 1, "mmap a 2M"),
        ("touch", 13, 3, "touch a"),
        ("check", 13, 13, "check a"),
        ("fork", 13, 22, "fork"),
    ]
    assert parse_script("") == [] and parse_script("  ;; # x\n\n") == []
    assert [c.line for c in parse_line("fork\nfork", line=5)] == [5, 6]


def test_nested_positions() -> None:
    cmds = parse_line("fork; @2 expect fails  touch a")
    assert (cmds[0].column, cmds[0].text) == (1, "fork")
    at = cmds[1]
    inner = at.args["command"]
    assert (at.column, at.text) == (7, "@2 expect fails  touch a")
    assert (inner.name, inner.column, inner.text) == ("expect_fails", 10, "expect fails  touch a")
    assert (inner.args["command"].column, inner.args["command"].text) == (24, "touch a")


def test_semicolon_ends_a_nested_command() -> None:
    cmds = parse_line("if pmd_swap on: touch a; check a")
    assert [c.name for c in cmds] == ["if", "check"]


def _error(text: str) -> LangError:
    with pytest.raises(LangError) as info:
        parse_script(text, first_line=3)
    return info.value


@pytest.mark.parametrize("text, column, message", [
    ("mmpa a 2M", 1, "unknown command 'mmpa' (did you mean 'mmap'?)"),
    ("mmap a x", 8, "expected a size after 'mmap a', got 'x'"),
    ("mmap a", 7, "expected a size after 'mmap a'"),
    ("set foo on", 5, "unknown setting 'foo' (pmd_swap, thp, zswap, ram, fail, use_zero_page, "
                      "max_ptes_swap, max_ptes_none, max_ptes_shared, page_cluster, deposit, counters, pager, display)"),
    ("set pmd_swp on", 5, "unknown setting 'pmd_swp' (did you mean 'pmd_swap'?)"),
    ("MMAP a 2M", 1, "unknown command 'MMAP' (did you mean 'mmap'?)"),
    ("frobnicate", 1, "unknown command 'frobnicate' (help lists the commands)"),
    ("fork; mmap a 2M prot x", 22, "expected rw, r or none after 'mmap a 2M prot', got 'x'"),
    ("mmap a 2M prot", 15, "expected rw, r or none after 'mmap a 2M prot'"),
    ("mmap a 2M prto r", 11, "unexpected 'prto' after 'mmap a 2M' (did you mean 'prot'?)"),
    ("mmap a 2M hugepage nohugepage", 20, "'nohugepage' conflicts with 'hugepage'"),
    ("mmap a 2M at 0 at 0", 16, "'at' given twice"),
    ("mmap at 2M", 6, "expected a name after 'mmap', got 'at' ('at' is a reserved word)"),
    ("mmap 1a 2M", 6, "expected a name after 'mmap', got '1a' "
                      "(a name is ASCII letters, digits and '_', not starting with a digit)"),
    ("mmap a 2m", 8, "expected a size after 'mmap a', got '2m' (unknown unit 'm': did you mean 'M'?)"),
    ("mmap a -4K", 8, "expected a size after 'mmap a', got '-4K' (a size cannot be negative)"),
    ("touch a-0x1000", 7, "expected a range after 'touch', got 'a-0x1000' (NAME-OFFSET is not "
                          "supported: write NAME+OFFSET from a region below, or an absolute address)"),
    ("touch a:4K:4K", 7, "expected a range after 'touch', got 'a:4K:4K' (one ':' only: ADDR:LEN)"),
    ("touch a sideways", 9, "unexpected 'sideways' after 'touch a' (usage: touch RANGE [read|write])"),
    ("madvise a pagout", 11, "expected hugepage, nohugepage, pageout, cold, free, dontneed or "
                             "collapse after 'madvise a', got 'pagout' (did you mean 'pageout'?)"),
    ("uffd", 5, "expected 'register' or 'move' after 'uffd'"),
    ("uffd mvoe a b", 6, "expected 'register' or 'move' after 'uffd', got 'mvoe' (did you mean 'move'?)"),
    ("uffd move a:2M", 15, "expected an address after 'uffd move a:2M'"),
    ("@", 2, "expected a pid after '@'"),
    ("@x touch a", 2, "expected a pid after '@', got 'x'"),
    ("@0 touch a", 2, "expected a pid after '@', got '0' (must be 1..4194304)"),
    ("@2", 3, "expected a command after '@2'"),
    ("@2 mmpa", 4, "unknown command 'mmpa' (did you mean 'mmap'?)"),
    ("switch -1", 8, "expected a pid after 'switch', got '-1' (must be 1..4194304)"),
    ("exit 2 3", 8, "unexpected '3' after 'exit 2' (usage: exit [PID])"),
    ("fork now", 6, "unexpected 'now' after 'fork' (usage: fork)"),
    ("show", 5, "expected a view (vmas, pt, map, swap, swapcache, vmstat, smaps, pagemap, meminfo, walks) "
                "after 'show'"),
    ("show vmsta", 6, "unknown view 'vmsta' (did you mean 'vmstat'?)"),
    ("show pagemap", 13, "expected a range after 'show pagemap'"),
    ("show vmas a", 11, "unexpected 'a' after 'show vmas' (usage: show vmas)"),
    ("show vmstat al", 13, "unexpected 'al' after 'show vmstat' (did you mean 'all'?)"),
    ("trace On", 7, "expected on or off after 'trace', got 'On' (keywords are lower case)"),
    ("set ram 0", 9, "expected a size after 'set ram', got '0' (at least 4K)"),
    ("set max_ptes_none 512", 19, "expected a number after 'set max_ptes_none', got '512' (must be 0..511)"),
    ("set fail thp_alloc maybe", 20, "expected on, off or once after 'set fail thp_alloc', got 'maybe'"),
    ("swapon s0 1G kind tape", 19, "expected zram, disk or file after 'swapon s0 1G kind', got 'tape'"),
    ("if pmd_swap on touch a", 16, "expected ':' after 'if pmd_swap on', got 'touch'"),
    ("if pmd_swap on", 15, "expected ':' after 'if pmd_swap on'"),
    ("if pmd_swap on:", 16, "expected a command after 'if pmd_swap on:'"),
    ("if pmd_swap on:touch a", 13, "expected on or off after 'if pmd_swap', got 'on:touch' "
                                   "(put a space after ':')"),
    ("if fail on: fork", 4, "setting 'fail' cannot be used after 'if' (pmd_swap, thp, zswap, ram, "
                            "use_zero_page, max_ptes_swap, max_ptes_none, max_ptes_shared, page_cluster, deposit, counters, pager)"),
    ("expect vmstat.x==1", 8, "expected a path after 'expect', got 'vmstat.x==1' (put spaces around the operator)"),
    ("expect vmstat.x =! 1", 17, "expected ==, !=, <, <=, > or >= after 'expect vmstat.x', got '=!' "
                                 "(put spaces around the operator)"),
    ("expect vmstat.x ==", 19, "expected a value after 'expect vmstat.x =='"),
    ("expect fails", 13, "expected a command after 'expect fails'"),
    ("help mmpa", 6, "unknown help topic 'mmpa' (did you mean 'mmap'?)"),
    ("touch a\x07", 8, "unexpected character U+0007 (control character)"),
    ("touch\u00a0a", 6, "unexpected character U+00A0 (no-break space)"),
    ("touch a\u200b", 8, "unexpected character U+200B (zero width space)"),
])
def test_errors(text: str, column: int, message: str) -> None:
    err = _error(text)
    assert (err.line, err.column, err.message) == (3, column, message)
    assert str(err) == f"column {column}: {message}"


def test_error_line_number_counts_comment_lines() -> None:
    err = _error("# header\nfork\n\nmmap a")
    assert (err.line, err.column) == (6, 7)


def test_unicode_in_comments_and_words() -> None:
    assert parse_line("fork # ünïcødé \x07 anything")[0].name == "fork"
    err = _error("mmap ä 2M")
    assert err.column == 6 and "ASCII letters" in err.message
    assert parse_line("source /tmp/ü.mmsh")[0].args["path"] == "/tmp/ü.mmsh"


def test_nesting_depth() -> None:
    ok = "@1 " * (MAX_DEPTH - 1) + "fork"
    cmd = parse_command(ok)
    for _ in range(MAX_DEPTH - 1):
        cmd = cmd.args["command"]
    assert cmd.name == "fork"
    err = _error("@1 " * MAX_DEPTH + "fork")
    assert err.message == f"commands nested too deeply (at most {MAX_DEPTH} levels)"
    assert err.column == 3 * MAX_DEPTH + 1
    assert "nested too deeply" in _error("expect fails " * 100 + "fork").message
    assert "nested too deeply" in _error("if pmd_swap on: " * 40 + "fork").message



@pytest.mark.parametrize("text", [
    "@1 " * 40_000,
    "expect fails " * 10_000,
    "mmap a " + "9" * 100_000,
    "mmap " + "a" * 100_000 + " 2M",
    "x" * 100_000,
    "fork;" * 20_000 + "mmpa",
    "help " + "mmap " * 20_000,
    "touch a" + " " * 100_000 + "b",
    "touch " + "a+" * 50_000,
])
@pytest.mark.slow
def test_huge_inputs_fail_fast(text: str) -> None:
    with pytest.raises(LangError) as info:
        bounded_calls(max(20_000, 20 * len(text)), parse_script, text)
    assert len(info.value.message) < 300


def test_many_commands_parse() -> None:
    assert len(parse_script("fork;" * 20_000)) == 20_000


def test_split_path() -> None:
    assert split_path("vmstat.thp_swpout") == ["vmstat", "thp_swpout"]
    assert split_path("smaps.a.AnonHugePages") == ["smaps", "a", "AnonHugePages"]
    assert split_path("pmd.a+2M") == ["pmd", "a+2M"]
    assert split_path("pagemap.a+0x1000.swap_offset") == ["pagemap", "a+0x1000", "swap_offset"]
    assert split_path("pmd.0x40000000") == ["pmd", "0x40000000"]
    assert split_path("pid") == ["pid"]
    for bad in ("", "vmstat.", ".x", "a..b"):
        with pytest.raises(ValueError):
            split_path(bad)


def _slots(text: str) -> list[tuple[Kind, tuple[str, ...], bool]]:
    return [(s.kind, s.choices, s.optional) for s in expected_next(text)]


def test_expected_next() -> None:
    first = registry.first_words()
    assert _slots("") == [(Kind.KEYWORD, first, False)]
    assert _slots("mm") == [(Kind.KEYWORD, first, False)]
    assert _slots("fork; ") == [(Kind.KEYWORD, first, False)]
    assert _slots("mmap ") == [(Kind.NAME, (), False)]
    assert _slots("mmap a ") == [(Kind.SIZE, (), False)]
    assert _slots("mmap a 2") == [(Kind.SIZE, (), False)]
    assert _slots("mmap a 2M ") == [(Kind.KEYWORD, ("prot",), True),
                                    (Kind.KEYWORD, ("hugepage", "nohugepage"), True),
                                    (Kind.KEYWORD, ("at",), True)]
    assert _slots("mmap a 2M prot ") == [(Kind.ENUM, ("rw", "r", "none"), False)]
    assert _slots("mmap a 2M hugepage ") == [(Kind.KEYWORD, ("prot",), True), (Kind.KEYWORD, ("at",), True)]
    assert _slots("uffd ") == [(Kind.KEYWORD, ("register", "move"), False)]
    assert _slots("uffd move a:4K ") == [(Kind.ADDR, (), False)]
    assert _slots("expect ") == [(Kind.KEYWORD, ("fails",), True), (Kind.PATH, (), False)]
    assert _slots("expect pid ")[0][:2] == (Kind.ENUM, registry.OPS)
    assert _slots("expect fails ") == [(Kind.COMMAND, first, False)]
    assert _slots("@2 ") == [(Kind.COMMAND, first, False)]
    assert _slots("show ") == [(Kind.ENUM, registry.VIEWS, False)]
    assert _slots("show vmstat ") == [(Kind.KEYWORD, ("all",), True)]
    assert _slots("show pt ") == [(Kind.RANGE, (), True)]
    assert _slots("set fail ") == [(Kind.ENUM, registry.FAULT_POINTS, False)]
    assert _slots("set thp ") == [(Kind.ENUM, ("always", "madvise", "never"), False)]
    assert _slots("if pmd_swap ") == [(Kind.BOOL, (), False)]
    assert _slots("if pmd_swap on ") == [(Kind.PUNCT, (":",), False)]
    assert _slots("if pmd_swap on: ") == [(Kind.COMMAND, first, False)]
    assert _slots("if pmd_swap on: mmap ") == [(Kind.NAME, (), False)]
    assert _slots("touch a ") == [(Kind.KEYWORD, ("read", "write"), True)]
    assert _slots("fork ") == []
    assert _slots("mmpa ") == []
    assert _slots("touch a # ") == []
    assert _slots("touch \x07") == []
    slot = expected_next("madvise a ")[0]
    assert (slot.key, slot.meta) == ("advice", "ADVICE")


def test_expected_next_in_help_topics_word_by_word() -> None:
    topics = registry.help_topics()
    first = _slots("help ")[0]
    assert first[0] is Kind.TOPIC and first[2] and {"uffd", "mmap", "pmd_swap", "sizes"} <= set(first[1])
    assert _slots("help uffd ") == [(Kind.TOPIC, ("register", "move"), "uffd" in topics)]
    assert _slots("help uffd mo") == _slots("help uffd ")      # the word being typed
    assert _slots("help mmap ") == []                           # a whole topic: nothing follows
    assert _slots("help nosuch ") == []


# ---------------------------------------------------------------------------
# Fuzzing: only LangError escapes, quickly; what parses prints back equal.

VOCAB = sorted({w for spec in registry.COMMANDS for ex in spec.examples for w in ex.split()}
               | {"@", "@1", ":", ";", "#", "a+", "-1", "0x", "fails", "uffd", "if", "a:4K", "2M",
                  "on:", "all", "1.5M", "a-4K", "\t", "\x00", "ü", "==", "@@", "@-1", "999999999999999999999P"})
LINES = [c[0] for c in CONTRACT] + [e[1] for e in EXAMPLES]


def _check(text: str) -> None:
    try:
        cmds = bounded_calls(max(20_000, 200 * len(text)), parse_script, text)
    except LangError as e:
        lines = text.lstrip("\ufeff").split("\n")
        assert 1 <= e.line <= len(lines)
        assert 1 <= e.column <= len(lines[e.line - 1]) + 1
        assert e.message and "\n" not in e.message
    else:
        for cmd in cmds:
            again = parse_command(str(cmd))
            assert again == cmd, (str(cmd), again)


FUZZ = settings(max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.text(max_size=200))
def test_fuzz_random_text(text: str) -> None:
    _check(text)


@FUZZ
@given(st.lists(st.sampled_from(VOCAB), max_size=12).map(" ".join))
def test_fuzz_random_words(text: str) -> None:
    _check(text)


@st.composite
def mutated_lines(draw: st.DrawFn) -> str:
    words = draw(st.sampled_from(LINES)).split(" ")
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(words)))
        match draw(st.integers(0, 4)):
            case 0:
                words.insert(i, draw(st.sampled_from(VOCAB)))
            case 1 if words and i < len(words):
                del words[i]
            case 2 if words and i < len(words):
                words[i] = draw(st.sampled_from(VOCAB))
            case 3 if words and i < len(words) and words[i]:
                w = words[i]
                j = draw(st.integers(0, len(w) - 1))
                words[i] = w[:j] + draw(st.characters(max_codepoint=0x2FF)) + w[j + 1:]
            case _:
                words.insert(i, draw(st.text(max_size=6)))
    return " ".join(words)


@FUZZ
@given(mutated_lines())
def test_fuzz_mutated_lines(text: str) -> None:
    _check(text)


@FUZZ
@given(st.lists(st.sampled_from(LINES), min_size=1, max_size=5))
def test_fuzz_joined_lines_round_trip(lines: list[str]) -> None:
    cmds = parse_line("; ".join(lines))
    assert len(cmds) == len(lines)
    assert parse_line("; ".join(str(c) for c in cmds)) == cmds


@FUZZ
@given(st.text(max_size=60))
def test_fuzz_expected_next(text: str) -> None:
    for slot in expected_next(text):
        assert isinstance(slot.kind, Kind)


def test_expected_next_says_what_an_existing_name_names() -> None:
    """A NAME that must exist says what it names (the shell completes those); a new one does not."""
    assert [s.refers for s in expected_next("swapoff ")] == ["device"]
    assert [s.refers for s in expected_next("@2 show smaps ")] == ["region"]
    assert [s.refers for s in expected_next("mmap ")] == [""]
    assert [s.refers for s in expected_next("mremap a ")] == [""]
