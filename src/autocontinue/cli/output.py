"""Where the answer goes: streamed to stdout, or written to -o FILE, or one JSON object."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import click

from ..events import Result, TextDelta
from .errors import CommandFailed

__all__ = ["AnswerOutput", "write_atomically"]


class AnswerOutput:
    """A listener that streams answer text to stdout unless -o or --json was given.

    With ``-o FILE`` the answer goes only to FILE, written at the end in one atomic rename
    (stdout stays empty). With ``--json`` stdout carries one JSON object at the end and no
    streamed text.
    """

    def __init__(self, *, out_file: Path | None = None, as_json: bool = False) -> None:
        self.out_file = out_file
        self.as_json = as_json
        self.streams = out_file is None and not as_json
        self._last = ""

    def write(self, text: str) -> None:
        """Stream ``text`` to stdout now (flushed), if streaming."""
        if self.streams and text:
            click.echo(text, nl=False)
            self._last = text

    def on_event(self, event: object) -> None:
        if isinstance(event, TextDelta):
            self.write(event.text)

    def finish(self, result: Result) -> None:
        """Write the file or the JSON; end a streamed answer with a newline on a terminal."""
        if self.out_file is not None:
            write_atomically(self.out_file, result.text)
        if self.as_json:
            click.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        elif self.streams and self._last and not self._last.endswith("\n") and sys.stdout.isatty():
            click.echo("")


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename: never a half file."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temp, 0o666 & ~umask)
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise CommandFailed(
            f"cannot write {path}: {exc.strerror or exc}",
            hint="the answer is kept in the journal: autocontinue show RUN_ID > FILE",
        ) from None
