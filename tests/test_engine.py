"""The round loop against an instant in-process backend: budgets, stops, events, resume.

ScriptedBackend is a real Backend that continues a fixed answer exactly; it stands in for a
model only where the behaviour under test is the engine's own arithmetic (no HTTP needed).
Everything that talks to Anthropic is tested through the SDK and the emulator elsewhere.
"""

from __future__ import annotations

import asyncio

import pytest

import autocontinue
from autocontinue.backends.base import Backend, BackendDelta, RoundEnd
from autocontinue.backends.scripted import ScriptedBackend
from autocontinue.catalogue import ModelSpec
from autocontinue.errors import ConfigurationError, StreamInterruptedError, TransientBackendError
from autocontinue.events import RoundFinished, RoundStarted, TextDelta
from autocontinue.usage import Usage

ANSWER = " ".join(f"word{i}," if i % 7 else f"line{i}.\n\n" for i in range(4000)).strip()


def _run(backend, **options):
    events = list(autocontinue.stream("write", backend=backend, **options))
    result = events[-1].result
    deltas = "".join(e.text for e in events if isinstance(e, TextDelta))
    return events, result, deltas


@pytest.mark.parametrize("strategy", ["prefill", "user-turn"])
def test_capped_answer_is_joined_exactly_across_rounds(strategy):
    events, result, deltas = _run(
        ScriptedBackend(ANSWER), max_tokens_per_call=500, strategy=strategy, max_rounds=50
    )
    assert result.text == ANSWER
    assert deltas == ANSWER
    assert result.stop_reason == "end_turn"
    assert len(result.rounds) > 5
    assert [r.stop_reason for r in result.rounds][:-1] == ["max_tokens"] * (len(result.rounds) - 1)
    assert all(r.strategy == strategy for r in result.rounds[1:])


def test_max_rounds_stops_with_what_was_written():
    _, result, deltas = _run(ScriptedBackend(ANSWER), max_tokens_per_call=200, max_rounds=3)
    assert result.stop_reason == "max_rounds"
    assert len(result.rounds) == 3
    assert deltas == result.text and ANSWER.startswith(result.text)
    assert len(result.text) >= 3 * 200 * 4 - 50


def test_max_output_tokens_caps_the_last_call():
    _, result, _ = _run(ScriptedBackend(ANSWER), max_tokens_per_call=300, max_output_tokens=700)
    assert result.stop_reason == "max_output_tokens"
    assert result.usage.output_tokens == 700
    assert [r.max_tokens for r in result.rounds] == [300, 300, 100]


def test_until_stops_as_soon_as_the_text_appears():
    _, result, deltas = _run(ScriptedBackend(ANSWER), max_tokens_per_call=300, until="word1500,")
    assert result.stop_reason == "until"
    assert result.text.endswith("word1500,")
    assert ANSWER.startswith(result.text) and deltas == result.text


def test_context_window_shrinks_the_last_call_then_stops():
    spec = ModelSpec(id="claude-tiny", context_window=3000, max_output=1000, prefill=True)
    _, result, _ = _run(ScriptedBackend(ANSWER, spec=spec, model="claude-tiny"))
    assert result.stop_reason == "context_exhausted"
    sizes = [r.max_tokens for r in result.rounds]
    assert sizes[0] == 1000 and sizes[-1] < 1000
    for report in result.rounds:
        assert report.usage.total_input_tokens + report.max_tokens <= 3000


def test_prefill_starts_the_answer_and_is_part_of_the_text():
    answer = "<story_1>\nOnce upon a time " + ANSWER
    _, result, deltas = _run(
        ScriptedBackend(answer), prefill="<story_1>\n", max_tokens_per_call=400, max_rounds=50
    )
    assert result.text == answer and deltas == answer


def test_min_words_keeps_asking_after_an_early_end():
    class EarlyStopper(ScriptedBackend):
        """Ends its first answer early with end_turn, as real models stop short."""

        def stream_round(self, request):
            if self.calls == 0:
                self.calls += 1
                yield BackendDelta(self.answer[:400])
                yield RoundEnd("end_turn", Usage(input_tokens=10, output_tokens=100))
                return
            yield from super().stream_round(request)

    _, result, _ = _run(EarlyStopper(ANSWER), min_words=300, max_tokens_per_call=400)
    assert len(result.text.split()) >= 300
    assert result.rounds[0].stop_reason == "end_turn"
    assert result.rounds[1].strategy == "user-turn"


def test_events_come_in_round_order_and_deltas_sum_to_the_text():
    events, result, deltas = _run(ScriptedBackend(ANSWER[:5000]), max_tokens_per_call=400)
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "RoundStarted" and kinds[-1] == "Finished"
    starts = [e for e in events if isinstance(e, RoundStarted)]
    ends = [e for e in events if isinstance(e, RoundFinished)]
    assert len(starts) == len(ends) == len(result.rounds)
    assert deltas == result.text == ANSWER[:5000]


class _Flaky(ScriptedBackend):
    """Breaks mid-stream on chosen calls (as a dropped connection would), else behaves."""

    def __init__(self, answer, break_on, **kw):
        super().__init__(answer, **kw)
        self.break_on = set(break_on)

    def stream_round(self, request):
        call = self.calls
        received = ""
        for item in super().stream_round(request):
            if call in self.break_on and isinstance(item, BackendDelta) and len(received) > 100:
                raise StreamInterruptedError("connection dropped")
            if isinstance(item, BackendDelta):
                received += item.text
            yield item


def test_a_broken_stream_keeps_its_text_and_continues_without_doubling():
    sleeps = []
    retry = autocontinue.RetryPolicy(sleep=sleeps.append)
    _, result, deltas = _run(
        _Flaky(ANSWER, {0, 2, 3}),
        max_tokens_per_call=500,
        retry=retry,
        strategy="user-turn",
        max_rounds=50,
    )
    assert result.text == ANSWER and deltas == ANSWER
    assert [r.stop_reason for r in result.rounds].count("interrupted") == 3
    assert result.stop_reason == "end_turn"


class _Overloaded(Backend):
    name = "overloaded"
    default_model = "claude-sonnet-4-5"

    def __init__(self):
        self.calls = 0

    def model_spec(self, model):
        return autocontinue.lookup_model(model)

    def stream_round(self, request):
        self.calls += 1
        raise TransientBackendError("Overloaded", status_code=529, retry_after=2.0)
        yield  # pragma: no cover


def test_round_retries_back_off_then_give_up_keeping_status_and_text():
    sleeps = []
    backend = _Overloaded()
    retry = autocontinue.RetryPolicy(max_attempts=4, sleep=sleeps.append)
    with pytest.raises(TransientBackendError) as caught:
        list(autocontinue.stream("x", backend=backend, prefill="Start", retry=retry))
    assert backend.calls == 4
    assert len(sleeps) == 3 and all(s >= 2.0 for s in sleeps)
    assert caught.value.status_code == 529
    assert caught.value.partial.text.startswith("Start")


def test_resume_from_a_checkpoint_yields_only_new_text_and_the_whole_answer():
    _, first, _ = _run(ScriptedBackend(ANSWER), max_tokens_per_call=300, max_rounds=2)
    checkpoint = autocontinue.Checkpoint(text=first.text[:-7], held="", rounds=first.rounds)
    events = list(
        autocontinue.stream(
            "write",
            backend=ScriptedBackend(ANSWER),
            max_tokens_per_call=300,
            resume=checkpoint,
            max_rounds=50,
        )
    )
    result = events[-1].result
    new = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert result.text == ANSWER
    assert checkpoint.text + new == ANSWER
    assert len(result.rounds) > len(first.rounds)
    assert result.usage.output_tokens > first.usage.output_tokens


def test_async_twin_gives_the_same_result():
    sync = autocontinue.generate("w", backend=ScriptedBackend(ANSWER), max_tokens_per_call=700)
    result = asyncio.run(
        autocontinue.agenerate("w", backend=ScriptedBackend(ANSWER), max_tokens_per_call=700)
    )
    assert result.text == sync.text == ANSWER
    assert len(result.rounds) == len(sync.rounds)


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"max_tokens_per_call": 64001, "model": "claude-sonnet-4-5"}, "above the maximum output"),
        ({"model": "gpt-nope"}, "unknown model"),
        ({"max_rounds": 0}, "max_rounds"),
        ({"temperature": 1.5}, "temperature"),
        ({"strategy": "sideways"}, "unknown strategy"),
        ({"prefill": "x", "thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
        ({"colour": "red"}, "unknown option"),
    ],
)
def test_bad_arguments_are_refused_before_any_call(options, fragment):
    backend = ScriptedBackend(ANSWER)
    with pytest.raises(ConfigurationError) as caught:
        autocontinue.generate("hello", backend=backend, **options)
    assert fragment in str(caught.value)
    assert backend.calls == 0


@pytest.mark.parametrize("prompt", ["", "   ", [], [{"role": "assistant", "content": "x"}]])
def test_empty_or_malformed_prompts_are_refused(prompt):
    with pytest.raises(ConfigurationError):
        autocontinue.generate(prompt, backend=ScriptedBackend(ANSWER))


def test_a_tiny_per_call_limit_still_calls_the_model():
    _, result, _ = _run(ScriptedBackend(ANSWER), max_tokens_per_call=5, max_rounds=3)
    assert [r.max_tokens for r in result.rounds] == [5, 5, 5]
    assert result.stop_reason == "max_rounds"


def test_a_backend_whose_prefill_takes_whitespace_gets_the_exact_text_so_far():
    class Exact(ScriptedBackend):
        prefill_takes_trailing_whitespace = True

        def __init__(self, answer):
            super().__init__(answer)
            self.sent = []

        def stream_round(self, request):
            from autocontinue.backends.scripted import assistant_text

            self.sent.append(assistant_text(request))
            yield from super().stream_round(request)

    backend = Exact(ANSWER)
    events, result, deltas = _run(backend, max_tokens_per_call=301, max_rounds=50)
    assert result.text == deltas == ANSWER
    # Each continuation is sent exactly what was emitted before it, trailing whitespace too.
    assert any(s != s.rstrip() for s in backend.sent)
    assert all(ANSWER.startswith(s) for s in backend.sent)
    assert all(e.held == "" for e in events if isinstance(e, TextDelta))
