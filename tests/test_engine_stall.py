"""No spinning, nothing held lost, length ceilings: the engine's answers to rounds that add nothing.

The backends here are real ``Backend`` subclasses that script a model's misbehaviour (an echo
of the text instead of a continuation, a round of only thinking, an early end); they stand in
for a model only because these misbehaviours cannot be asked of one on demand. The same rules
run through the SDK against the emulator in test_engine_emulator.py.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

import autocontinue
from autocontinue.backends.base import Backend, BackendDelta, RoundEnd, RoundRequest
from autocontinue.backends.scripted import ScriptedBackend, assistant_text
from autocontinue.catalogue import ModelSpec, lookup_model
from autocontinue.engine import CONTINUATION_EFFORT, MAX_STALLED_ROUNDS, stalls_after
from autocontinue.events import Checkpoint, RoundReport, TextDelta
from autocontinue.state import sentence_cut
from autocontinue.usage import Usage


def _run(backend, **options):
    events = list(autocontinue.stream("write", backend=backend, **options))
    result = events[-1].result
    deltas = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert deltas == result.text
    return result


def _same_call(a: RoundRequest, b: RoundRequest) -> bool:
    return replace(a, round_index=0) == replace(b, round_index=0)


class Script(Backend):
    """Answers call i with ``pieces[i]`` (the last one for every later call), then a stop reason."""

    name = "script"
    default_model = "claude-sonnet-4-6"

    def __init__(self, pieces, stops=None, spec=None):
        self.pieces = pieces
        self.stops = stops or ["max_tokens"] * len(pieces)
        self.spec = spec
        self.requests: list[RoundRequest] = []

    def model_spec(self, model):
        return self.spec or lookup_model(model)

    def stream_round(self, request):
        i = min(len(self.requests), len(self.pieces) - 1)
        self.requests.append(request)
        piece = self.pieces[i]
        if callable(piece):
            piece = piece(assistant_text(request))
        if piece:
            yield BackendDelta(piece)
        yield RoundEnd(self.stops[i], Usage(input_tokens=10, output_tokens=max(1, len(piece) // 4)))


def _echo(text: str) -> str:
    """The last four words of the text so far, as a model that starts over would send them."""
    return " ".join(text.split()[-4:])


def test_a_model_that_always_echoes_ends_stalled_after_three_rounds_keeping_its_text():
    backend = Script(["Once upon a time there was a clever fox", _echo])
    result = _run(backend, strategy="user-turn", max_rounds=20, max_tokens_per_call=100)
    assert result.stop_reason == "stalled"
    assert result.stalled_rounds == MAX_STALLED_ROUNDS
    assert len(backend.requests) == 1 + MAX_STALLED_ROUNDS
    # Nothing lost: the held last word ("fox", never regenerated) ends the answer.
    assert result.text == "Once upon a time there was a clever fox"
    for before, after in zip(backend.requests[1:], backend.requests[2:]):
        assert not _same_call(before, after)
    assert [r.remedy for r in result.rounds] == ["", "", "max_tokens", "max_tokens+instruction"]
    assert [c.max_tokens for c in backend.requests] == [100, 100, 200, 400]


def test_when_nothing_is_left_to_change_the_run_stops_before_repeating_a_call():
    backend = Script(["Once upon a time there was a clever fox", _echo])
    result = _run(backend, strategy="user-turn")  # at the model's maximum, no seed to change
    assert result.stop_reason == "stalled"
    assert len(backend.requests) == 3 and result.stalled_rounds == 2
    assert not _same_call(backend.requests[1], backend.requests[2])


def test_no_two_identical_calls_follow_a_round_that_added_nothing_even_at_the_ceiling():
    spec = ModelSpec(id="claude-small", context_window=200_000, max_output=40, prefill=False)
    backend = Script(["Once upon a time there was a clever fox", _echo], spec=spec)
    result = _run(backend, model="claude-small", strategy="user-turn", seed=7)
    assert result.stop_reason == "stalled"
    calls = backend.requests
    assert all(c.max_tokens == 40 for c in calls)  # nothing to grow: other things change
    for before, after in zip(calls[1:], calls[2:]):
        assert not _same_call(before, after)
    assert "clever fox" not in calls[1].messages[-1]["content"]
    assert "clever" in calls[2].messages[-1]["content"]  # the instruction quotes the last line
    assert calls[3].seed != calls[2].seed


def test_a_held_word_survives_a_round_that_added_nothing():
    backend = Script(
        ["alpha beta gamma delta epsil", _echo, "epsilon zeta eta."],
        stops=["max_tokens", "max_tokens", "end_turn"],
    )
    result = _run(backend, strategy="user-turn")
    assert result.text == "alpha beta gamma delta epsilon zeta eta."
    assert result.stalled_rounds == 1
    assert result.stop_reason == "end_turn"


def test_a_run_that_stalls_right_after_a_cut_ends_on_the_held_word_not_without_it():
    backend = Script(["alpha beta gamma delta epsil", _echo])
    result = _run(backend, strategy="user-turn")
    assert result.stop_reason == "stalled"
    assert result.text == "alpha beta gamma delta epsil"


def test_min_words_after_a_finished_answer_sends_its_last_word_and_holds_nothing():
    backend = Script(
        ["The essay ends here.", "\n\nA second part follows, with more words in it."],
        stops=["end_turn", "end_turn"],
    )
    result = _run(backend, min_words=10)
    sent = assistant_text(backend.requests[1])
    assert sent == "The essay ends here."
    assert result.text == "The essay ends here.\n\nA second part follows, with more words in it."
    assert result.stop_reason == "end_turn"


def test_a_finished_answer_that_adds_nothing_is_asked_again_differently_then_stalls():
    backend = Script(["The essay ends here.", ""], stops=["end_turn", "end_turn"])
    result = _run(backend, min_words=50)
    assert result.stop_reason == "stalled"
    assert result.text == "The essay ends here."
    assert "ends with this line" in backend.requests[2].messages[-1]["content"]
    for before, after in zip(backend.requests[1:], backend.requests[2:]):
        assert not _same_call(before, after)


SENTENCES = " ".join(f"Sentence {i} has a few words in it{'!' if i % 5 == 0 else '.'}" for i in range(2000))


def _expected_cut(text: str, max_words: int) -> str:
    """Independently: the text up to the first sentence end in or after word ``max_words``."""
    word = list(re.finditer(r"\S+", text))[max_words - 1]
    end = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)").search(text, word.start())
    assert end is not None
    return text[: end.end()]


@pytest.mark.parametrize("max_words", [7, 100, 1000, 1003])
@pytest.mark.parametrize("strategy", ["prefill", "user-turn"])
def test_max_words_cuts_at_the_end_of_the_sentence_in_progress(max_words, strategy):
    backend = ScriptedBackend(SENTENCES, delta_chars=13)
    result = _run(backend, max_words=max_words, max_tokens_per_call=300, strategy=strategy, max_rounds=100)
    assert result.stop_reason == "max_words"
    assert result.text == _expected_cut(SENTENCES, max_words)


def test_max_words_ends_at_the_round_end_when_no_sentence_ends_before_it():
    answer = " ".join(f"w{i}" for i in range(5000))
    result = _run(ScriptedBackend(answer), max_words=120, max_tokens_per_call=100, max_rounds=50)
    assert result.stop_reason == "max_words"
    assert answer.startswith(result.text)
    words = len(result.text.split())
    assert 120 <= words < 120 + 100
    assert len(result.rounds) == 2


@pytest.mark.parametrize(
    "before, pending, words, limit, expected",
    [
        ("", "One two three. Four", 0, 2, 14),
        ("", "One two three. Four", 0, 3, 14),
        ("", "One two three. Four five.", 0, 4, None),  # no whitespace after the last "." yet
        ("end.", " Next", 9, 9, 0),  # the sentence ended in the text already emitted
        ("x", 'y said "Stop!" and', 1, 2, 14),
        ("", "pi is 3.14 or so", 0, 1, None),
    ],
)
def test_sentence_cut(before, pending, words, limit, expected):
    assert sentence_cut(before, pending, words, limit) == expected


class ThinksFirst(ScriptedBackend):
    """Spends its first call thinking (no text, capped): a real 200 response seen on the API."""

    def __init__(self, answer, **kw):
        super().__init__(answer, **kw)
        self.requests: list[RoundRequest] = []

    def stream_round(self, request):
        self.requests.append(request)
        if len(self.requests) == 1:
            self.calls += 1
            usage = Usage(
                input_tokens=20, output_tokens=request.max_tokens, thinking_tokens=request.max_tokens
            )
            yield RoundEnd("max_tokens", usage)
            return
        yield from super().stream_round(request)


def test_a_capped_round_of_only_thinking_gets_room_in_the_next_call():
    backend = ThinksFirst(SENTENCES[:3000])
    result = _run(backend, max_tokens_per_call=200, thinking="adaptive", strategy="user-turn")
    first, second = backend.requests[:2]
    assert second.max_tokens == 2 * first.max_tokens
    assert result.text == SENTENCES[:3000]
    assert result.rounds[1].remedy == "max_tokens"
    assert result.stalled_rounds == 1


def test_a_capped_round_of_only_thinking_at_the_ceiling_lowers_the_effort():
    spec = ModelSpec(id="claude-small", context_window=200_000, max_output=200, prefill=False)
    backend = ThinksFirst(SENTENCES[:3000], spec=spec, model="claude-small")
    result = _run(backend, model="claude-small", effort="high", strategy="user-turn")
    assert [r.effort for r in backend.requests[:3]] == ["high", "medium", "high"]
    assert result.text == SENTENCES[:3000]


def test_continuation_rounds_send_the_continuation_effort_unless_the_caller_set_one():
    def calls(model, **options):
        backend = ThinksFirst(SENTENCES[:3000], model=model)
        backend.requests.append(None)  # skip the thinking round: a plain run
        _run(backend, max_tokens_per_call=300, **options)
        return [c.effort for c in backend.requests[1:]]

    efforts = calls("claude-sonnet-4-6")
    assert efforts[0] is None and set(efforts[1:]) == {CONTINUATION_EFFORT}
    assert set(calls("claude-sonnet-4-6", effort="max")) == {"max"}
    # A model that takes no effort setting is never sent one the caller did not ask for.
    assert set(calls("claude-sonnet-4-5")) == {None}


def test_a_run_resumed_after_a_round_of_only_thinking_does_not_send_that_call_again():
    """A crash right after a round that added nothing: the resumed run changes the call as
    the uninterrupted one does (twice the room), instead of paying for the same call again."""
    first = ThinksFirst(SENTENCES[:3000])
    whole = _run(first, max_tokens_per_call=200, thinking="adaptive", strategy="user-turn")
    thinking_round = whole.rounds[0]
    assert thinking_round.chars == 0 and thinking_round.stop_reason == "max_tokens"

    resumed_backend = ThinksFirst(SENTENCES[:3000])
    resumed_backend.requests.append(None)  # the thinking round was answered before the crash
    checkpoint = Checkpoint(text="", rounds=[thinking_round])
    resumed = _run(
        resumed_backend, max_tokens_per_call=200, thinking="adaptive", strategy="user-turn", resume=checkpoint
    )
    assert resumed_backend.requests[1].max_tokens == first.requests[1].max_tokens == 400
    assert resumed.rounds[1].remedy == "max_tokens"
    assert resumed.text == whole.text
    assert [r.max_tokens for r in resumed.rounds] == [r.max_tokens for r in whole.rounds]


def test_stalls_after_counts_rounds_that_added_nothing_and_how_the_last_went():
    def report(chars, stop, thinking=0, redo=""):
        usage = Usage(output_tokens=10, thinking_tokens=thinking)
        return RoundReport(
            index=0,
            strategy="user-turn",
            max_tokens=10,
            stop_reason=stop,
            usage=usage,
            chars=chars,
            redo=redo,
        )

    assert stalls_after(2, "capped", report(5, "max_tokens")) == (0, "")
    assert stalls_after(1, "capped", report(0, "interrupted")) == (1, "capped")
    assert stalls_after(0, "", report(0, "max_tokens", thinking=10)) == (1, "thinking")
    assert stalls_after(1, "thinking", report(0, "max_tokens")) == (2, "capped")
    assert stalls_after(0, "", report(0, "restart", redo="restart")) == (1, "restart")
    assert stalls_after(0, "", report(0, "max_tokens", redo="unresolved")) == (1, "unresolved")
    assert stalls_after(0, "", report(0, "end_turn")) == (1, "ended")
