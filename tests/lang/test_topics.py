"""Help that teaches: legend, pt, swap, counters, one doc per counter, every line inside 80 columns."""

from __future__ import annotations

import pytest

from mmshell.lang import registry
from mmshell.lang.counters import COUNTERS, counter_doc, is_key
from mmshell.lang.parser import parse_command
from mmshell.lang.topics import HELP_WIDTH
from mmshell.mm.task_mmu import SMAPS_FIELDS
from mmshell.mm.vmstat import EVENTS, GAUGES, MTHP_STATS


def test_every_help_text_fits_80_columns() -> None:
    for topic in [None, *registry.help_topics()]:
        for line in registry.help_text(topic).splitlines():
            assert len(line) <= HELP_WIDTH, (topic, line)


@pytest.mark.parametrize("topic", ["legend", "pt", "swap", "counters", "vmstat", "thp_swpout_pmd",
                                   "smaps.SwapPss", "mthp.swpin", "meminfo.SwapFree"])
def test_topics_parse_and_answer(topic: str) -> None:
    assert parse_command(f"help {topic}").args["topic"] == topic
    assert registry.help_text(topic)


def test_legend_names_what_the_views_print() -> None:
    text = registry.help_text("legend")
    for word in ("W ", "D ", "excl", "(THP)", "+cache", "slots", "pfn", "clusters free/order-9/order-0",
                 "count N", "uffd-wp", "× huge", "x512"):
        assert word in text, word


def test_counter_docs_name_the_kernel_function() -> None:
    assert "set_pmd_swap_entry" in registry.help_text("thp_swpout_pmd")
    assert "smaps_pmd_entry" in registry.help_text("smaps.SwapPss")
    assert counter_doc("smaps.a.SwapPss") is counter_doc("smaps.SwapPss")
    assert counter_doc("vmstat.pswpin").name == "pswpin"
    names = {(c.family, c.name) for c in COUNTERS}
    assert {("vmstat", n) for n in (*GAUGES, *EVENTS)} <= names
    assert {("mthp", n) for n in MTHP_STATS} <= names and {("smaps", n) for n in SMAPS_FIELDS} <= names


def test_key_counters_hide_the_restating_ones() -> None:
    assert not is_key("vmstat", "nr_zone_inactive_anon") and not is_key("vmstat", "pgfree")
    assert is_key("vmstat", "thp_swpout_pmd") and is_key("vmstat", "pgmajfault") and is_key("mthp", "swpin")
    text = registry.help_text("counters")
    assert "nr_zone_inactive_anon" in text and "restates nr_inactive_anon" in text


def test_step_summary_shows_key_counters_by_default() -> None:
    import io

    from mmsh_helpers import run
    from mmshell.lang.runner import run_text
    from mmshell.report import StepPrinter

    for counters, shown in (("key", False), ("all", True)):
        r = run("mmap a 2M hugepage\n", pmd_swap=True)
        r.session.counters = counters
        out = io.StringIO()
        printer = StepPrinter(r.session, echo=False, stream=out)
        run_text(r.session, "touch a\n", "t", printer, before=printer.before)
        text = out.getvalue()
        assert "thp_fault_alloc +1" in text
        assert ("nr_zone_inactive_anon" in text) is shown
