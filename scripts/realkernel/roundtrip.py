"""Time the real kernel doing one anonymous-THP swap round trip on zram.

The work is done by ``roundtrip.c`` (compiled on demand, see
:func:`compile_roundtrip`), run in ``--pause`` mode so that ``/proc/vmstat``
and the 2 MiB mTHP stats can be snapshotted between its phases::

    fault    one plain store per 4 KiB page of a MADV_HUGEPAGE, 2 MiB-aligned range
    pageout  madvise(MADV_PAGEOUT) over the range
    touch    one volatile load per 4 KiB page, verified against the stored value
    munmap   munmap of the range

:func:`run_roundtrip` sets up a fresh zram swap device (``zram.zram_swap``)
above every other swap device, parks khugepaged (long scan sleep) so it
cannot collapse the range mid-run, compacts memory before every run so the
THP faults succeed, runs the program ``repeat`` times, and undoes all of it,
also on error and Ctrl-C/SIGTERM.  Must run as root.

Command line::

    python3 scripts/realkernel/roundtrip.py 1G --repeat 3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zram import ZramError, preflight, signals_deferred, zram_swap  # noqa: E402

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "roundtrip.c"
THP_SYSFS = Path("/sys/kernel/mm/transparent_hugepage")
MTHP_2M = THP_SYSFS / "hugepages-2048kB"
KHUGEPAGED_SLEEP = THP_SYSFS / "khugepaged" / "scan_sleep_millisecs"
VMSTAT = Path("/proc/vmstat")

PAGE = 4096
HPAGE = 2 << 20
PHASES = ("fault", "pageout", "touch", "munmap")

#: /proc/vmstat counters reported for every phase.
VMSTAT_KEYS = (
    "thp_fault_alloc",
    "thp_swpout",
    "thp_swpout_fallback",
    "thp_split_pmd",
    "pswpin",
    "pswpout",
    "pgmajfault",
    "pgfault",
    "swpout_zero",
    "swpin_zero",
)
#: Further /proc/vmstat counters reported for a phase when they moved.
VMSTAT_EXTRA = (
    "thp_fault_fallback",
    "thp_fault_fallback_charge",
    "thp_split_page",
    "thp_split_page_failed",
    "thp_deferred_split_page",
    "thp_underused_split_page",
    "thp_collapse_alloc",
    "thp_zero_page_alloc",
    "swap_ra",
    "swap_ra_hit",
    "pgpgin",
    "pgpgout",
    "pgsteal_anon",
    "pgscan_anon",
    "pgrefill",
    "zswpin",
    "zswpout",
    "compact_stall",
    "nr_swapcached",
)
#: hugepages-2048kB/stats/* reported for every phase (prefixed "mthp_").
MTHP_KEYS = (
    "anon_fault_alloc",
    "swpout",
    "swpout_fallback",
    "swpin",
    "swpin_fallback",
    "nr_anon",
)

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)


class RoundtripError(RuntimeError):
    """The roundtrip program could not be built or did not run to completion."""


def parse_size(text: str) -> int:
    """Parse ``1G``, ``512M``, ``16G``, ``64k``, ``1GiB`` or plain bytes (binary units)."""
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError(f"bad size {text!r} (expected e.g. 1G, 512M, 4096)")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    return int(m.group(1)) * mult[m.group(2).lower()]


def human_size(n: int) -> str:
    """Format a byte count as the largest exact binary unit (``1G``, ``256M``)."""
    for unit, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


def compile_roundtrip(cache_dir: Path | None = None) -> Path:
    """Build ``roundtrip.c`` with ``gcc -O2`` and return the binary's path.

    The binary goes to ``cache_dir`` (default ``$XDG_CACHE_HOME/mmshell-realkernel``
    or ``~/.cache/mmshell-realkernel``) under a name keyed by the source's hash,
    so an edited source is rebuilt and nothing is written into the repository.
    """
    if cache_dir is None:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        cache_dir = Path(base) / "mmshell-realkernel"
    try:
        digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
        binary = cache_dir / f"roundtrip-{digest}"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".roundtrip-", dir=cache_dir)
    except OSError as exc:
        raise RoundtripError(f"cannot build into {cache_dir}: {exc}") from None
    os.close(fd)
    cc = os.environ.get("CC", "gcc")
    try:
        proc = subprocess.run(
            [cc, "-O2", "-Wall", "-Wextra", "-o", tmp, str(SOURCE)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RoundtripError(f"{cc} failed:\n{proc.stderr.strip()}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, binary)
    except FileNotFoundError:
        raise RoundtripError(f"{cc} not found (set CC or install gcc)") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return binary


# ---------------------------------------------------------------- counters


def _read_vmstat() -> dict[str, int]:
    out: dict[str, int] = {}
    for line in VMSTAT.read_text().splitlines():
        k, _, v = line.partition(" ")
        out[k] = int(v)
    return out


def _read_mthp_stats() -> dict[str, dict[str, int]]:
    """All ``hugepages-*/stats/*`` values, keyed by size dir then stat name."""
    out: dict[str, dict[str, int]] = {}
    for d in sorted(THP_SYSFS.glob("hugepages-*kB")):
        stats: dict[str, int] = {}
        sdir = d / "stats"
        if sdir.is_dir():
            for f in sdir.iterdir():
                try:
                    stats[f.name] = int(f.read_text())
                except (OSError, ValueError):
                    pass
        out[d.name] = stats
    return out


def snapshot() -> dict[str, Any]:
    """Read ``/proc/vmstat`` and every mTHP size's stats."""
    return {"vmstat": _read_vmstat(), "mthp": _read_mthp_stats()}


def counter_deltas(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Per-phase deltas: the fixed key set plus any moved extras/other mTHP sizes."""
    vb, va = before["vmstat"], after["vmstat"]
    out: dict[str, Any] = {k: va.get(k, 0) - vb.get(k, 0) for k in VMSTAT_KEYS}
    mb = before["mthp"].get(MTHP_2M.name, {})
    ma = after["mthp"].get(MTHP_2M.name, {})
    for k in MTHP_KEYS:
        out[f"mthp_{k}"] = ma.get(k, 0) - mb.get(k, 0)
    extra = {k: va.get(k, 0) - vb.get(k, 0) for k in VMSTAT_EXTRA}
    extra.update(
        {f"mthp_{k}": ma.get(k, 0) - mb.get(k, 0) for k in ma if k not in MTHP_KEYS}
    )
    out["extra"] = {k: v for k, v in extra.items() if v}
    other: dict[str, dict[str, int]] = {}
    for size, stats in after["mthp"].items():
        if size == MTHP_2M.name:
            continue
        prev = before["mthp"].get(size, {})
        moved = {k: v - prev.get(k, 0) for k, v in stats.items() if v - prev.get(k, 0)}
        if moved:
            other[size] = moved
    if other:
        out["mthp_other_sizes"] = other
    return out


# ---------------------------------------------------------------- setup knobs


@contextmanager
def khugepaged_parked(sleep_ms: int = 3_600_000) -> Iterator[dict[str, int]]:
    """Set khugepaged's scan_sleep_millisecs to ``sleep_ms``; restore it afterwards.

    Writing the knob wakes khugepaged once (it does one scan pass, then sleeps
    ``sleep_ms``); the measured process is started after that, so its range
    is not scanned, let alone collapsed, during the run.
    """
    saved = int(KHUGEPAGED_SLEEP.read_text())
    try:
        with signals_deferred():
            KHUGEPAGED_SLEEP.write_text(str(sleep_ms))
        time.sleep(0.05)  # let the wake-up scan pass finish
        yield {"saved": saved, "set": sleep_ms}
    finally:
        with signals_deferred():
            KHUGEPAGED_SLEEP.write_text(str(saved))


def prepare_memory(compact: bool = True, drop_caches: bool = False) -> list[str]:
    """Optionally drop clean caches, then compact memory; return what was done."""
    done = []
    if drop_caches:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3")
        done.append("drop_caches=3")
    if compact:
        Path("/proc/sys/vm/compact_memory").write_text("1")
        done.append("compact_memory=1")
    return done


# ---------------------------------------------------------------- running


def _read_event(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait()
        err = proc.stderr.read().strip() if proc.stderr else ""
        raise RoundtripError(f"roundtrip exited ({proc.returncode}): {err or 'no output'}")
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        raise RoundtripError(f"unexpected output from roundtrip: {line.strip()!r}") from None


def run_once(binary: Path, size_bytes: int) -> dict[str, Any]:
    """One paused run of the program; returns its summary plus per-phase deltas."""
    counters: dict[str, Any] = {}
    proc = subprocess.Popen(
        [str(binary), str(size_bytes), "--pause"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    try:
        assert proc.stdin is not None
        for phase in PHASES:
            ev = _read_event(proc)
            if ev.get("event") != "ready" or ev.get("phase") != phase:
                raise RoundtripError(f"expected ready {phase}, got {ev}")
            before = snapshot()
            proc.stdin.write("\n")
            proc.stdin.flush()
            ev = _read_event(proc)
            after = snapshot()
            if ev.get("event") != "done" or ev.get("phase") != phase:
                raise RoundtripError(f"expected done {phase}, got {ev}")
            counters[phase] = counter_deltas(before, after)
        summary = _read_event(proc)
        proc.stdin.close()
        rc = proc.wait(timeout=60)
        if rc != 0:
            raise RoundtripError(f"roundtrip exit status {rc}")
    finally:
        if proc.poll() is None:  # only the child we started, by its pid
            proc.kill()
            proc.wait()
    summary["counters"] = counters
    return summary


def check_run(run: dict[str, Any], size_bytes: int) -> dict[str, Any]:
    """Compare a run's counter deltas with what a clean THP round trip gives."""
    nthp, npages = size_bytes // HPAGE, size_bytes // PAGE
    c = run["counters"]
    f, p, t = c["fault"], c["pageout"], c["touch"]
    checks: dict[str, Any] = {
        "fault.thp_fault_alloc==SIZE/2M": f["thp_fault_alloc"] == nthp,
        "fault.mthp_nr_anon==+SIZE/2M": f["mthp_nr_anon"] == nthp,
        "pageout.error": run.get("pageout_error"),
        "pageout.thp_swpout==SIZE/2M": p["thp_swpout"] == nthp,
        "pageout.thp_swpout_fallback==0": p["thp_swpout_fallback"] == 0,
        "pageout.thp_split_pmd==SIZE/2M": p["thp_split_pmd"] == nthp,
        "pageout.pswpout==SIZE/4K": p["pswpout"] == npages,
        "pageout.mthp_nr_anon==-SIZE/2M": p["mthp_nr_anon"] == -nthp,
        "pageout.resident_after": run.get("resident_after_pageout"),
        "touch.pswpin==SIZE/4K": t["pswpin"] == npages,
        "touch.pgmajfault/(SIZE/4K)": round(t["pgmajfault"] / npages, 4),
        "touch.mthp_swpin(any size)": t["mthp_swpin"]
        + sum(s.get("swpin", 0) for s in t.get("mthp_other_sizes", {}).values()),
        "mismatches==0": run["mismatches"] == 0,
    }
    return checks


def run_roundtrip(
    size_bytes: int,
    repeat: int = 1,
    *,
    zram_size: int | None = None,
    prio: int = 32767,
    comp_algorithm: str | None = None,
    compact: bool = True,
    drop_caches: bool = False,
    khugepaged_sleep_ms: int = 3_600_000,
) -> dict[str, Any]:
    """Measure the real kernel's THP swap round trip of ``size_bytes`` on zram.

    ``size_bytes`` must be a positive multiple of 2 MiB.  One zram device of
    ``zram_size`` bytes (default ``size_bytes * 1.25``) is created for all
    ``repeat`` runs and removed afterwards; khugepaged's scan sleep is set to
    ``khugepaged_sleep_ms`` and restored; before each run memory is compacted
    (``compact``) and, if ``drop_caches``, clean caches are dropped.

    Returns a JSON-able dict:

    * ``best``: per phase the minimum seconds over the runs (``fault_s``,
      ``pageout_s``, ``touch_s``, ``munmap_s``) and ``total_s`` = the
      minimum per-run total;
    * ``totals``: each run's total seconds;
    * ``runs``: each run's phase seconds, ``mismatches``,
      ``resident_after_pageout``, ``pageout_error`` and ``counters`` (per
      phase: deltas of the vmstat keys, ``mthp_*`` 2 MiB stats, ``extra``
      moved counters, ``mthp_other_sizes`` if any other size moved);
    * ``checks``: per run, the expected-vs-observed checks of :func:`check_run`;
    * ``setup``: the zram device, priority, warnings, and what was tuned.

    Raises :class:`zram.ZramError` (setup/teardown) or :class:`RoundtripError`.
    """
    if size_bytes <= 0 or size_bytes % HPAGE:
        raise ValueError("size_bytes must be a positive multiple of 2 MiB")
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    preflight()  # root, zram-control, swap tools: fail before building anything
    binary = compile_roundtrip()
    if zram_size is None:
        zram_size = size_bytes + size_bytes // 4
    runs: list[dict[str, Any]] = []
    prepared: list[str] = []
    with zram_swap(zram_size, prio=prio, comp_algorithm=comp_algorithm) as dev:
        with khugepaged_parked(khugepaged_sleep_ms) as khp:
            for _ in range(repeat):
                prepared = prepare_memory(compact, drop_caches)
                runs.append(run_once(binary, size_bytes))
        zram_setup = {
            "device": str(dev.path),
            "disksize": dev.disksize,
            "priority": dev.priority,
            "comp_algorithm": dev.comp_algorithm,
        }
        warnings = list(dev.warnings)
    best = {f"{ph}_s": min(r[f"{ph}_s"] for r in runs) for ph in PHASES}
    totals = [r["total_s"] for r in runs]
    best["total_s"] = min(totals)
    for r in runs:
        if r.get("pageout_error"):
            warnings.append(f"MADV_PAGEOUT failed: {r['pageout_error']}")
        if r["mismatches"]:
            warnings.append(f"{r['mismatches']} touch mismatches")
    return {
        "size": size_bytes,
        "size_human": human_size(size_bytes),
        "repeat": repeat,
        "kernel": platform.release(),
        "best": best,
        "totals": totals,
        "runs": runs,
        "checks": [check_run(r, size_bytes) for r in runs],
        "expected": {"thp": size_bytes // HPAGE, "pages": size_bytes // PAGE},
        "setup": {
            "zram": zram_setup,
            "khugepaged_scan_sleep_millisecs": khp,
            "before_each_run": prepared,
            "thp_enabled": (THP_SYSFS / "enabled").read_text().strip(),
            "thp_defrag": (THP_SYSFS / "defrag").read_text().strip(),
            "binary": str(binary),
        },
        "warnings": warnings,
    }


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """CLI: ``roundtrip.py SIZE [--repeat N] [--zram-size S] [--drop-caches] ...``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("size", type=parse_size, help="e.g. 256M, 1G, 16G")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--zram-size", type=parse_size, default=None)
    ap.add_argument("--prio", type=int, default=32767)
    ap.add_argument("--comp-algorithm", default=None)
    ap.add_argument("--no-compact", action="store_true")
    ap.add_argument("--drop-caches", action="store_true")
    ap.add_argument("--compact-json", action="store_true", help="one-line JSON")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    try:
        result = run_roundtrip(
            args.size,
            args.repeat,
            zram_size=args.zram_size,
            prio=args.prio,
            comp_algorithm=args.comp_algorithm,
            compact=not args.no_compact,
            drop_caches=args.drop_caches,
        )
    except (ZramError, RoundtripError, ValueError) as exc:
        print(f"roundtrip: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("roundtrip: interrupted; everything torn down", file=sys.stderr)
        return 130
    print(json.dumps(result, indent=None if args.compact_json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
