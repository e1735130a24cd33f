"""The continuation state, and the pure decisions made from it: budgets and when to stop.

Nothing here does I/O. ``decide_next_round`` looks at the state after a round and returns
either a stop reason or the ``max_tokens`` for the next call; the engine does the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .catalogue import ModelSpec
from .events import RoundReport
from .seams import CutScanner
from .usage import Usage

__all__ = [
    "Budgets",
    "ContinuationState",
    "Decision",
    "decide_next_round",
    "estimate_tokens",
    "count_words",
    "sentence_cut",
    "STOP_ON_MODEL_REASON",
]

#: Fewest output tokens worth a call; below this the context is treated as exhausted.
MIN_USEFUL_TOKENS = 16
#: Tokens added to the next prompt beyond the last one's input and output (the user turn that
#: asks to continue, block framing), plus a margin because the next prompt is an estimate.
CONTINUATION_OVERHEAD = 64
ESTIMATE_MARGIN = 1.02

#: Model stop reasons that end the run at once, and the run stop reason they become.
STOP_ON_MODEL_REASON = {
    "stop_sequence": "stop_sequence",
    "refusal": "refusal",
    "model_context_window_exceeded": "context_exhausted",
    "tool_use": "end_turn",
    "pause_turn": "end_turn",
}

_WORD = re.compile(r"\S+")


def count_words(text: str) -> int:
    """Words as LongBench-Write counts English: runs of non-space characters."""
    return sum(1 for _ in _WORD.finditer(text))


#: Characters that end a sentence, and closers that may follow them ('end."' ends after the quote).
_SENTENCE_ENDS = ".!?\u2026\u3002\uff01\uff1f"
_CLOSERS = "\"'\u201d\u2019)]*_"


def sentence_cut(before: str, pending: str, words: int, max_words: int, *, final: bool = False) -> int | None:
    """Where to cut ``pending`` once the answer passes ``max_words``: just after a sentence end.

    ``before`` is the emitted text's last characters and ``words`` its word count. Returns the
    length of ``pending`` to keep (the text up to and including the first sentence end at or
    after the word that reaches ``max_words``), or None when no such end is in ``pending`` yet.
    A sentence end is one of ``.!?…`` (and any closing quotes or brackets) followed by
    whitespace; with ``final`` (nothing follows) the end of ``pending`` is one too.
    Example: 3 words so far, max_words 4, pending " four five. Six" -> 10 (" four five.").
    """
    in_word = bool(before) and not before[-1].isspace()
    prev = before[-1:]
    closing = bool(prev) and prev in _SENTENCE_ENDS + _CLOSERS and _ends_sentence(before)
    for i, ch in enumerate(pending):
        if ch.isspace():
            if words >= max_words and closing:
                return i
            in_word = closing = False
            continue
        if not in_word:
            words += 1
            in_word = True
        closing = ch in _SENTENCE_ENDS or (closing and ch in _CLOSERS)
    if final and words >= max_words and closing:
        return len(pending)
    return None


def _ends_sentence(text: str) -> bool:
    """``text`` ends with a sentence end and perhaps closers after it."""
    stripped = text.rstrip(_CLOSERS)
    return bool(stripped) and stripped[-1] in _SENTENCE_ENDS


def estimate_tokens(text: str) -> int:
    """A deliberately high estimate of a text's tokens (about 3 characters a token)."""
    return len(text) // 3 + 1


@dataclass(frozen=True)
class Budgets:
    """The limits of one run."""

    #: ``max_tokens`` of each call (already capped at the model's maximum).
    max_tokens_per_call: int
    max_rounds: int = 20
    max_output_tokens: int | None = None
    until: str | None = None
    min_words: int | None = None
    #: Stop at a sentence end once the answer has this many words (a ceiling beside min_words).
    max_words: int | None = None
    #: Context window of the model, in tokens.
    context_window: int = 200_000


@dataclass
class ContinuationState:
    """Everything the engine knows about a run in progress."""

    spec: ModelSpec
    budgets: Budgets
    #: Received but not emitted: trailing whitespace or a half word the next round may redo.
    held: str = ""
    rounds: list[RoundReport] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    #: "prefill" or "user-turn": how the next continuation is asked for.
    strategy: str = "prefill"
    #: Prompt tokens of the first call (exact when known, else an estimate).
    prompt_tokens: int = 0
    #: Input (all kinds) plus output tokens of the last completed call, when known.
    last_call_tokens: int | None = None
    #: Set once the run is over.
    stop_reason: str | None = None
    #: Open code fence and XML-like tags of ``text``, kept up to date as text is added.
    cut: CutScanner = field(default_factory=CutScanner, repr=False)
    #: The emitted text as one list of pieces per round (joined lazily: appends stay O(1)).
    _segments: list[list[str]] = field(default_factory=list, repr=False)
    _chars: int = 0
    #: Words of ``text`` (as ``count_words`` counts them), kept up to date as text is added when
    #: the run has a ``max_words`` budget (the one decision that reads it).
    words: int = 0
    _in_word: bool = field(default=False, repr=False)
    _joined: str | None = field(default=None, repr=False)

    @property
    def completed_rounds(self) -> int:
        """Rounds that count against ``max_rounds`` (a broken stream resumed is not a round)."""
        return sum(1 for r in self.rounds if r.stop_reason != "interrupted")

    def start_segment(self) -> None:
        """Text added from now on belongs to a new round (a new assistant block)."""
        self._segments.append([])

    def drop_empty_segment(self) -> None:
        """Forget the segment just started if nothing was added to it (a call that failed)."""
        if self._segments and not self._segments[-1]:
            self._segments.pop()

    def add_text(self, text: str) -> None:
        """Append emitted text (never retracted) to the current round's segment."""
        if text:
            if self.budgets.max_words:  # words are counted only for the budget that needs them
                self._count_words(text)
            self._segments[-1].append(text)
            self._chars += len(text)
            self._joined = None
            self.cut.feed(text)

    def _count_words(self, text: str) -> None:
        words = len(text.split())
        if words and self._in_word and not text[0].isspace():
            words -= 1  # the first word goes on from the end of the text so far
        self.words += words
        self._in_word = not text[-1].isspace()

    @property
    def text(self) -> str:
        """Answer text emitted so far (starts with the prefill, if any)."""
        if self._joined is None:
            self._joined = "".join(self.segments)
        return self._joined

    @property
    def segments(self) -> list[str]:
        """The emitted text split by the round that produced it (stable cache blocks)."""
        for parts in self._segments:
            if len(parts) > 1:
                parts[:] = ["".join(parts)]
        return [parts[0] if parts else "" for parts in self._segments]

    @property
    def chars(self) -> int:
        return self._chars

    def head(self, n: int = 400) -> str:
        """The first ``n`` characters of the text, without joining all of it."""
        pieces: list[str] = []
        need = n
        for piece in (p for parts in self._segments for p in parts):
            if need <= 0:
                break
            pieces.append(piece[:need])
            need -= len(pieces[-1])
        return "".join(pieces)

    def tail(self, n: int) -> str:
        """The last ``n`` characters of the text, without joining all of it."""
        pieces: list[str] = []
        need = n
        for piece in (p for parts in reversed(self._segments) for p in reversed(parts)):
            if need <= 0:
                break
            pieces.append(piece[-need:])
            need -= len(pieces[-1])
        return "".join(reversed(pieces))

    def record_round(self, report: RoundReport) -> None:
        self.rounds.append(report)
        self.usage += report.usage
        self.cost_usd += report.cost_usd
        if report.stop_reason != "interrupted":
            self.last_call_tokens = report.usage.total_input_tokens + report.usage.output_tokens

    def next_prompt_tokens(self) -> int:
        """Estimate of the next call's prompt: what the last call read plus what it wrote."""
        if self.last_call_tokens is not None and self.last_call_tokens > 0:
            grown = self.last_call_tokens + estimate_tokens(self.held) + CONTINUATION_OVERHEAD
            return int(grown * ESTIMATE_MARGIN)
        return self.prompt_tokens + estimate_tokens(self.text + self.held) + CONTINUATION_OVERHEAD


@dataclass(frozen=True)
class Decision:
    """Either stop (``stop_reason``) or make another call with ``max_tokens``."""

    stop_reason: str | None = None
    max_tokens: int = 0
    #: The largest ``max_tokens`` this call may have (the model's maximum output, the context
    #: room and the output budget): how far a call may grow when the last round added nothing.
    ceiling: int = 0
    #: Why another round is needed: "max_tokens" (capped), "min_words" (ended too early),
    #: "interrupted" (a stream broke), "restart" (the engine cut a round that started over),
    #: "start".
    why: str = ""


def _budget_stop(state: ContinuationState) -> str | None:
    budgets = state.budgets
    if budgets.max_output_tokens is not None and state.usage.output_tokens >= budgets.max_output_tokens:
        return "max_output_tokens"
    if state.completed_rounds >= budgets.max_rounds:
        return "max_rounds"
    return None


def _next(state: ContinuationState, why: str) -> Decision:
    stop = _budget_stop(state)
    if stop:
        return Decision(stop_reason=stop)
    budgets = state.budgets
    room = budgets.context_window - state.next_prompt_tokens()
    if room < min(MIN_USEFUL_TOKENS, budgets.max_tokens_per_call):
        return Decision(stop_reason="context_exhausted")
    ceiling = min(state.spec.max_output, room)
    if budgets.max_output_tokens is not None:
        ceiling = min(ceiling, budgets.max_output_tokens - state.usage.output_tokens)
    max_tokens = min(budgets.max_tokens_per_call, ceiling)
    return Decision(max_tokens=max_tokens, ceiling=ceiling, why=why)


def decide_next_round(state: ContinuationState) -> Decision:
    """What to do after the last round (or before the first)."""
    if not state.rounds:
        return _next(state, "start")
    last = state.rounds[-1].stop_reason or "end_turn"
    if state.budgets.until and state.budgets.until in state.text:
        return Decision(stop_reason="until")
    if last in STOP_ON_MODEL_REASON:
        return Decision(stop_reason=STOP_ON_MODEL_REASON[last])
    if last == "max_words" or (state.budgets.max_words and state.words >= state.budgets.max_words):
        return Decision(stop_reason="max_words")
    if last in ("max_tokens", "interrupted", "restart"):
        return _next(state, last)
    # end_turn: the model thinks it is done; min_words may disagree.
    if state.budgets.min_words and count_words(state.text + state.held) < state.budgets.min_words:
        return _next(state, "min_words")
    return Decision(stop_reason="end_turn")
