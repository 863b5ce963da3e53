"""Start-up loads only what a command needs: `mmshell -c 'show vmstat'` leaves the modules
below unloaded (each is imported where it is used: --json, export, the checkers, help,
a refused word, the shell).  Speed itself is scripts/bench's row, never a timed test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Loaded only by the paths that need them.
LAZY = (
    "json",                     # --json output
    "html", "mmshell.export",   # export, --export, --html
    "difflib",                  # "did you mean" for a mistyped word
    "unicodedata",              # naming a character the lexer refuses
    "textwrap", "mmshell.lang.topics", "mmshell.lang.counters",     # help
    "mmshell.mm.check", "mmshell.mm.check_data", "mmshell.mm.check_folio",   # check, --debug-vm
    "mmshell.views.cells", "mmshell.views.step", "mmshell.views.digest_cache",  # map, step summaries
    "click",                    # every other command line
    "prompt_toolkit",           # the shell
    "rich.progress",            # a bar under a step that runs long, on a terminal
)

PROBE = """
import contextlib, io, sys
from mmshell.cli import _main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    status = _main(["-c", sys.argv[1]])
modules = sorted(sys.modules)       # before json, which the probe itself needs
import json
sys.__stdout__.write(json.dumps({"status": status, "out": out.getvalue(), "modules": modules}))
"""


def _loaded(command: str) -> tuple[dict, set[str]]:
    r = subprocess.run([sys.executable, "-c", PROBE, command], capture_output=True, text=True, cwd=ROOT,
                       check=True)
    got = json.loads(r.stdout)
    return got, set(got["modules"])


def test_show_vmstat_loads_none_of_the_lazy_modules():
    got, modules = _loaded("show vmstat")
    assert got["status"] == 0 and "nr_free_pages" in got["out"]
    assert sorted(m for m in LAZY if m in modules) == []


def test_each_lazy_module_is_loaded_where_it_is_used():
    """The probe sees them when the command needs them (the list above is not stale)."""
    _, modules = _loaded("help timing; mmap a 2M; touch a; check; expect fails mmap b 2M prot rx")
    for name in ("textwrap", "mmshell.lang.topics", "mmshell.mm.check", "mmshell.views.step",
                 "mmshell.views.digest_cache", "difflib"):
        assert name in modules, name


def test_the_shell_draws_its_first_prompt_before_loading_what_runs_a_line():
    """`mmshell.shell.repl` loads the prompt's needs only; the runner, the executor, the printer
    and rich are imported in a thread while the first prompt waits (repl._load_the_rest)."""
    probe = ("import sys, json; import mmshell.shell.repl; "
             "later = ('mmshell.report', 'mmshell.lang.execute', 'mmshell.lang.runner', "
             "'mmshell.shell.meta', 'rich', 'click'); "
             "print(json.dumps([m for m in later if m in sys.modules]))")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(r.stdout) == []
