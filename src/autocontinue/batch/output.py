"""A batch's output: one JSON object per item, written whole as each item finishes.

``ItemResult`` is what a finished (or failed) item reports; its JSON leaves no control
character raw (``jsontext``), so model text on a terminal stays text. ``OutputWriter`` is the
only writer of the output: each line is one ``write`` of a complete line followed by a flush, so
lines never interleave or end half-written. With ``output_dir`` each item is its own file
(``<id>.json``), written to a temporary name and renamed. A resumed batch rewrites the output
from the journal first (``rewrite``), so it ends equal to an uninterrupted batch. The output is
written into the file named (``outfile``): a regular file (or a symlink's target) is replaced
atomically, a device, FIFO or ``/dev/fd/N`` is written into as it is. ``check_targets`` refuses,
before anything is spent, an output that cannot be written or would overwrite the input or the
journal. A write that fails mid-batch (disk full, an I/O error, a FIFO whose reader went away)
raises ``OutputError``: each item is journaled as finished before its line is written, so the
same command run again rewrites every finished line and runs only the rest. A closed stdout
stays a ``BrokenPipeError`` (the CLI ends as for ``run``), also when it was named as the
output (``-o /dev/stdout``, ``/dev/fd/1``, or the file descriptor 1 is).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .. import jsontext
from ..errors import ConfigurationError, OutputError
from ..outfile import (
    cannot_write,
    in_place,
    open_into,
    output_problem,
    real_target,
    same_file,
    stdout_closed,
    write_into,
)
from ..usage import Usage

__all__ = ["ItemResult", "OutputWriter", "item_file_name", "check_targets"]

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
#: How the answers are had again after the output failed (the hint's second half).
RERUN = "rerun the same command: finished items are kept in the journal"


@dataclass
class ItemResult:
    """One item of a batch at its end: the answer, or the error that stopped it."""

    id: str
    text: str = ""
    stop_reason: str | None = None
    rounds: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    #: False when the model's prices are unknown (its ``cost_usd`` is then null, not $0).
    cost_known: bool = True
    #: One line (with a hint) when the item failed; None when it finished.
    error: str | None = None
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "stop_reason": self.stop_reason,
            "rounds": self.rounds,
            "usage": self.usage.to_dict(),
            "cost_usd": round(self.cost_usd, 8) if self.cost_known else None,
            "error": self.error,
        }

    def to_line(self) -> str:
        return jsontext.dumps(self.to_dict()) + "\n"


def item_file_name(ident: str) -> str:
    """The file of item ``ident`` in an output directory: ``<id>.json``, made safe and unique."""
    name = _UNSAFE_NAME.sub("_", ident)[:120] or "item"
    if name != ident:  # keep two ids that clean to the same name apart
        name += "-" + hashlib.sha1(ident.encode()).hexdigest()[:8]
    return f"{name}.json"


def check_targets(
    output: str | os.PathLike[str] | None,
    output_dir: str | os.PathLike[str] | None,
    *,
    inputs: Any = None,
    journal: str | os.PathLike[str] | None = None,
    ids: Iterable[str] = (),
) -> None:
    """Refuse, before anything is spent, an ``output`` that cannot be written, or an output (the
    file, or the file of one of ``ids`` in ``output_dir``) that is the input file or the
    journal (or one of its SQLite side files): one line and a hint."""
    if output is not None:
        problem = output_problem(output)
        if problem is not None:
            raise ConfigurationError(f"the output {output} {problem[0]}", hint=problem[1])
    targets = [Path(output)] if output is not None else []
    if output_dir is not None:
        targets += [Path(output_dir) / item_file_name(ident) for ident in ids]
    kept: list[tuple[str, Path]] = []
    if isinstance(inputs, (str, os.PathLike)):
        kept.append(("the input", Path(inputs)))
    if journal is not None:
        kept += [("the journal", Path(f"{journal}{end}")) for end in ("", "-wal", "-shm", "-journal")]
    for target in targets:
        for what, path in kept:
            if same_file(target, path):
                raise ConfigurationError(
                    f"the output {target} is {what}: writing the answers there would destroy it",
                    hint="write the answers to another file",
                )


class OutputWriter:
    """Writes item results to a JSONL file, stdout, or one file per item in a directory."""

    def __init__(
        self, path: Path | None = None, *, output_dir: Path | None = None, stream: IO[str] | None = None
    ):
        self.path = path
        self.output_dir = output_dir
        self._stream = stream
        self._file: IO[str] | None = None
        #: The error that broke the output; later lines are not written (they are journaled).
        self.failed: OutputError | None = None

    def rewrite(self, results: list[ItemResult]) -> None:
        """Start the output afresh holding ``results`` (the items a resumed batch already has)."""
        if self.output_dir is not None:
            try:
                self.output_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise self._broken(self.output_dir, exc) from None
            for result in results:
                self.write(result)
            return
        if self.path is None:
            for result in results:
                self.write(result)
            return
        text = "".join(result.to_line() for result in results)
        try:
            if in_place(self.path):  # a device, FIFO or /dev/fd/N: into it, never renamed over
                self._file = open_into(self.path)
                self._file.write(text)
                self._file.flush()
            else:
                target = real_target(self.path)  # a symlink's target is rewritten, not the link
                write_into(target, text)
                self._file = open(target, "a", encoding="utf-8")  # noqa: SIM115 - held open for the batch
        except OSError as exc:
            if stdout_closed(self.path, exc):
                self._drop()
                raise  # -o /dev/stdout that was closed: as a closed stdout (exit 141)
            error = self._broken(self.path, exc)
            self.close()  # quietly: what it still buffers cannot be written either
            raise error from None

    def write(self, result: ItemResult) -> None:
        """Write ``result``'s line (or file); OutputError if it cannot, and after that nothing."""
        if self.failed is not None:
            return
        if self.output_dir is not None:
            self._write_item_file(result)
            return
        out = self._target()
        try:
            out.write(result.to_line())
            out.flush()
        except OSError as exc:
            if isinstance(exc, BrokenPipeError) and self.path is None:
                raise  # stdout was closed: the CLI ends as run does (exit 141)
            if self.path is not None and stdout_closed(self.path, exc):
                self._drop()
                raise  # -o /dev/stdout (or the file stdout is) was closed: the same
            raise self._broken(self.path or "stdout", exc) from None

    def _drop(self) -> None:
        """Forget a file on a closed stdout: nothing it still buffers can be written."""
        file, self._file = self._file, None
        if file is not None and file not in (sys.stdout, self._stream):
            with suppress(OSError):
                file.close()

    def _broken(self, where: Path | str, exc: OSError) -> OutputError:
        self.failed = cannot_write(where, exc, RERUN)
        return self.failed

    def _target(self) -> IO[str]:
        if self._file is None:
            if self.path is not None:
                self.rewrite([])
            else:
                self._file = self._stream or sys.stdout
        assert self._file is not None
        return self._file

    def _write_item_file(self, result: ItemResult) -> None:
        assert self.output_dir is not None
        target = self.output_dir / item_file_name(result.id)
        try:
            write_into(target, jsontext.dumps(result.to_dict(), indent=1) + "\n")
        except OSError as exc:
            raise self._broken(target, exc) from None

    def close(self) -> None:
        """Close the output file (a broken one quietly: its error was raised already)."""
        file, self._file = self._file, None
        if file is None or file in (sys.stdout, self._stream):
            return
        try:
            file.close()
        except OSError as exc:
            if self.path is not None and stdout_closed(self.path, exc):
                raise
            if self.failed is None:
                raise self._broken(self.path or "stdout", exc) from None
