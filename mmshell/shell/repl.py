"""The interactive shell: a prompt_toolkit prompt over the same language and step rendering.

One line -> one or more steps (`;` separates), rendered as `mmshell run` renders
them.  Ctrl-C clears the line (and, while a line runs, stops it: the command
running is refused, the rest of the line is not run), Ctrl-D or `quit` leaves,
any error prints one line (a caret under its column) and the prompt comes back.
The prompt's own commands (`undo`, `back N`, `history`, `save`, `reset`, `clear`)
are in :mod:`.meta` and :mod:`.journal`; long output goes through a pager.
History is kept in ~/.mmshell_history (suggested as you type, from history:
the right arrow takes it).  The prompt completes by the
grammar (:mod:`.completer`), colours by the grammar (:mod:`.highlight`), and
shows the machine and what comes next in a bottom toolbar (:mod:`.toolbar`).
`compare` alone on a line runs the commands that ran so far (as `save` writes them) on
two fresh machines, mainline and the series, as `mmshell compare` runs a file.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output
from prompt_toolkit.styles import merge_styles

from ..lang.errors import LangError
from ..lang.parser import parse_line
from ..lang.session import Session
from .completer import MmshCompleter
from .highlight import LEXER_STYLE, MmshLexer
from .history import CheckedFileHistory, history_path, open_history
from .journal import Journal, may_change
from .toolbar import TOOLBAR_STYLE, Toolbar

if TYPE_CHECKING:
    from ..lang.runner import Outcome
    from ..report import StepPrinter
    from .meta import ShellPrinter

BANNER = ("mmshell: a simulated Linux mm for watching THPs swap.\n"
          "`help` lists the commands, `help shell` undo, save, compare; `quit` leaves.")


def prompt_text(session: Session) -> str:
    """The prompt: the current pid and whether the PMD swap entry series is on."""
    mode = "on" if session.kernel.config.pmd_swap else "off"
    return f"mmsh[pid {session.pid} pmd_swap={mode}]> "


def run_line(session: Session, printer: StepPrinter, text: str, lineno: int,
             journal: Journal | None = None, prompt_width: int = 0) -> Outcome:
    """Parse and run one line of input; errors are printed, never raised.  A command
    interrupted by Ctrl-C is refused and the rest of the line is not run; `outcome.stopped`
    says that a bare `exit` of pid 1, the only process, asks to leave the shell."""
    from ..lang.runner import Outcome, StepRecord, run_one
    from .meta import caret

    outcome = Outcome()
    try:
        commands = parse_line(text, lineno)
    except LangError as e:
        printer.console.print(caret(prompt_width, e.column), markup=False, highlight=False)
        printer(StepRecord("<stdin>", lineno, None, error=f"syntax: {e}", kind="syntax"))
        outcome.refused += 1
        return outcome
    for cmd in commands:
        if cmd.name == "exit" and cmd.args["pid"] is None and session.pid == 1:
            if len(session.kernel.mms) == 1:
                outcome.stopped = True
                return outcome
            others = ", ".join(str(p) for p in sorted(session.kernel.mms) if p != 1)
            printer.console.print(f"  exit: EPERM: pid 1 cannot exit while pid(s) {others} live; `quit` "
                                  "leaves the shell", markup=False, highlight=False, soft_wrap=True)
            outcome.refused += 1
            return outcome
        printer.before(cmd)
        before = journal.checkpoint() if journal is not None and may_change(cmd) else None
        refused, failed = outcome.refused, outcome.failed
        try:
            rec = run_one(session, cmd, "<stdin>", 0, Path.cwd(), printer, True, outcome, printer.before)
            if rec is not None:
                printer(rec)
            if outcome.refused == refused and outcome.failed == failed and journal is not None:
                journal.record(cmd, before)
                before = None
        finally:
            if before is not None and journal is not None:      # refused, failed or interrupted
                journal.discard(before)
        if rec is not None and rec.kind == "refused" and rec.error and "EINTR: interrupted" in rec.error:
            rest = len(commands) - commands.index(cmd) - 1
            if rest:
                printer.console.print(f"  interrupted: the rest of the line ({rest} command(s)) was not run",
                                      markup=False, highlight=False)
            break
    return outcome


def _load_the_rest() -> None:
    """What running a line needs and the first prompt does not: the runner, the executor and
    the mm core under it, the printer and the views (imported while the prompt waits)."""
    from . import meta  # noqa: F401


def run_shell(debug_vm: bool = False, input: Input | None = None, output: Output | None = None) -> int:
    """The read-eval-print loop; returns the exit status (0).  The prompt is drawn first; the
    modules that run a line are imported meanwhile, in a thread (`_load_the_rest`)."""
    session = Session.boot(debug_vm=debug_vm)
    loading = threading.Thread(target=_load_the_rest, name="mmshell-imports", daemon=True)
    printers: list[ShellPrinter] = []

    def the_printer() -> "ShellPrinter":
        """The printer, made when the first line is read (the modules it needs loaded by then)."""
        if not printers:
            loading.join()
            from ..recorder import Recorder
            from .meta import ShellPrinter

            printers.append(ShellPrinter(session, echo=False, recorder=Recorder(keep=None)))   # export: all
        return printers[0]

    journal = Journal(session)
    history, warning = open_history(history_path())
    toolbar = Toolbar(session)
    prompt: PromptSession[str] = PromptSession(
        history=history, input=input, output=output,
        completer=MmshCompleter(session), complete_while_typing=True,
        lexer=MmshLexer(lambda: session.regions.get(session.pid, {}).keys()),
        style=merge_styles([LEXER_STYLE, TOOLBAR_STYLE]),
        bottom_toolbar=toolbar, auto_suggest=AutoSuggestFromHistory(),
    )
    print(BANNER, flush=True)
    loading.start()
    lineno = 0
    while True:
        if warning is not None:
            print(warning, file=sys.stderr)
            warning = None
        toolbar.refresh()
        try:
            text = prompt.prompt(prompt_text(session))
        except KeyboardInterrupt:
            continue
        except EOFError:
            return 0
        if isinstance(history, CheckedFileHistory):
            warning = history.warning()
        lineno += 1
        if text.strip() == "exit()":
            return 0
        printer = the_printer()
        from .meta import Leave, is_shell_command, paged, run_shell_command

        if is_shell_command(text):
            leave = paged(printer.console, session.pager,
                          lambda: run_shell_command(text, session, journal, printer.console))
            if leave is Leave.QUIT:
                return 0
            if leave is Leave.CLEAR:
                prompt.app.output.erase_screen()
                prompt.app.output.cursor_goto(0, 0)
                prompt.app.output.flush()
            continue
        printer.prompt_width, printer.line_text = len(prompt_text(session)), text
        try:
            width = printer.prompt_width
            outcome = paged(printer.console, session.pager,
                            lambda: run_line(session, printer, text, lineno, journal, width))
            if outcome.stopped:
                return 0
        except KeyboardInterrupt:
            # Ctrl-C outside a command (a command itself is refused EINTR, nothing changed)
            printer.console.print("interrupted", highlight=False)
