"""The two ways a step can go wrong inside the simulated kernel.

`MmError` is what the real kernel would give the caller: an errno from a system
call, or the signal a real memory access would raise.  The command is refused
and the machine state is unchanged (except where the contract names a partial
effect, carried in `partial`).

`VmBug` is an invariant the simulator broke: always a simulator bug, like the
kernel's VM_BUG_ON.
"""

from __future__ import annotations


class MmError(Exception):
    """A refusal in the kernel's own terms: errno (or signal), operation, detail."""

    def __init__(self, errno: str, op: str, detail: str, partial: str | None = None) -> None:
        super().__init__(f"{errno}: {detail}")
        self.errno = errno
        self.op = op
        self.detail = detail
        self.partial = partial

    def __str__(self) -> str:
        text = f"{self.errno}: {self.detail}"
        if self.partial:
            text += f" ({self.partial})"
        return text


class VmBug(Exception):
    """A broken invariant (CONFIG_DEBUG_VM would have fired): a simulator bug."""
