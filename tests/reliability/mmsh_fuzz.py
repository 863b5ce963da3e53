"""Shared by the fuzz tests and scripts/fuzz_atheris.py: hostile input, and what must hold for it.

`run_checked(text)` runs text through the language runner (parse, then each
command as one step) on a copy of a busy machine and checks the promises of
the contract for any input:
- nothing escapes: no exception, no traceback, no simulator bug;
- each refusal or syntax error is one line `-c:LINE: OP: WHY`, a syntax error
  naming its column;
- a refused command (and a script that does not parse) changes nothing.
"""

from __future__ import annotations

import re

from mmsh_state import diff_dumps, state_dump
from mmshell.lang.runner import StepRecord, run_text
from mmshell.lang.session import Session
from mmshell.lang.snapshot import snapshot
from mmshell.mm.config import Config

SETUP = ("set ram 32M; swapon z0 16M; swapon d0 8M kind disk; mmap a 4M hugepage; mmap b 1M; "
         "mmap ro 64K prot r; touch a; touch b; madvise a+2M:2M pageout; madvise b:64K pageout; fork")

#: Words to build lines from: every command word, options, values of each kind, and trouble.
VOCAB = (
    "set ram thp zswap pmd_swap fail thp_alloc swap_cluster memcg_charge once on off always madvise never "
    "swapon swapoff kind zram disk file prio fork switch exit mmap munmap touch read write check madvise "
    "hugepage nohugepage pageout cold free dontneed collapse mprotect rw r none mremap size at uffd register "
    "move reclaim khugepaged show vmas pt swap swapcache vmstat smaps pagemap meminfo all trace if expect fails "
    "== != < <= > >= help source @1 @2 @99 @ @-1 @0x2 a b ro nosuch a+4K a+2M:2M b:4K a+0x1000 0x7f0000000000 "
    "0 1 4K 2M 1G 1T 1P 65G 1E -1 -4K 0x 0x1ffffffffffffffffff 18446744073709551615 18446744073709551616 "
    "99999999999999999999999 1.5M 2m 2MiB 2kB 0xzz a+ a+-1 :4K a:: ; : # vmstat.pswpout smaps.a.Rss pmd.a "
    "pagemap.a.swapped swapmap.z0.0x200 pid \u0661\u0662 \uff12M \u00e9 \u202e \u200b \x00 \x1b[31m \t \r \x0b"
).split(" ")


def session() -> Session:
    """A fresh copy of the busy machine (booted once)."""
    global _BUSY
    if _BUSY is None:
        s = Session.boot(Config())
        outcome = run_text(s, SETUP, "setup")
        assert outcome.exit_status() == 0
        _BUSY = s
    s = _BUSY
    k, pid, regions = snapshot((s.kernel, s.pid, s.regions))
    return Session(kernel=k, pid=pid, regions=regions)


_BUSY: Session | None = None
_LINE_RE = re.compile(r"^-c:\d+: [^\n]+$")


def run_checked(text: str) -> list[StepRecord]:
    """Run `text` as `mmshell -c` would and check the contract's promises; the records."""
    s = session()
    records: list[StepRecord] = []
    dumps: list[dict] = []
    whole = state_dump(s)

    def before(cmd) -> None:
        dumps.append(state_dump(s))

    def observe(rec: StepRecord) -> None:
        records.append(rec)
        assert rec.kind != "bug", rec.error
        if rec.error is None:
            return
        assert _LINE_RE.match(rec.error), f"not one error line: {rec.error!r}"
        if rec.kind == "syntax":
            assert "column" in rec.error, rec.error
            assert state_dump(s) == whole, "a script that does not parse changed the state"
        elif rec.kind == "refused" and rec.command is not None and rec.command.name != "source" \
                and "partial" not in rec.error and "as the kernel does" not in rec.error:
            after = state_dump(s)
            assert after == dumps[-1], (f"refused {rec.text!r} changed the state: "
                                        + "; ".join(diff_dumps(dumps[-1], after)))

    run_text(s, text, "-c", observe, keep_going=True, before=before)
    return records
