"""The order rmap_walk_anon() visits the VMAs linked into an anon_vma (mm/interval_tree.c).

An anon_vma keeps its anon_vma_chain entries in an interval tree (rb_root of
anon_vma_interval_tree), keyed by the VMA's page-offset range [vm_pgoff, vma_last_pgoff];
rmap_walk_anon() visits the entries overlapping the folio's index range with
anon_vma_interval_tree_foreach(), in the tree's order: by vm_pgoff, and among entries with
the same vm_pgoff in insertion order, since the generic insert
(include/linux/interval_tree_generic.h) goes left only when `start < ITSTART(parent)` and
an equal start to the right, behind every entry already there.

An entry is (re)inserted whenever its VMA joins the tree or changes its range:
- anon_vma_prepare() at the first fault links the VMA's own new anon_vma;
- anon_vma_fork() (dup_mmap, one VMA after another in address order) links the child's VMA
  into every anon_vma of the parent's chain, behind the parent's own VMA;
- copy_vma() (mremap's move) links the new VMA into the source's anon_vmas
  (anon_vma_clone()), behind every VMA there, the other processes' included;
- __split_vma() links the new part (anon_vma_clone()) and vma_prepare()/vma_complete()
  take the old part out of the trees and put it back
  (anon_vma_interval_tree_pre_update_vma()/post_update_vma()): both go behind;
- a merge (vma_expand(), commit_merge()) does the same to the VMA that grows.

The simulation stamps the VMA with a serial (VmArea.avc_seq) at each such step; ordered by
(vm_pgoff, serial), VMAs come in the tree's in-order.  So after a fork, the parent's VMA
comes before its child's at the same offset, but after `mremap` in the parent, the parent's
new VMA comes after the child's (measured on 6.18.44: tests/kernel/139_*.mmsh).  One serial
per VMA serves all the trees it is linked into, since each step links the VMA into all of
them at once.  Left out: the tree's range query (the walk looks at every linked VMA and
keeps those mapping the folio, the same set).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .kernel import Kernel
    from .vma import VmArea


def anon_vma_interval_tree_insert(k: "Kernel", *vmas: "VmArea") -> None:
    """(Re)insert each VMA's anon_vma_chain entries, in the order given: behind every entry
    with the same vm_pgoff already there."""
    for vma in vmas:
        vma.avc_seq = k.next_avc_seq
        k.next_avc_seq += 1


def anon_vma_walk_key(vma: "VmArea") -> tuple[int, int]:
    """The VMA's place in anon_vma_interval_tree_foreach()'s order."""
    return vma.pgoff, vma.avc_seq
