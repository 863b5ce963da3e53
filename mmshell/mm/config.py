"""The machine's settings: what `set` changes (the sysfs knobs and the series switch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class ThpMode(Enum):
    """/sys/kernel/mm/transparent_hugepage/enabled."""

    ALWAYS = "always"
    MADVISE = "madvise"
    NEVER = "never"


class Deposit(Enum):
    """Whether a PMD-level entry owns a pre-allocated PTE table (`set deposit`).

    EAGER is the kernel today, mainline and the PMD swap series alike: every
    present THP PMD, huge zero PMD and (series) PMD swap entry has one table
    deposited with pgtable_trans_huge_deposit().  LAZY is a what-if for the
    lazy page-table deposit series (Usama Arif, "mm: thp: lazy PTE page table
    allocation at PMD split time", 2026): nothing is deposited and a split
    allocates the table it fills.
    """

    EAGER = "eager"
    LAZY = "lazy"


class FailMode(Enum):
    """How a fault-injection point behaves."""

    OFF = "off"
    ON = "on"      # fail every time
    ONCE = "once"  # fail the next time, then turn off


class FaultPoint(Enum):
    """Named fault-injection points (`set fail POINT on|off|once`)."""

    THP_ALLOC = "thp_alloc"          # PMD-order folio allocation: fault, swap-in, fork, swapoff
    SWAP_CLUSTER = "swap_cluster"    # no free 2 MiB swap cluster: THP_SWPOUT_FALLBACK
    MEMCG_CHARGE = "memcg_charge"    # memcg charge of a new folio
    ZSWAP = "zswap"                  # zswap has (had) entries: forces the PTE split at swap-out
    SPLIT_RACE = "split_race"        # the cached folio was split under us (F5)
    RMAP_SPLIT = "rmap_split"        # an rmap-driven split of a swap-cache folio (F6)
    SWAP_CONT = "swap_cont"          # count-continuation page allocation


@dataclass(slots=True)
class Config:
    """Kernel configuration; defaults follow the contract and the measured 6.18 machine."""

    pmd_swap: bool = True
    thp: ThpMode = ThpMode.MADVISE
    zswap: bool = False
    ram: int = 1 << 30
    use_zero_page: bool = True
    max_ptes_swap: int = 64
    max_ptes_none: int = 511
    max_ptes_shared: int = 256
    page_cluster: int = 3           # /proc/sys/vm/page-cluster: swap readahead reads 2**N slots
    deposit: Deposit = Deposit.EAGER
    fail: dict[FaultPoint, FailMode] = field(default_factory=dict)

    def should_fail(self, point: FaultPoint) -> bool:
        """Consult (and for `once`, consume) a fault-injection point."""
        if not self.fail:           # no point ever set: no Enum hashing on the hot paths
            return False
        mode = self.fail.get(point, FailMode.OFF)
        if mode is FailMode.ONCE:
            self.fail[point] = FailMode.OFF
            return True
        return mode is FailMode.ON
