"""What ``stream()`` yields, and what a finished run returns.

The CLI, the journal and the progress display are listeners on these events; none of them is
woven into the round loop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .usage import Usage

__all__ = [
    "STOP_REASONS",
    "RoundReport",
    "Result",
    "Checkpoint",
    "RoundStarted",
    "TextDelta",
    "RoundFinished",
    "Retrying",
    "StrategyChanged",
    "Finished",
    "Event",
]

#: Why a whole run stopped (``Result.stop_reason``).
STOP_REASONS = (
    "end_turn",
    "stop_sequence",
    "until",
    "max_rounds",
    "max_output_tokens",
    "context_exhausted",
    "refusal",
    # Rounds in a row added no text although something was changed each time (seams issue).
    "stalled",
    # The answer passed ``max_words`` and was cut at the end of the sentence in progress.
    "max_words",
)


@dataclass
class RoundReport:
    """One model call of a run."""

    #: 0-based round number.
    index: int
    #: "prefill" or "user-turn" (round 0 with no text so far reports "initial").
    strategy: str
    #: ``max_tokens`` asked for.
    max_tokens: int
    #: The model's stop reason for this call ("max_tokens", "end_turn", ...).
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: Usage = field(default_factory=Usage)
    #: What the seam at the start of this round trimmed or restored, and why (SeamReport dict).
    seam: dict[str, Any] = field(default_factory=dict)
    #: Characters this round added to the answer, after repair.
    chars: int = 0
    request_id: str | None = None
    #: Round retries (after the SDK's own) and broken streams resumed within this round.
    retries: int = 0
    #: 0.0 when the prices are unknown (so sums stay plain floats); ``to_dict`` gives null then.
    cost_usd: float = 0.0
    #: False when the model's prices are unknown: ``cost_usd`` (0.0) means nothing then.
    cost_known: bool = True
    duration_s: float = 0.0
    #: What the engine changed in this call because the round before added no text
    #: ("max_tokens", "instruction", "seed", "effort", joined by "+"); "" for an ordinary round.
    remedy: str = ""
    #: Why the round's text was thrown away before any of it was shown, to ask for it again
    #: ("unresolved": a seam that could not be trusted; "restart": it started the answer over).
    redo: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["usage"] = self.usage.to_dict()
        # An unknown cost is null, never a $0 a reader would take for free.
        data["cost_usd"] = self.cost_usd if self.cost_known else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoundReport:
        data = dict(data)
        data["usage"] = Usage.from_dict(data.get("usage") or {})
        if data.get("cost_usd", 0.0) is None:
            data["cost_usd"], data["cost_known"] = 0.0, False
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Result:
    """A finished (or, inside an error's ``.partial``, an interrupted) run."""

    text: str
    stop_reason: str
    rounds: list[RoundReport]
    usage: Usage
    cost_usd: float
    model: str
    backend: str
    run_id: str | None = None
    #: False when the model's prices are unknown: ``cost_usd`` (0.0) means nothing then.
    cost_known: bool = True
    #: Rounds that added no text to the answer (all repeat, a restart, only thinking, empty).
    stalled_rounds: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "stop_reason": self.stop_reason,
            "stalled_rounds": self.stalled_rounds,
            "run_id": self.run_id,
            "model": self.model,
            "backend": self.backend,
            "rounds": [r.to_dict() for r in self.rounds],
            "usage": self.usage.to_dict(),
            "cost_usd": self.cost_usd if self.cost_known else None,
            "cost_known": self.cost_known,
        }


@dataclass
class Checkpoint:
    """Where an interrupted run stood: resume with ``stream(..., resume=checkpoint)``."""

    #: Answer text emitted so far (starts with the prefill, if any).
    text: str
    #: Received but not emitted tail at that moment.
    held: str = ""
    #: Rounds completed so far (their usage and cost carry into the resumed result).
    rounds: list[RoundReport] = field(default_factory=list)


@dataclass(frozen=True)
class RoundStarted:
    index: int
    strategy: str
    max_tokens: int


@dataclass(frozen=True)
class TextDelta:
    """Answer text, already repaired at seams; concatenating every TextDelta gives Result.text."""

    text: str
    #: The tail received but not yet emitted (trailing whitespace, a half word): a checkpoint
    #: of (emitted text, held) is enough to resume the run.
    held: str = ""


@dataclass(frozen=True)
class RoundFinished:
    report: RoundReport
    #: The whole answer so far (for checkpoints); equals the concatenated deltas so far.
    text_so_far_chars: int


@dataclass(frozen=True)
class Retrying:
    """A round failed transiently and will be retried after ``delay_s``."""

    index: int
    attempt: int
    delay_s: float
    error: str


@dataclass(frozen=True)
class StrategyChanged:
    """The API refused prefill for this model; the run switched to user-turn."""

    model: str
    old: str
    new: str
    reason: str


@dataclass(frozen=True)
class Finished:
    result: Result


Event = RoundStarted | TextDelta | RoundFinished | Retrying | StrategyChanged | Finished
