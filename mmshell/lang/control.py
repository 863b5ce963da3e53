"""The language's own commands, written once for both backends.

`@PID`, `if`, `switch`, `expect`, `expect fails`, a nested `source` and
`help` act on the language's state (the current process, the settings as
`if` reads them, the expectations), not on memory: each is one function
over a :class:`~.backend.Backend`.  The simulator (lang/execute.py) and the
live kernel (kernel/backend.py) register them as they are; :data:`HANDLERS`
lists them by ``Command.name``.
"""

from __future__ import annotations

from typing import Callable

from . import registry
from .backend import Backend, NotObservable, StepOutput
from .errors import SOURCE_NESTED, ExpectError, not_refused, switch_under_at
from .expect_values import PathError, compare, parse_expected
from .parser import Command, Unparsed
from .step_loop import back_to, exit_of

__all__ = ["HANDLERS", "do_at", "do_if", "do_switch", "do_expect", "do_expect_fails", "do_source", "do_help",
           "do_pause", "do_timing"]


def do_at(b: Backend, cmd: Command) -> StepOutput:
    """`@PID COMMAND`: COMMAND as if PID were current; then back to the current process
    (or, when COMMAND made it exit, its parent)."""
    pid, inner = cmd.args["pid"], cmd.args["command"]
    b.check_pid(pid)
    if inner.name == "switch":
        raise b.refuse("EINVAL", "switch", switch_under_at(pid, b.pid))
    if inner.name == "exit":            # `@2 exit` is `exit 2`: the current process stays current
        return b.run(exit_of(inner, pid))
    current = b.pid
    parent = b.parent_of(current)
    b.pid = pid
    try:
        return b.run(inner)
    finally:
        b.pid = back_to(current, parent, b.alive())


def do_switch(b: Backend, cmd: Command) -> StepOutput:
    b.check_pid(cmd.args["pid"])
    b.pid = cmd.args["pid"]
    return StepOutput(changed=False, lines=[f"pid {b.pid}"])


def do_if(b: Backend, cmd: Command) -> StepOutput:
    if b.setting_value(cmd.args["setting"], cmd.args.get("point")) != cmd.args["value"]:
        return StepOutput(changed=False)
    return b.run(cmd.args["command"])


def do_expect(b: Backend, cmd: Command) -> StepOutput:
    """`expect PATH OP VALUE`: an unmet one is reported (failed_expect), a wrong PATH or
    VALUE refused (ExpectError), one the backend cannot read is not observable."""
    a = cmd.args
    try:
        reading = b.observe(a["path"])
        expected = parse_expected(str(a["value"]), a["path"])
        ok = compare(reading.value, a["op"], expected)
    except PathError as e:
        raise ExpectError(str(e)) from None
    except NotObservable as e:
        return StepOutput(changed=False, not_observable=str(e))
    out = StepOutput(changed=False, value=reading.value)
    if reading.proxy:
        out.notes.append(f"{a['path']} read through a proxy: {reading.proxy}")
    if not ok:
        out.failed_expect = f"expected {a['path']} {a['op']} {a['value']}, actual {reading.value}"
    return out


def do_expect_fails(b: Backend, cmd: Command) -> StepOutput:
    inner = cmd.args["command"]
    if isinstance(inner, Unparsed):           # a command that does not parse is refused too
        return StepOutput(changed=False, lines=[f"refused as expected: {inner.error}"])
    if inner.name == "source":                # the runner runs `expect fails source` at the top level
        raise b.refuse("EINVAL", "source", SOURCE_NESTED)
    try:
        out = b.execute(inner)
    except b.refusals as e:
        return StepOutput(changed=False, lines=[f"refused as expected: {e}"])
    if out.not_observable:
        return StepOutput(changed=False, not_observable=out.not_observable)
    if out.failed_expect and inner.name != "expect":
        return StepOutput(changed=False, failed_expect=out.failed_expect)
    return StepOutput(changed=False, failed_expect=not_refused(inner.text or str(inner), out.failed_expect))


def do_source(b: Backend, cmd: Command) -> StepOutput:
    # The runner reads files; a `source` reached here is nested in @PID, if or expect fails.
    raise b.refuse("EINVAL", "source", SOURCE_NESTED)


def do_pause(b: Backend, cmd: Command) -> StepOutput:
    # a stop point for `run --step=pause` and `present`, which stop before it; running it does nothing
    return StepOutput(changed=False)


def do_timing(b: Backend, cmd: Command) -> StepOutput:
    """`timing on|off`: whether each step's wall time is printed after it (StepRecord.timed)."""
    b.timing = cmd.args["on"]
    return StepOutput(changed=False)


def do_help(b: Backend, cmd: Command) -> StepOutput:
    try:
        text = registry.help_text(cmd.args.get("topic"))
    except (KeyError, ValueError) as e:
        raise b.refuse("EINVAL", "help", str(e).strip("'\"")) from None
    return StepOutput(changed=False, lines=text.splitlines())


HANDLERS: dict[str, Callable[[Backend, Command], StepOutput]] = {
    "at": do_at, "switch": do_switch, "if": do_if, "expect": do_expect, "expect_fails": do_expect_fails,
    "source": do_source, "help": do_help, "pause": do_pause, "timing": do_timing,
}
