"""`mmshell compare FILE`, and `compare` at the shell prompt: one script, mainline against the series.

The script runs on two freshly booted machines, each pinned to its mode: pmd_swap off
(mainline) and on (the series).  A script's own `set pmd_swap` lines are skipped in both,
and a note says so.  Each step is shown once, with the pid it ran in and what it did in
each mode side by side: its output, the `show` views as they were then, and what it
changed (cells.py).  A step whose two columns differ is marked `≠`; a step after which
the swap_maps differ is marked `!`.  Then a summary per script of what the cover letter
says the series changes (summary.py).  PTE tables are counted with eager deposit and, from
two more runs with `set deposit lazy` pinned, with lazy deposit.

`--json`: one object per step and mode, a final object with both exit statuses and the
notes, and last `{"summary": {"mainline": {...}, "series": {...}}}`.  The exit status is
the worse of the two runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from rich.console import RenderableType
from rich.text import Text

from ..lang.values import plural
from ..mm.config import Deposit
from ..views.console import make_console
from .cells import mode_cell, render_compare, step_json
from .record import Run, StepKey, record
from .summary import KEYS, summarize

__all__ = ["MODES", "KEYS", "Comparison", "compare_text", "run_compare"]

#: The two modes, in column order: (name, pmd_swap).
MODES = (("mainline", False), ("series", True))


class Comparison:
    """Both modes' runs of one script, the lazy-deposit runs, and what differs between them."""

    def __init__(self, name: str, text: str, view_width: int = 60, base: Path | None = None) -> None:
        self.name = name
        self.runs: dict[str, Run] = {m: record(text, name, flag, view_width=view_width, base=base)
                                     for m, flag in MODES}
        sets_deposit = any(st.setting is not None and st.setting[0] == "deposit"
                           for run in self.runs.values() for st in run.steps)
        tables: dict[str, dict[str, int]] = {}
        for m, flag in MODES:
            eager = (record(text, name, flag, Deposit.EAGER, base=base, steps_too=False) if sets_deposit
                     else self.runs[m])
            lazy = record(text, name, flag, Deposit.LAZY, base=base, steps_too=False)
            tables[m] = {"eager": eager.session.kernel.pte_tables_allocated,
                         "lazy": lazy.session.kernel.pte_tables_allocated}
        self.keys: list[StepKey] = list(dict.fromkeys(st.key for run in self.runs.values()
                                                      for st in run.steps))
        by_key = {m: run.by_key() for m, run in self.runs.items()}
        self.steps = [{m: by_key[m].get(key) for m, _ in MODES} for key in self.keys]
        self.swap_differs: list[StepKey] = []
        for key, pair in zip(self.keys, self.steps):
            a, b = pair["mainline"], pair["series"]
            if a is not None and b is not None and a.swap_map != b.swap_map:
                self.swap_differs.append(key)
        identical = not self.swap_differs
        self.summary = {m: summarize(self.runs[m], tables[m], identical) for m, _ in MODES}
        self.notes = [f"{st.source}:{st.line}: '{st.command}' skipped: each column is pinned to its mode"
                      for st in self.runs["mainline"].steps
                      if st.setting is not None and st.setting[0] == "pmd_swap" and st.status == "ok"]

    def exit_status(self) -> int:
        return max(run.outcome.exit_status() for run in self.runs.values())

    def print_json(self, out: TextIO) -> None:
        for key, pair in zip(self.keys, self.steps):
            differs = _differs(pair)
            for m, _ in MODES:
                st = pair[m]
                if st is not None:
                    print(json.dumps(step_json(m, st, differs, key not in self.swap_differs)), file=out)
        final: dict[str, Any] = {"final": True,
                                 **{m: run.outcome.exit_status() for m, run in self.runs.items()},
                                 "notes": self.notes,
                                 "swap_map_differs": [list(k) for k in self.swap_differs]}
        print(json.dumps(final), file=out)
        print(json.dumps({"summary": self.summary}), file=out)

    def renderables(self) -> list[RenderableType]:
        """The notes, the steps side by side with the summary, and each mode's outcome."""
        out: list[RenderableType] = [Text(f"note: {note}") for note in self.notes]
        out.append(render_compare(self.name, self.steps, [_differs(p) for p in self.steps],
                                  [k in self.swap_differs for k in self.keys], self.summary))
        for m, run in self.runs.items():
            o = run.outcome
            out.append(Text(f"{m}: {plural(o.steps, 'step')}, {o.failed} failed expectation(s), "
                            f"{o.refused} refused"))
        return out

    def print_text(self, out: TextIO, width: int | None = None) -> None:
        console = make_console(file=out, width=width)
        for part in self.renderables():
            console.print(part, highlight=False, markup=False)


def _differs(pair: dict) -> bool:
    a, b = pair["mainline"], pair["series"]
    return a is None or b is None or mode_cell(a).plain != mode_cell(b).plain


def compare_text(name: str, text: str, json_mode: bool = False, out: TextIO | None = None,
                 width: int | None = None, base: Path | None = None,
                 export: tuple[str, int] | None = None) -> int:
    """Compare `text` (named `name`) and print it; the exit status.  `export`: (path, width),
    the comparison also drawn at that width into path (.html, .svg or .txt, export.py)."""
    out = out if out is not None else sys.stdout
    console_width = width or make_console(file=out).width
    cmp = Comparison(name, text, view_width=console_width, base=base)
    if json_mode:
        cmp.print_json(out)
    else:
        cmp.print_text(out, width)
    if export is not None:
        from ..export import export_renderables, format_of
        path, pic_width = export
        pictured = cmp if pic_width == console_width else Comparison(name, text, view_width=pic_width,
                                                                     base=base)
        fmt = format_of(path)
        assert fmt is not None
        try:
            print(export_renderables(pictured.renderables(), fmt, path, pic_width), file=sys.stderr)
        except OSError as e:
            print(f"mmshell compare: cannot write {path}: {e.strerror or e}", file=sys.stderr)
            return 2
    return cmp.exit_status()


def run_compare(source: tuple[str, str], json_mode: bool = False,
                export: tuple[str, int] | None = None) -> int:
    """`mmshell compare FILE`: source is (name, text); a relative `source` in it is taken
    from the file's directory."""
    name, text = source
    return compare_text(name, text, json_mode, base=Path(name).parent, export=export)
