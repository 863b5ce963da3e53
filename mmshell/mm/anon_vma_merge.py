"""find_mergeable_anon_vma() (mm/vma.c): a VMA's first fault may take a neighbour's anon_vma.

__anon_vma_prepare() (mm/rmap.c) does not always allocate: it first asks
find_mergeable_anon_vma() for the anon_vma of an adjacent VMA, the next one first, then the
previous one, and links the faulting VMA to it.  A neighbour qualifies when the two are
anon_vma_compatible() (they touch, have the same file, here none, and mempolicy, their
vm_flags differ at most in VM_READ/VM_WRITE/VM_EXEC and VM_SOFTDIRTY, and the lower one's
pgoff runs on into the upper one's) and the neighbour's anon_vma_chain is singular (it
was not cloned from a parent by fork: reusable_anon_vma()).  The two VMAs then hang their
folios off one anon_vma, so a later mprotect, madvise or mremap that makes their flags
equal merges them (measured on 6.18.44: kernel fuzz seed 15151 script 2258, a 64K
`mprotect d:64K none` joins the PROT_NONE tail of `b` below it).

The simulation maps no file and has no mempolicy, so the check is on vm_flags and pgoff.
"""

from __future__ import annotations

from .constants import PAGE_SHIFT
from .mm_types import MmStruct
from .vma import VM, VmArea

#: The flags anon_vma_compatible() lets differ: VM_ACCESS_FLAGS (what mprotect changes)
#: and VM_SOFTDIRTY.
_MAY_DIFFER = VM.READ | VM.WRITE | VM.EXEC | VM.SOFTDIRTY


def vma_had_uncowed_parents(vma: VmArea) -> bool:
    """vma_had_uncowed_parents(): vma has an anon_vma and its chain links a parent's too
    (not list_is_singular(&vma->anon_vma_chain))."""
    return bool(vma.anon_vma) and len({vma.anon_vma, *vma.anon_vma_chain}) > 1


def anon_vma_compatible(a: VmArea, b: VmArea) -> bool:
    """anon_vma_compatible(): a (lower) and b (upper) could share an anon_vma."""
    return (a.end == b.start and not (a.flags ^ b.flags) & ~_MAY_DIFFER
            and b.pgoff == a.pgoff + ((b.start - a.start) >> PAGE_SHIFT))


def reusable_anon_vma(old: VmArea, a: VmArea, b: VmArea) -> int:
    """reusable_anon_vma(): old's anon_vma (old is a or b) if a and b are compatible and
    old's anon_vma_chain is singular; 0 otherwise."""
    if anon_vma_compatible(a, b) and old.anon_vma and not vma_had_uncowed_parents(old):
        return old.anon_vma
    return 0


def find_mergeable_anon_vma(mm: MmStruct, vma: VmArea) -> int:
    """find_mergeable_anon_vma(): the anon_vma of the next VMA, else of the previous one,
    that vma may share (0: none, the caller allocates one)."""
    i = next(i for i, v in enumerate(mm.vmas) if v is vma)
    if i + 1 < len(mm.vmas):
        nxt = mm.vmas[i + 1]
        anon_vma = reusable_anon_vma(nxt, vma, nxt)
        if anon_vma:
            return anon_vma
    if i > 0:
        prev = mm.vmas[i - 1]
        return reusable_anon_vma(prev, prev, vma)
    return 0
