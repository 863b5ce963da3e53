"""The sysfs knobs a live run writes, each restored afterwards; khugepaged on request.

`Tunables.set()` remembers a knob's value the first time it is written and
`restore()` puts every one back, newest first.  At the start of a run the
knobs are brought to the simulator's defaults (THP ``enabled=madvise``,
``hugepages-2048kB/enabled=inherit``, every other mTHP size ``never``,
``use_zero_page=1``, khugepaged ``max_ptes_none=511``, ``max_ptes_swap=64``,
``max_ptes_shared=256``, zswap off), so that a script sees the machine the
simulator boots.

khugepaged (kernel-semantics §0.4): it would otherwise scan on its own timer
and whenever a process registers.  `park()` raises ``pages_to_scan`` so that
one wake-up is exactly one full pass (khugepaged_do_scan stops when it passes
the list head a second time), sets a one-hour ``scan_sleep_millisecs`` and
waits for the pass that write triggers.  `one_pass()` writes the sleep again
(the write wakes khugepaged, scan_sleep_millisecs_store) and waits until
``full_scans`` grows: one full scan-and-collapse pass, as `khugepaged` means.
"""

from __future__ import annotations

import time
from pathlib import Path

from .devices import signals_deferred
from .journal import Journal, Step

THP = Path("/sys/kernel/mm/transparent_hugepage")
KHUGEPAGED = THP / "khugepaged"
ZSWAP_ENABLED = Path("/sys/module/zswap/parameters/enabled")
PARK_SLEEP_MS = 3_600_000
PAGES_PER_PASS = 1 << 24        # 64 GiB of PMD ranges per wake-up: always a full pass
PASS_TIMEOUT = 20.0


class TunableError(RuntimeError):
    pass


def read_knob(path: Path) -> str:
    """A knob's value; for the `[selected] other` files, the selected word."""
    text = path.read_text().strip()
    if "[" in text:
        return text[text.index("[") + 1:text.index("]")]
    return text


def undo_knob(step: Step) -> str | None:
    """Write a knob back to the value a `knob` step saved; what was done, or None if it had it."""
    path, value = Path(step.args[0]), step.args[1]
    if read_knob(path) == value:
        return None
    path.write_text(value)
    return f"{path} = {value}"


class Tunables:
    def __init__(self, journal: Journal | None = None) -> None:
        self.saved: list[tuple[Path, str, Step]] = []
        self._known: set[Path] = set()
        self.journal = journal if journal is not None else Journal(None)

    def set(self, path: Path, value: str) -> None:
        if not path.exists():
            raise TunableError(f"{path} does not exist on this kernel")
        old = read_knob(path)
        if path not in self._known:
            self.saved.append((path, old, self.journal.add(Step("knob", (str(path), old)))))
            self._known.add(path)
        if old == value:
            return
        with signals_deferred():
            try:
                path.write_text(value)
            except OSError as e:
                raise TunableError(f"write {value!r} to {path}: {e.strerror or e}") from None

    def restore(self) -> list[str]:
        """Every knob written back, newest first; the errors (those stay in the journal)."""
        errors = []
        with signals_deferred():
            for path, value, step in reversed(self.saved):
                try:
                    undo_knob(step)
                except OSError as e:
                    errors.append(f"restore {path} to {value!r}: {e.strerror or e}")
                    continue
                self.journal.drop(step)
        self.saved.clear()
        self._known.clear()
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

    # -- khugepaged ------------------------------------------------------------------------------
    def park_khugepaged(self) -> None:
        """One wake-up = one full pass, and no wake-up but on request."""
        self.set(KHUGEPAGED / "pages_to_scan", str(PAGES_PER_PASS))
        self.set(KHUGEPAGED / "scan_sleep_millisecs", str(PARK_SLEEP_MS))

    def khugepaged_pass(self) -> int:
        """Wake khugepaged and wait for the pass to end; returns the full_scans seen after.

        If no pass ends in time (khugepaged sleeping after a failed THP allocation,
        alloc_sleep_millisecs, or a knob changed under us), the parking knobs are written
        again, which wakes it once more, and the wait repeats once.
        """
        before = full_scans()
        for attempt in range(2):
            with signals_deferred():
                if attempt:
                    (KHUGEPAGED / "pages_to_scan").write_text(str(PAGES_PER_PASS))
                (KHUGEPAGED / "scan_sleep_millisecs").write_text(str(PARK_SLEEP_MS))
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
