"""How the command line fails: one line on stderr with a hint, and an exit code.

The exit codes are listed once, in ``EXIT_CODES`` (``autocontinue --help`` and the README
show the same table). Only failures a later try can fix (overload, rate limits, server errors,
lost connections, interrupts) are offered as resumable; a permanent one (bad key, unknown
model, a request the API refuses, a bad option) says what to change instead.
"""

from __future__ import annotations

import os
import sys

import click

from ..errors import (
    AutocontinueError,
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    JournalError,
    OutputError,
    TransientBackendError,
    one_line,
)
from .terminal import for_stream

__all__ = [
    "EXIT_OK",
    "EXIT_BUDGET",
    "EXIT_USAGE",
    "EXIT_BACKEND",
    "EXIT_BUG",
    "EXIT_INTERRUPTED",
    "EXIT_PIPE",
    "EXIT_TERMINATED",
    "BUDGET_STOPS",
    "RESUMABLE_STOPS",
    "EXIT_CODES",
    "resumable",
    "hint_for",
    "error_line",
    "CommandFailed",
    "exit_code_for",
    "say",
    "warn",
    "describe_bug",
]

EXIT_OK = 0
EXIT_BUDGET = 1
EXIT_USAGE = 2
EXIT_BACKEND = 3
EXIT_BUG = 70
EXIT_INTERRUPTED = 130
EXIT_PIPE = 141
EXIT_TERMINATED = 143

#: Result.stop_reason values that mean a budget ran out (exit 1).
BUDGET_STOPS = {"max_rounds", "max_output_tokens", "context_exhausted"}
#: Stop reasons that exit 1 and leave the run resumable (rounds in a row added no text).
RESUMABLE_STOPS = {"stalled"}  # the journal's recorder keeps the same set

#: Every exit code and what it means (shown by ``autocontinue --help``; the README's table).
EXIT_CODES = (
    (EXIT_OK, "finished (also when --max-words or --until ended it)"),
    (
        EXIT_BUDGET,
        "stopped by a budget (--max-rounds, --max-output-tokens, context full), or stalled: "
        "rounds in a row added no text (resumable)",
    ),
    (
        EXIT_USAGE,
        "bad input, option, configuration, credentials, unknown model, a request the API "
        "refuses, a journal problem, or an output that cannot be written (disk full) (not "
        "resumable: change what the message says)",
    ),
    (
        EXIT_BACKEND,
        "the backend kept failing after retries: overload, rate limit, server error, lost "
        "connection (resumable)",
    ),
    (EXIT_BUG, "a bug in autocontinue (AUTOCONTINUE_DEBUG=1 shows the traceback)"),
    (EXIT_INTERRUPTED, "interrupted by Ctrl-C (resumable)"),
    (EXIT_PIPE, "stdout was closed (resumable once a round had finished)"),
    (EXIT_TERMINATED, "terminated by SIGTERM (resumable)"),
)

#: What to do, for an error raised without a hint of its own.
_FALLBACK_HINTS: tuple[tuple[type[BaseException], str], ...] = (
    (TransientBackendError, "the service may recover: try again later"),
    (ConfigurationError, "see: autocontinue run --help"),
    (BackendUnavailableError, "reinstall autocontinue with the extra for this backend"),
    (JournalError, "pass --journal PATH or --no-journal"),
    (OutputError, "free some space or choose another output, then run the same command again"),
    (BackendError, "check the model, the endpoint and the request options"),
    (AutocontinueError, "see: autocontinue --help"),
)


class CommandFailed(click.ClickException):
    """A user-caused failure found by the CLI itself: one line, a hint, an exit code."""

    def __init__(self, message: str, *, hint: str | None = None, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.hint = hint
        self.exit_code = code

    def one_line(self) -> str:
        return one_line(self.message, self.hint)


def resumable(error: BaseException) -> bool:
    """True if trying the same run again later may succeed (the resume hint is offered)."""
    if isinstance(error, TransientBackendError):
        return True
    return type(error) is BackendError and getattr(error, "status_code", None) is None


def hint_for(error: AutocontinueError) -> str:
    """The error's own hint, or one for its kind."""
    if error.hint:
        return error.hint
    return next(hint for kind, hint in _FALLBACK_HINTS if isinstance(error, kind))


def error_line(error: AutocontinueError) -> str:
    """``message (hint: ...)`` for a library error, with a hint whatever raised it."""
    return one_line(error.message, hint_for(error))


def exit_code_for(error: BaseException) -> int:
    """The exit code for an exception that ended a command."""
    if isinstance(error, (ConfigurationError, BackendUnavailableError, JournalError, OutputError)):
        return EXIT_USAGE
    if isinstance(error, BackendError):
        return EXIT_BACKEND if resumable(error) else EXIT_USAGE
    if isinstance(error, CommandFailed):
        return error.exit_code
    if isinstance(error, AutocontinueError):
        return EXIT_BACKEND
    return EXIT_BUG


def say(line: str) -> None:
    """One line on stderr, prefixed with the program name (control characters made visible
    on a terminal)."""
    stream = click.get_text_stream("stderr")
    click.echo(for_stream(f"autocontinue: {line}", stream), err=True)


def warn(line: str) -> None:
    say(f"warning: {line}")


def describe_bug(error: BaseException) -> str:
    """One line for an unexpected exception; the traceback only with AUTOCONTINUE_DEBUG=1."""
    if os.environ.get("AUTOCONTINUE_DEBUG"):
        import traceback

        traceback.print_exception(error, file=sys.stderr)
    detail = " ".join(str(error).split()) or type(error).__name__
    return (
        f"internal error: {type(error).__name__}: {detail} "
        "(hint: this is a bug in autocontinue; AUTOCONTINUE_DEBUG=1 shows the traceback)"
    )
