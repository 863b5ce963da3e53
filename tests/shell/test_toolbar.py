"""The bottom toolbar: the machine's status once per prompt, and a hint as you type."""

from __future__ import annotations

from mmsh_helpers import run

from mmshell.lang.session import Session
from mmshell.mm.config import Config
from mmshell.shell.toolbar import Status, Toolbar, hint
from mmshell.shell.vocab import short_size


def test_status_of_a_fresh_machine() -> None:
    text = Status.of(Session.boot(Config(ram=64 << 20), debug_vm=True)).text()
    assert text.startswith(" pid 1  pmd_swap on  thp madvise  zswap off  free ")
    assert "/64M  swap none" in text


def test_status_after_swapping_out() -> None:
    r = run("swapon s0 64M\nswapon f1 8M kind file\nset pmd_swap off\nset thp always\n"
            "mmap a 4M\ntouch a\nmadvise a+2M:2M pageout\nfork\nswitch 2\n").ok()
    status = Status.of(r.session)
    assert status.pid == 2 and not status.pmd_swap and status.thp == "always"
    assert status.devices == (("s0", 2 << 20, 64 << 20), ("f1", 0, 8 << 20))
    assert status.ram == 1 << 30
    assert status.free == r.k.nr_free_frames() * 4096
    text = status.text()
    assert "pid 2  pmd_swap off  thp always" in text
    assert text.endswith("swap s0 2M/64M f1 0/8M")


def test_many_devices_are_cut_short() -> None:
    r = run("".join(f"swapon d{i} 4M\n" for i in range(6))).ok()
    assert Status.of(r.session).text().endswith("d3 0/4M +2 more")


def test_toolbar_reads_the_status_once_per_prompt() -> None:
    r = run("mmap a 2M").ok()
    bar = Toolbar(r.session)
    before = bar.status
    r.session.pid = 7                       # changes between prompts are seen only after refresh()
    assert bar.fragments("")[:2] == before.fragments()[:2]
    bar.refresh()
    assert "pid 7" in bar.status.text()
    assert bar() == bar.fragments("")       # outside an application: the hint of an empty line


def test_hint_says_what_comes_next_or_what_is_wrong() -> None:
    assert hint("") == ("class:toolbar.hint", "next: COMMAND")
    assert hint("mmap a ") == ("class:toolbar.hint", "next: SIZE (a size)")
    assert hint("expect ") == ("class:toolbar.hint", "next: [fails] PATH (a path)")
    assert hint("touch a ") == ("class:toolbar.hint", "next: [read|write]")
    assert hint("fork ") == ("", "")
    style, text = hint("mmpa a")
    assert style == "class:toolbar.error" and "did you mean 'mmap'" in text
    assert hint("touch \x00") == ("class:toolbar.error", "unexpected character U+0000 (control character)")


def test_short_size() -> None:
    assert [short_size(n) for n in (0, 4096, 2 << 20, 3 << 29, 64 << 30, 1000, (1 << 30) - 4096,
                                    (2 << 30) - 1, 5 << 40)] == \
        ["0", "4K", "2M", "1.5G", "64G", "1000", "1023M", "1.9G", "5T"]
