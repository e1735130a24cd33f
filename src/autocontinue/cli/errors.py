"""How the command line fails: one line on stderr with a hint, and an exit code.

Exit codes: 0 finished; 1 stopped by a budget; 2 usage, input, configuration or journal
error; 3 the backend failed after retries (the run stays resumable); 70 a bug in
autocontinue (set AUTOCONTINUE_DEBUG=1 for the traceback); 130 interrupted (resumable);
141 stdout was closed (resumable); 143 terminated (resumable).
"""

from __future__ import annotations

import os
import sys
import traceback

import click

from ..errors import (
    AutocontinueError,
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    JournalError,
    one_line,
)

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


class CommandFailed(click.ClickException):
    """A user-caused failure found by the CLI itself: one line, a hint, an exit code."""

    def __init__(self, message: str, *, hint: str | None = None, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.hint = hint
        self.exit_code = code

    def one_line(self) -> str:
        return one_line(self.message, self.hint)


def exit_code_for(error: BaseException) -> int:
    """The exit code for an exception that ended a command."""
    if isinstance(error, (ConfigurationError, BackendUnavailableError, JournalError)):
        return EXIT_USAGE
    if isinstance(error, BackendError):
        return EXIT_BACKEND
    if isinstance(error, CommandFailed):
        return error.exit_code
    if isinstance(error, AutocontinueError):
        return EXIT_BACKEND
    return EXIT_BUG


def say(line: str) -> None:
    """One line on stderr, prefixed with the program name."""
    click.echo(f"autocontinue: {line}", err=True)


def warn(line: str) -> None:
    say(f"warning: {line}")


def describe_bug(error: BaseException) -> str:
    """One line for an unexpected exception; the traceback only with AUTOCONTINUE_DEBUG=1."""
    if os.environ.get("AUTOCONTINUE_DEBUG"):
        traceback.print_exception(error, file=sys.stderr)
    detail = " ".join(str(error).split()) or type(error).__name__
    return (
        f"internal error: {type(error).__name__}: {detail} "
        "(hint: this is a bug in autocontinue; AUTOCONTINUE_DEBUG=1 shows the traceback)"
    )
