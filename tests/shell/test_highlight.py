"""Highlighting by the grammar: each word coloured by what it is where it stands."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prompt_toolkit.document import Document

from mmshell.shell.highlight import LEXER_STYLE, MmshLexer, highlight_line


def styled(line: str, regions: tuple[str, ...] = ("a",)) -> list[tuple[str, str]]:
    """(short style, text) of each fragment, blanks dropped and text stripped."""
    return [(style.removeprefix("class:mmsh."), text.strip())
            for style, text in highlight_line(line, regions) if text.strip()]


def test_a_sample_line() -> None:
    assert styled("touch a+0x1000:4K read; madvise b pageout  # why") == [
        ("command", "touch"), ("region", "a"), ("operator", "+"), ("number", "0x1000"),
        ("operator", ":"), ("number", "4K"), ("keyword", "read"), ("operator", ";"),
        ("command", "madvise"), ("name", "b"), ("keyword", "pageout"), ("comment", "# why"),
    ]


def test_commands_keywords_paths_values() -> None:
    assert styled("@2 uffd move a:2M 0x40000000") == [
        ("command", "@"), ("number", "2"), ("command", "uffd"), ("command", "move"),
        ("region", "a"), ("operator", ":"), ("number", "2M"), ("number", "0x40000000")]
    assert styled("if pmd_swap on: expect smaps.a.Swap == 2048kB") == [
        ("command", "if"), ("keyword", "pmd_swap"), ("keyword", "on"), ("operator", ":"),
        ("command", "expect"), ("path", "smaps.a.Swap"), ("operator", "=="), ("number", "2048kB")]
    assert styled("expect fails expect pmd.a != swap") == [
        ("command", "expect"), ("command", "fails"), ("command", "expect"), ("path", "pmd.a"),
        ("operator", "!="), ("value", "swap")]
    assert styled("mmap b 2M prot r at 0x40000000") == [
        ("command", "mmap"), ("name", "b"), ("number", "2M"), ("keyword", "prot"),
        ("keyword", "r"), ("keyword", "at"), ("number", "0x40000000")]
    assert styled("source demo.mmsh") == [("command", "source"), ("file", "demo.mmsh")]
    assert styled("help uffd move") == [("command", "help"), ("keyword", "uffd"), ("keyword", "move")]
    assert styled("set thp never") == [("command", "set"), ("keyword", "thp"), ("keyword", "never")]
    assert styled("pause the PMD is 0x5 now; fork") == [
        ("command", "pause"), ("value", "the"), ("value", "PMD"), ("value", "is"), ("value", "0x5"),
        ("value", "now"), ("operator", ";"), ("command", "fork")]


def test_the_first_misfit_is_an_error_and_the_rest_of_its_command_plain() -> None:
    assert styled("mmpa a 2M") == [("error", "mmpa"), ("", "a 2M")]
    assert styled("madvise a pagout ; fork") == [
        ("command", "madvise"), ("region", "a"), ("error", "pagout"), ("operator", ";"),
        ("command", "fork")]
    assert styled("fork now") == [("command", "fork"), ("error", "now")]
    assert styled("@0 fork") == [("error", "@0"), ("", "fork")]          # pids start at 1
    assert styled("@99999999 fork") == [("error", "@99999999"), ("", "fork")]
    assert styled("touch a\x01") == [("command", "touch"), ("region", "a"), ("error", "\x01")]


def test_the_word_being_typed_is_an_error_only_when_nothing_can_start_with_it() -> None:
    assert styled("mad") == [("", "mad")]
    assert styled("madvise a pa") == [("command", "madvise"), ("region", "a"), ("", "pa")]
    assert styled("madvise a px") == [("command", "madvise"), ("region", "a"), ("error", "px")]
    assert styled("touch a+") == [("command", "touch"), ("", "a+")]
    assert styled("@") == [("", "@")]
    assert styled("set pmd_swap of ") == [("command", "set"), ("keyword", "pmd_swap"), ("error", "of")]


def test_lexer_reads_region_names_from_the_session_and_styles_exist() -> None:
    names = {"x"}
    lexer = MmshLexer(lambda: names)
    get_line = lexer.lex_document(Document("touch x\ntouch y"))
    assert get_line(0)[-1] == ("class:mmsh.region", "x")
    assert get_line(1)[-1] == ("class:mmsh.name", "y")
    assert get_line(2) == []
    rules = {cls for cls, _ in LEXER_STYLE.style_rules}
    assert {"mmsh.command", "mmsh.error", "mmsh.region", "mmsh.comment"} <= rules


_PIECES = st.sampled_from(["touch", "a", "a+2M:4K", "expect", "smaps.a.Rss", "==", "if", "thp",
                           "never", ":", "on:", "@3", "@", ";", "#", " ", "\t", "\x00", "\u200b",
                           "uffd", "move", "help", "0x", "2M", "fails", "é"])


@settings(max_examples=300, deadline=None)
@given(line=st.one_of(st.text(max_size=60), st.lists(_PIECES, max_size=20).map(" ".join)))
def test_any_text_lexes_back_to_itself(line: str) -> None:
    line = line.replace("\n", " ")
    frags = highlight_line(line, ("a",))
    assert "".join(text for _, text in frags) == line
    assert all(style.startswith("class:mmsh.") or style == "" for style, _ in frags)
    assert MmshLexer(lambda: ("a",)).lex_document(Document(line))(0) == frags
