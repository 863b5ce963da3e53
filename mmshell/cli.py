"""The command line entry point.

`mmshell -c 'CMDS'` goes straight to the runner; everything else is parsed by
the click commands in `mmshell.commands`.  Heavy modules (click, rich, the
views, prompt_toolkit) are imported only by the paths that need them, so
`mmshell -c 'show vmstat'` starts fast.
"""

from __future__ import annotations

import sys


def entry() -> None:
    """The console script.  `mmshell -c 'CMDS'` alone skips click: start-up time is most of its cost."""
    argv = sys.argv[1:]
    if len(argv) == 2 and argv[0] == "-c":
        from .report import run_sources

        try:
            sys.exit(run_sources([("-c", argv[1])]))
        except KeyboardInterrupt:
            print("mmshell: interrupted", file=sys.stderr)
            sys.exit(130)
    from .commands import main

    main()


if __name__ == "__main__":
    entry()
