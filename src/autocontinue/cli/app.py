"""The ``autocontinue`` command group: ``run`` is the default command, errors are one line."""

from __future__ import annotations

import sys
from typing import Any

import click

from .. import __version__
from ..errors import AutocontinueError
from .errors import EXIT_BUG, EXIT_INTERRUPTED, EXIT_USAGE, CommandFailed, describe_bug, exit_code_for, say
from .batch import batch
from .history import runs, show
from .models import models
from .resume import resume
from .run import demo, run

__all__ = ["cli", "main"]

_EXTRA_MODULES = {"starlette", "uvicorn", "anthropic", "httpx", "sse_starlette"}


class DefaultGroup(click.Group):
    """A group whose unknown first word is the prompt of the default command ``run``,
    and whose every failure is one line on stderr with a hint and an exit code."""

    default_command = "run"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args:
            click.echo(ctx.get_help())
            ctx.exit(0)
        first = args[0]
        if first not in self.list_commands(ctx) and first not in (*ctx.help_option_names, "--version"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, "emulate"})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == "emulate" and name not in self.commands:
            return _emulate_command()
        return super().get_command(ctx, name)

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        code = _run_reporting_errors(
            lambda: super(DefaultGroup, self).main(
                args, prog_name or "autocontinue", complete_var, standalone_mode=False, **extra
            )
        )
        if standalone_mode:
            sys.exit(code)
        return code


def _run_reporting_errors(invoke: Any) -> int:
    """Call the command; turn every way it can end into an exit code and at most one line."""
    try:
        value = invoke()
        return value if isinstance(value, int) else 0
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else EXIT_USAGE)
    except click.exceptions.Abort:
        say("interrupted")
        return EXIT_INTERRUPTED
    except CommandFailed as error:
        say(error.one_line())
        return error.exit_code
    except click.UsageError as error:
        say(_usage_line(error))
        return EXIT_USAGE
    except click.ClickException as error:
        say(" ".join(error.format_message().split()))
        return error.exit_code
    except AutocontinueError as error:
        say(error.one_line())
        return exit_code_for(error)
    except Exception as error:  # noqa: BLE001 - a bug still gets one line, not a traceback
        say(describe_bug(error))
        return EXIT_BUG


def _usage_line(error: click.UsageError) -> str:
    message = " ".join(error.format_message().split())
    path = error.ctx.command_path if error.ctx is not None else "autocontinue"
    return f"{message} (hint: see '{path} --help')"


def _emulate_command() -> click.Command:
    """The emulator's command, imported only when asked for (its extra may be missing)."""
    try:
        from ..emulator.command import emulate
    except ImportError as error:
        missing = (getattr(error, "name", None) or "").split(".")[0]
        if missing in _EXTRA_MODULES:
            message = f"the emulator needs the {missing!r} package"
            hint = "pip install 'autocontinue[emulator]'"
        else:
            message = f"the emulator is not available in this installation ({error})"
            hint = "reinstall autocontinue with: pip install 'autocontinue[emulator]'"
        return _unavailable("emulate", message, hint)
    return emulate


def _unavailable(name: str, message: str, hint: str) -> click.Command:
    def fail(**_: Any) -> None:
        raise CommandFailed(message, hint=hint)

    return click.Command(
        name, callback=fail, help=f"Unavailable: {message}.", add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


@click.group("autocontinue", cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="autocontinue")
def cli() -> None:
    """Complete LLM answers of any length.

    When a model call stops at its output cap, autocontinue continues the answer (by prefill,
    or by a user turn on models that refuse prefill), repairs the seam, and repeats until the
    answer is finished. Every run is journaled and can be resumed.

    \b
    autocontinue "Write a 5000-word story"        (run is the default command)
    autocontinue -f prompt.txt -o answer.md
    autocontinue resume                            (finish the last interrupted run)

    Exit codes: 0 finished, 1 stopped by a budget, 2 bad input, 3 backend failed after
    retries (resumable), 130 interrupted (resumable).
    """


for _command in (run, resume, runs, show, models, demo, batch):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: ``autocontinue`` and ``python -m autocontinue``."""
    cli.main(args=argv, prog_name="autocontinue")
