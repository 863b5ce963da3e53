"""Ctrl-C held while a command that takes no checkpoint changes the machine.

A command whose refusals all come before it changes anything (`checks_first` in
lang/registry.py: munmap) runs without the checkpoint that would let a Ctrl-C
in its middle put the machine back.  While it runs, SIGINT is recorded instead of
raising KeyboardInterrupt, and delivered again when it ends: the command is done
whole, as the kernel's munmap, which no signal interrupts, and the Ctrl-C stops
what comes after it (`mmshell run` ends with status 2, the shell takes the next line).

Python runs signal handlers in the main thread only; elsewhere (or when the handler
was not installed from Python) nothing is changed, as no KeyboardInterrupt reaches
that code anyway.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

__all__ = ["sigint_held"]


@contextmanager
def sigint_held() -> Iterator[None]:
    """Hold Ctrl-C until the block ends, then deliver it to the handler there was before."""
    old = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or old is None:
        yield
        return
    pending: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        pending.append(signum)

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if pending:
            signal.raise_signal(signal.SIGINT)
