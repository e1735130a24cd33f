"""A batch's output: one JSON object per item, written whole as each item finishes.

``ItemResult`` is what a finished (or failed) item reports; its JSON leaves no control
character raw (``jsontext``), so model text on a terminal stays text. ``OutputWriter`` is the
only writer of the output: each line is one ``write`` of a complete line followed by a flush, so
lines never interleave or end half-written. With ``output_dir`` each item is its own file
(``<id>.json``), written to a temporary name and renamed. A resumed batch rewrites the output
from the journal first (``rewrite``), so it ends equal to an uninterrupted batch.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .. import jsontext
from ..usage import Usage

__all__ = ["ItemResult", "OutputWriter"]

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


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


class OutputWriter:
    """Writes item results to a JSONL file, stdout, or one file per item in a directory."""

    def __init__(
        self, path: Path | None = None, *, output_dir: Path | None = None, stream: IO[str] | None = None
    ):
        self.path = path
        self.output_dir = output_dir
        self._stream = stream
        self._file: IO[str] | None = None

    def rewrite(self, results: list[ItemResult]) -> None:
        """Start the output afresh holding ``results`` (the items a resumed batch already has)."""
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            for result in results:
                self.write(result)
            return
        if self.path is None:
            for result in results:
                self.write(result)
            return
        partial = self.path.with_name(self.path.name + ".partial")
        with open(partial, "w", encoding="utf-8") as out:
            out.writelines(result.to_line() for result in results)
        os.replace(partial, self.path)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held open for the batch

    def write(self, result: ItemResult) -> None:
        if self.output_dir is not None:
            self._write_item_file(result)
            return
        out = self._target()
        out.write(result.to_line())
        out.flush()

    def _target(self) -> IO[str]:
        if self._file is None:
            if self.path is not None:
                self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - held open for the batch
            else:
                self._file = self._stream or sys.stdout
        return self._file

    def _write_item_file(self, result: ItemResult) -> None:
        assert self.output_dir is not None
        name = _UNSAFE_NAME.sub("_", result.id)[:120] or "item"
        if name != result.id:  # keep two ids that clean to the same name apart
            name += "-" + hashlib.sha1(result.id.encode()).hexdigest()[:8]
        target = self.output_dir / f"{name}.json"
        partial = target.with_name(target.name + ".partial")
        partial.write_text(jsontext.dumps(result.to_dict(), indent=1) + "\n", encoding="utf-8")
        os.replace(partial, target)

    def close(self) -> None:
        if self._file is not None and self._file not in (sys.stdout, self._stream):
            self._file.close()
        self._file = None
