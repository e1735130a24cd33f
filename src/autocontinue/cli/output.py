"""Where the answer goes: streamed to stdout, or written to -o FILE, or one JSON object."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import jsontext
from ..events import Result, TextDelta
from ..outfile import cannot_write, stdout_closed, write_into
from .terminal import for_stream

__all__ = ["AnswerOutput", "write_atomically"]


class AnswerOutput:
    """A listener that streams answer text to stdout unless -o or --json was given.

    With ``-o FILE`` the answer goes only to FILE, written at the end: a regular file in one
    atomic rename, a device, FIFO or ``/dev/fd/N`` straight into it (stdout stays empty). With ``--json`` stdout carries one JSON object at the end and no
    streamed text. On a terminal, control characters in the answer are made visible unless
    ``--raw`` was given; a pipe or file gets the answer byte-exact.
    """

    def __init__(self, *, out_file: Path | None = None, as_json: bool = False) -> None:
        self.out_file = out_file
        self.as_json = as_json
        self.streams = out_file is None and not as_json
        self._last = ""

    def write(self, text: str) -> None:
        """Stream ``text`` to stdout now (flushed), if streaming."""
        if self.streams and text:
            # color=True: click would otherwise strip ANSI sequences from a pipe, and the answer
            # must reach a pipe or file byte-exact (on a terminal for_stream made them visible).
            click.echo(for_stream(text, click.get_text_stream("stdout"), answer=True), nl=False, color=True)
            self._last = text

    def on_event(self, event: object) -> None:
        if isinstance(event, TextDelta):
            self.write(event.text)

    def finish(self, result: Result) -> None:
        """Write the file or the JSON; end a streamed answer with a newline on a terminal."""
        if self.out_file is not None:
            write_atomically(self.out_file, result.text, run_id=result.run_id)
        if self.as_json:
            self.print_json(result.to_dict())
        elif self.streams and self._last and not self._last.endswith("\n") and sys.stdout.isatty():
            click.echo("")

    def print_json(self, data: dict[str, object]) -> None:
        """One JSON object on stdout, no control character raw (valid and inert on a terminal)."""
        click.echo(jsontext.dumps(data))


def write_atomically(path: Path, text: str, *, run_id: str | None = None) -> None:
    """Write ``text`` as the whole of ``path``, never half of it: a regular file (a symlink's
    target) through a temporary file and a rename, a device, FIFO or descriptor straight.
    OutputError (disk full, a reader gone) says how to get the answer of run ``run_id`` again;
    EPIPE on this process's own stdout stays a ``BrokenPipeError``, as on plain stdout."""
    try:
        write_into(path, text)
    except OSError as exc:
        if stdout_closed(path, exc):
            raise  # -o /dev/stdout was closed: the CLI ends as for a closed stdout (exit 141)
        then = (
            f"get the answer kept in the journal: autocontinue show {run_id} > FILE"
            if run_id
            else "run it again (nothing was journaled)"
        )
        raise cannot_write(path, exc, then) from None
