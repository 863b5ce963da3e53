"""The machine settings that ``set`` changes and ``if`` tests.

One :class:`SettingSpec` per setting; the registry builds the grammar of
``set`` and ``if`` from :data:`SETTINGS`, and the kernel's ``Config`` can
take its defaults from here.  :data:`FAULT_POINTS` is the one list of fault
injection points (``set fail POINT on|off|once``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from ..mm.config import FailMode, FaultPoint
from ..mm.constants import PAGE_CLUSTER_MAX
from .grammar import Arg, Grammar, Kind
from .values import PAGE_SIZE, format_size

__all__ = [
    "SettingKind", "SettingSpec", "SETTINGS", "FAULT_POINTS", "FAULT_MODES",
    "FAULT_POINT_HELP", "setting", "setting_names",
]

FAULT_POINTS: tuple[str, ...] = tuple(p.value for p in FaultPoint)
"""Fault injection points (the simulated kernel's ``FaultPoint``), in the order ``help fail`` lists them."""

FAULT_MODES: tuple[str, ...] = tuple(m.value for m in (FailMode.ON, FailMode.OFF, FailMode.ONCE))
"""``on``: every time; ``off``: never (the default); ``once``: the next time only."""

FAULT_POINT_HELP: dict[str, str] = {
    "thp_alloc": "PMD-order folio allocation fails (fault, swap-in, fork, swapoff, collapse)",
    "swap_cluster": "no free 2 MB swap cluster: folio_alloc_swap(order 9) fails (THP_SWPOUT_FALLBACK)",
    "memcg_charge": "the memcg charge of a new folio fails (swpin_fallback_charge)",
    "zswap": "the zswap path refuses the folio",
    "split_race": "the swap-cache folio was split under us: the PMD swap entry must be split (F5)",
    "rmap_split": "an rmap walker splits the PMD mapping of a swap-cache THP (F6)",
    "swap_cont": "a swap count continuation cannot be allocated: swap_duplicate() -ENOMEM",
}


class SettingKind(enum.Enum):
    """How a setting's value is written."""

    BOOL = "on|off"
    CHOICE = "choice"
    SIZE = "SIZE"
    INT = "N"
    FAULT = "POINT on|off|once"


@dataclass(frozen=True)
class SettingSpec:
    """One setting: its name, how its value is written, its default and meaning.

    ``default`` is the typed value (bool, str, int); for ``fail`` it is the
    mode of every point.  ``minimum``/``maximum`` bound SIZE and INT values.
    ``field`` is the attribute of the simulated kernel's ``Config`` it sets.
    On the live kernel: ``knob`` is the sysfs file it writes (``knob_words``:
    how on and off are written there), empty when it has none; ``live`` is
    True, or the reason ``set`` of it is refused there.
    A ``display`` setting changes what is printed, not the machine: the
    session keeps it, a refused command or an undo leaves it as it is.
    """

    name: str
    kind: SettingKind
    choices: tuple[str, ...]
    default: Any
    help: str
    minimum: int | None = None
    maximum: int | None = None
    field: str = ""
    knob: str = ""
    knob_words: tuple[str, str] = ("1", "0")
    live: bool | str = True
    display: bool = False

    def out_of_range(self, value: Any) -> str | None:
        """Why an INT value cannot be set (the grammar bounds what a script writes), or None."""
        if self.kind is SettingKind.INT and self.minimum is not None and self.maximum is not None \
                and not self.minimum <= value <= self.maximum:
            return f"{self.name} must be {self.minimum}..{self.maximum}"
        return None

    def knob_text(self, value: Any) -> str:
        """How ``value`` is written to the live knob: ``1``/``0`` (or ``Y``/``N``), a word, a number."""
        if self.kind is SettingKind.BOOL:
            return self.knob_words[0] if value else self.knob_words[1]
        return str(value)

    def from_knob(self, text: str) -> Any:
        """The typed value the live knob's text says (``read_knob`` strips the ``[brackets]``)."""
        match self.kind:
            case SettingKind.BOOL:
                return text == self.knob_words[0]
            case SettingKind.INT:
                return int(text)
            case _:
                return text

    def grammar(self, then: str | None = None) -> Grammar:
        """The words after ``set NAME`` (or ``if NAME``, with ``then=':'``)."""
        match self.kind:
            case SettingKind.BOOL:
                value = Arg("value", Kind.BOOL, "on|off", then=then)
            case SettingKind.CHOICE:
                value = Arg("value", Kind.ENUM, choices=self.choices, then=then)
            case SettingKind.SIZE:
                value = Arg("value", Kind.SIZE, "SIZE", minimum=self.minimum, then=then)
            case SettingKind.INT:
                value = Arg("value", Kind.INT, "N", minimum=self.minimum,
                            maximum=self.maximum, then=then)
            case SettingKind.FAULT:
                point = Arg("point", Kind.ENUM, "POINT", choices=FAULT_POINTS)
                return Grammar((point, Arg("value", Kind.ENUM, choices=FAULT_MODES, then=then)))
        return Grammar((value,))

    def format_value(self, value: Any) -> str:
        """The text of a value, as ``set`` takes it: ``on``, ``madvise``, ``1G``, ``64``."""
        match self.kind:
            case SettingKind.BOOL:
                return "on" if value else "off"
            case SettingKind.SIZE:
                return format_size(value)
            case _:
                return str(value)

    @property
    def usage(self) -> str:
        if self.kind is SettingKind.FAULT or not self.choices:
            return f"set {self.name} {self.kind.value}"
        return f"set {self.name} " + "|".join(self.choices)


_THP = "/sys/kernel/mm/transparent_hugepage/"
_KHUGEPAGED = _THP + "khugepaged/"


def _max_ptes(name: str, default: int, help: str) -> SettingSpec:
    """One of khugepaged's max_ptes_* limits: 0..511, the Config field and sysfs file of its name."""
    return SettingSpec(name, SettingKind.INT, (), default, f"khugepaged/{name}: {help}", minimum=0,
                       maximum=511, field=name, knob=_KHUGEPAGED + name)

SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "pmd_swap", SettingKind.BOOL, ("on", "off"), True,
        "on: the kernel carries the PMD swap entry series, so reclaim installs one PMD swap\n"
        "entry per THP (try_to_unmap_one > set_pmd_swap_entry). off: mainline today, where\n"
        "the PMD is split into 512 PTE swap entries (__split_huge_pmd).",
        field="pmd_swap",
    ),
    SettingSpec(
        "thp", SettingKind.CHOICE, ("always", "madvise", "never"), "madvise",
        "/sys/kernel/mm/transparent_hugepage/enabled: which mappings get THPs on fault\n"
        "(do_huge_pmd_anonymous_page) and from khugepaged.",
        field="thp", knob=_THP + "enabled",
    ),
    SettingSpec(
        "zswap", SettingKind.BOOL, ("on", "off"), False,
        "/sys/module/zswap/parameters/enabled. Once zswap has been on, the series keeps\n"
        "splitting THPs at swap-out (zswap_never_enabled() is false): the PTE-split fallback.",
        field="zswap", knob="/sys/module/zswap/parameters/enabled", knob_words=("Y", "N"),
    ),
    SettingSpec(
        "ram", SettingKind.SIZE, (), 1 << 30,
        "Simulated physical memory (MemTotal). A fault that finds no free frame runs\n"
        "direct reclaim (try_to_free_pages > shrink_folio_list).",
        minimum=PAGE_SIZE, field="ram",
        live="'set ram' sizes the simulated machine; the live machine has the memory it has",
    ),
    SettingSpec(
        "fail", SettingKind.FAULT, FAULT_MODES, "off",
        "Fault injection: set fail POINT on|off|once. Points: " + ", ".join(FAULT_POINTS) + ".",
        field="fail", live="fault injection ('set fail') exists only in the simulator",
    ),
    SettingSpec(
        "use_zero_page", SettingKind.BOOL, ("on", "off"), True,
        "/sys/kernel/mm/transparent_hugepage/use_zero_page: a read fault in a THP-enabled\n"
        "range maps the huge zero page (do_huge_pmd_anonymous_page, thp_zero_page_alloc).",
        field="use_zero_page", knob=_THP + "use_zero_page",
    ),
    _max_ptes("max_ptes_swap", 64, "the most swap PTEs khugepaged swaps in to collapse a\n"
              "PMD range (hpage_collapse_scan_pmd; more gives thp_scan_exceed_swap_pte)."),
    _max_ptes("max_ptes_none", 511, "the most empty PTEs a range may have and still collapse."),
    _max_ptes("max_ptes_shared", 256, "the most PTEs mapping shared pages a range may have\n"
              "and still collapse (thp_scan_exceed_share_pte)."),
    SettingSpec(
        "page_cluster", SettingKind.INT, (), 3,
        "/proc/sys/vm/page-cluster: a swap-in through the swap cache reads 2^N slots around\n"
        "the faulting one (swapin_readahead; 0: only that slot, no swap_ra).",
        minimum=0, maximum=PAGE_CLUSTER_MAX, field="page_cluster", knob="/proc/sys/vm/page-cluster",
    ),
    SettingSpec(
        "deposit", SettingKind.CHOICE, ("eager", "lazy"), "eager",
        "eager: the kernel today (mainline and the series): every PMD-mapped THP, huge zero\n"
        "PMD and PMD swap entry owns a deposited PTE table (pgtable_trans_huge_deposit).\n"
        "lazy: a what-if for the lazy page-table deposit series: nothing is deposited, and a\n"
        "PMD split allocates its PTE table then (nr_page_table_pages +1).",
        field="deposit",
    ),
    SettingSpec(
        "counters", SettingKind.CHOICE, ("key", "all"), "key",
        "Which counters the step summary lists. key: the ones that teach; the counters that\n"
        "restate another (nr_zone_* beside nr_*, pgfree beside nr_free_pages, the PMD-size\n"
        "mTHP stats beside their vmstat twins) are left out. all: every counter that moved.\n"
        "`help counters` lists the hidden ones; explain names every counter either way.",
        display=True,
    ),
    SettingSpec(
        "pager", SettingKind.BOOL, ("on", "off"), True,
        "At the interactive prompt, output longer than the screen goes through a pager\n"
        "(less: q leaves it). off: printed straight through. Scripts never page.",
        display=True,
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def setting(name: str) -> SettingSpec:
    """The setting called ``name``; ``KeyError`` if there is none."""
    return _BY_NAME[name]


def setting_names() -> tuple[str, ...]:
    """Every setting name, in declaration order."""
    return tuple(_BY_NAME)
