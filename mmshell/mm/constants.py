"""Sizes and limits of the simulated x86-64 machine (arch/x86/include/asm/page*.h, swap.h)."""

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PMD_SHIFT = 21
PMD_SIZE = 1 << PMD_SHIFT
PMD_MASK = ~(PMD_SIZE - 1)
HPAGE_PMD_ORDER = PMD_SHIFT - PAGE_SHIFT
HPAGE_PMD_NR = 1 << HPAGE_PMD_ORDER  # 512 pages in a PMD-mapped THP
PTRS_PER_PTE = 512
PTRS_PER_PMD = 512                   # PMD entries in a PMD table page: 1 GiB of address space

#: The end of the user address space: x86-64's TASK_SIZE_MAX with 4-level page tables,
#: (1 << 47) - PAGE_SIZE (arch/x86/include/asm/page_64_types.h: the top page is a guard
#: page, never mapped).  On 6.18 `mmap(0x7ffffffff000, 4096, MAP_FIXED)` fails ENOMEM.
TASK_SIZE = (1 << 47) - PAGE_SIZE
#: Where get_unmapped_area starts placing mappings (bottom-up, for determinism).
MMAP_BASE = 0x7F00_0000_0000 - (1 << 40)

#: swap_map byte layout (include/linux/swap.h, 6.18).
SWAP_HAS_CACHE = 0x40
SWAP_MAP_MAX = 0x3E
SWAP_MAP_BAD = 0x3F
COUNT_CONTINUED = 0x80
SWAP_CONT_MAX = 0x7F
SWAP_COUNT_MASK = 0x3F  # swap_map & ~(SWAP_HAS_CACHE | COUNT_CONTINUED)
SWAPFILE_CLUSTER = HPAGE_PMD_NR
MAX_SWAPFILES = 32  # MAX_SWAPFILES_SHIFT = 5

#: Largest machine the simulation accepts (`set ram`), and the largest swap device.
MAX_RAM = 64 << 30
MAX_SWAP = 64 << 30
#: All active swap devices together (each device's swap_map, zeromap and contents live in
#: host memory, and every command's checkpoint copies them).
MAX_SWAP_TOTAL = 64 << 30
#: Mapped address space per process (the RLIMIT_AS of the simulation: mmap and mremap beyond
#: it fail ENOMEM).  Whole-VMA operations walk a VMA 2 MiB at a time, so this bounds them.
MAX_MAPPED = 4 << 40
#: The longest range one command walks page by page (touch, check RANGE, uffd move, show pagemap).
MAX_ACCESS = 64 << 30
#: Page tables (PTE tables and THP deposits) over all processes: 512 GiB of populated
#: address space.  The kernel charges page tables to RAM; the simulation caps them instead.
MAX_PAGE_TABLES = 1 << 18
#: vm.max_map_count: VMAs per process.
MAX_MAP_COUNT = 65530
#: Host memory the simulated state may take (lang/budget.py costs it item by item: frames,
#: swap slots, folios, PMD entries, page tables, page contents, VMAs).  Each command's
#: checkpoint copies what it reaches (lang/snapshot.py), so host memory peaks at up to about
#: twice this.
HOST_BUDGET = 1536 << 20


def pmd_index(addr: int) -> int:
    """Index of the 2 MiB PMD slot covering addr (the simulation keys page tables by it)."""
    return addr >> PMD_SHIFT


def pte_index(addr: int) -> int:
    """Index of addr's PTE inside its PTE table."""
    return (addr >> PAGE_SHIFT) & (PTRS_PER_PTE - 1)

#: The largest page_cluster (`set page_cluster N`): a swap readahead window of at most 2**5
#: slots (the kernel's VMA-based readahead caps its window there too, SWAP_RA_ORDER_CEILING).
PAGE_CLUSTER_MAX = 5
