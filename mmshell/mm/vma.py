"""struct vm_area_struct for private anonymous mappings (include/linux/mm_types.h)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntFlag

from .constants import PAGE_SHIFT


class VM(IntFlag):
    """vm_flags the simulation models (include/linux/mm.h)."""

    READ = 1 << 0
    WRITE = 1 << 1
    EXEC = 1 << 2
    SHARED = 1 << 3
    MAYREAD = 1 << 4
    MAYWRITE = 1 << 5
    UFFD_MISSING = 1 << 9
    UFFD_WP = 1 << 12
    LOCKED = 1 << 13
    #: The mapping is charged to the overcommit count (mm/mmap.c accountable_mapping(),
    #: mm/mprotect.c mprotect_fixup()).  Invisible in the maps permissions, yet part of the
    #: flags vma_merge compares: it is what keeps a once-writable piece apart.
    ACCOUNT = 1 << 20
    SOFTDIRTY = 1 << 27
    HUGEPAGE = 1 << 29
    NOHUGEPAGE = 1 << 30


#: __VM_UFFD_FLAGS (include/linux/userfaultfd_k.h): the userfaultfd registration bits, which
#: userfaultfd_reset_ctx() clears (the simulation has no minor-fault mode).
VM_UFFD_FLAGS = VM.UFFD_MISSING | VM.UFFD_WP


#: While a command's checkpoint is open (lang/snapshot.py), each store into a field of a
#: VmArea appends (vma, field, old value) to the innermost list here, so that a refusal can
#: put VMAs back without the checkpoint copying them (it copies a process's list of VMAs,
#: not the VMAs: `MmStruct.checkpoint_copy`).  The simulation's own bookkeeping.
VMA_JOURNAL: list[list[tuple["VmArea", str, object]]] = []

#: The old value of a field stored for the first time (a VmArea being built).
_UNSET = object()


def vma_journal_begin() -> None:
    VMA_JOURNAL.append([])


def vma_journal_commit() -> None:
    """Keep the stores; an enclosing checkpoint can still undo them."""
    done = VMA_JOURNAL.pop()
    if VMA_JOURNAL:
        VMA_JOURNAL[-1].extend(done)


def vma_journal_rollback() -> None:
    """Undo the stores of the innermost checkpoint, newest first."""
    vma_journal_undo(VMA_JOURNAL.pop())


def vma_journal_detach() -> list[tuple["VmArea", str, object]]:
    """Keep the stores, as `vma_journal_commit` does, and return them: `vma_journal_undo`
    of them later puts the VMAs back (the shell's undo)."""
    done = VMA_JOURNAL.pop()
    if VMA_JOURNAL:
        VMA_JOURNAL[-1].extend(done)
    return done


def vma_journal_undo(stores: list[tuple["VmArea", str, object]]) -> None:
    """Undo `stores`, newest first (the VMAs being as the last of them left them)."""
    for vma, name, old in reversed(stores):
        if old is not _UNSET:
            object.__setattr__(vma, name, old)


@dataclass(slots=True)
class VmArea:
    """One VMA: [start, end), flags, the file-page offset of start, and its anon_vma.

    `anon_vma` is the id of the anon_vma tree the VMA's folios hang off (0: none yet;
    assigned at the first fault, anon_vma_prepare()).  `pgoff` keeps folio->index
    meaningful across mremap, as vm_pgoff does.  `avc_seq` is the VMA's place among VMAs at
    the same pgoff in the anon_vma interval trees it is linked into (anon_vma_order.py).
    """

    start: int
    end: int
    flags: VM
    pgoff: int
    anon_vma: int = 0
    anon_vma_chain: tuple[int, ...] = ()
    avc_seq: int = field(default=0, compare=False)

    def __setattr__(self, name: str, value: object) -> None:
        if VMA_JOURNAL:
            VMA_JOURNAL[-1].append((self, name, getattr(self, name, _UNSET)))
        object.__setattr__(self, name, value)

    def link_anon_vma(self, anon_vma: int) -> None:
        """anon_vma_prepare(): the anon_vma it found (a new one or a neighbour's), linked into the chain."""
        self.anon_vma = anon_vma
        self.anon_vma_chain = (*self.anon_vma_chain, anon_vma)

    @property
    def size(self) -> int:
        return self.end - self.start

    def contains(self, addr: int) -> bool:
        return self.start <= addr < self.end

    def linear_page_index(self, addr: int) -> int:
        """linear_page_index(): the folio->index a page at addr gets."""
        return self.pgoff + ((addr - self.start) >> PAGE_SHIFT)

    def address_of(self, index: int) -> int:
        """vma_address(): where page index `index` is mapped in this VMA."""
        return self.start + ((index - self.pgoff) << PAGE_SHIFT)

    def flag_string(self) -> str:
        """The /proc/PID/maps permission column ('rw-p')."""
        return ("r" if self.flags & VM.READ else "-") + ("w" if self.flags & VM.WRITE else "-") + "-p"
