"""The seam report: what the seam at the start of one piece trimmed or restored, and why.

``verdict`` says what the piece was, in one word (``Verdict``):

- ``"new"``: the piece goes on with new text; nothing was trimmed as an echo.
- ``"echo"``: a verbatim suffix overlap was trimmed and new text followed it.
- ``"nothing-new"``: after trimming, the piece added no text (all echo, preamble or space).
- ``"unresolved"``: the piece ended at the cap while it could still become an overlap that
  reaches the end of the text; nothing was trimmed (``unresolved`` is True). A larger
  ``max_tokens`` for the same round would settle it.

``restart`` is True when the text kept opens with the answer's first words or its current
section's heading: the model started over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

from .markup import CutState

__all__ = ["VERDICTS", "SeamReport", "Verdict"]

Verdict = Literal["new", "echo", "nothing-new", "unresolved"]
VERDICTS: tuple[str, ...] = get_args(Verdict)


@dataclass(frozen=True)
class SeamReport:
    """What the seam at the start of one piece trimmed or restored, and why."""

    strategy: str
    #: The repeated tail removed from the start of the piece.
    trimmed_echo: str = ""
    #: The continuation preamble(s) removed, with the whitespace after them.
    trimmed_preamble: str = ""
    #: Held whitespace put back because the piece did not bring its own.
    restored_whitespace: str = ""
    #: The half word held back for the model to regenerate (user-turn).
    dropped_partial: str = ""
    #: State at the cut; the repairer leaves it None, the engine fills it from ``cut_state``.
    cut: CutState | None = None
    #: Why, in words.
    notes: tuple[str, ...] = ()
    verdict: Verdict = "new"
    #: The piece ended at the cap inside a possible overlap: kept, not trimmed.
    unresolved: bool = False
    #: The kept text starts the answer or its section over.
    restart: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cut"] = self.cut.to_dict() if self.cut is not None else None
        data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SeamReport:
        """Read ``to_dict`` output back (records written before a field existed get its default)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        cut = values.get("cut")
        values["cut"] = CutState.from_dict(cut) if isinstance(cut, Mapping) else None
        values["notes"] = tuple(values.get("notes") or ())
        if values.get("verdict", "new") not in VERDICTS:
            values["verdict"] = "new"
        return cls(**values)
