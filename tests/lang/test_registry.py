"""Tests for mmshell.lang.registry and settings: the declarations hold together."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mmshell.lang import registry
from mmshell.lang.grammar import Arg, Flags, Group, Kind, Option, Switch
from mmshell.lang.parser import parse_command
from mmshell.lang.settings import SettingKind

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
        "set": {"setting", "value", "point", "more1", "more2", "more3"}, "swapon": {"name", "size", "kind", "prio"},
        "swapoff": {"name"}, "fork": set(), "switch": {"pid"}, "at": {"pid", "command"},
        "exit": {"pid"}, "mmap": {"name", "size", "prot", "advice", "at"}, "munmap": {"range"},
        "touch": {"range", "access"}, "check": {"range"}, "madvise": {"range", "advice"},
        "mprotect": {"range", "prot"}, "mremap": {"range", "newname", "size", "at"},
        "uffd_register": {"range"}, "uffd_move": {"src", "dst"}, "reclaim": {"size"},
        "khugepaged": set(), "show": {"view", "range", "name", "all", "map"}, "trace": {"on"}, "explain": {"on"},
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
