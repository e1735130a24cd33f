"""The ``autocontinue`` command group: ``run`` is the default command, errors are one line.

Commands are imported only when used (``--help`` reads their one-line help from
``COMMANDS``), so that ``autocontinue --help`` starts fast.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from .. import __version__
from ..errors import AutocontinueError
from .errors import (
    EXIT_BUG,
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CommandFailed,
    describe_bug,
    error_line,
    exit_code_for,
    say,
)

__all__ = ["cli", "main", "COMMANDS", "near_command"]

_EXTRA_MODULES = {"starlette", "uvicorn", "anthropic", "httpx", "sse_starlette"}

#: name -> (module in autocontinue.cli, attribute, one-line help for the command list).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("run", "run", "Write the complete answer to PROMPT (the default command)."),
    "resume": ("resume", "resume", "Finish an interrupted run (default: the latest unfinished one)."),
    "runs": ("history", "runs", "List recent runs: id, when, model, rounds, tokens, cost, state."),
    "show": ("history", "show", "Print a run's answer (so far, if it did not finish)."),
    "models": ("models", "models", "The model catalogue: limits, prefill support, prices."),
    "demo": ("demo", "demo", "A long answer in several rounds on the local model, seams repaired."),
    "batch": ("batch", "batch", "Answer every prompt of a JSONL or text file, each to its end."),
    "emulate": ("", "", "Serve the Messages API emulator on a loopback port."),
}


def _distance(a: str, b: str) -> int:
    """Edit distance with adjacent transpositions (optimal string alignment)."""
    rows = [list(range(len(b) + 1))]
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            best = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                best = min(best, rows[-2][j - 2] + 1)
            row.append(best)
        rows.append(row)
    return rows[-1][-1]


def near_command(word: str, commands: list[str]) -> str | None:
    """The command a one-word prompt is probably a typo of, or None.

    One edit (a wrong, missing, extra or swapped letter) for words up to 5 letters, two for
    longer ones; a real one-word prompt can still be sent with ``run WORD`` or ``-- WORD``.
    """
    if not word.isalpha() or len(word) < 3:
        return None
    lowered = word.lower()
    allowed = 1 if len(word) <= 5 else 2
    scored = sorted((_distance(lowered, name), abs(len(name) - len(word)), name) for name in commands)
    distance, _, name = scored[0]
    return name if 0 < distance <= allowed or (distance == 0 and lowered != word) else None


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
            typo = near_command(first, self.list_commands(ctx))
            if typo is not None:
                raise CommandFailed(
                    f"{first!r} is not a command: did you mean {typo}?",
                    hint=f"to send it to the model as a prompt: autocontinue run {first}, or: autocontinue -- {first}",
                )
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        if name == "emulate":
            return _emulate_command()
        if name in COMMANDS:
            module, attribute, _ = COMMANDS[name]
            command: click.Command = getattr(importlib.import_module(f".{module}", __package__), attribute)
            return command
        return None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [
            (name, COMMANDS[name][2] if name in COMMANDS else self.commands[name].get_short_help_str(80))
            for name in self.list_commands(ctx)
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_options(ctx, formatter)
        run = self.get_command(ctx, "run")
        assert run is not None
        with click.Context(run, info_name="run", parent=ctx) as run_ctx:
            rows = [record for param in run.get_params(run_ctx) if (record := param.get_help_record(run_ctx))]
        with formatter.section("Run options (autocontinue [run] PROMPT [OPTIONS])"):
            formatter.write_dl([row for row in rows if not row[0].startswith("-h, --help")])

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Exit codes"):
            formatter.write_dl([(str(code), meaning) for code, meaning in EXIT_CODES])

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        code = _run_reporting_errors(
            lambda: super(DefaultGroup, self).main(
                _checked_args(sys.argv[1:] if args is None else args),
                prog_name or "autocontinue",
                complete_var,
                standalone_mode=False,
                **extra,
            )
        )
        if standalone_mode:
            sys.exit(code)
        return code


def _checked_args(args: list[str]) -> list[str]:
    """Refuse an argument that is not valid UTF-8 (the OS hands it over as lone surrogates)."""
    for position, arg in enumerate(args, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = arg.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
            raise CommandFailed(
                f"argument {position} is not valid UTF-8 text: {shown}",
                hint="give text in UTF-8 (check the terminal's or the script's encoding), or pass it with -f FILE",
            ) from None
    return list(args)


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
        say(error_line(error))
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
        name,
        callback=fail,
        help=f"Unavailable: {message}.",
        add_help_option=False,
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
    cat prompt.txt | autocontinue                  (the prompt from stdin)
    autocontinue resume                            (finish the last interrupted run)
    autocontinue demo                              (see it work on the local model)
    """


def main(argv: list[str] | None = None) -> None:
    """Console entry point: ``autocontinue`` and ``python -m autocontinue``."""
    cli.main(args=argv, prog_name="autocontinue")
