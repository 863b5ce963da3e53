"""The sysfs knobs a live run writes, each restored afterwards; khugepaged on request.

`Tunables.set()` remembers a knob's value the first time it is written and
`restore()` puts every one back, newest first.  Only the knobs in `MANAGED`
are ever written, and only with the values they take: a journal step
(journal.py) naming anything else is refused at replay.  A step also lists
every value the run wrote, so that replay restores a knob only while it still
holds one of them (a knob someone changed since is left alone).  At the start of a run the
knobs are brought to the simulator's defaults (THP ``enabled=madvise``,
``hugepages-2048kB/enabled=inherit``, every other mTHP size ``never``,
``use_zero_page=1``, khugepaged ``max_ptes_none=511``, ``max_ptes_swap=64``,
``max_ptes_shared=256``, zswap off, ``vm.page-cluster=3``), so that a script sees
the machine the simulator boots.

khugepaged (kernel-semantics §0.4): it would otherwise scan on its own timer
and whenever a process registers.  `park()` raises ``pages_to_scan`` so that
one wake-up is exactly one full pass (khugepaged_do_scan stops when it passes
the list head a second time), sets a one-hour ``scan_sleep_millisecs`` and
waits for the pass that write triggers.  `one_pass()` writes the sleep again
(the write wakes khugepaged, scan_sleep_millisecs_store) and waits until
``full_scans`` grows: one full scan-and-collapse pass, as `khugepaged` means.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from .devices import signals_deferred
from .journal import Journal, NotProven, Step

THP = Path("/sys/kernel/mm/transparent_hugepage")
KHUGEPAGED = THP / "khugepaged"
ZSWAP_ENABLED = Path("/sys/module/zswap/parameters/enabled")
PAGE_CLUSTER = Path("/proc/sys/vm/page-cluster")
PARK_SLEEP_MS = 3_600_000
PAGES_PER_PASS = 1 << 24        # 64 GiB of PMD ranges per wake-up: always a full pass
PASS_TIMEOUT = 20.0


class TunableError(RuntimeError):
    pass


_WORDS = {"enabled": ("always", "madvise", "never"), "size": ("always", "inherit", "madvise", "never"),
          "bool": ("0", "1"), "yn": ("Y", "N")}
_NUMBER = re.compile(r"[0-9]{1,10}")
#: Every knob a live run writes: path -> the values it takes (a tuple of words, or a number).
MANAGED: dict[str, tuple[str, ...] | re.Pattern[str]] = {
    str(THP / "enabled"): _WORDS["enabled"],
    str(THP / "use_zero_page"): _WORDS["bool"],
    **{str(KHUGEPAGED / n): _NUMBER for n in ("max_ptes_none", "max_ptes_swap", "max_ptes_shared",
                                               "pages_to_scan", "scan_sleep_millisecs")},
    str(ZSWAP_ENABLED): _WORDS["yn"],
    str(PAGE_CLUSTER): re.compile(r"[0-9]|[12][0-9]|3[01]"),      # the sysctl takes 0..31
}
#: The per-size mTHP knobs: hugepages-<N>kB/enabled.
_MTHP_KNOB = re.compile(re.escape(str(THP)) + r"/hugepages-[0-9]{1,8}kB/enabled")


def knob_values(path: str) -> tuple[str, ...] | re.Pattern[str]:
    """The values a managed knob takes; ValueError for a path a live run never writes."""
    if path in MANAGED:
        return MANAGED[path]
    if _MTHP_KNOB.fullmatch(path):
        return _WORDS["size"]
    raise ValueError(f"{path!r} is not a knob a live run writes")


def _valid(values: tuple[str, ...] | re.Pattern[str], value: Any) -> bool:
    if not isinstance(value, str):
        return False
    return value in values if isinstance(values, tuple) else values.fullmatch(value) is not None


def check_knob_step(args: dict[str, Any]) -> None:
    """Raise ValueError unless args are a knob step a live run writes: a managed knob, its old
    value and the values the run wrote, each one the knob takes."""
    values = knob_values(args.get("path"))            # type: ignore[arg-type]
    written = args.get("written")
    if not _valid(values, args.get("old")) or not isinstance(written, list) \
            or not all(_valid(values, w) for w in written):
        raise ValueError(f"values for {args.get('path')} that it does not take")


def read_knob(path: Path) -> str:
    """A knob's value; for the `[selected] other` files, the selected word."""
    text = path.read_text().strip()
    if "[" in text:
        return text[text.index("[") + 1:text.index("]")]
    return text


def undo_knob(step: Step, same_boot: bool = True) -> str | None:
    """Write a knob back to the value a `knob` step saved; what was done, or None if it had it.

    Only while the knob holds a value the run wrote (NotProven otherwise: someone changed it
    since), and only in the boot the run was in (a reboot set every knob afresh)."""
    path, old = Path(step.args["path"]), step.args["old"]
    knob_values(str(path))
    now = read_knob(path)
    if now == old:
        return None
    if not same_boot:
        raise NotProven(f"{path}: the journal is from an earlier boot (the knob was set afresh at boot)")
    if now not in step.args["written"]:
        raise NotProven(f"{path} = {now}, which the run never wrote: someone changed it since")
    path.write_text(old)
    return f"{path} = {old}"


class Tunables:
    def __init__(self, journal: Journal | None = None) -> None:
        self.saved: dict[Path, Step] = {}               # knob -> its journal step, in first-write order
        self.journal = journal if journal is not None else Journal(None)

    def set(self, path: Path, value: str) -> None:
        """Write a managed knob (the old value and every value written are journaled first)."""
        if not _valid(knob_values(str(path)), value):
            raise TunableError(f"{value!r} is not a value {path} takes")
        if not path.exists():
            raise TunableError(f"{path} does not exist on this kernel")
        old = read_knob(path)
        step = self.saved.get(path)
        if step is None:
            step = self.saved[path] = self.journal.add(Step("knob", {"path": str(path), "old": old,
                                                                     "written": []}))
        if old == value:
            return
        with signals_deferred():
            if value not in step.args["written"]:
                step = self.saved[path] = self.journal.replace(
                    step, step.with_args(written=step.args["written"] + [value]))
            try:
                path.write_text(value)
            except OSError as e:
                raise TunableError(f"write {value!r} to {path}: {e.strerror or e}") from None

    def restore(self) -> list[str]:
        """Every knob written back, newest first; the errors (those stay in the journal)."""
        errors = []
        with signals_deferred():
            for path, step in reversed(list(self.saved.items())):
                try:
                    undo_knob(step)
                except NotProven as e:
                    errors.append(f"left alone: {e}")
                except OSError as e:
                    errors.append(f"restore {path} to {step.args['old']!r}: {e.strerror or e}")
                    continue
                self.journal.drop(step)
        self.saved.clear()
        return errors

    # -- the simulator's machine -------------------------------------------------------------------
    def simulator_defaults(self) -> None:
        self.set(THP / "enabled", "madvise")
        for d in sorted(THP.glob("hugepages-*kB")):
            if not (d / "enabled").exists():     # shmem-only sizes (order 1) have no anon knob
                continue
            want = "inherit" if d.name == "hugepages-2048kB" else "never"
            self.set(d / "enabled", want)
        self.set(THP / "use_zero_page", "1")
        self.set(KHUGEPAGED / "max_ptes_none", "511")
        self.set(KHUGEPAGED / "max_ptes_swap", "64")
        self.set(KHUGEPAGED / "max_ptes_shared", "256")
        if ZSWAP_ENABLED.exists():
            self.set(ZSWAP_ENABLED, "N")
        self.set(PAGE_CLUSTER, "3")

    # -- khugepaged ------------------------------------------------------------------------------
    def park_khugepaged(self) -> None:
        """One wake-up = one full pass, and no wake-up but on request."""
        self.set(KHUGEPAGED / "pages_to_scan", str(PAGES_PER_PASS))
        self.set(KHUGEPAGED / "scan_sleep_millisecs", str(PARK_SLEEP_MS))

    def rewrite(self, path: Path, value: str) -> None:
        """Write a managed knob even when it holds value already (a write to the khugepaged
        sleep wakes khugepaged: scan_sleep_millisecs_store)."""
        self.set(path, value)
        with signals_deferred():
            path.write_text(value)

    def khugepaged_pass(self) -> int:
        """Wake khugepaged and wait for the pass to end; returns the full_scans seen after.

        If no pass ends in time (khugepaged sleeping after a failed THP allocation,
        alloc_sleep_millisecs, or a knob changed under us), the parking knobs are written
        again, which wakes it once more, and the wait repeats once.
        """
        before = full_scans()
        for attempt in range(2):
            if attempt:
                self.set(KHUGEPAGED / "pages_to_scan", str(PAGES_PER_PASS))
            self.rewrite(KHUGEPAGED / "scan_sleep_millisecs", str(PARK_SLEEP_MS))
            deadline = time.monotonic() + PASS_TIMEOUT / 2
            while time.monotonic() < deadline:
                now = full_scans()
                if now > before:
                    return now
                time.sleep(0.001)
        knobs = ", ".join(f"{n}={read_knob(KHUGEPAGED / n)}" for n in
                          ("pages_to_scan", "scan_sleep_millisecs", "alloc_sleep_millisecs"))
        raise TunableError(f"khugepaged did not finish a pass within {PASS_TIMEOUT:.0f} s "
                           f"(full_scans stayed {before}; {knobs}; THP enabled="
                           f"{read_knob(THP / 'enabled')})")


def full_scans() -> int:
    return int((KHUGEPAGED / "full_scans").read_text())


def khugepaged_running() -> bool:
    """khugepaged runs while PMD-size THP is enabled anywhere (start_stop_khugepaged)."""
    top = read_knob(THP / "enabled")
    pmd = read_knob(THP / "hugepages-2048kB" / "enabled")
    return pmd in ("always", "madvise") or (pmd == "inherit" and top != "never")
