"""Views as a script sees them (`mmshell run --json`): which process, which names, which rows."""

from __future__ import annotations

import io
import json

import pytest

from mmshell.lang.runner import run_text
from mmshell.lang.session import Session
from mmshell.report import StepPrinter, run_sources


def printed(text: str) -> tuple[Session, str]:
    """The session after `text`, and what `mmshell run` printed for it (spaces squeezed)."""
    session = Session.boot(debug_vm=True)
    out = io.StringIO()
    printer = StepPrinter(session, stream=out)
    assert run_text(session, text, "t.mmsh", printer, before=printer.before).exit_status() == 0, out.getvalue()
    return session, " ".join(out.getvalue().split())


def steps(capsys, text: str, pmd_swap: bool = True) -> list[dict]:
    """The JSON Lines of `text` run as a script, the final object left out."""
    mode = "on" if pmd_swap else "off"
    status = run_sources([("t.mmsh", f"set pmd_swap {mode}\n" + text)], json_mode=True, debug_vm=True)
    objs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 0, [o.get("error") for o in objs if o.get("error")]
    return objs[:-1]


def view(objs: list[dict], command: str) -> dict:
    (obj,) = [o for o in objs if o.get("command") == command]
    (v,) = obj["views"].values()
    return v


def test_at_pid_shows_that_process(capsys) -> None:
    objs = steps(capsys, "mmap a 2M hugepage\ntouch a\nfork\n@2 mmap b 4M\n@2 touch b:4K\n"
                         "@2 show vmas\n@2 show pt\n@2 show smaps b\n@2 show smaps\n@2 show pagemap b:8K\n"
                         "show vmas\n")
    for cmd in ("@2 show vmas", "@2 show pt", "@2 show smaps b", "@2 show smaps", "@2 show pagemap b:8K"):
        assert view(objs, cmd)["pid"] == 2, cmd
    assert [v["regions"] for v in view(objs, "@2 show vmas")["vmas"]] == [["b"], ["a"]]
    assert [v["regions"] for v in view(objs, "show vmas")["vmas"]] == [["a"]]     # pid 1 has no b
    assert view(objs, "@2 show smaps b")["total"]["Rss"] == 4
    assert view(objs, "@2 show pagemap b:8K")["runs"][0]["present"] == 1


def test_a_reused_address_is_named_after_what_is_mapped_now(capsys, pmd_swap: bool) -> None:
    objs = steps(capsys, "mmap a 2M hugepage\ntouch a\nmunmap a\nmmap b 2M hugepage\ntouch b\n"
                         "show vmas\nshow pt\nshow pagemap b:4K\n", pmd_swap)
    assert [v["regions"] for v in view(objs, "show vmas")["vmas"]] == [["b"]]
    assert [p["region"] for p in view(objs, "show pt")["pmds"]] == ["b+0x0"]
    (munmap,) = [o for o in objs if o["command"] == "munmap a"]
    assert [c["old"].split()[0] for c in munmap["changes"]["pmds"]] == ["huge"]
    (touch,) = [o for o in objs if o["command"] == "touch b"]
    assert touch["changes"]["pmds"][0]["new"].startswith("huge THP")


def test_mremap_and_uffd_move_rows_name_the_mapping_there_now() -> None:
    session, text_out = printed("swapon s0 64M\nmmap a 4M hugepage\ntouch a\nmremap a b\nshow pt\n"
                                "mmap c 2M hugepage at a\ntouch c\nshow pt\nmmap d 2M\nuffd register d\n"
                                "uffd move b:2M d\nshow pt\nshow vmas\n")
    a, b = session.names()["a"][0], session.names()["b"][0]
    assert f"{b:#x}:4M b+0x0:4M 2 × huge" in text_out                  # after mremap: b, not a
    assert f"{a:#x} c+0x0 huge" in text_out                             # c mapped where a was
    d = session.names()["d"][0]
    assert f"{d:#x} d+0x0 huge" in text_out and f"{b + (2 << 20):#x} b+0x200000 huge" in text_out


def test_two_vmas_never_fold_into_one_row(capsys) -> None:
    objs = steps(capsys, "mmap a 8M hugepage\ntouch a\nmprotect a+4M:4M r\nshow pt\n")
    rows = view(objs, "show pt")["rows"]
    assert [r["count"] for r in rows] == [2, 2]
    (mprotect,) = [o for o in objs if o["command"] == "mprotect a+4M:4M r"]
    assert [c["count"] for c in mprotect["changes"]["pmds"]] == [2]


def test_smaps_of_a_region_whose_vma_merged(capsys) -> None:
    objs = steps(capsys, "mmap a 2M\nmmap b 2M\ntouch a:4K\nshow vmas\nshow smaps a\n")
    assert len(view(objs, "show vmas")["vmas"]) == 1                   # a and b merged
    smaps = view(objs, "show smaps a")
    assert [(r["regions"], r["Rss"], r["Size"]) for r in smaps["vmas"]] == [(["a"], 4, 2048)]
    assert smaps["total"]["Rss"] == 4


def test_smaps_text_of_a_merged_region() -> None:
    _, out = printed("mmap a 2M\nmmap b 2M\ntouch a:4K\nshow smaps a\n")
    assert "no VMA" not in out
    assert "(part of the VMA" in out


def test_check_range_shows_its_changes(capsys, pmd_swap: bool) -> None:
    objs = steps(capsys, "swapon s0 64M\nmmap a 2M hugepage\ntouch a\nmadvise a pageout\ncheck a:4K\n"
                         "check\n", pmd_swap)
    (check,) = [o for o in objs if o["command"] == "check a:4K"]
    assert check["changes"]["vmstat"]["pswpin"] == (512 if pmd_swap else 1)
    (bare,) = [o for o in objs if o["command"] == "check"]
    assert "changes" not in bare


@pytest.fixture(params=[True, False], ids=["series", "mainline"])
def pmd_swap(request) -> bool:
    return request.param


def test_one_notation_for_swap_slots_in_every_view(pmd_swap: bool) -> None:
    mode = "on" if pmd_swap else "off"
    _, out = printed(f"set pmd_swap {mode}\nswapon d0 64M kind disk\nmmap a 2M hugepage\ntouch a\n"
                     "madvise a pageout\nshow pt\nshow swap\nshow swapcache\nshow pagemap a:8K\n")
    pageout = out.split("t.mmsh:5")[1].split("t.mmsh:6")[0]
    table = "swap d0 slots 0x200-0x3ff excl" if pmd_swap else "0-511 swap d0 slots 0x200-0x3ff excl"
    assert table in pageout and "slots 0x200-0x3ff: free → count 1 +cache" in pageout
    views = out.split("t.mmsh:6")[1]
    assert table in views                                                       # show pt
    assert "slots 0x200-0x3ff count 1 +cache" in views                          # show swap
    assert "d0 slots 0x200-0x3ff clean unmapped" in views                       # show swapcache
    assert "swapped d0 slots 0x200-0x201 excl=" in views                        # show pagemap
    assert " off " not in views and "d0 0x" not in out


def test_one_page_is_never_1_pages() -> None:
    session = Session.boot(debug_vm=True)
    out = io.StringIO()
    printer = StepPrinter(session, stream=out)
    run_text(session, "swapon d0 64M kind disk\nmmap a 4K\ntouch a\nexpect fails set ram 64M\nmadvise a pageout\n"
                      "show swapcache\n", "t.mmsh", printer, before=printer.before)
    text_out = " ".join(out.getvalue().split())
    assert "1 folio, 1 page" in text_out and "EBUSY: 1 page in use" in text_out
    assert "1 pages" not in text_out
