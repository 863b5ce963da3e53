"""The step digest at a cost proportional to what the step changed.

A step summary compares a digest of the machine before the step with one after
it (views/step.py).  Digesting every process costs what every process holds,
so a script of N `fork`s spent O(N^2) on its summaries alone.  `DigestCache`
keeps each process's part of the last digest (VMAs, their flags, the PMD slots
as `show pt` describes them) and digests again only the processes reached since:
every command that changes a process reaches its entry in `Kernel.mms` first
(mm/pidtable.py, the rule the per-command checkpoint relies on), and
`PidTable.stamped_since` lists the pids reached after a point, newest first, at
a cost proportional to their number.  The other parts are the same objects in
both digests, and the new digest says which pids it `touched` since which one
(`Digest.base`), so `StepView` compares those alone.  What a part also reads
outside its process (page flags and folio orders of the frames it maps, the swap
devices' names) changes only through an rmap walk, which reaches every process
that maps the folio, or with the devices, which key the whole cache.

With the invariant checker on (`debug_vm`), every reused part is checked
against a fresh one, so the random suites would catch a change that reached no
entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmshell.mm.errors import VmBug
from mmshell.mm.pidtable import PidTable

from .step import Digest, machine_digest, process_digest

if TYPE_CHECKING:
    from mmshell.mm.kernel import Kernel

__all__ = ["DigestCache"]


class DigestCache:
    """The per-process parts of the last digest of one machine, and the PidTable clock it was taken at."""

    __slots__ = ("table", "devices", "clock", "last", "serial", "verify")

    def __init__(self, verify: bool = False) -> None:
        self.table: Any = None          # the Kernel.mms the last digest was taken from (undo replaces it)
        self.devices: tuple[str | None, ...] = ()
        self.clock = 0
        self.last: Digest | None = None
        self.serial = 0
        self.verify = verify

    def digest(self, k: "Kernel") -> Digest:
        """The digest of `k` (views.step.digest), digesting again only the processes reached
        since the last one."""
        mms = k.mms
        devices = tuple(si.name if si is not None else None for si in k.swap_info)
        last = self.last
        fresh = last is None or mms is not self.table or devices != self.devices or type(mms) is not PidTable
        pmds: dict[int, Any] = {}
        vmas: dict[int, Any] = {}
        vma_text: dict[int, Any] = {}
        if fresh:
            pids = sorted(mms)
        else:
            assert last is not None
            pids = sorted(mms.stamped_since(self.clock))
            if self.verify:
                self._check(k, last, pids)
            pmds, vmas, vma_text = dict(last.pmds), dict(last.vmas), dict(last.vma_text)
        top = next(reversed(pmds), 0)
        unordered = False
        for pid in pids:
            if dict.__contains__(mms, pid):
                unordered = unordered or (pid < top and pid not in pmds)
                vmas[pid], vma_text[pid], pmds[pid] = process_digest(k, dict.__getitem__(mms, pid))
            else:
                pmds.pop(pid, None)
                vmas.pop(pid, None)
                vma_text.pop(pid, None)
        if unordered:                       # a pid below the others came back: keep pid order
            pmds, vmas, vma_text = ({p: d[p] for p in sorted(d)} for d in (pmds, vmas, vma_text))
        out = machine_digest(k, pmds, vmas, vma_text)
        self.serial += 1
        out.serial, out.touched = self.serial, frozenset(pids)
        if not fresh:
            assert last is not None
            out.base = last.serial
        self.table, self.devices, self.last = mms, devices, out
        self.clock = mms.clock if type(mms) is PidTable else 0
        return out

    @staticmethod
    def _check(k: "Kernel", last: Digest, touched: list[int]) -> None:
        """Every part kept from the last digest is what digesting the process again gives."""
        skip = set(touched)
        for pid in last.pmds:
            if pid in skip or not dict.__contains__(k.mms, pid):
                continue
            fresh = process_digest(k, dict.__getitem__(k.mms, pid))
            if fresh != (last.vmas[pid], last.vma_text[pid], last.pmds[pid]):
                raise VmBug(f"pid {pid} changed but its entry in Kernel.mms was not reached "
                            "(mm/pidtable.py): the step digest would have kept its old part")

