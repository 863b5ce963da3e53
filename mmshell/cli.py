"""The command line entry point.

`mmshell -c 'CMDS'` goes straight to the runner; everything else is parsed by
the click commands in `mmshell.commands`.  Heavy modules (click, rich, the
views, prompt_toolkit) are imported only by the paths that need them, so
`mmshell -c 'show vmstat'` starts fast.

Ctrl-C anywhere once `entry` runs (start-up, reading files, parsing, running,
rendering) ends the program with exit status 2 and one line, never click's
`Aborted!`; a command interrupted while it runs is refused first (EINTR, nothing
changed).  After the work is done, Ctrl-C is ignored while Python exits.  This
module imports nothing at load, so the time before `entry` runs (the interpreter
starting) is as short as it can be.
"""

from __future__ import annotations

import sys
from typing import NoReturn


def interrupted() -> NoReturn:
    """Leave after Ctrl-C: one line on standard error, exit status 2."""
    print("mmshell: interrupted", file=sys.stderr)
    sys.exit(2)


def entry() -> None:
    """The console script.  `mmshell -c 'CMDS'` and `mmshell` alone at a terminal skip click:
    start-up time is most of their cost."""
    try:
        try:
            status: int | str | None = _main(sys.argv[1:])
        except KeyboardInterrupt:
            interrupted()
    except SystemExit as e:
        status = e.code
    # The work is done: a Ctrl-C while the interpreter shuts down must not turn the status
    # into death by SIGINT.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(status)


def _main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "-c":
        from .report import run_sources

        return run_sources([("-c", argv[1])])
    if not argv and sys.stdin.isatty():       # the prompt, as `mmshell` alone runs it: click not needed
        from .shell.repl import run_shell

        return run_shell()
    import click

    from .commands import main

    try:
        rv = main.main(argv, prog_name="mmshell", standalone_mode=False)
    except click.exceptions.Abort:        # click's own word for a Ctrl-C it caught
        interrupted()
    except click.ClickException as e:
        e.show()
        return e.exit_code
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    entry()
