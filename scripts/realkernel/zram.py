"""A throwaway zram swap device for real-kernel measurements.

``zram_swap(size_bytes)`` hot-adds a fresh ``/dev/zramN``, sizes it, runs
``mkswap`` and ``swapon -p PRIO`` on it, yields a :class:`ZramSwap`, and always
tears it down again (``swapoff``, ``reset``, ``hot_remove``), also when the
body raises or the user presses Ctrl-C.  Only the device this module created
is ever touched; other swap devices are only read from ``/proc/swaps`` and
reported in :attr:`ZramSwap.warnings`.

Usage::

    from zram import zram_swap
    with zram_swap(1 << 30) as dev:
        print(dev.path, dev.priority, dev.warnings)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
# /proc/swaps and signal deferral as the live-kernel runner has them (mmshell/kernel/devices.py).
from mmshell.kernel.devices import ActiveSwap as SwapDevice, active_swaps, signals_deferred  # noqa: E402

ZRAM_CONTROL = Path("/sys/class/zram-control")
PROC_SWAPS = Path("/proc/swaps")
MAX_SWAP_PRIO = 32767
PAGE_SIZE = 4096

_SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class ZramError(RuntimeError):
    """Setting up or tearing down the zram swap device failed (one-line message)."""


@dataclass
class ZramSwap:
    """The zram swap device yielded by :func:`zram_swap`.

    ``os.fspath(dev)`` and ``str(dev)`` give the device path, so it can be
    used wherever a path is expected.
    """

    path: Path
    num: int
    disksize: int
    priority: int
    comp_algorithm: str
    warnings: list[str] = field(default_factory=list)
    other_devices: list[SwapDevice] = field(default_factory=list)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


def _find_tool(name: str) -> str:
    """Locate an admin tool, also in the sbin directories missing from some PATHs."""
    found = shutil.which(name)
    if found:
        return found
    for d in _SBIN_DIRS:
        cand = Path(d) / name
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    raise ZramError(f"{name} not found (install util-linux)")


def _run(argv: list[str]) -> None:
    """Run a command; raise ZramError with its first stderr line on failure."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ZramError(f"{' '.join(argv)}: {exc}") from None
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        first = msg[0] if msg else f"exit status {proc.returncode}"
        raise ZramError(f"{' '.join(argv)}: {first}")


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise ZramError(f"write {value!r} to {path}: {exc.strerror or exc}") from None


def preflight() -> tuple[str, str, str]:
    """Check root, zram-control and the swap tools; return (mkswap, swapon, swapoff)."""
    if os.geteuid() != 0:
        raise ZramError("must run as root to create a zram swap device")
    if not (ZRAM_CONTROL / "hot_add").exists():
        raise ZramError(f"{ZRAM_CONTROL} missing (zram module not loaded? try: modprobe zram)")
    return _find_tool("mkswap"), _find_tool("swapon"), _find_tool("swapoff")


def _teardown(num: int, swapped_on: bool, swapoff: str) -> list[str]:
    """Undo everything for /dev/zram{num}; return the errors (never raises)."""
    errors: list[str] = []
    dev = f"/dev/zram{num}"
    if swapped_on or any(d.filename == dev for d in active_swaps()):
        try:
            _run([swapoff, dev])
        except ZramError as exc:
            errors.append(str(exc))
            # Still active: resetting/removing would fail or be unsafe.
            return errors
    block = Path(f"/sys/block/zram{num}")
    if block.exists():
        try:
            _write(block / "reset", "1")
        except ZramError as exc:
            errors.append(str(exc))
    for attempt in range(20):
        try:
            _write(ZRAM_CONTROL / "hot_remove", str(num))
            break
        except ZramError as exc:
            # EBUSY right after swapoff/reset happens while udev still has it open.
            if attempt == 19:
                errors.append(str(exc))
            else:
                time.sleep(0.1)
    return errors


@contextmanager
def zram_swap(
    size_bytes: int,
    prio: int = MAX_SWAP_PRIO,
    comp_algorithm: str | None = None,
) -> Iterator[ZramSwap]:
    """Create, mkswap and swapon a fresh zram device; always tear it down.

    ``size_bytes`` is the zram disksize (rounded up to 4 KiB).  The device is
    swapped on at ``prio`` raised, if needed, to one above every active swap
    device, so that it takes all swap-out.  If that is impossible (another
    device already sits at 32767) a :class:`ZramError` is raised, because the
    kernel would then spread swap-out over both devices.  Other active swap
    devices produce an entry in :attr:`ZramSwap.warnings`.

    ``comp_algorithm`` (e.g. ``"lz4"``) is written before the disksize if
    given; otherwise the kernel default is used.

    Raises :class:`ZramError` when not root, when ``/sys/class/zram-control``
    is missing, when mkswap/swapon/swapoff are missing, or when a setup or
    teardown step fails.  Teardown errors are raised only if the body did not
    already raise (otherwise they are printed to stderr).
    """
    if size_bytes <= 0:
        raise ValueError("size_bytes must be positive")
    if not -1 <= prio <= MAX_SWAP_PRIO:
        raise ValueError(f"prio must be in [-1, {MAX_SWAP_PRIO}]")
    mkswap, swapon, swapoff = preflight()

    warnings: list[str] = []
    others = active_swaps()
    if others:
        names = ", ".join(f"{d.filename} (prio {d.priority})" for d in others)
        warnings.append(f"other active swap devices: {names}")
        top = max(d.priority for d in others)
        if top >= prio:
            if top >= MAX_SWAP_PRIO:
                raise ZramError(
                    f"cannot get above active swap priority {top}: {names}"
                )
            warnings.append(f"priority raised from {prio} to {top + 1}")
            prio = top + 1

    disksize = -(-size_bytes // PAGE_SIZE) * PAGE_SIZE
    num: int | None = None
    swapped_on = False
    body_raised = False
    try:
        with signals_deferred():
            try:
                num = int((ZRAM_CONTROL / "hot_add").read_text().strip())
            except (OSError, ValueError) as exc:
                raise ZramError(f"zram hot_add failed: {exc}") from None
        block = Path(f"/sys/block/zram{num}")
        dev = Path(f"/dev/zram{num}")
        if comp_algorithm:
            _write(block / "comp_algorithm", comp_algorithm)
        _write(block / "disksize", str(disksize))
        algo_line = (block / "comp_algorithm").read_text()
        algo = next(
            (w[1:-1] for w in algo_line.split() if w.startswith("[")), algo_line.strip()
        )
        for _ in range(50):  # udev/devtmpfs may take a moment to create the node
            if dev.exists():
                break
            time.sleep(0.1)
        else:
            raise ZramError(f"{dev} did not appear")
        _run([mkswap, str(dev)])
        with signals_deferred():
            _run([swapon, "-p", str(prio), str(dev)])
            swapped_on = True
        mine = [d for d in active_swaps() if d.filename == str(dev)]
        if not mine:
            raise ZramError(f"{dev} not listed in {PROC_SWAPS} after swapon")
        if mine[0].priority != prio:
            raise ZramError(f"{dev} has priority {mine[0].priority}, wanted {prio}")
        yield ZramSwap(dev, num, disksize, prio, algo, warnings, others)
    except BaseException:
        body_raised = True
        raise
    finally:
        if num is not None:
            with signals_deferred():
                errors = _teardown(num, swapped_on, swapoff)
            if errors:
                msg = f"teardown of /dev/zram{num} failed: " + "; ".join(errors)
                if body_raised:
                    print(f"zram: {msg}", file=sys.stderr)
                else:
                    raise ZramError(msg)


def _main() -> None:
    """Smoke test: create a 64 MiB device, show it, tear it down."""
    with zram_swap(64 << 20) as dev:
        print(f"{dev.path} prio={dev.priority} algo={dev.comp_algorithm} warnings={dev.warnings}")
        print(PROC_SWAPS.read_text(), end="")
    print("torn down; /proc/swaps now:")
    print(PROC_SWAPS.read_text(), end="")


if __name__ == "__main__":
    try:
        _main()
    except ZramError as exc:
        sys.exit(f"zram: {exc}")
