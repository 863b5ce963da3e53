"""Copy-on-write reuse of a PTE-mapped THP (mm/memory.c, __wp_can_reuse_large_anon_folio).

Since 6.16 ("mm: Copy-on-Write (COW) reuse support for PTE-mapped THP"), a write fault on a
read-only PTE that maps a page of a large anonymous folio reuses the page, as for a small
folio mapped once, when the folio is exclusive to the faulting mm: more than one page of it
is mapped, every mapping is in this mm's page tables (the folio's _mm_ids do not say
"maybe mapped shared"), and every reference is a mapping (folio_large_mapcount() ==
folio_ref_count(): a folio still in the swap cache is first freed from it if no swap PTE
references its slots).  The page gets PageAnonExclusive and its PTE becomes writable; the
folio stays whole and mapped, so nothing is queued for deferred split.

That is the state a THP is in after a fork whose child unmapped its copy (the parent's
pages lost PageAnonExclusive when the fork duplicated them) and a PMD split in the parent
(mremap to an address of another 2 MiB alignment, mprotect or munmap of part of it):
measured on 6.18.44, writing such a folio moves neither thp_deferred_split_page nor
nr_anon_partially_mapped (tests/kernel/141_cow_reuse_pte_mapped_thp.mmsh).

Left out: the kernel keeps two mm-id slots per folio and a shared bit, cleared when one slot
holds every mapping; a folio first mapped by two other processes and now by a third alone
stays "maybe shared" there (and is copied), where the simulation counts the mappings in the
faulting mm's page tables and reuses it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import PAGE_SHIFT, PMD_SIZE, pmd_index, pte_index
from .folio import PG
from .mm_types import MmStruct
from .pgtable import F_SPECIAL, PmdKind, pmd_pgtable, pte_pfn, pte_present
from .swap_state import folio_free_swap

if TYPE_CHECKING:
    from .kernel import Kernel


def folio_mm_mapcount(k: "Kernel", mm: MmStruct, head: int) -> int:
    """The PTEs of mm mapping pages of the large folio at `head` (what the folio's
    _mm_id_mapcount slot of mm holds, plus one), for a fault on one of them.

    The folio's pages are looked for where rmap finds them: in each VMA of mm on the folio's
    anon_vma, at the address of the folio's index there (vma_address()).  No PMD of mm maps
    the folio: an anonymous page is mapped at most once in an mm, and one of its pages is
    mapped by the faulting PTE.
    """
    mem = k.mem
    av = mem.anon_vma[head]
    index = mem.index[head]
    nr = mem.nr_pages(head)
    last = head + nr
    total = 0
    for vma in mm.vmas:
        if vma.anon_vma != av and av not in vma.anon_vma_chain:
            continue
        first = vma.address_of(index)
        addr = max(first, vma.start)
        end = min(first + (nr << PAGE_SHIFT), vma.end)
        while addr < end:
            stop = min(end, (addr & ~(PMD_SIZE - 1)) + PMD_SIZE)
            pmd = mm.pmds.get(pmd_index(addr))
            if pmd is not None and pmd.kind is PmdKind.TABLE:
                ptes = pmd_pgtable(pmd).ptes[pte_index(addr):pte_index(addr) + ((stop - addr) >> PAGE_SHIFT)]
                total += sum(1 for pte in ptes
                             if pte_present(pte) and not pte & F_SPECIAL and head <= pte_pfn(pte) < last)
            addr = stop
    return total


def wp_can_reuse_large_anon_folio(k: "Kernel", mm: MmStruct, head: int) -> bool:
    """__wp_can_reuse_large_anon_folio(): whether a write fault in mm may reuse a page of the
    large folio at `head` instead of copying it."""
    mem = k.mem
    mapcount = mem.folio_mapcount(head)
    # "Let's just free up a large folio if only a single page is mapped."
    if mapcount <= 1:
        return False
    # FOLIO_MM_IDS_SHARED_BITNUM: some mapping is in another mm.  A page mapped twice is
    # mapped by two mms (an anonymous page is mapped at most once in each): no need to count.
    if mem.folio_maybe_mapped_shared(head) or folio_mm_mapcount(k, mm, head) != mapcount:
        return False
    if mem.test(head, PG.SWAPCACHE):
        # "freeing up the swapcache will fail if some PTEs are still swap entries"; the swap
        # cache's references then make folio_ref_count() exceed the mapcount.
        folio_free_swap(k, head)
    return not mem.test(head, PG.SWAPCACHE)
