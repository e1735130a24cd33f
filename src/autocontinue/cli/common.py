"""Options shared by the commands that produce an answer, and opening the journal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .errors import CommandFailed
from .terminal import set_raw

if TYPE_CHECKING:
    from ..journal import Journal

__all__ = ["output_options", "journal_options", "raw_option", "open_journal"]


def raw_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """--raw: the answer's control characters reach a terminal as they are."""
    return click.option(
        "--raw",
        is_flag=True,
        expose_value=False,
        callback=lambda ctx, param, value: set_raw(bool(value)),
        help="On a terminal, write the answer's control characters as they are (default: made visible).",
    )(command)


def output_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """-o FILE, --json, --quiet and --raw."""
    decorators: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option(
            "-o",
            "--output",
            "output",
            metavar="FILE",
            help="Write the answer to FILE (atomically, at the end) instead of stdout.",
        ),
        click.option(
            "--json",
            "as_json",
            is_flag=True,
            help="Print one JSON object (text, rounds, usage, cost) instead of the text.",
        ),
        click.option("-q", "--quiet", is_flag=True, help="Nothing on stderr but errors."),
        raw_option,
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def journal_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--journal PATH and --no-journal."""
    command = click.option(
        "--no-journal", is_flag=True, help="Do not record the run (it cannot be resumed)."
    )(command)
    command = click.option(
        "--journal",
        "journal_path",
        metavar="PATH",
        help="Journal file (default: $AUTOCONTINUE_HOME/journal.sqlite3 or the user data directory).",
    )(command)
    return command


def open_journal(
    journal_path: str | None, no_journal: bool = False, *, create: bool = True
) -> Journal | None:
    """The journal to record in, or None with --no-journal.

    ``create=False`` (for commands that only read): a --journal PATH that does not exist is an
    error, not an empty journal.
    """
    from ..journal import Journal, default_journal_path

    if no_journal:
        if journal_path:
            raise CommandFailed("--journal and --no-journal contradict each other", hint="keep one of them")
        return None
    journal = Journal(
        Path(journal_path) if journal_path else default_journal_path(), create=create or journal_path is None
    )
    context = click.get_current_context(silent=True)
    if context is not None:
        context.call_on_close(journal.close)
    return journal
