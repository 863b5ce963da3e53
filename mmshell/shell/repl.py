"""The interactive shell: a prompt_toolkit prompt over the same language and step rendering.

One line -> one or more steps (`;` separates), rendered as `mmshell run` renders
them.  Ctrl-C clears the line, Ctrl-D leaves, any error prints one line and the
prompt comes back.  History is kept in ~/.mmshell_history (suggested as you
type, from history: the right arrow takes it).  The prompt completes by the
grammar (:mod:`.completer`), colours by the grammar (:mod:`.highlight`), and
shows the machine and what comes next in a bottom toolbar (:mod:`.toolbar`).
`compare` alone on a line runs the lines entered so far (those that parsed) on two
fresh machines, mainline and the series, as `mmshell compare` runs a file.
"""

from __future__ import annotations

import sys
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output
from prompt_toolkit.styles import merge_styles

from ..lang.errors import LangError
from ..lang.parser import parse_line
from ..lang.runner import Outcome, StepRecord, format_error, run_one
from ..lang.session import Session
from ..report import StepPrinter
from .completer import MmshCompleter
from .highlight import LEXER_STYLE, MmshLexer
from .history import CheckedFileHistory, history_path, open_history
from .toolbar import TOOLBAR_STYLE, Toolbar

BANNER = ("mmshell: a simulated Linux mm for watching THPs swap.  `help` lists the commands; "
          "`compare` runs the session so far both ways; Ctrl-D leaves.")


def prompt_text(session: Session) -> str:
    """The prompt: the current pid and whether the PMD swap entry series is on."""
    mode = "on" if session.kernel.config.pmd_swap else "off"
    return f"mmsh[pid {session.pid} pmd_swap={mode}]> "


def run_line(session: Session, printer: StepPrinter, text: str, lineno: int) -> Outcome:
    """Parse and run one line of input; errors are printed, never raised."""
    outcome = Outcome()
    try:
        commands = parse_line(text, lineno)
    except LangError as e:
        printer(StepRecord("<stdin>", lineno, None, error=format_error("<stdin>", lineno, "syntax", str(e)),
                           kind="syntax"))
        outcome.refused += 1
        return outcome
    for cmd in commands:
        printer.before(cmd)
        rec = run_one(session, cmd, "<stdin>", 0, Path.cwd(), printer, True, outcome, printer.before)
        if rec is not None:
            printer(rec)
    return outcome


def _parses(text: str, lineno: int) -> bool:
    try:
        parse_line(text, lineno)
    except LangError:
        return False
    return True


def run_shell(debug_vm: bool = False, input: Input | None = None, output: Output | None = None) -> int:
    """The read-eval-print loop; returns the exit status (0)."""
    session = Session.boot(debug_vm=debug_vm)
    printer = StepPrinter(session, echo=False)
    history, warning = open_history(history_path())
    toolbar = Toolbar(session)
    prompt: PromptSession[str] = PromptSession(
        history=history, input=input, output=output,
        completer=MmshCompleter(session), complete_while_typing=True,
        lexer=MmshLexer(lambda: session.regions.get(session.pid, {}).keys()),
        style=merge_styles([LEXER_STYLE, TOOLBAR_STYLE]),
        bottom_toolbar=toolbar, auto_suggest=AutoSuggestFromHistory(),
    )
    printer.console.print(BANNER, highlight=False)
    lineno = 0
    script: list[str] = []          # the lines that parsed, for `compare`
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
        if text.strip() in ("quit", "exit()"):
            return 0
        try:
            if text.strip() == "compare":
                from ..compare import compare_text

                compare_text("<session>", "\n".join(script), out=printer.stream)
                continue
            run_line(session, printer, text, lineno)
            if _parses(text, lineno):
                script.append(text)
        except KeyboardInterrupt:
            # Ctrl-C outside a command (a command itself is refused EINTR, nothing changed)
            printer.console.print("interrupted", highlight=False)
