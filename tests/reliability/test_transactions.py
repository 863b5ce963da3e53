"""A refused command changes nothing: every refusal path, a full state dump before and after.

Each case sets a machine up, then runs one command that must be refused with
the given errno (through the parser and `execute`, as the shell does), in both
modes; the whole state -- page tables, swap_map bytes, swap cache, mem_map
arrays, allocator, vmstat, config, processes, the shadow, the session's
region names and current pid -- must be byte-for-byte what it was.  The only
exceptions are the kernel's own partial effects (madvise and mprotect over a
hole, MADV_COLLAPSE after some blocks), which are checked to say so.
"""

from __future__ import annotations

import pytest

from mmsh_state import diff_dumps, state_dump
from mmshell.lang.execute import ExpectError, execute
from mmshell.lang.parser import parse_line
from mmshell.lang.session import Session
from mmshell.mm.check import check_invariants
from mmshell.mm.check_data import check_data
from mmshell.mm.config import Config
from mmshell.mm.errors import MmError, VmBug

pytestmark = pytest.mark.slow      # every command refused in many states, each checked whole: minutes

#: A machine with a bit of everything: THPs present and swapped, PTE-mapped pages, a
#: child sharing them, a disk device whose folios stay in the swap cache.
BUSY = ("set ram 32M; swapon z0 16M; swapon d0 16M kind disk prio 5; mmap a 4M hugepage; mmap b 1M; "
        "mmap ro 64K prot r; mmap no 64K prot none; touch a; touch b; touch ro read; "
        "madvise a+2M:2M pageout; madvise b:256K pageout; fork")

#: A registered destination `dst` with an anon_vma and a PTE table but no page.
DST = "touch dst:4K; madvise dst:4K dontneed; uffd register dst"

CASES = [
    # (id, setup, command, errno)
    ("unaligned start", BUSY, "madvise 0x7f0000000800:4K pageout", "EINVAL"),
    ("unaligned region offset", BUSY, "munmap a+0x800:4K", "EINVAL"),
    ("unaligned mmap at", BUSY, "mmap c 4K at 0x600000000800", "EINVAL"),
    ("unknown region", BUSY, "touch nosuch", "EINVAL"),
    ("unknown region in a child", BUSY, "@2 touch nosuch+4K", "EINVAL"),
    ("touch PROT_NONE", BUSY, "touch no read", "SIGSEGV"),
    ("write to read-only", BUSY, "touch ro", "SIGSEGV"),
    ("touch unmapped", BUSY, "touch 0x10000000:4K", "SIGSEGV"),
    ("touch across a hole", "mmap a 1M; touch a:4K; munmap a+512K:4K", "touch a", "SIGSEGV"),
    ("check PROT_NONE", BUSY, "check no", "SIGSEGV"),
    ("OOM mid-touch, no swap", "set ram 8M; mmap a 16M; touch a:4M", "touch a", "ENOMEM"),
    ("OOM mid-touch, swap full", "set ram 8M; swapon z0 40K; mmap a 16M", "touch a", "ENOMEM"),
    ("OOM in a child's COW", "set ram 8M; mmap a 5M; touch a; fork", "@2 touch a", "ENOMEM"),
    # a destination that has its anon_vma and PTE table already (UFFDIO_MOVE makes them first)
    ("uffd move of a shared THP", BUSY + "; mmap dst 4M; " + DST, "uffd move a:2M dst", "EBUSY"),
    ("uffd move of shared pages", BUSY + "; mmap dst 1M; " + DST, "uffd move b+512K:64K dst", "EBUSY"),
    ("uffd move to an unregistered range", BUSY + "; exit 2; mmap dst 4M; touch dst:4K; madvise dst:4K dontneed",
     "uffd move b+512K:64K dst", "EINVAL"),
    ("uffd move to a populated range", "mmap a 1M; mmap dst 1M; touch a; touch dst; uffd register dst",
     "uffd move a dst", "EEXIST"),
    ("uffd move of a hole", "mmap a 1M; mmap dst 1M; " + DST, "uffd move a dst", "ENOENT"),
    ("mmap over a mapping", BUSY, "mmap c 4K at b", "EEXIST"),
    ("mmap of a name in use", BUSY, "mmap a 4K", "EEXIST"),
    ("mmap below mmap_min_addr", BUSY, "mmap c 4K at 0x1000", "EPERM"),
    ("mmap of the whole address space", BUSY, "mmap c 1P", "ENOMEM"),
    ("mremap to a name in use", BUSY, "mremap b a", "EEXIST"),
    ("mremap across VMAs", "mmap a 1M; mprotect a+512K:4K r", "mremap a c", "EFAULT"),
    ("mremap onto itself", BUSY, "mremap b c at b+4K", "EINVAL"),
    ("swapon of an active name", BUSY, "swapon z0 8M", "EBUSY"),
    ("swapon too small", BUSY, "swapon s 36K", "EINVAL"),
    ("swapon of an unaligned size", BUSY, "swapon s 40001", "EINVAL"),
    ("swapon too large", BUSY, "swapon s 65G", "EINVAL"),
    ("swapon past the total", "swapon s 60G", "swapon t 8G", "EINVAL"),
    ("swapoff of no device", BUSY, "swapoff nosuch", "ENOENT"),
    ("swapoff without room", "set ram 8M; swapon z0 16M; mmap a 12M; touch a; reclaim; mmap b 6M; touch b",
     "swapoff z0", "ENOMEM"),
    ("set ram with pages in use", BUSY, "set ram 64M", "EBUSY"),
    ("set ram not 2M-aligned", "", "set ram 9M", "EINVAL"),
    ("set ram too large", "", "set ram 1P", "EINVAL"),
    ("set pmd_swap under PMD swap entries", "set pmd_swap on; swapon z0 8M; mmap a 2M hugepage; touch a;"
     " madvise a pageout", "set pmd_swap off", "EBUSY"),
    ("expect of an unknown path", BUSY, "expect bogus.path == 1", "expect"),
    ("expect of an unknown counter", BUSY, "expect vmstat.nope == 1", "expect"),
    ("expect of an unknown region", BUSY, "expect smaps.nosuch.Rss == 0", "expect"),
    ("expect of a word against a number", BUSY, "expect pmd.a < huge", "expect"),
    ("exit of pid 1", BUSY, "exit 1", "EPERM"),
    ("exit of no process", BUSY, "exit 77", "ESRCH"),
    ("switch to no process", BUSY, "switch 77", "ESRCH"),
    ("@ of no process", BUSY, "@77 touch a", "ESRCH"),
    ("collapse that cannot allocate", "mmap a 2M hugepage; set fail thp_alloc on; touch a:4K",
     "madvise a collapse", "ENOMEM"),
    ("address space limit", "mmap a 3T", "mmap b 2T", "ENOMEM"),
    ("address space limit by mremap", "mmap a 3T; mmap b 4K; touch b", "mremap b c size 2T", "ENOMEM"),
    ("touch beyond the walk limit", "mmap a 1T", "touch a", "EINVAL"),
    ("check beyond the walk limit", "mmap a 1T; touch a:4K", "check a", "EINVAL"),
    ("pagemap beyond the walk limit", "mmap a 1T", "show pagemap a", "EINVAL"),
    ("uffd move beyond the walk limit", "mmap a 1T; mmap dst 1T; uffd register dst", "uffd move a dst", "EINVAL"),
]

HOLE = "swapon z0 8M; mmap a 1M; touch a; munmap a+512K:4K"
PARTIAL = [
    ("madvise over a hole", HOLE, "madvise a pageout", "ENOMEM"),
    ("mprotect over a hole", HOLE, "mprotect a r", "ENOMEM"),
    # the first block collapses; the second, in a registered VMA with a none PTE, ends it
    ("collapse after a block", "mmap a 4M hugepage; set fail thp_alloc on; touch a; set fail thp_alloc off;"
     " madvise a+3M:4K dontneed; uffd register a+2M:2M", "madvise a collapse", "EBUSY"),
    # UFFDIO_MOVE gives the destination VMA its anon_vma first, then the PTE table of a page
    # move_pages_pte() refuses
    ("uffd move to a never-faulted range", "mmap a 1M; mmap dst 1M; uffd register dst", "uffd move a dst",
     "ENOENT"),
    ("uffd move refused at the PTE level", "mmap a 8K at 0x600000900000; mmap c 4K at 0x600000902000; touch c; "
     "mmap dst 2M at 0x600000a00000; uffd register dst", "uffd move a:4K dst", "ENOENT"),
]


def boot(setup: str, pmd_swap: bool) -> Session:
    s = Session.boot(Config(pmd_swap=pmd_swap))
    for cmd in parse_line(setup) if setup else []:
        execute(s, cmd)
    return s


def refuse(s: Session, text: str) -> Exception:
    (cmd,) = parse_line(text)
    with pytest.raises((MmError, ExpectError)) as info:
        execute(s, cmd)
    return info.value


@pytest.mark.parametrize("mode", [True, False], ids=["series", "mainline"])
@pytest.mark.parametrize("setup,command,errno", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_command_changes_nothing(setup: str, command: str, errno: str, mode: bool) -> None:
    s = boot(setup, mode)
    before = state_dump(s)
    e = refuse(s, command)
    assert getattr(e, "errno", "expect") == errno, str(e)
    assert getattr(e, "partial", None) is None
    after = state_dump(s)
    assert after == before, "; ".join(diff_dumps(before, after))
    assert not check_invariants(s.kernel) + check_data(s.kernel)


@pytest.mark.parametrize("mode", [True, False], ids=["series", "mainline"])
@pytest.mark.parametrize("setup,command,errno", [c[1:] for c in PARTIAL], ids=[c[0] for c in PARTIAL])
def test_partial_effect_says_so(setup: str, command: str, errno: str, mode: bool) -> None:
    s = boot(setup, mode)
    before = state_dump(s)
    e = refuse(s, command)
    assert e.errno == errno and e.partial, str(e)
    assert e.partial in str(e)
    assert state_dump(s) != before
    assert not check_invariants(s.kernel) + check_data(s.kernel)


@pytest.mark.parametrize("mode", [True, False], ids=["series", "mainline"])
def test_expect_fails_of_a_refused_command_changes_nothing(mode: bool) -> None:
    s = boot(BUSY, mode)
    before = state_dump(s)
    for text in ("expect fails munmap nosuch", "expect fails touch no", "expect fails swapoff nosuch",
                 "expect fails expect vmstat.nope == 1"):
        (cmd,) = parse_line(text)
        out = execute(s, cmd)
        assert out.failed_expect is None
    assert state_dump(s) == before


def _interrupt_after(monkeypatch, module, name: str, calls: int, exc: BaseException) -> None:
    """Make module.name raise exc on its calls-th call (after the earlier ones have had their effect)."""
    real = getattr(module, name)
    count = {"n": 0}

    def wrapper(*args, **kwargs):
        count["n"] += 1
        if count["n"] == calls:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


@pytest.mark.parametrize("mode", [True, False], ids=["series", "mainline"])
def test_ctrl_c_mid_command_changes_nothing(mode: bool, monkeypatch) -> None:
    from mmshell.mm import access

    s = boot("swapon z0 16M; mmap a 8M; touch a:4M; madvise a:4M pageout", mode)
    before = state_dump(s)
    # the swapped 4M comes back in batches, the next PTE table's pages in one fault and a batch:
    # the second fault (the last table's first) comes after all that has changed the machine
    _interrupt_after(monkeypatch, access, "handle_mm_fault", 2, KeyboardInterrupt())
    e = refuse(s, "touch a")
    assert e.errno == "EINTR" and "as it was" in str(e)
    assert state_dump(s) == before


@pytest.mark.parametrize("mode", [True, False], ids=["series", "mainline"])
def test_internal_error_mid_command_changes_nothing(mode: bool, monkeypatch) -> None:
    from mmshell.mm import access

    s = boot("swapon z0 16M; mmap a 8M; touch a:4M; madvise a:4M pageout", mode)
    before = state_dump(s)
    _interrupt_after(monkeypatch, access, "handle_mm_fault", 2, ZeroDivisionError("simulated bug"))
    (cmd,) = parse_line("touch a")
    with pytest.raises(VmBug, match="ZeroDivisionError: simulated bug.*as it was before"):
        execute(s, cmd)
    assert state_dump(s) == before


@pytest.mark.parametrize("limit,setup,command", [
    ("MAX_PAGE_TABLES", "mmap a 64M; touch a:40M read; touch a:4K", "fork"),  # written: an anon_vma to copy
    ("MAX_MAP_COUNT", "mmap a 1M", "mprotect a+256K:4K r"),
])
def test_global_limits_refuse_whole(limit: str, setup: str, command: str, monkeypatch) -> None:
    from mmshell.lang import execute as ex

    s = boot(setup, True)
    current = {"MAX_PAGE_TABLES": sum(mm.nr_ptes for mm in s.kernel.mms.values()),
               "MAX_MAP_COUNT": max(len(mm.vmas) for mm in s.kernel.mms.values())}[limit]
    monkeypatch.setattr(ex, limit, current)
    before = state_dump(s)
    e = refuse(s, command)
    assert e.errno == "ENOMEM" and ("page tables" in str(e) or "max_map_count" in str(e)), str(e)
    assert state_dump(s) == before
