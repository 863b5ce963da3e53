"""`expect` and `expect fails`: what passes, what fails, and the messages."""

from __future__ import annotations

from mmsh_helpers import run


def test_expect_fails_passes_on_a_refused_command() -> None:
    r = run("mmap a 2M\nexpect fails munmap a+1:4K\n")
    assert r.outcome.exit_status() == 0, r.errors()
    assert "refused as expected: EINVAL" in r.records[-1].output.lines[0]


def test_expect_fails_of_a_command_that_succeeds_is_a_failed_expectation() -> None:
    r = run("mmap a 2M\nexpect fails touch a\n")
    assert r.outcome.exit_status() == 1
    assert r.errors() == ["test.mmsh:2: expect: expected 'touch a' to be refused, but it succeeded"]


def test_expect_fails_expect_needs_an_error_not_a_false_comparison() -> None:
    r = run("expect fails expect vmstat.no_such_counter == 0\n", pmd_swap=False)
    assert r.outcome.exit_status() == 0, r.errors()
    r = run("set pmd_swap off\nexpect fails expect vmstat.thp_swpout_pmd == 0\n")
    assert r.outcome.exit_status() == 0, r.errors()
    r = run("expect fails expect pid == 2\n")
    assert r.outcome.exit_status() == 1
    assert r.errors() == ["test.mmsh:1: expect: expected 'expect pid == 2' to be refused, but it ran: "
                          "the comparison merely did not hold (expected pid == 2, actual 1)"]


def test_pagemap_over_a_range_counts_the_pages_with_the_bit() -> None:
    """`pagemap.ADDR:LEN.FIELD` counts the pages of the range whose 0/1 FIELD is set (the
    selftest's check_swapped() over all 512 pages); a one-page FIELD over a range is an error."""
    r = run("swapon s0 16M\nmmap a 4M hugepage\ntouch a\nmadvise a+2M:2M pageout\n"
            "expect pagemap.a:4M.swapped == 512\nexpect pagemap.a:4M.present == 512\n"
            "expect pagemap.a+2M:4K.swapped == 1\nexpect pagemap.a.swapped == 0\n")
    assert r.outcome.exit_status() == 0, r.errors()
    r = run("mmap a 2M\nexpect fails expect pagemap.a:2M.swap_offset == 0\nexpect fails expect pagemap.a:3K.present == 0\n")
    assert r.outcome.exit_status() == 0, r.errors()
