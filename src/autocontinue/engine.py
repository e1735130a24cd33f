"""The round loop: folds backend events into the continuation state and emits engine events.

``Engine`` is sans-I/O, in the style of tenacity's ``iter()``: ``begin`` and then ``step``
take what happened (a backend delta or round end, an error the call raised, the end of a
stream, a finished sleep) and return the events it caused plus the next action: ``Call(request)``
(make this call and feed its stream back), ``Sleep(seconds)`` or ``Done(result or error)``;
None while a stream is still being read. It never raises and does no I/O: the clock and the
backoff's randomness are injected, and the prefill memory is written by the drivers, as a
listener on ``StrategyChanged``. The two drivers, ``run_sync`` and ``run_async``, are short
dispatch loops with one ``except`` each; the CLI, the journal and the progress line only listen
to the events.

After a round that added no text the next call is changed (``_REMEDIES``): never the same
request twice; ``MAX_STALLED_ROUNDS`` such rounds in a row end the run ``stalled``.
Continuation rounds send ``CONTINUATION_EFFORT`` when the caller set no ``effort``.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass, replace
from typing import Any

from . import seams
from .backends.base import Backend, BackendDelta, RoundEnd, RoundOpened, RoundRequest
from .errors import (
    AutocontinueError,
    BackendError,
    ContextWindowError,
    InvalidRequestError,
    MaxTokensExceededError,
    PrefillNotSupportedError,
    TransientBackendError,
)
from .events import (
    Checkpoint,
    Event,
    Finished,
    Result,
    Retrying,
    RoundFinished,
    RoundReport,
    RoundStarted,
    StrategyChanged,
    TextDelta,
)
from .memory import PrefillMemory
from .state import ContinuationState, Decision, count_words, decide_next_round, sentence_cut
from .strategies import (
    CONTINUE_INSTRUCTION,
    LENGTHEN_INSTRUCTION,
    STALLED_INSTRUCTION,
    STALLED_LENGTHEN_INSTRUCTION,
    build_messages,
    last_line,
)
from .usage import Usage

__all__ = [
    "RetryPolicy",
    "Engine",
    "Call",
    "Sleep",
    "Done",
    "Action",
    "StreamEnded",
    "Slept",
    "Answered",
    "run_sync",
    "run_async",
    "CONTINUATION_EFFORT",
    "MAX_STALLED_ROUNDS",
]

#: ``effort`` of continuation rounds (index > 0) when the caller set none. The first round
#: sends the caller's ``effort`` (None: the model's default); a continuation only goes on
#: writing what the first round planned, so it needs little thinking. A caller's ``effort``
#: applies to every round. It is sent only to models the catalogue says take it.
CONTINUATION_EFFORT: str | None = "low"
#: Rounds in a row that add no text after which the run stops with ``stalled``.
MAX_STALLED_ROUNDS = 3
_EFFORTS = ("low", "medium", "high", "xhigh", "max")
#: What is changed, in this order, in the call after a round that added nothing, by how that
#: round went: one change after the first such round, two after the second, and always at
#: least as many as make the call differ from the one before.
_REMEDIES = {
    "capped": ("max_tokens", "instruction", "seed"),
    "unresolved": ("max_tokens", "instruction", "seed"),
    "thinking": ("max_tokens", "effort", "instruction", "seed"),
    "restart": ("instruction", "max_tokens", "seed"),
    "ended": ("instruction", "seed", "max_tokens"),
}


@dataclass(frozen=True)
class RetryPolicy:
    """Round retries after the SDK's own retries are spent (times in seconds).

    A failed attempt that did not extend the answer is followed by a backoff (``delay``:
    doubling from ``base_delay`` up to ``max_delay``, or the server's ``retry-after`` when
    longer). The run gives up, keeping its text (resumable), at the first of:

    * ``give_up_after`` seconds of backoff waited since the answer last grew (tenacity's
      ``stop_after_delay``, counted in the policy's own waits, so the same failures give the
      same decision on a fast or a loaded machine). With the defaults a service that never
      recovers is given up on at the 7th failed attempt in a row, after 1+2+4+8+16+30 = 61 s of
      waiting; one that fails 6 times in a row and then answers is ridden out;
    * ``max_attempts`` failed attempts in a row without new text, when set (a count bound, like
      ``stop_after_attempt``; None: only the time bounds it);
    * more than ``max_failures`` failed attempts in the whole run, broken streams that kept some
      text included: the hard bound on requests, whatever the delays (a service whose every
      stream breaks after a few words never waits, so only this bounds it).
    """

    #: Seconds of backoff without new text after which the run gives up.
    give_up_after: float = 60.0
    #: Failed attempts in a row without new text after which the run gives up (None: no count).
    max_attempts: int | None = None
    #: Failed attempts in the whole run after which the run gives up.
    max_failures: int = 40
    base_delay: float = 1.0
    max_delay: float = 30.0
    #: Injected so tests can record sleeps instead of waiting (the sync driver's sleep).
    sleep: Callable[[float], Any] = time.sleep
    #: Source of the backoff's jitter, a float in [0, 1).
    jitter: Callable[[], float] = random.random

    def delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        backoff *= 1 + 0.1 * self.jitter()
        return max(backoff, retry_after or 0.0)

    def gives_up(self, attempts: int, waited: float, failures: int) -> bool:
        """After a failure: ``attempts`` in a row without new text (this one included), the
        backoff ``waited`` since the answer last grew, ``failures`` in the whole run."""
        if failures > self.max_failures:
            return True
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return True
        return attempts > 0 and waited >= self.give_up_after


@dataclass(frozen=True)
class Call:
    """Make this call; feed each item of its stream (or the error it raises) to ``step``."""

    request: RoundRequest


@dataclass(frozen=True)
class Sleep:
    """Wait this long, then ``step(Slept())``."""

    seconds: float


@dataclass(frozen=True)
class Done:
    """The run is over: its ``result``, or the ``error`` to raise (its ``.partial`` has the text)."""

    result: Result | None = None
    error: AutocontinueError | None = None


Action = Call | Sleep | Done


@dataclass(frozen=True)
class StreamEnded:
    """What happened: the stream ended without a RoundEnd."""


@dataclass(frozen=True)
class Slept:
    """What happened: the Sleep asked for is over."""


@dataclass(frozen=True)
class Answered:
    """What happened: the whole round at once (a Message Batches result), its text and its end.

    Unlike a stream cut short at ``until``, the usage of a whole answer is known: the round
    keeps it, ending as ``until`` if the text reached it.
    """

    text: str
    end: RoundEnd


#: What ``Engine.step`` takes.
Happened = BackendDelta | RoundOpened | RoundEnd | AutocontinueError | StreamEnded | Slept | Answered


class Engine:
    """One run's continuation logic, driven round by round."""

    def __init__(
        self,
        backend: Backend,
        state: ContinuationState,
        *,
        model: str,
        prompt: list[dict[str, Any]],
        system: Any = None,
        requested_strategy: str = "auto",
        stop_sequences: tuple[str, ...] = (),
        temperature: float | None = None,
        cache: bool = True,
        seed: int | None = None,
        extra: dict[str, Any] | None = None,
        retry: RetryPolicy | None = None,
        memory: PrefillMemory | None = None,
        thinking: str | None = None,
        effort: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.state = state
        self.model = model
        self.prompt = prompt
        self.system = system
        self.requested_strategy = requested_strategy
        self.stop_sequences = stop_sequences
        self.temperature = temperature
        self.cache = cache
        self.seed = seed
        self.extra = extra or {}
        self.retry = retry or RetryPolicy()
        self.memory = memory or PrefillMemory()
        self.thinking = thinking
        self.effort = effort
        self.clock = clock
        self._result: Result | None = None
        #: Rounds in a row that added no text, and how the last of them went (a _REMEDIES key).
        self._stalls = 0
        self._stall_kind = ""
        self._last_request: RoundRequest | None = None
        self._checked = False
        #: Failed attempts: in a row without extending the answer (and the backoff waited since
        #: it last grew), and in the whole run.
        self._attempts = 0
        self._waited = 0.0
        self._failures = 0
        self._retries_this_round = 0
        self._round: _RoundInProgress | None = None
        self._next_prompt_tokens: int | None = None

    # -- start and finish -------------------------------------------------------------------

    def start(self, opening: str, already_emitted: int = 0) -> list[Event]:
        """Take the text the answer starts with (a prefill, or a resumed checkpoint).

        Its first ``already_emitted`` characters were shown before (a resumed run), so only
        the rest is emitted as an event.
        """
        # A resumed run's rounds are in the state already: rounds that added no text before
        # the crash count as they did, so the next call is changed, never sent again as it was.
        for report in self.state.rounds:
            self._stalls, self._stall_kind = stalls_after(self._stalls, self._stall_kind, report)
        base, held = _split(opening, self._hold_strategy())
        if len(base) < already_emitted:
            base, held = opening[:already_emitted], opening[already_emitted:]
        self.state.start_segment()
        self.state.add_text(base)
        self.state.held = held
        new = base[already_emitted:]
        return [TextDelta(new, held)] if new else []

    def result(self, stop_reason: str) -> Result:
        s = self.state
        return Result(
            text=s.text + (s.held if stop_reason == "interrupted" else ""),
            stop_reason=stop_reason,
            rounds=list(s.rounds),
            usage=s.usage,
            cost_usd=s.cost_usd,
            model=self.model,
            backend=self.backend.name,
            cost_known=s.spec.priced,
            stalled_rounds=sum(1 for r in s.rounds if r.chars == 0),
        )

    def _finish(self, stop_reason: str) -> list[Event]:
        events: list[Event] = []
        if self.state.held:
            held, self.state.held = self.state.held, ""
            self.state.add_text(held)
            events.append(TextDelta(held, ""))
        self.state.stop_reason = stop_reason
        self._result = self.result(stop_reason)
        events.append(Finished(self._result))
        return events

    def fail(self, error: AutocontinueError) -> AutocontinueError:
        """Attach the text so far to ``error`` (nothing is lost), for the caller to raise."""
        if error.partial is None:
            error.partial = self.result("interrupted")
        return error

    # -- the sans-I/O interface ------------------------------------------------------------

    def begin(self, opening: str, already_emitted: int = 0) -> tuple[list[Event], Action]:
        """Start the run (see ``start``): its first events and first action."""
        try:
            return self._then(self.start(opening, already_emitted))
        except AutocontinueError as error:
            return [], Done(error=self.fail(error))

    def step(self, happened: Happened) -> tuple[list[Event], Action | None]:
        """Take what happened; return its events and the next action (None: read on)."""
        try:
            return self._step(happened)
        except AutocontinueError as error:
            self._round = None
            return [], Done(error=self.fail(error))

    def _step(self, happened: Happened) -> tuple[list[Event], Action | None]:
        if isinstance(happened, BackendDelta):
            events = self.on_delta(happened.text)
            if not self.round_cut_short:
                return events, None
            return self._then(events + self.end_round(None))
        if isinstance(happened, RoundOpened):
            if self._round is not None:
                self._round.opened = happened
            return [], None
        if isinstance(happened, RoundEnd):
            return self._then(self.end_round(happened))
        if isinstance(happened, Answered):
            events = self.on_delta(happened.text) if happened.text else []
            end = replace(happened.end, stop_reason="until") if self.round_cut_short else happened.end
            return self._then(events + self.end_round(end))
        if isinstance(happened, Slept):
            return self._then([])
        if isinstance(happened, StreamEnded):
            happened = TransientBackendError("the stream ended without a stop reason")
        return self._on_error(happened)

    def _on_error(self, error: AutocontinueError) -> tuple[list[Event], Action]:
        if isinstance(error, PrefillNotSupportedError):
            return self._then(self.on_prefill_refused(error))
        if isinstance(error, TransientBackendError):
            delay, events = self.on_transient(error)
            return (events, Sleep(delay)) if delay else self._then(events)
        if isinstance(error, (ContextWindowError, InvalidRequestError)):
            return self._then(self.on_limit(error))
        raise error

    def _then(self, events: list[Event]) -> tuple[list[Event], Action]:
        """After ``events``: the next call, or Done once the run is over."""
        if self._result is None:
            request, more = self.plan()
            events = events + more
            if request is not None:
                return events, Call(request)
        assert self._result is not None
        return events, Done(self._result)

    # -- one round --------------------------------------------------------------------------

    def plan(self) -> tuple[RoundRequest | None, list[Event]]:
        """The next call, or None and the closing events when the run is over.

        After a round that added no text the call is changed (see ``_REMEDIES``) so that it is
        never the same request again; after ``MAX_STALLED_ROUNDS`` such rounds, or when nothing
        left to change would make it differ, the run stops with ``stalled``.
        """
        state = self.state
        if state.stop_reason is not None:  # it ended while handling a failure
            return None, []
        decision = decide_next_round(state)
        if decision.stop_reason:
            return None, self._finish(decision.stop_reason)
        steps: tuple[str, ...] = ()
        if self._stalls:
            found = self._remedy(decision)
            if found is None:
                return None, self._finish("stalled")
            steps = found
        request, strategy = self._request(decision, steps)
        if not self._checked:
            self._checked = True
            try:
                self.backend.check_request(request)
            except AutocontinueError as error:
                raise self.fail(error) from error.__cause__
        self._last_request = request
        has_text = state.chars > 0 and bool(state.tail(4096).strip() or state.text.strip())
        report_strategy = strategy if has_text else "initial"
        self._round = _RoundInProgress(
            state,
            report_strategy,
            strategy,
            request.max_tokens,
            has_text,
            self._hold_strategy(),
            may_redo=self._stalls == 0,
            remedy="+".join(steps),
            after_end=decision.why == "min_words",
            started=self.clock(),
        )
        return request, [RoundStarted(len(state.rounds), report_strategy, request.max_tokens)]

    def _remedy(self, decision: Decision) -> tuple[str, ...] | None:
        """The changes that make this call differ from the last one (None: none can)."""
        if self._stalls >= MAX_STALLED_ROUNDS:
            return None
        steps, last = _REMEDIES[self._stall_kind], self._last_request
        for k in range(min(self._stalls, len(steps)), len(steps) + 1):
            request = self._request(decision, steps[:k])[0]
            if last is None or replace(request, round_index=last.round_index) != last:
                return steps[:k]
        return None

    def _request(self, decision: Decision, steps: tuple[str, ...]) -> tuple[RoundRequest, str]:
        """The call for ``decision``, with the changes ``steps``, and its strategy."""
        state = self.state
        max_tokens, ceiling = decision.max_tokens, decision.ceiling
        if self._next_prompt_tokens is not None:
            room = state.budgets.context_window - self._next_prompt_tokens
            max_tokens, ceiling = min(max_tokens, room), min(ceiling, room)
        index = len(state.rounds)
        strategy = "user-turn" if decision.why == "min_words" else state.strategy
        effort = self.effort if index == 0 else self.effort or self._continuation_effort()
        seed, quote = self.seed, False
        last = self._last_request
        # The call before (a resumed run has only its report): what "max_tokens" doubles.
        last_max = (
            last.max_tokens if last is not None else (state.rounds[-1].max_tokens if state.rounds else 0)
        )
        for step in steps:
            if step == "max_tokens" and last_max:
                max_tokens = max(max_tokens, min(ceiling, 2 * last_max))
            elif step == "effort":
                effort = _lower(effort)
            elif step == "instruction":
                strategy, quote = "user-turn", True
            elif step == "seed" and seed is not None:
                seed += sum(1 for r in state.rounds if r.chars == 0)
        messages = build_messages(
            self.prompt,
            state.segments,
            strategy,
            instruction=self._instruction(decision, quote),
            keep_trailing_whitespace=self.backend.prefill_takes_trailing_whitespace,
        )
        request = RoundRequest(
            model=self.model,
            messages=messages,
            max_tokens=max_tokens,
            system=self.system,
            stop_sequences=self.stop_sequences,
            temperature=self.temperature,
            cache=self.cache,
            seed=seed,
            round_index=index,
            thinking=self.thinking,
            effort=effort,
            extra=self.extra,
        )
        return request, strategy

    def _continuation_effort(self) -> str | None:
        """``CONTINUATION_EFFORT`` where the model is known to take it, else None (its default)."""
        spec = self.state.spec
        if CONTINUATION_EFFORT in getattr(spec, "efforts", ()) and not getattr(spec, "assumed", False):
            return CONTINUATION_EFFORT
        return None

    def _instruction(self, decision: Decision, quote: bool) -> str:
        """The user turn of a user-turn call; ``quote``: one that quotes the last line."""
        state = self.state
        if decision.why == "min_words":
            template = STALLED_LENGTHEN_INSTRUCTION if quote else LENGTHEN_INSTRUCTION
            return template.format(
                words=count_words(state.text), target=state.budgets.min_words, line=last_line(state.text)
            )
        if quote:
            return STALLED_INSTRUCTION.format(line=last_line(state.text))
        return CONTINUE_INSTRUCTION

    def _hold_strategy(self) -> str | None:
        """How the unsafe tail is held back while text streams (None: nothing is held).

        With min_words an ended answer may be continued by a user turn, so hold as for one; a
        backend whose prefill takes trailing whitespace needs nothing held at a prefill seam.
        """
        if self.state.budgets.min_words:
            return "user-turn"
        if self.state.strategy == "prefill" and self.backend.prefill_takes_trailing_whitespace:
            return None
        return self.state.strategy

    def on_delta(self, text: str) -> list[Event]:
        assert self._round is not None, "on_delta outside a round"
        return self._round.feed(text)

    @property
    def round_cut_short(self) -> bool:
        """True once ``until`` appeared: the driver should stop reading this round."""
        return self._round is not None and bool(self._round.cut)

    def end_round(self, end: RoundEnd | None) -> list[Event]:
        """Close the round: ``end`` from the backend, or None if it stopped early or broke."""
        current = self._round
        assert current is not None, "end_round outside a round"
        self._round = None
        self._next_prompt_tokens = None
        if end is None:
            opened = current.opened
            end = RoundEnd(
                stop_reason=current.cut or "interrupted",
                usage=current.partial_usage(),
                request_id=opened.request_id if opened is not None else None,
            )
        continuing = end.stop_reason in ("max_tokens", "interrupted", "restart")
        capped = end.stop_reason == "max_tokens"
        # The tail stays held even when the round ended: the run may still go on (min_words),
        # and when it does not, finishing the run emits it. A finished answer's last word is
        # complete, though: only its trailing whitespace stays held.
        current.close(capped=capped)
        if current.redo == "restart" and not continuing:
            # A finished piece that started over was thrown away: the round is asked for again.
            end, continuing = replace(end, stop_reason="restart"), True
        if end.stop_reason == "end_turn":
            current.release_word()
        if current.chars or end.stop_reason != "interrupted":
            self._attempts, self._waited = 0, 0.0
        usage = end.usage
        report = RoundReport(
            index=len(self.state.rounds),
            strategy=current.report_strategy,
            max_tokens=current.max_tokens,
            stop_reason=end.stop_reason,
            stop_sequence=end.stop_sequence,
            usage=usage,
            seam=current.seam_report(self.state if continuing else None),
            chars=current.chars,
            request_id=end.request_id,
            retries=self._retries_this_round,
            cost_usd=self.state.spec.cost(usage),
            cost_known=self.state.spec.priced,
            duration_s=round(self.clock() - current.started, 6),
            remedy=current.remedy,
            redo=current.redo,
        )
        self._stalls, self._stall_kind = stalls_after(self._stalls, self._stall_kind, report)
        self._retries_this_round = 0
        self.state.record_round(report)
        return [*current.take_events(), RoundFinished(report, self.state.chars)]

    # -- failures ---------------------------------------------------------------------------

    def on_prefill_refused(self, error: PrefillNotSupportedError) -> list[Event]:
        """Switch to user-turn for this model (remembered per endpoint) and redo the round."""
        self._abandon_round()
        if self.requested_strategy == "prefill" or self.state.strategy != "prefill":
            error.hint = error.hint or "use strategy auto or user-turn for this model"
            raise self.fail(error)
        self.state.strategy = "user-turn"  # the drivers remember it (``_remember``)
        return [StrategyChanged(self.model, "prefill", "user-turn", error.message)]

    def on_transient(self, error: TransientBackendError) -> tuple[float, list[Event]]:
        """Keep what arrived, then wait before the next attempt (or give up: raises).

        Every failed attempt counts toward ``RetryPolicy.max_failures``; one that did not
        extend the answer (regenerating the held word is not extending it) also counts as an
        attempt in a row and is followed by a backoff, which adds to the time waited without
        progress (``RetryPolicy.gives_up``). A broken round that added nothing is dropped whole,
        so the seam is exactly as it was before the call.
        """
        current = self._round
        events = self._abandon_round()  # text held for the restart check is kept, so counted after
        extended = current is not None and current.chars > 0
        self._failures += 1
        if extended:
            self._attempts, self._waited = 0, 0.0
        else:
            self._attempts += 1
        self._retries_this_round += 1
        if self.retry.gives_up(self._attempts, self._waited, self._failures):
            error.hint = error.hint or "the service keeps failing; try again later with resume"
            raise self.fail(error)
        delay = 0.0 if extended else self.retry.delay(self._attempts, error.retry_after)
        self._waited += delay
        index = len(self.state.rounds)
        events.append(Retrying(index, self._retries_this_round, delay, error.one_line()))
        return delay, events

    def on_limit(self, error: BackendError) -> list[Event]:
        """The request was too big for the model: shrink the call, or end the run.

        Reads the limits the backend put on the error (never its message).
        """
        self._abandon_round()
        if isinstance(error, MaxTokensExceededError) and error.max_tokens_allowed:
            budgets = self.state.budgets
            self.state.budgets = replace(budgets, max_tokens_per_call=error.max_tokens_allowed)
            return []
        if not isinstance(error, ContextWindowError):
            raise self.fail(error)
        prompt_tokens, room = error.prompt_tokens, error.max_tokens_allowed or 0
        if prompt_tokens is not None and room >= 16 and self._next_prompt_tokens != prompt_tokens:
            if error.context_window:  # the service's own window wins over the catalogue's
                self.state.budgets = replace(self.state.budgets, context_window=error.context_window)
            self._next_prompt_tokens = prompt_tokens
            return []
        if not self.state.text.strip():  # nothing written: the prompt itself does not fit
            error.hint = error.hint or "shorten the prompt (or use a model with a larger context window)"
            raise self.fail(error)
        return self._finish("context_exhausted")

    def _abandon_round(self) -> list[Event]:
        """A call failed: keep the text it added as an interrupted round, or forget it whole.

        Text the seam still holds for the restart check counts as added: closing the round
        decides the check and keeps it, as it was kept before the check held it.
        """
        current = self._round
        if current is not None and (current.chars or current.withheld().strip()):
            return self.end_round(None)
        if current is not None:
            current.forget()
        self._round = None
        return []


class _RoundInProgress:
    """The text of one round as it streams: seam repair first, then the unsafe tail held."""

    def __init__(
        self,
        state: ContinuationState,
        report_strategy: str,
        strategy: str,
        max_tokens: int,
        has_text: bool,
        hold_strategy: str | None,
        *,
        may_redo: bool = False,
        remedy: str = "",
        after_end: bool = False,
        started: float = 0.0,
    ) -> None:
        self.state = state
        #: This round may be thrown away once and redone when its seam cannot be trusted.
        self.may_redo = may_redo
        self.remedy = remedy
        #: "unresolved" or "restart" once the round was thrown away for a redo.
        self.redo = ""
        #: Why the driver should stop reading: "until", "max_words" or "restart".
        self.cut = ""
        self.held_before = state.held
        self.report_strategy = report_strategy
        self.max_tokens = max_tokens
        self.started = started
        self.hold_strategy = hold_strategy
        #: After a finished answer the last word was sent whole (nothing held), but the piece
        #: may still repeat it: the repairer is told it as if held, and a regeneration of it at
        #: the start of the repaired piece is skipped (it stands in the text already).
        self.sent_word = self.sent_note = ""
        self.opening = ""
        self.repairer: seams.SeamRepairer | None = None
        if has_text:
            tail, held = state.tail(seams.ECHO_WINDOW), state.held
            if after_end and not held and strategy == "user-turn":
                tail, self.sent_word = _split(tail, "user-turn", fragment=True)
                held = self.sent_word
                if held:
                    self.sent_note = f"the finished answer's last word {held.strip()!r} was sent whole"
            self.repairer = seams.SeamRepairer(tail, held, strategy, cut=state.cut.state(), head=state.head())
        if self.repairer is None:
            # Nothing to join onto: an empty or whitespace-only prefill is just the answer's start.
            self.pending = state.held
        else:
            self.pending = ""
        state.held = ""
        state.start_segment()
        self.chars = 0
        self.events: list[Event] = []
        #: The backend's word that the service took the call (its prompt usage, request id).
        self.opened: RoundOpened | None = None
        #: Characters the model sent in this round, before any seam repair.
        self.received = 0

    def partial_usage(self) -> Usage:
        """What a round that ended without the service's final count was billed, at least.

        The prompt's side as the service counted it when the call opened, and the output as
        the text received, at about 4 characters a token (the tokens written after the reading
        stopped are not seen). Nothing when the backend did not say (local model: free).
        """
        if self.opened is None:
            return Usage()
        received = -(-self.received // 4)
        return replace(self.opened.usage, output_tokens=max(self.opened.usage.output_tokens, received))

    def feed(self, text: str) -> list[Event]:
        self.received += len(text)
        if not text or self.cut:
            return []
        out = self.repairer.feed(text) if self.repairer else text
        if self._redo("restart", flag=self._report_says("restart")):
            self.cut = "restart"
            return []
        self._take(self._skip_sent_word(out, final=False))
        return self.take_events()

    def withheld(self) -> str:
        """Repaired text the seam holds back until its restart check is settled."""
        return self.repairer.withheld if self.repairer is not None and not self.cut else ""

    def _report_says(self, name: str) -> bool:
        return self.repairer is not None and bool(getattr(self.repairer.report, name, False))

    def _skip_sent_word(self, out: str, *, final: bool) -> str:
        """Drop a regeneration of ``sent_word`` from the front of the repaired piece."""
        word = self.sent_word
        if not word:
            return out
        self.opening += out
        if not final and len(self.opening) < len(word) and word.startswith(self.opening):
            return ""
        opening, self.opening, self.sent_word = self.opening, "", ""
        if opening.startswith(word) or (final and word.startswith(opening)):
            return opening[len(word) :]
        return opening

    def forget(self) -> None:
        """The call failed before adding anything: the state is as before it."""
        self.state.held = self.held_before
        self.state.drop_empty_segment()
        self.pending = ""

    def _redo(self, kind: str, *, flag: bool) -> bool:
        """Throw the round away (nothing of it emitted yet) so that it is asked for again."""
        if not (flag and self.may_redo and self.chars == 0):
            return False
        self.redo, self.pending = kind, ""
        self.state.held = self.held_before
        return True

    def _take(self, out: str) -> None:
        pending = self.pending + out
        cut = self._cut_at(pending)
        if cut is not None:
            self._emit(pending[:cut], "")
            self.pending = ""
            return
        base, held = _split(pending, self.hold_strategy, fragment=self.state.chars > 0)
        self._emit(base, held)
        self.pending = held

    def _cut_at(self, pending: str) -> int | None:
        """Where the answer ends inside ``pending`` (``until`` or ``max_words``), else None."""
        budgets = self.state.budgets
        if budgets.until:
            until = budgets.until
            tail = self.state.tail(len(until) - 1) if len(until) > 1 else ""
            found = (tail + pending).find(until)
            if found >= 0:
                self.cut = "until"
                return found + len(until) - len(tail)
        limit = budgets.max_words
        if limit and self.state.words + len(pending.split()) >= limit:
            end = sentence_cut(self.state.tail(4), pending, self.state.words, limit)
            if end is not None:
                self.cut = "max_words"
                return end
        return None

    def _emit(self, text: str, held: str) -> None:
        self.state.held = held
        if text:
            self.state.add_text(text)
            self.chars += len(text)
            self.events.append(TextDelta(text, held))

    def close(self, *, capped: bool) -> None:
        """End of the piece: flush the repairer, still holding the unsafe tail.

        ``capped``: the piece stopped at max_tokens, so a repeat it ends inside is all repeat.
        """
        if self.cut:
            return
        out = self.repairer.finish(capped=capped) if self.repairer else ""
        if self._redo("unresolved", flag=capped and self._report_says("unresolved")):
            return
        if self._redo("restart", flag=self._report_says("restart")):
            return
        self._take(self._skip_sent_word(out, final=True))
        if not self.chars and not self.state.held.startswith(self.held_before):
            # Nothing added: what was held (a word the model was to redo, whitespace) stays held.
            self.state.held = self.pending = self.held_before

    def release_word(self) -> None:
        """The answer ended (``end_turn``): emit the held word, keep only trailing whitespace."""
        held = self.state.held
        base = held.rstrip()
        if base and not self.cut and not self.redo:
            self._emit(base, held[len(base) :])
            self.pending = held[len(base) :]

    def take_events(self) -> list[Event]:
        events, self.events = self.events, []
        return events

    def seam_report(self, cut_at: ContinuationState | None) -> dict[str, Any]:
        """What the seam at the start of the round did, and the state where this round cut."""
        report = self.repairer.report.to_dict() if self.repairer is not None else {}
        if self.sent_note:
            report["notes"] = [self.sent_note, *report.get("notes", [])]
        if cut_at is not None:
            report["cut"] = cut_at.cut.state().to_dict()
        return report


def _lower(effort: str | None) -> str | None:
    """One effort level below ``effort`` (None, the model's default, stays: it may take none)."""
    if effort not in _EFFORTS:
        return effort
    return _EFFORTS[max(0, _EFFORTS.index(effort) - 1)]


def _split(text: str, strategy: str | None, *, fragment: bool = False) -> tuple[str, str]:
    """``seams.split_for_continuation``, or nothing held when ``strategy`` is None."""
    if strategy is None:
        return text, ""
    return seams.split_for_continuation(text, strategy, fragment=fragment)


# -- drivers --------------------------------------------------------------------------------


def _close(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        close()


def _remember(engine: Engine, events: list[Event]) -> list[Event]:
    """The prefill memory as a listener: a refusal seen is written down for this endpoint."""
    for event in events:
        if isinstance(event, StrategyChanged) and event.new == "user-turn":
            engine.memory.remember_refusal(engine.backend.endpoint_key(), event.model)
    return events


def run_sync(engine: Engine, opening: str, already_emitted: int = 0) -> Iterator[Event]:
    """Drive ``engine`` against its backend's ``stream_round`` until the run is over."""
    events, action = engine.begin(opening, already_emitted)
    while True:
        yield from _remember(engine, events)
        if isinstance(action, Done):
            if action.error is not None:
                raise action.error
            return
        if isinstance(action, Sleep):
            engine.retry.sleep(action.seconds)
            events, action = _acted(engine.step(Slept()))
            continue
        events, action = yield from _call_sync(engine, action.request)


def _call_sync(engine: Engine, request: RoundRequest) -> Generator[Event, None, tuple[list[Event], Action]]:
    """One call: its stream fed to the engine until the engine has a next action."""
    stream = None
    try:
        stream = engine.backend.stream_round(request)
        for item in stream:
            events, action = engine.step(item)
            if action is not None:
                return events, action
            yield from events
        return _acted(engine.step(StreamEnded()))
    except AutocontinueError as error:
        return _acted(engine.step(error))
    finally:
        _close(stream)


def _acted(step: tuple[list[Event], Action | None]) -> tuple[list[Event], Action]:
    events, action = step
    assert action is not None, "the engine always acts on the end of a call"
    return events, action


async def run_async(engine: Engine, opening: str, already_emitted: int = 0) -> AsyncIterator[Event]:
    """The async twin of ``run_sync`` over the backend's ``astream_round``."""
    import asyncio

    events, action = engine.begin(opening, already_emitted)
    while True:
        for event in _remember(engine, events):
            yield event
        if isinstance(action, Done):
            if action.error is not None:
                raise action.error
            return
        if isinstance(action, Sleep):
            await asyncio.sleep(action.seconds)
            events, action = _acted(engine.step(Slept()))
            continue
        stream = engine.backend.astream_round(action.request)
        step: tuple[list[Event], Action | None] = ([], None)
        try:
            async for item in stream:
                step = engine.step(item)
                if step[1] is not None:
                    break
                for event in step[0]:
                    yield event
            else:
                step = engine.step(StreamEnded())
        except AutocontinueError as error:
            step = engine.step(error)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        events, action = _acted(step)


def stalls_after(stalls: int, kind: str, report: RoundReport) -> tuple[int, str]:
    """Rounds in a row that added no text, and how the last of them went (a ``_REMEDIES``
    key), after ``report``. A broken stream that added nothing changes neither: it is retried
    as it was (bounded by the retry policy)."""
    if report.chars:
        return 0, ""
    if report.stop_reason == "interrupted":
        return stalls, kind
    if report.redo:
        return stalls + 1, report.redo
    if report.stop_reason == "max_tokens":
        return stalls + 1, "thinking" if report.usage.thinking_tokens > 0 else "capped"
    return stalls + 1, "ended"


def resume_state(state: ContinuationState, checkpoint: Checkpoint) -> str:
    """Load a checkpoint's rounds into ``state``; returns the opening text to emit."""
    for report in checkpoint.rounds:
        state.record_round(report)
    return checkpoint.text + checkpoint.held
