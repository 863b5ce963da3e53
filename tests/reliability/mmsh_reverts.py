"""The fixes of issue 9's defects 1-6, each taken out of mmshell/mm by one small edit.

The reach check (mmsh_reach.py, docs/reliability.md) asks whether the random
suites find each defect when its fix is reverted.  `REVERTS` declares, per
defect, the text of today's fix and what it becomes without it; `apply`
makes those edits in a copy of the tree, and `scripts/reach_survey` runs the
stateful suites on one such copy per defect.  An edit whose text is no longer
in its file exactly once raises (the fix moved: update the edit), and
`test_reverts.py` checks that on every run of the suite, so the survey never
silently measures a tree that still has the fix.

Reverting one fix at a time measures what the done-means of issue 9 asks:
with every fix out at once, the first defect an example meets breaks the
machine and ends that example, which hides the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Edit:
    """Replace `old` (found exactly once in `path`, relative to the tree) by `new`."""
    path: str
    old: str
    new: str


@dataclass(frozen=True)
class Revert:
    """A defect's fix taken out: the edits, and the regression scenarios that then fail."""
    edits: tuple[Edit, ...]
    scenarios: tuple[str, ...]


def _scenarios(*names: str) -> tuple[str, ...]:
    return tuple(f"tests/scenarios/regressions/{name}.mmsh" for name in names)


REVERTS: dict[str, Revert] = {
    # pmd_swapin_fallback() no longer falls back when some of the entry's slots are cached as
    # smaller folios (do_huge_pmd_swap_page() still splits when the first slot is)
    "1": Revert(
        (Edit("mmshell/mm/huge_memory.py",
              "    si = k.swp_info(entry.type)\n"
              "    if si.cache.any_in(entry.offset, HPAGE_PMD_NR):\n"
              "        return \"slots cached as smaller folios\"\n",
              ""),),
        _scenarios("pmd_swapin_over_cached_small_folios", "swapoff_over_cached_small_folios")),
    # a slot cached in a large folio no longer refuses UFFDIO_MOVE of a split PMD swap entry
    "2": Revert(
        (Edit("mmshell/mm/userfaultfd.py",
              "                if cached is not None and mem.order[cached]:\n"
              "                    raise _refusal(off, \"EBUSY\", "
              "f\"swap entry at {where} is cached in a large folio\")\n",
              ""),),
        _scenarios("uffd_move_split_pmd_swap_entry_cached")),
    # swapoff clears SWP_WRITEOK only after try_to_unuse(): its allocations may swap to the device
    "3": Revert(
        (Edit("mmshell/mm/swapoff.py",
              "    swapoff_needs(k, si)\n"
              "    k.swap_prio_order.remove(si.type)\n"
              "    si.writeok = False\n"
              "    try_to_unuse(k, si)\n",
              "    swapoff_needs(k, si)\n"
              "    try_to_unuse(k, si)\n"
              "    k.swap_prio_order.remove(si.type)\n"
              "    si.writeok = False\n"),),
        _scenarios("swapoff_reclaim_to_the_removed_device")),
    # pmd_swapin_fallback() no longer falls back once zswap has been enabled
    "4": Revert(
        (Edit("mmshell/mm/huge_memory.py",
              "    if k.zswap_ever_enabled:\n"
              "        return \"zswap was enabled\"\n",
              ""),),
        _scenarios("zswap_enabled_after_pmd_swapout")),
    # fork splits a PMD swap entry when its count continuation fails once (no GFP_KERNEL retry)
    "5": Revert(
        (Edit("mmshell/mm/huge_memory.py",
              "        k.trace(\"copy_huge_non_present_pmd(no count continuation): GFP_KERNEL retry\")\n"
              "        swap_duplicate(k, pmd.entry, HPAGE_PMD_NR)\n",
              "        return False\n"),),
        _scenarios("fork_swap_cont_retry")),
    # try_to_unmap_one() skips a PTE run of a folio not wholly inside the VMA
    "6": Revert(
        (Edit("mmshell/mm/rmap.py",
              "    i = max(0, (vma.start - first) >> PAGE_SHIFT)\n"
              "    end = min(nr, (vma.end - first) >> PAGE_SHIFT)\n",
              "    if first < vma.start or first + (nr << PAGE_SHIFT) > vma.end:\n"
              "        return True\n"
              "    i = max(0, (vma.start - first) >> PAGE_SHIFT)\n"
              "    end = min(nr, (vma.end - first) >> PAGE_SHIFT)\n"),),
        _scenarios("reclaim_thp_across_vma_edge")),
}


class RevertError(Exception):
    """An edit's text is not in its file exactly once."""


def reverted(text: str, edit: Edit) -> str:
    """`text` with `edit` made; RevertError if its old text is not there exactly once."""
    n = text.count(edit.old)
    if n != 1:
        raise RevertError(f"{edit.path}: the fix's text is there {n} times, not once:\n{edit.old}")
    return text.replace(edit.old, edit.new)


def apply(root: Path, defect: str) -> list[str]:
    """Take defect's fix out of the tree at `root`; the paths it changed."""
    texts: dict[str, str] = {}
    for edit in REVERTS[defect].edits:
        texts[edit.path] = reverted(texts.get(edit.path) or (root / edit.path).read_text(), edit)
    for path, text in texts.items():
        (root / path).write_text(text)
    return sorted(texts)
