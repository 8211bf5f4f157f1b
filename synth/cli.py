"""The ``affectsynth`` command line: a click group whose subcommands load lazily.

Exit codes: 0 done; 1 fatal error (one line on stderr; the traceback only with
``AFFECTSYNTH_DEBUG=1``); 2 bad usage; 3 finished, but some inputs failed (see the manifest).
``affectsynth --help`` imports no subcommand module (and so no torch or mediapipe).
"""

from __future__ import annotations

import atexit
import importlib
import os
import sys
from typing import Any

import click

__all__ = [
    "EXIT_FATAL",
    "EXIT_OK",
    "EXIT_BROKEN_PIPE",
    "EXIT_SOME_FAILED",
    "EXIT_USAGE",
    "ENV_DEFAULTS",
    "SUBCOMMANDS",
    "debug_enabled",
    "main",
    "run",
]

EXIT_OK = 0
EXIT_FATAL = 1
#: Exit status when stdout's reader went away (128 + SIGPIPE, as a Unix tool killed by the signal).
EXIT_BROKEN_PIPE = 141
EXIT_USAGE = 2
EXIT_SOME_FAILED = 3

#: name -> (module, attribute, one-line help shown by ``affectsynth --help``).
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "animate": ("affectsynth.cli_animate", "animate_command",
                "Render one photo's face along an affect path: PNG frames, GIF, WebP or MP4."),
    "demo": ("affectsynth.cli_grid", "demo_command",
             "Synthesise all 8 expressions on a bundled photo and write a grid."),
    "fit": ("affectsynth.cli_fit", "fit_command",
            "Fit the 3D face model to photos; write OBJ meshes and JSON."),
    "generate": ("affectsynth.cli_generate", "generate_command",
                 "Synthesise expressions for every image in a folder (resumable)."),
    "grid": ("affectsynth.cli_grid", "grid_command",
             "Write a labelled grid: rows = photos, columns = targets."),
    "build-expressions": ("affectsynth.cli_build", "build_expressions_command",
                          "Build an expression library (.npz) from 4D mesh sequences."),
}


def debug_enabled() -> bool:
    """True if ``AFFECTSYNTH_DEBUG`` is set to something other than ``0``/empty."""
    return os.environ.get("AFFECTSYNTH_DEBUG", "0").strip().lower() not in ("", "0", "false", "no")


def _one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split())
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


#: Environment defaults the command line sets before anything imports numpy (a user's own value wins).
#: One OpenBLAS thread: every engine computes on one thread per process (`affectsynth.batch.SYNTH_THREADS`)
#: and parallelises with processes; OpenBLAS's own pool (one thread per extra core, in numpy's and
#: scipy's copies) only costs start-up (~45 ms CPU per process) and competes with the other workers.
#: The output bytes are the same either way.
ENV_DEFAULTS = {"OPENBLAS_NUM_THREADS": "1"}


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand runs."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Set :data:`ENV_DEFAULTS` (inherited by worker processes), then run the command line."""
        for name, value in ENV_DEFAULTS.items():
            os.environ.setdefault(name, value)
        return super().main(*args, **kwargs)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(SUBCOMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in SUBCOMMANDS:
            return None
        mod_name, attr, short = SUBCOMMANDS[cmd_name]
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name != mod_name:
                raise
            return _unavailable(cmd_name, short, f"module {mod_name} is not installed in this build")
        cmd = getattr(mod, attr)
        if not isinstance(cmd, click.Command):
            raise TypeError(f"{mod_name}.{attr}: expected a click command, got {type(cmd).__name__}")
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.commands[name].get_short_help_str(70) if name in self.commands
                 else SUBCOMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:  # the reader went away (`... | head`): stop quietly, as Unix tools do
            _silence_stdout()
            ctx.exit(EXIT_BROKEN_PIPE)
        except Exception as e:  # one line per fatal error; traceback only on request
            if debug_enabled():
                raise
            click.echo(f"affectsynth: error: {_one_line(e)} (AFFECTSYNTH_DEBUG=1 shows the traceback)",
                       err=True)
            ctx.exit(EXIT_FATAL)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's final flush does not raise BrokenPipeError again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (e.g. a test runner's buffer)
        pass


def _unavailable(name: str, short: str, why: str) -> click.Command:
    @click.command(name=name, help=f"{short}\n\nUnavailable: {why}.",
                   context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def cmd(args: tuple[str, ...]) -> None:
        raise click.ClickException(f"'{name}' is unavailable: {why}")

    return cmd


@click.group(name="affectsynth", cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="affectsynth", prog_name="affectsynth")
def main() -> None:
    """Synthesise labelled facial expressions of the same person from photos.

    \b
    Examples:
      affectsynth demo --out demo/
      affectsynth fit photo.jpg --out fits/
      affectsynth generate faces/ out/ --expressions happiness,sadness --intensity 0.5,1.0
      affectsynth generate faces/ out/ --va=0.5,-0.25 --va-grid 3 --size 256
      affectsynth grid a.jpg b.jpg --out grid.png --va-wheel 8
      affectsynth animate --demo --out circle.webp --path circle --size 256

    Exit codes: 0 done, 1 fatal error, 2 bad usage, 3 finished but some inputs failed.
    Set AFFECTSYNTH_DEBUG=1 for tracebacks, AFFECTSYNTH_NO_PROGRESS=1 to hide progress bars.
    """


def run() -> None:
    """The ``affectsynth`` program (its console script, and ``python -m affectsynth.cli``): `main`,
    then an exit without the interpreter's teardown.

    Tearing down an interpreter that loaded torch, numba and scipy took 0.5-1.7 s on this
    project's test machine after a run's last line, for nothing: the outputs are written and
    fsync'd by then (files are closed explicitly; the manifest and the lock use os-level
    writes). So the exit handler registered first, which runs after every other one (the fork
    server's stop, Ray's shutdown, logging's flush), flushes stdout and stderr and ends the
    process with the command's exit status. An exception other than SystemExit (Ctrl-C outside
    a run, a bug) gets the interpreter's ordinary exit. `main` itself, which click's test runner
    and library callers invoke, exits normally.
    """
    status = [EXIT_FATAL]
    atexit.register(_exit_now, status)
    try:
        main()
    except SystemExit as e:
        status[0] = e.code if isinstance(e.code, int) else EXIT_OK if e.code is None else EXIT_FATAL
        raise
    except BaseException:
        atexit.unregister(_exit_now)
        raise


def _exit_now(status: list[int]) -> None:
    """End the process with ``status[0]`` once every other exit handler ran (see `run`)."""
    from affectsynth.quick_exit import exit_now

    exit_now(status[0])


if __name__ == "__main__":  # pragma: no cover
    run()
