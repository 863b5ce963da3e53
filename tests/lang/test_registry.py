"""Tests for mmshell.lang.registry and settings: the declarations hold together."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mmshell.lang import registry
from mmshell.lang.grammar import Arg, Flags, Group, Kind, Nests, Option, Switch
from mmshell.lang.parser import parse_command, parse_line
from mmshell.lang.registry import COMMANDS, SETTINGS, setting
from mmshell.lang.settings import FAULT_POINTS, SettingKind

CONTRACT = Path("/work/shared/spec/mmsh-language.md")


def test_names_are_unique_and_words_lower_case() -> None:
    names = [s.name for s in registry.COMMANDS]
    assert len(names) == len(set(names))
    assert len({s.words for s in registry.COMMANDS}) == len(names)
    for spec in registry.COMMANDS:
        assert all(w == w.lower() for w in spec.words)
        assert spec.synopsis.startswith(" ".join(spec.words))
        assert spec.summary and spec.help and spec.examples
        assert isinstance(spec.group, Group)
        assert registry.command(spec.name) is spec


def test_reserved_words_are_the_option_words() -> None:
    words = set()
    for spec in registry.COMMANDS:
        for item in spec.grammar.walk():
            if isinstance(item, Option):
                words.add(item.word)
            elif isinstance(item, Flags):
                words.update(item.choices)
    assert words == registry.RESERVED_WORDS


def test_optional_positionals_come_last() -> None:
    for spec in registry.COMMANDS:
        grammars = [spec.grammar] + [c for p in spec.grammar.positionals if isinstance(p, Switch)
                                     for _, c in p.cases]
        for g in grammars:
            flags = [isinstance(p, Arg) and p.optional for p in g.positionals]
            assert flags == sorted(flags), spec.name
            for p in g.positionals[:-1]:
                assert not (isinstance(p, Arg) and p.kind in (Kind.COMMAND, Kind.TOPIC, Kind.TEXT)), spec.name


def test_executor_arg_keys() -> None:
    keys = {s.name: set(s.grammar.defaults()) for s in registry.COMMANDS}
    assert keys == {
        "set": {"setting", "value", "point", "more1", "more2", "more3"},
        "swapon": {"name", "size", "kind", "prio"},
        "swapoff": {"name"}, "fork": set(), "switch": {"pid"}, "at": {"pid", "command"},
        "exit": {"pid"}, "mmap": {"name", "size", "prot", "advice", "at"}, "munmap": {"range"},
        "touch": {"range", "access"}, "check": {"range"}, "madvise": {"range", "advice"},
        "mprotect": {"range", "prot"}, "mremap": {"range", "newname", "size", "at"},
        "uffd_register": {"range"}, "uffd_move": {"src", "dst"}, "reclaim": {"size"},
        "khugepaged": set(), "show": {"view", "range", "name", "all", "map"}, "trace": {"on"},
        "explain": {"on"}, "timing": {"on"},
        "if": {"setting", "value", "command"}, "expect": {"path", "op", "value"},
        "expect_fails": {"command"}, "help": {"topic"}, "source": {"path"}, "pause": {"text"},
        "export": {"what", "path"},
    }


def test_lookups() -> None:
    assert registry.match(["uffd", "move", "a", "b"])[0] is registry.command("uffd_move")
    assert registry.match(["uffd", "move", "a"])[1] == 2
    assert registry.match(["expect", "fails", "fork"])[0] is registry.command("expect_fails")
    assert registry.match(["expect", "pid"])[0] is registry.command("expect")
    assert registry.match(["uffd"]) == (None, 0)
    assert registry.match(["nope"]) == (None, 0)
    assert registry.next_words(["uffd"]) == ("register", "move")
    assert registry.next_words(["expect"]) == ("fails",)
    assert registry.next_words([]) == registry.first_words()
    assert "@" in registry.first_words() and "uffd" in registry.first_words()
    assert sum(len(v) for v in registry.by_group().values()) == len(registry.COMMANDS)
    with pytest.raises(KeyError):
        registry.command("compare")


def test_settings() -> None:
    got = {s.name: (s.kind, s.default) for s in registry.SETTINGS}
    assert got == {
        "pmd_swap": (SettingKind.BOOL, True), "thp": (SettingKind.CHOICE, "madvise"),
        "zswap": (SettingKind.BOOL, False), "ram": (SettingKind.SIZE, 1 << 30),
        "fail": (SettingKind.FAULT, "off"), "use_zero_page": (SettingKind.BOOL, True),
        "max_ptes_swap": (SettingKind.INT, 64), "max_ptes_none": (SettingKind.INT, 511),
        "max_ptes_shared": (SettingKind.INT, 256), "page_cluster": (SettingKind.INT, 3),
        "deposit": (SettingKind.CHOICE, "eager"),
        "counters": (SettingKind.CHOICE, "key"), "pager": (SettingKind.BOOL, True),
    }
    assert registry.FAULT_POINTS == ("thp_alloc", "swap_cluster", "memcg_charge", "zswap",
                                     "split_race", "rmap_split", "swap_cont")
    assert registry.setting("thp").choices == ("always", "madvise", "never")
    for spec in registry.SETTINGS:
        if spec.kind is not SettingKind.FAULT:
            text = f"set {spec.name} {spec.format_value(spec.default)}"
            assert parse_command(text).args["value"] == spec.default
        assert spec.help


def test_help() -> None:
    listing = registry.help_text()
    for spec in registry.COMMANDS:
        assert spec.synopsis in listing
    for topic in registry.help_topics():
        assert registry.help_text(topic)
        assert parse_command(f"help {topic}").args["topic"] == topic
    assert "set fail POINT on|off|once" in registry.help_text("fail")
    assert "swap_cont" in registry.help_text("fail")
    assert "show pagemap RANGE" in registry.help_text("show")
    assert "uffd move SRC_RANGE DST_ADDR" in registry.help_text("uffd")
    with pytest.raises(KeyError):
        registry.help_text("nope")


def test_switch_usages() -> None:
    assert registry.command("show").usages() == (
        "show vmas", "show pt [RANGE]", "show map [RANGE]", "show swap [NAME] [map]", "show swapcache",
        "show vmstat [all]",
        "show smaps [NAME]", "show pagemap RANGE", "show meminfo", "show walks")
    assert "set fail POINT on|off|once" in registry.command("set").usages()
    assert registry.command("mmap").synopsis == \
        "mmap NAME SIZE [prot rw|r|none] [hugepage|nohugepage] [at ADDR]"


@pytest.mark.skipif(not CONTRACT.exists(), reason="language contract not present")
def test_every_contract_command_is_registered() -> None:
    rows, in_commands = [], False
    for line in CONTRACT.read_text().splitlines():
        if line.startswith("| command |"):
            in_commands = True
        elif not line.startswith("|"):
            in_commands = False
        elif in_commands and (m := re.match(r"\| `([^`]+)`", line)):
            rows.append(m.group(1))
    assert len(rows) > 20
    for row in rows:
        words = row.replace("\\|", "|").split()
        if words[0] == "mmshell":
            continue  # the command line, not the language
        if words[0].startswith("@"):
            words = ["@"]
        spec, n = registry.match(words)
        assert spec is not None, row


# -- traits: each command's and each setting's, declared once in the registry ----------------------------

def test_every_command_has_a_handler_in_each_backend_or_a_reason() -> None:
    """The simulator runs every command; the live kernel runs each one whose entry says it
    does, and refuses the rest with the reason the entry gives (never a missing handler)."""
    from mmshell.kernel.runner import HANDLERS as LIVE
    from mmshell.lang.execute import HANDLERS as SIM

    assert set(SIM) == {s.name for s in COMMANDS}
    for spec in COMMANDS:
        if spec.live is True:
            assert spec.name in LIVE, f"{spec.name}: no live handler and no reason it is refused live"
        else:
            assert isinstance(spec.live, str) and spec.live, spec.name
            assert spec.name not in LIVE, f"{spec.name}: a live handler, yet refused live ({spec.live})"


def test_nesting_trait_matches_the_grammar() -> None:
    """A command nests exactly when its grammar takes a COMMAND."""
    for spec in COMMANDS:
        takes = any(getattr(p, "kind", None) is Kind.COMMAND for p in spec.grammar.positionals)
        assert takes == (spec.nests is not Nests.NO), spec.name


@pytest.mark.parametrize("line, looks, summary", [
    ("show vmas", True, False), ("@2 show pt", True, False), ("if thp never: expect pid == 1", True, False),
    ("check", True, False), ("check a", False, True), ("@2 check a", False, True), ("switch 2", True, False),
    ("touch a", False, True), ("expect fails touch a", True, False), ("set thp always", False, True),
    ("trace on", True, False),
])
def test_traits_through_nesting(line: str, looks: bool, summary: bool) -> None:
    cmd = parse_line(line)[0]
    assert registry.only_looks(cmd) is looks
    assert registry.shows_changes(cmd) is summary


def test_unwrap() -> None:
    cmd = parse_line("@2 if thp never: expect fails @3 touch a")[0]
    assert registry.unwrap(cmd).name == "expect_fails"
    assert registry.unwrap(cmd, into_refusal=True).name == "touch"
    assert registry.unwrap(parse_line("expect fails mmpa a 2M")[0], into_refusal=True).name == "expect_fails"


def test_each_setting_names_its_config_field_and_live_knob() -> None:
    from mmshell.mm.config import Config

    cfg = Config()
    for spec in SETTINGS:
        if spec.display:                      # kept by the session: neither Config nor a knob
            assert not spec.field and not spec.knob, spec.name
            continue
        assert hasattr(cfg, spec.field), spec.name
        if spec.live is not True:
            assert isinstance(spec.live, str) and spec.live and not spec.knob, spec.name
        elif spec.name not in ("pmd_swap", "deposit"):     # a build of the kernel, not a knob
            assert spec.knob.startswith(("/sys/", "/proc/sys/")), spec.name
    assert setting("zswap").knob_text(True) == "Y" and setting("use_zero_page").knob_text(False) == "0"
    assert setting("max_ptes_none").from_knob("511") == 511 and setting("thp").from_knob("never") == "never"


def test_word_lists_come_from_the_kernel_types() -> None:
    from mmshell.kernel import syscalls as sc
    from mmshell.mm.config import FaultPoint
    from mmshell.mm.swap_info import SwapKind
    from mmshell.views.render import VIEW_NAMES

    assert FAULT_POINTS == tuple(p.value for p in FaultPoint)
    assert registry.SWAP_KINDS == tuple(k.value for k in SwapKind)
    assert VIEW_NAMES is registry.VIEWS
    # the simulated kernel's MADV_* numbers are the system call's (include/uapi/asm-generic/mman-common.h)
    assert {a.name: int(a) for a in registry.ADVICE.values()} == {
        "MADV_DONTNEED": 4, "MADV_FREE": 8, "MADV_HUGEPAGE": 14, "MADV_NOHUGEPAGE": 15, "MADV_COLD": 20,
        "MADV_PAGEOUT": 21, "MADV_COLLAPSE": 25}
    assert sc.prot_of(registry.PROT_FLAGS["rw"]) == sc.PROT_READ | sc.PROT_WRITE
    assert sc.prot_of(registry.PROT_FLAGS["none"]) == sc.PROT_NONE


@pytest.mark.parametrize("line, reason", [
    ("show walks", "the kernel keeps none"), ("show swap s0 map", "swap_map is not exported"),
    ("show swapcache", "the swap cache is not exported"),
    ("set display map", "the live runner prints"), ("set fail thp_alloc once", "fault injection"),
    ("set ram 64M", "the live machine has the memory it has"), ("trace on", "ftrace"),
    ("show vmas", None), ("show swap s0", None), ("set thp always", None), ("set counters all", None),
    ("touch a", None), ("@2 trace on", None),
])
def test_live_refusal_names_what_the_live_kernel_cannot_do(line: str, reason: str | None) -> None:
    """The command's own case is judged (a nested one is judged when it runs)."""
    why = registry.live_refusal(parse_line(line)[0])
    assert (why is None) if reason is None else (why is not None and reason in why)
