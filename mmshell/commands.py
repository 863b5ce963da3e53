"""The click commands: `mmshell`, `mmshell -c`, `run`, `compare`, `kernel run|diff|recover`."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, TypeVar

import click

from . import __version__
from .cli import interrupted

F = TypeVar("F", bound=Callable[..., Any])


def interruptible(fn: F) -> F:
    """A command whose Ctrl-C, wherever it comes, exits 2 with one line (never `Aborted!`)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            interrupted()
    return wrapper  # type: ignore[return-value]


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-c", "commands", metavar="'CMD; CMD'", help="Run these commands and exit.")
@click.option("--json", "json_mode", is_flag=True, help="With -c: JSON Lines output.")
@click.option("--quiet", is_flag=True, help="With -c: print only errors and failed expectations.")
@click.option("--debug-vm", is_flag=True, help="Check every invariant after every step.")
@click.version_option(__version__, prog_name="mmshell")
@click.pass_context
@interruptible
def main(ctx: click.Context, commands: str | None, json_mode: bool, quiet: bool, debug_vm: bool) -> None:
    """An interactive shell over a simulated Linux mm: how anonymous THPs are swapped,
    in mainline (`set pmd_swap off`) and with the PMD swap entry series (`on`)."""
    if ctx.invoked_subcommand is not None:
        return
    if commands is not None:
        from .report import run_sources

        sys.exit(run_sources([("-c", commands)], json_mode=json_mode, quiet=quiet, debug_vm=debug_vm))
    if not sys.stdin.isatty():
        # commands piped in: run them as a script (as `mmshell run -`), not a prompt per line
        from .report import read_sources, run_sources

        sys.exit(run_sources(read_sources(["-"]), json_mode=json_mode, quiet=quiet, debug_vm=debug_vm))
    from .shell.repl import run_shell

    sys.exit(run_shell(debug_vm=debug_vm))


class _StepCommand(click.Command):
    """`run`, whose `--step` takes an optional value: `--step` alone (before a file name
    too: `run --step FILE`) is `--step=each`; `--step=pause` or `--step pause` stops at
    `pause` commands only."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        from .stepkeys import STEP_MODES

        args = ["--step=each" if a == "--step" and (i + 1 == len(args) or args[i + 1] not in STEP_MODES) else a
                for i, a in enumerate(args)]
        return super().parse_args(ctx, args)


@main.command(cls=_StepCommand)
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--json", "json_mode", is_flag=True, help="JSON Lines: one object per step, then the final state.")
@click.option("--step", type=click.Choice(["each", "pause"]), default=None, metavar="[=each|=pause]",
              help="Stop before each step (teaching demos), or with --step=pause at each pause only; "
                   "narration (#: lines) is shown. Keys: Enter/space next, q quit, ? keys.")
@click.option("--keep-going", is_flag=True, help="Go on after a refused command.")
@click.option("--quiet", is_flag=True, help="Print only errors, failed expectations and the summary.")
@click.option("--debug-vm", is_flag=True, help="Check every invariant after every step.")
@click.option("--export", "export_dir", metavar="DIR", type=click.Path(file_okay=False),
              help="Also write one SVG per step and an index.html into DIR.")
@click.option("--html", "html_page", metavar="OUT.html", type=click.Path(dir_okay=False),
              help="Also write one self-contained page that steps through the run (arrow keys).")
@click.option("--width", type=click.IntRange(40, 400), default=100, show_default=True,
              help="Columns of the --export and --html pictures.")
@interruptible
def run(files: tuple[str, ...], json_mode: bool, step: str | None, keep_going: bool, quiet: bool,
        debug_vm: bool, export_dir: str | None, html_page: str | None, width: int) -> None:
    """Replay .mmsh scripts, each on a freshly booted machine, every one whatever the others did."""
    from .report import read_sources, run_sources

    pictures = None
    if export_dir is not None or html_page is not None:
        if json_mode:
            raise click.UsageError("--export and --html draw the text output: not with --json")
        from .export import Pictures
        pictures = Pictures(export_dir, html_page, width)
    sys.exit(run_sources(read_sources(files), json_mode=json_mode, step=step, keep_going=keep_going, quiet=quiet,
                         debug_vm=debug_vm, pictures=pictures))


@main.command()
@click.argument("file", type=click.Path())
@click.option("--json", "json_mode", is_flag=True, help="Both runs as JSON Lines, each object tagged with its mode.")
@click.option("--export", "export_path", metavar="OUT.html|OUT.svg|OUT.txt", default=None,
              help="Also write the comparison as a page, a picture or text (the format from the suffix).")
@click.option("--width", type=click.IntRange(40, 400), default=100, show_default=True,
              help="Columns of the --export picture.")
@interruptible
def compare(file: str, json_mode: bool, export_path: str | None, width: int) -> None:
    """Run FILE with pmd_swap off and on, and show both side by side."""
    from .compare import run_compare
    from .report import read_sources, readable

    if export_path is not None:
        from .export import format_of
        if json_mode:
            raise click.UsageError("--export draws the text output: not with --json")
        if format_of(export_path) is None:
            raise click.UsageError(f"{export_path}: --export writes .html, .svg or .txt; say which by the suffix")
    sources = readable(read_sources([file]), json_mode)
    if sources is None:
        sys.exit(2)
    sys.exit(run_compare(sources[0], json_mode=json_mode, export=(export_path, width) if export_path else None))


@main.command()
@click.argument("file", type=click.Path())
@click.option("--mainline", is_flag=True, help="Boot with pmd_swap off (mainline) instead of the series.")
@interruptible
def present(file: str, mainline: bool) -> None:
    """Show FILE full screen for a projector, one step at a time: the view on top, the
    narration and changes below; right/space forward, left/b back, p next pause, q quit."""
    from .lang.errors import LangError
    from .lang.step_loop import format_error
    from .report import read_sources, readable

    sources = readable(read_sources([file]))
    if sources is None:
        sys.exit(2)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        click.echo("mmshell: present needs a terminal (mmshell run --step FILE works anywhere)", err=True)
        sys.exit(2)
    from .presentation import Presentation
    from .shell.present_app import run_presenter

    name, text = sources[0]
    try:
        presentation = Presentation(text, name, pmd_swap=not mainline)
    except LangError as e:
        click.echo(format_error(name, e.line, "syntax", str(e)), err=True)
        sys.exit(2)
    if run_presenter(presentation) == 2:
        interrupted()
    sys.exit(0)


@main.group()
def kernel() -> None:
    """Run scripts on the live, running Linux kernel (needs root and zram)."""


@kernel.command("run")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--json", "json_mode", is_flag=True, help="JSON Lines: one object per step, then the final state.")
@click.option("--keep-going", is_flag=True, help="Go on after a refused command.")
@click.option("--quiet", is_flag=True, help="Print only errors, failed expectations and the summary.")
@interruptible
def kernel_run(files: tuple[str, ...], json_mode: bool, keep_going: bool, quiet: bool) -> None:
    """Run FILE's commands on the running kernel through real system calls."""
    from .kernel.report import run_live
    from .report import read_sources, readable

    sources = readable(read_sources(files), json_mode)
    if sources is None:
        sys.exit(2)
    sys.exit(run_live(sources, json_mode=json_mode, keep_going=keep_going, quiet=quiet))


@kernel.command("diff")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--quiet", is_flag=True, help="Print only the differences and one line per file.")
@interruptible
def kernel_diff(files: tuple[str, ...], quiet: bool) -> None:
    """Run FILE on the live kernel and in the simulator (mainline); show what differs."""
    from .kernel.diff import run_diff
    from .report import read_sources, readable

    sources = readable(read_sources(files))
    if sources is None:
        sys.exit(2)
    sys.exit(run_diff(sources, quiet=quiet))


@kernel.command("fuzz")
@click.option("--seed", type=int, default=None, help="Seed of the scripts (default: a random one, printed).")
@click.option("--steps", type=click.IntRange(5, 60), default=20, show_default=True,
              help="Commands per script, at most (expect lines not counted).")
@click.option("--time", "seconds", type=click.FloatRange(min=0), default=None,
              help="Stop starting scripts after this many seconds (default 60 without --scripts).")
@click.option("--count", "--scripts", "scripts", type=click.IntRange(min=1), default=None,
              help="Stop after this many scripts.")
@click.option("--out", default="fuzz-failures", show_default=True,
              help="Directory where the minimal script of each difference is saved.")
@click.option("--first", is_flag=True, help="Stop at the first unexplained difference.")
@click.option("--verbose", is_flag=True, help="One line per script.")
def kernel_fuzz(seed: int | None, steps: int, seconds: float | None, scripts: int | None, out: str,
                first: bool, verbose: bool) -> None:
    """Random scripts on the live kernel and in the simulator; each new difference is shrunk and saved."""
    from .kernel.fuzz.run import run_fuzz

    if seconds is None and scripts is None:
        seconds = 60.0
    sys.exit(run_fuzz(seed, steps, seconds, scripts, out, verbose=verbose, first=first))


@kernel.command("recover")
def kernel_recover() -> None:
    """Undo what a killed live run left behind (its journal), without running a script."""
    from .kernel.report import run_recover

    sys.exit(run_recover())


@main.command()
@click.option("--seed", type=int, default=None, help="The quiz's seed (default: a new one, printed).")
@click.option("--topic", type=str, default=None, metavar="TOPIC",
              help="Ask only of one topic: pmd, swap, faults, counters or smaps.")
@click.option("--answer", is_flag=True, help="Show the answer and why (explain's account of the last step).")
@interruptible
def quiz(seed: int | None, topic: str | None, answer: bool) -> None:
    """A generated scenario and a question about its result, answered by the simulator."""
    import random

    from .quiz import TOPICS, make_quiz, render_quiz

    if topic is not None and topic not in TOPICS:
        raise click.BadParameter(f"no quiz topic {topic!r} (topics: {', '.join(TOPICS)})", param_hint="--topic")
    if seed is None:
        seed = random.SystemRandom().randrange(10000)
    click.echo(render_quiz(make_quiz(seed, topic), answer))
