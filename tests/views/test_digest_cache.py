"""The step digest digests again only the processes a step reached (views/digest_cache.py)."""

from __future__ import annotations

import pytest

from mmshell.lang.runner import run_text
from mmshell.lang.session import Session
from mmshell.mm.errors import VmBug
from mmshell.mm.pgtable import F_DIRTY, PmdKind
from mmshell.views import digest_cache
from mmshell.views.digest_cache import DigestCache
from mmshell.views.step import StepView, digest

SCRIPT = """\
swapon s0 64M
mmap a 8M hugepage
touch a
fork
fork
@2 touch a+2M:4K
madvise a pageout
@3 touch a read
@2 munmap a+4M:2M
exit 3
mmap b 1M
touch b
reclaim
fork
@4 exit
"""


def _parts(d):
    return d.pmds, d.vmas, d.vma_text


def test_every_step_digests_as_the_whole_machine_does():
    """After each command the cached digest equals a full one, and each step summary is the same."""
    s = Session.boot()
    cache = DigestCache(verify=True)
    before_full, before = digest(s.kernel), cache.digest(s.kernel)
    for line in SCRIPT.splitlines():
        run_text(s, line, "-c")
        after_full, after = digest(s.kernel), cache.digest(s.kernel)
        assert _parts(after) == _parts(after_full), line
        assert StepView(before, after).to_json() == StepView(before_full, after_full).to_json(), line
        before_full, before = after_full, after


def test_a_fork_digests_the_parent_and_the_child_only(monkeypatch):
    s = Session.boot()
    run_text(s, "mmap a 4M\ntouch a\nfork\nfork\nfork", "-c")
    cache = DigestCache()
    cache.digest(s.kernel)
    seen: list[int] = []
    real = digest_cache.process_digest
    monkeypatch.setattr(digest_cache, "process_digest", lambda k, mm: seen.append(mm.pid) or real(k, mm))
    run_text(s, "fork", "-c")
    after = cache.digest(s.kernel)
    assert sorted(seen) == [1, 5]
    assert sorted(after.pmds) == [1, 2, 3, 4, 5]


def test_undo_of_the_whole_machine_digests_it_again():
    """A kernel put in place of the old one (undo, reset) shares no parts with the last digest."""
    s = Session.boot()
    run_text(s, "mmap a 2M\ntouch a", "-c")
    cache = DigestCache()
    first = cache.digest(s.kernel)
    s.kernel = type(s.kernel)()
    again = cache.digest(s.kernel)
    assert again.base == -1 and again.pmds == {1: {}} and first.pmds[1]


def test_a_change_that_reached_no_entry_is_caught_with_the_checker_on():
    s = Session.boot()
    run_text(s, "mmap a 4M hugepage\ntouch a\nfork", "-c")
    cache = DigestCache(verify=True)
    cache.digest(s.kernel)
    mm = dict.__getitem__(s.kernel.mms, 2)          # behind the PidTable's back
    pmd = next(p for p in mm.pmds.values() if p.kind is PmdKind.HUGE)
    pmd.flags ^= F_DIRTY
    with pytest.raises(VmBug, match="pid 2 changed"):
        cache.digest(s.kernel)
