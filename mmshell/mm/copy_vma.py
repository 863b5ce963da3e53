"""copy_vma() (mm/vma.c): the VMA an mremap move makes at its destination, and the
userfaultfd registration the move then drops (mremap_userfaultfd_prep(), fs/userfaultfd.c).

copy_vma() gives the new range the source VMA's flags, anon_vma and userfaultfd context.  Its
vm_pgoff is the source's (so folio->index stays valid) unless the source VMA is anonymous and
has no anon_vma yet (never written: no folio carries an index), when it becomes the new
address's, addr >> PAGE_SHIFT, "to increase its chance of merging".  It then merges the new
range with its neighbours where vma_merge_new_range() may: the same flags and userfaultfd
context, linear offsets, compatible anon_vmas, and if both neighbours qualify, anon_vmas
compatible with each other too, else only the one below.  One neighbour may be the source VMA
itself, still whole: the moved range is unmapped from it (unmap_source_vma()) only after the
page tables have moved.

move_vma() then calls mremap_userfaultfd_prep() on the VMA copy_vma() returned.  For a
userfaultfd opened without UFFD_FEATURE_EVENT_REMAP (`uffd register` does not ask for it),
userfaultfd_reset_ctx() clears vm_userfaultfd_ctx and VM_UFFD_MISSING/VM_UFFD_WP on that whole
merged VMA, so a registered neighbour it merged with loses its registration too, the part of
the source VMA left in place among them, though nothing moved into it.  Nothing merges again
after the reset.  Measured on 6.18 (seed 13131 script 803): the tail of a never-written 4 MiB
registered VMA mremapped to the 4 MiB just below it merges with the VMA's head, and the head
is no longer registered, so UFFDIO_MOVE into it is EINVAL.  And (script 471) a page
mremapped off the bottom of a never-written 2052K VMA, grown to 1M and moved back just below
it, merges with it, so the 2 MiB range the merged VMA now covers takes a THP fault.

The simulation keeps sys_mremap()'s order (split the source, move, unmap it, merge around the
new VMA), which gives the kernel's VMAs: the new range merges in the end with what is left of
a neighbour it merged with in the kernel (vma_merge_around() and copy_vma() ask
vma_merge_sides() alike: with neighbours on both sides that qualify but have different
anon_vmas, both take the one below).  copy_vma()
gives the extent of the VMA the kernel's merge makes, measured before anything moves; once
the moved range is unmapped from it, that extent holds exactly the VMAs whose registration
mremap_userfaultfd_prep() drops.  Merging after the move gives the kernel's VMA lists also for
never-written pages moved to just past their own VMA and back below it (measured on 6.18.44).
The simulation has one userfaultfd per process, so the same context is the same VM_UFFD_* flags.
"""

from __future__ import annotations

from .constants import PAGE_SHIFT
from .mm_types import MmStruct
from .mmap import vma_merge_sides
from .vma import VM, VM_UFFD_FLAGS, VmArea


def copy_vma(mm: MmStruct, vma: VmArea, start: int, addr: int, length: int) -> tuple[VmArea, tuple[int, int]]:
    """copy_vma(): the VMA for [addr, addr+length), copied from vma's range at start (not yet
    inserted), and the [lo, hi) of the VMA the kernel makes by merging it with its neighbours.

    vma is the source VMA before the move splits it, and [addr, addr+length) holds no VMA."""
    pgoff = vma.linear_page_index(start) if vma.anon_vma else addr >> PAGE_SHIFT
    new = VmArea(start=addr, end=addr + length, flags=vma.flags, pgoff=pgoff,
                 anon_vma=vma.anon_vma, anon_vma_chain=vma.anon_vma_chain)
    prev = mm.find_vma(addr - 1)
    nxt = mm.find_vma(addr + length)
    left, right = vma_merge_sides(prev, new, nxt)
    lo = prev.start if left and prev is not None else addr
    hi = nxt.end if right and nxt is not None else addr + length
    return new, (lo, hi)


def mremap_userfaultfd_prep(mm: MmStruct, flags: VM, merged: tuple[int, int]) -> None:
    """mremap_userfaultfd_prep(): without UFFD_FEATURE_EVENT_REMAP, userfaultfd_reset_ctx() on
    the VMA copy_vma() made (extent `merged`, flags the source's): every VMA left in that
    extent loses its registration."""
    if not flags & VM_UFFD_FLAGS:
        return
    lo, hi = merged
    for v in mm.vmas_in(lo, hi):
        v.flags &= ~VM_UFFD_FLAGS
