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


def test_expect_fails_of_a_command_that_does_not_parse_passes() -> None:
    r = run("expect fails mmpa a 2M\n@1 expect fails touch a+:4K; fork\nexpect pid == 1\n")
    assert r.outcome.exit_status() == 0, r.errors()
    assert r.records[0].output.lines == [
        "refused as expected: syntax: column 14: unknown command 'mmpa' (did you mean 'mmap'?)"]
    assert sorted(r.k.mms) == [1, 2]
    # every other line is still parsed before the script runs: nothing ran
    r = run("fork\nexpect fails mmpa a 2M\nmmpa a 2M\n")
    assert r.outcome.exit_status() == 2 and r.outcome.steps == 0 and sorted(r.k.mms) == [1]
    assert r.errors() == ["test.mmsh:3: syntax: column 1: unknown command 'mmpa' (did you mean 'mmap'?)"]


def test_expect_fails_source_undoes_a_refused_file(tmp_path) -> None:
    from mmshell.lang.runner import run_text
    from mmshell.lang.session import Session

    (tmp_path / "bad.mmsh").write_text("mmap b 2M hugepage\ntouch b\nfork\nmunmap b+1:4K\n")
    (tmp_path / "good.mmsh").write_text("mmap c 2M\n")
    s = Session.boot(debug_vm=True)
    records: list = []
    out = run_text(s, "mmap a 2M hugepage\ntouch a\nexpect fails source bad.mmsh\nexpect fails source good.mmsh\n",
                   "t.mmsh", records.append, keep_going=True, base=tmp_path)
    assert (out.failed, out.refused) == (1, 0)
    (line,) = records[2].output.lines
    assert line.startswith(f"refused as expected: {tmp_path}/bad.mmsh:4: munmap: EINVAL: start 0x")
    assert line.endswith(" not page aligned (the commands before it were undone)")
    assert sorted(s.names()) == ["a", "c"] and sorted(s.kernel.mms) == [1]       # b's mmap, touch, fork undone
    assert s.kernel.vmstat.events["thp_fault_alloc"] == 1
    assert records[3].error == "t.mmsh:4: expect: expected 'source good.mmsh' to be refused, but it ran"
    r = run("@1 expect fails source x.mmsh\n")
    assert r.errors() == ["test.mmsh:1: source: EINVAL: source runs a file at the top level only "
                          "(or as 'expect fails source FILE'), not inside @PID or if"]


def test_a_sized_value_is_converted_to_the_unit_of_its_path() -> None:
    r = run("swapon s0 64M\nmmap a 2M hugepage\ntouch a\nexpect smaps.a.Rss == 2M\nexpect smaps.a.Rss == 2048kB\n"
            "expect smaps.a.Rss == 2048\nexpect smaps.a.AnonHugePages == 0x800\nexpect meminfo.AnonHugePages == 2M\n"
            "madvise a pageout\nexpect swap.s0.used == 2M\nexpect swap.s0.used == 512\n"
            "expect fails expect smaps.a.Swap == 1025B\nexpect fails expect vmstat.pswpout == 2M\n"
            "expect smaps.a.Swap != 2049\nexpect fails expect swap.s0.used == 2K\n"
            "expect fails expect smaps.a.THPeligible == 1K\n")
    assert r.outcome.exit_status() == 0, r.errors()
    lines = [line for rec in r.records if rec.output for line in rec.output.lines]
    assert "refused as expected: 2M is a size, but vmstat.pswpout is not an amount of memory: write a plain number" \
        in lines
    assert "refused as expected: 2K is not a whole number of pages, the unit of swap.s0.used" in lines
    assert run("mmap a 2M hugepage\ntouch a\nexpect smaps.a.Rss == 2M\n").outcome.exit_status() == 0
    r = run("mmap a 2M hugepage\ntouch a\nexpect smaps.a.Rss == 4M\n")
    assert r.errors() == ["test.mmsh:3: expect: expected smaps.a.Rss == 4M, actual 2048"]


def test_swap_offsets_in_paths_are_decimal_or_hex(pmd_swap: bool = True) -> None:
    for mode in (True, False):
        r = run("swapon s0 64M\nmmap a 2M hugepage\ntouch a\nmadvise a pageout\nexpect swapmap.s0.512 == 1\n"
                "expect swapmap.s0.0x200 == 1\nexpect swapmap.s0.0x3ff == 1\nexpect swapmap.s0.1024 == 0\n"
                "expect pagemap.a+0x1000.swap_offset == 0x201\nexpect pagemap.a+4K.swap_offset == 513\n"
                "expect swapcache.s0.513 == 0\n", pmd_swap=mode)
        assert r.outcome.exit_status() == 0, r.errors()


def test_addresses_past_the_user_address_space() -> None:
    r = run("mmap a 2M\nexpect fails expect pagemap.a+0xfffffffffffff000.present == 0\n"
            "expect fails expect pmd.0x7ffffffff000 == none\nexpect pte.0x7fffffffe000 == none\n"
            "expect fails touch a+0xfffffffffffff000:4K\nexpect fails mmap b 4K at 0x7ffffffff000\n"
            "mmap c 4K at 0x7fffffffe000\n")
    assert r.outcome.exit_status() == 0, r.errors()
    lines = [line for rec in r.records if rec.output for line in rec.output.lines]
    start = r.session.names()["a"][0]
    assert (f"refused as expected: a+0xfffffffffffff000 ({start + 0xfffffffffffff000:#x}) is beyond the user "
            "address space (TASK_SIZE 0x7ffffffff000): no page table or pagemap entry maps it") in lines
    assert (f"refused as expected: EINVAL: a+0xfffffffffffff000 is {start:#x} + 0xfffffffffffff000: past 2**64 - 1, "
            "no address at all") in lines
    assert "refused as expected: ENOMEM: range beyond the user address space (TASK_SIZE 0x7ffffffff000)" in lines
