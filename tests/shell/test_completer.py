"""Completion by the grammar: each kind of slot gets its matcher, over a live session."""

from __future__ import annotations

import functools
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mmsh_helpers import run
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from mmshell.lang import registry
from mmshell.lang.registry import ADVICES
from mmshell.shell.completer import MmshCompleter, current_word

SETUP = """\
swapon s0 64M
swapon d1 16M kind disk
mmap a 4M hugepage
mmap b 8K
touch a
madvise a pageout
fork
"""


def _completer(text: str = SETUP, pmd_swap: bool = True) -> MmshCompleter:
    return MmshCompleter(run(text, pmd_swap=pmd_swap).ok().session)


def words(c: MmshCompleter, text: str) -> list[str]:
    """The completion texts offered at the end of ``text``."""
    return [x.text for x in c.completions(text)]


def metas(c: MmshCompleter, text: str) -> dict[str, str]:
    return {x.text: x.display_meta_text for x in c.completions(text)}


def test_first_word_is_every_command_word_with_its_summary() -> None:
    c = _completer("")
    first = words(c, "")
    assert first[:3] == ["set", "swapon", "swapoff"]
    assert set(registry.first_words()) - {"@"} <= set(first)
    assert "@1" in first and "@" not in first          # @PID, one per live pid
    assert metas(c, "")["madvise"] == registry.command("madvise").summary
    assert words(c, "m") == ["mmap", "munmap", "madvise", "mprotect", "mremap"]
    assert all(x.start_position == -3 for x in c.completions("mad"))


def test_enum_after_a_range_lists_the_advices() -> None:
    c = _completer()
    assert words(c, "madvise a ") == list(ADVICES)
    assert words(c, "madvise a p") == ["pageout"]
    assert words(c, "madvise a+2M:2M col") == ["cold", "collapse"]


def test_keywords_bools_options_and_multiword_commands() -> None:
    c = _completer()
    assert words(c, "set pmd_swap ") == ["on", "off"]
    assert words(c, "trace o") == ["on", "off"]
    assert words(c, "mmap x 2M ") == ["prot", "hugepage", "nohugepage", "at"]
    assert words(c, "mmap x 2M prot ") == ["rw", "r", "none"]
    assert words(c, "uffd ") == ["register", "move"]
    assert metas(c, "uffd ")["move"] == registry.command("uffd_move").summary
    assert words(c, "swapon s2 8M kind ") == ["zram", "disk", "file"]
    assert "thp_alloc" in words(c, "set fail ")
    assert words(c, "if pmd_swap on ") == [":"]
    assert words(c, "show vmstat ") == ["all"]


def test_case_sensitive_matches_come_first_then_any_case() -> None:
    c = _completer()
    assert words(c, "expect smaps.a.anon") == ["Anonymous", "AnonHugePages"]
    assert words(c, "MAD") == ["madvise"]


def test_touch_offers_the_current_process_regions() -> None:
    c = _completer("mmap a 4M hugepage\nmmap b 8K\n")
    offered = metas(c, "touch ")
    assert list(offered) == ["b", "a"]               # address order: b was placed below a
    assert offered["a"].startswith("region 0x") and offered["a"].endswith("(4M)")
    assert words(c, "touch a") == []                  # already complete
    assert words(c, "munmap b") == []
    assert words(c, "touch a+") == []                 # an offset is being typed
    assert words(c, "uffd move a:2M ") == ["b", "a"]  # ADDR


def test_regions_follow_the_current_process() -> None:
    r = run("mmap a 2M\nfork\nswitch 2\nmmap only_in_child 2M\n").ok()
    c = MmshCompleter(r.session)
    assert words(c, "touch ") == ["only_in_child", "a"]      # address order: mmap goes top-down
    r.session.pid = 1
    assert words(c, "touch ") == ["a"]


def test_names_are_devices_after_swapoff_and_regions_after_show_smaps() -> None:
    c = _completer()
    assert words(c, "swapoff ") == ["s0", "d1"]
    assert metas(c, "swapoff ")["s0"] == "zram 64M, 1024 pages used"
    assert words(c, "@2 swapoff d") == ["d1"]
    assert set(words(c, "show smaps ")) == {"a", "b"}
    assert words(c, "mmap ") == []          # a new name: nothing to offer
    assert words(c, "swapon ") == []
    assert words(c, "mremap a ") == []


def test_pids() -> None:
    c = _completer()
    assert words(c, "switch ") == ["1", "2"]
    assert metas(c, "switch ")["1"].startswith("current")
    assert metas(c, "switch ")["2"].startswith("child of 1")
    assert words(c, "exit ") == ["1", "2"]
    assert words(c, "@") == ["@1", "@2"]
    assert words(c, "@2 to") == ["touch"]


def test_expect_paths_part_by_part() -> None:
    c = _completer()
    first = words(c, "expect ")
    assert first[0] == "fails"
    assert first[1:] == ["vmstat.", "mthp.", "smaps.", "pmd.", "pte.", "pagemap.", "swap.",
                         "swapmap.", "swapcache.", "meminfo.", "pid"]
    assert metas(c, "expect ")["smaps."] == "smaps.NAME.FIELD"
    assert words(c, "expect sw") == ["swap.", "swapmap.", "swapcache."]
    assert words(c, "expect vmstat.thp_sw") == ["thp_swpout", "thp_swpout_fallback", "thp_swpout_pmd"]
    assert metas(c, "expect vmstat.thp_sw")["thp_swpout"] == "event, now 2"
    assert set(words(c, "expect smaps.")) == {"a.", "b."}
    assert words(c, "expect smaps.a.")[:4] == ["Size", "KernelPageSize", "MMUPageSize", "Rss"]
    assert "AnonHugePages" in words(c, "expect smaps.a.")
    assert words(c, "expect smaps.a.Sw") == ["Swap", "SwapPss"]
    assert words(c, "expect pmd.") == ["b", "a"]                 # nothing follows an ADDR of pmd.
    assert set(words(c, "expect pagemap.")) == {"a.", "b."}      # a FIELD follows
    assert "swap_offset" in words(c, "expect pagemap.a+0x1000.")
    assert words(c, "expect swap.") == ["s0.", "d1."]
    assert words(c, "expect swap.s0.") == ["used"]
    assert words(c, "expect swapmap.s0.") == []                   # an OFFSET: a number
    assert words(c, "expect mthp.swp") == ["swpin", "swpin_fallback", "swpin_fallback_charge",
                                           "swpout", "swpout_fallback"]
    assert "MemFree" in words(c, "expect meminfo.")
    assert words(c, "expect fails expect vmstat.pswpo") == ["pswpout"]
    assert words(c, "if pmd_swap on: expect pm") == ["pmd."]


def test_series_only_counter_is_hidden_when_pmd_swap_is_off() -> None:
    on, off = _completer(pmd_swap=True), _completer(pmd_swap=False)
    assert "thp_swpout_pmd" in words(on, "expect vmstat.")
    assert "thp_swpout_pmd" not in words(off, "expect vmstat.")
    assert words(off, "expect vmstat.thp_sw") == ["thp_swpout", "thp_swpout_fallback"]
    on.session.kernel.config.pmd_swap = False       # what `set pmd_swap off` changes
    assert "thp_swpout_pmd" not in words(on, "expect vmstat.")


def test_expect_value_offers_the_value_now() -> None:
    c = _completer()
    assert words(c, "expect pmd.a == ") == ["swap", "none", "table", "huge", "migration"]
    assert metas(c, "expect pmd.a == ")["swap"] == "value now"
    assert words(c, "expect vmstat.thp_swpout >= ") == ["2"]
    assert words(c, "expect smaps.a.Swap == ") == ["4096"]
    assert words(c, "expect smaps.nosuch.Swap == ") == []


def test_sizes_and_numbers_get_nothing() -> None:
    c = _completer()
    assert words(c, "mmap x ") == []
    assert words(c, "set ram ") == []
    assert words(c, "swapon s2 8M prio ") == []
    assert words(c, "reclaim ") == []


def test_help_topics_word_by_word() -> None:
    c = _completer()
    assert words(c, "help uf") == ["uffd"]
    assert words(c, "help uffd ") == ["register", "move"]
    assert words(c, "help uffd m") == ["move"]
    assert "sizes" in words(c, "help s")
    assert "pmd_swap" in words(c, "help pm")


def test_source_offers_scripts_and_directories(tmp_path, monkeypatch) -> None:
    (tmp_path / "setup.mmsh").write_text("fork\n")
    (tmp_path / "second.mmsh").write_text("fork\n")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inner.mmsh").write_text("")
    (tmp_path / ".hidden").mkdir()
    monkeypatch.chdir(tmp_path)
    c = _completer("")
    got = {x.display_text: x.display_meta_text for x in c.completions("source ")}
    assert got == {"second.mmsh": "script", "setup.mmsh": "script", "sub/": "directory"}
    assert [x.text for x in c.completions("source se")] == ["cond.mmsh", "tup.mmsh"]
    assert [x.text for x in c.completions("source sub/")] == ["inner.mmsh"]
    assert [x.display_text for x in c.completions("source .h")] == [".hidden/"]
    assert os.getcwd() == str(tmp_path)


def test_nothing_after_a_comment_or_a_complete_command() -> None:
    c = _completer()
    assert words(c, "touch a # ") == []
    assert words(c, "fork ") == []
    assert words(c, "nosuch ") == []
    assert words(c, "fork; mad") == ["madvise"]
    assert words(c, "fork; help uffd m") == ["move"]
    assert words(c, "fork ; expect pmd.a == s") == ["swap"]


def test_helpers() -> None:
    assert current_word("touch a+0x10") == "a+0x10"
    assert current_word("touch ") == ""
    assert current_word("fork;ma") == "ma"


_LANG_CHARS = st.sampled_from(list("abmtsx@.:+;#=!<> \t0123456789MKGx_") + ["\x00", "\u200b", "é"])
_LANG_WORDS = st.sampled_from(["touch", "expect", "smaps.a.", "vmstat.", "swapoff", "@2", "help",
                               "uffd", "move", "if", "pmd_swap", "on:", "source", "a+2M:4K", " "])


@functools.cache
def _shared() -> MmshCompleter:
    """One machine for every Hypothesis example (completion only reads it)."""
    return _completer()


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=60),
                      st.lists(st.one_of(_LANG_CHARS, _LANG_WORDS), max_size=20).map("".join)))
def test_completion_never_raises(text: str) -> None:
    c = _shared()
    got = c.completions(text)                      # the inner function itself never raises
    assert isinstance(got, list)
    via_prompt = list(c.get_completions(Document(text, len(text)), CompleteEvent()))
    assert [x.text for x in via_prompt] == [x.text for x in got]
    for x in got:
        assert -x.start_position <= len(text)
