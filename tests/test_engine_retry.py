"""Bounded retries: every failed attempt counts, backoff whenever the answer did not grow.

The backends are real ``Backend`` subclasses whose streams break on purpose (a dropped
connection cannot be asked of a model on demand); the same rules run through the SDK against
the emulator's fault injection in test_engine_emulator.py.
"""

from __future__ import annotations

import pytest

import autocontinue
from autocontinue.backends.base import BackendDelta
from autocontinue.backends.scripted import ScriptedBackend, assistant_text
from autocontinue.errors import StreamInterruptedError, TransientBackendError
from autocontinue.events import Retrying, TextDelta

ANSWER = " ".join(f"word{i}," if i % 7 else f"line{i}.\n\n" for i in range(3000)).strip()


class AlwaysBreaks(ScriptedBackend):
    """Every stream breaks after ``keep`` characters of the continuation."""

    def __init__(self, answer, keep, **kw):
        super().__init__(answer, **kw)
        self.keep = keep
        self.sent: list[str] = []

    def stream_round(self, request):
        assert self.calls < 200, "the run never gave up"
        self.sent.append(assistant_text(request))
        received = 0
        for item in super().stream_round(request):
            if isinstance(item, BackendDelta):
                item = BackendDelta(item.text[: max(0, self.keep - received)])
                received += len(item.text)
                if item.text:
                    yield item
                if received >= self.keep:
                    raise StreamInterruptedError("connection dropped")
            else:  # pragma: no cover - never reached: every stream breaks
                yield item


def test_streams_that_always_break_after_new_text_end_after_a_bounded_number_of_calls():
    sleeps: list[float] = []
    backend = AlwaysBreaks(ANSWER, keep=30, delta_chars=8)
    policy = autocontinue.RetryPolicy(max_failures=15, sleep=sleeps.append)
    with pytest.raises(TransientBackendError) as caught:
        list(autocontinue.stream("w", backend=backend, retry=policy, strategy="prefill"))
    assert backend.calls == 16
    partial = caught.value.partial
    assert ANSWER.startswith(partial.text) and len(partial.text) >= 15 * 20
    assert caught.value.hint


def test_streams_that_only_redo_the_held_word_back_off_and_give_up():
    sleeps: list[float] = []
    # User-turn holds the last word back; a stream that breaks after regenerating part of it
    # never extends the answer.
    text = ANSWER[: ANSWER.index(" word52,")]
    checkpoint = autocontinue.Checkpoint(text=text, held=" word5")
    backend = AlwaysBreaks(ANSWER, keep=3, delta_chars=8)
    policy = autocontinue.RetryPolicy(max_attempts=5, sleep=sleeps.append)
    with pytest.raises(TransientBackendError) as caught:
        list(autocontinue.stream("w", backend=backend, retry=policy, strategy="user-turn", resume=checkpoint))
    assert backend.calls == 5
    assert len(sleeps) == 4 and sleeps == sorted(sleeps) and sleeps[0] >= 1.0
    assert set(backend.sent) == {text}  # each attempt was sent the same text: nothing was lost
    assert caught.value.partial.text == text + " word5"


class BreaksOnce(ScriptedBackend):
    """Call ``on`` first sends ``lead`` (an echo of the text so far), then the stream breaks."""

    def __init__(self, answer, on, lead, **kw):
        super().__init__(answer, **kw)
        self.on, self.lead = on, lead
        self.sent: list[str] = []

    def stream_round(self, request):
        self.sent.append(assistant_text(request))
        if self.calls == self.on:
            self.calls += 1
            yield BackendDelta(self.lead(assistant_text(request)))
            raise StreamInterruptedError("connection dropped")
        yield from super().stream_round(request)


@pytest.mark.parametrize(
    "strategy, lead",
    [
        ("user-turn", lambda text: " ".join(text.split()[-3:])[:12]),  # may still be an echo
        ("user-turn", lambda text: "Sure, continuing"),  # may still be a preamble
        ("prefill", lambda text: "\n"),  # whitespace: held until what follows it is known
    ],
)
def test_a_stream_broken_before_its_seam_was_decided_leaves_the_seam_as_it_was(strategy, lead):
    sleeps: list[float] = []
    backend = BreaksOnce(ANSWER, on=2, lead=lead)
    events = list(
        autocontinue.stream(
            "w",
            backend=backend,
            max_tokens_per_call=300,
            strategy=strategy,
            retry=autocontinue.RetryPolicy(sleep=sleeps.append),
            max_rounds=60,
        )
    )
    result = events[-1].result
    assert result.text == ANSWER == "".join(e.text for e in events if isinstance(e, TextDelta))
    assert backend.sent[2] == backend.sent[3]  # the retry is the call that broke, unchanged
    assert len(sleeps) == 1  # it added nothing: a backoff before the retry
    assert [e.attempt for e in events if isinstance(e, Retrying)] == [1]
    assert "interrupted" not in [r.stop_reason for r in result.rounds]


class BreaksFirst(AlwaysBreaks):
    """The first ``breaks`` streams break after ``keep`` characters; later ones behave."""

    def __init__(self, answer, keep, breaks, **kw):
        super().__init__(answer, keep, **kw)
        self.breaks = breaks

    def stream_round(self, request):
        if self.calls < self.breaks:
            yield from super().stream_round(request)
        else:
            yield from ScriptedBackend.stream_round(self, request)


def test_a_broken_stream_that_added_text_is_retried_at_once_and_continues_exactly():
    sleeps: list[float] = []
    backend = BreaksFirst(ANSWER[:4000], keep=700, breaks=3, delta_chars=16)
    result = autocontinue.generate(
        "w",
        backend=backend,
        max_tokens_per_call=400,
        strategy="user-turn",
        retry=autocontinue.RetryPolicy(sleep=sleeps.append),
    )
    assert result.text == ANSWER[:4000]
    assert sleeps == []
    assert [r.stop_reason for r in result.rounds].count("interrupted") == 3
