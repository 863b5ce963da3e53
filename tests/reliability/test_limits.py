"""The limits of docs/limits.md: asking for more is a clear error at once, never a hang.

Every case must answer within a few seconds; the ones within the limits must
work.  Also the regression for the mremap hang (the shadow of page contents
was moved 4 KiB at a time: a 1 TiB region took hours).
"""

from __future__ import annotations

import pytest

from mmsh_helpers import bounded_calls, run

pytestmark = pytest.mark.slow      # each drives the simulation to one of its limits: seconds each

#: Python calls a case may make: about 4 times what the largest takes (15 million), far below a walk
#: page by page of a 1T region (268 million pages).
WORK = 60_000_000

CASES = {
    # id: (script, the error expected in the last line or None when it must work)
    "set ram 1P": ("set ram 1P", "EINVAL: ram larger than the simulation's limit of 64G"),
    "set ram 65G": ("set ram 65G", "limit of 64G"),
    "swapon 1P": ("swapon s0 1P", "limit of 64G"),
    "swap in all": ("swapon s0 40G; swapon s1 30G", "limit of 64G over every device"),
    "mmap 1P": ("mmap a 1P", "ENOMEM"),
    "mmap 1T works": ("mmap a 1T; touch a:4K; check a:4K; munmap a", None),
    "mmap past 4T in all": ("mmap a 3T; mmap b 1T; mmap c 4K", "limit of 4T of address space"),
    "mremap growing past 4T": ("mmap a 3T; mmap b 4K; mremap b c size 2T", "limit of 4T"),
    "touch 1T": ("mmap a 1T; touch a", "limit of 64G per touch"),
    "touch 1T read": ("mmap a 1T; touch a read", "limit of 64G per touch"),
    "check 1T": ("mmap a 1T; touch a:4K; check a", "limit of 64G per check"),
    "show pagemap 1T": ("mmap a 1T; show pagemap a", "limit of 64G per show pagemap"),
    "uffd move 1T": ("mmap a 1T; mmap b 1T; uffd register b; uffd move a b", "limit of 64G per uffd move"),
    "a huge region's whole-VMA operations": (
        "swapon s0 64M; mmap a 1T hugepage; touch a:4M; touch a+512G:2M; madvise a pageout; mprotect a r; "
        "fork; exit 2; khugepaged; madvise a+2M:2M dontneed; touch a:4M read; munmap a; check", None),
    # regression: mremap and uffd move of a huge, sparsely written region (Shadow.move was per page)
    "mremap of 1T": ("mmap a 1T; touch a:4K; touch a+600G:4K; mremap a b size 2T; check b:4K; "
                     "check b+600G:4K; check", None),
    "uffd move of a 64G range": ("mmap a 64G; touch a:8K; mmap b 64G; uffd register b; uffd move a:4K b; "
                                 "check b:4K", None),
}


@pytest.mark.parametrize("mode", [True, False], ids=["series", "mainline"])
@pytest.mark.parametrize("script,error", list(CASES.values()), ids=list(CASES))
def test_limit(script: str, error: str | None, mode: bool) -> None:
    r = bounded_calls(WORK, run, script, pmd_swap=mode)
    errors = r.errors()
    if error is None:
        assert r.outcome.exit_status() == 0, errors
    else:
        assert len(errors) == 1 and error in errors[0], errors
        assert r.records[-1].kind == "refused"


def test_limits_are_documented() -> None:
    from pathlib import Path

    from mmshell.mm import constants as c

    doc = (Path(__file__).resolve().parents[2] / "docs" / "limits.md").read_text()
    for value in (c.MAX_RAM, c.MAX_SWAP, c.MAX_SWAP_TOTAL, c.MAX_ACCESS):
        assert f"{value >> 30}G" in doc
    assert f"{c.MAX_MAPPED >> 40}T" in doc
    assert str(c.MAX_PAGE_TABLES) in doc and str(c.MAX_MAP_COUNT) in doc
