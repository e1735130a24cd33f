"""Refusals for size carry their numbers as fields, filled once at the backend boundary.

Through real parts: the official SDK talking HTTP to the emulator (whose 400 texts are the
API's own, see tests/test_emulator_rules.py), and the embedded SmolLM2 through llama.cpp; then
what the engine does with those fields.
"""

from __future__ import annotations

import itertools

import anthropic
import pytest

import autocontinue
from autocontinue.backends.anthropic import AnthropicBackend
from autocontinue.backends.base import RoundRequest
from autocontinue.backends.scripted import ScriptedBackend
from autocontinue.catalogue import CATALOGUE, parse_model_spec, register_model
from autocontinue.emulator import run_emulator
from autocontinue.errors import ContextWindowError, InvalidRequestError, MaxTokensExceededError
from autocontinue.events import Finished

SPECS = ("tiny-api:context=400,max_output=100,prefill=yes",)


@pytest.fixture(scope="module")
def tiny_url():
    register_model(parse_model_spec(SPECS[0]))  # the backend checks the model it is asked for
    try:
        with run_emulator(length=500, model_specs=SPECS) as url:
            yield url
    finally:
        CATALOGUE.pop("tiny-api", None)


def _round(url: str, words: int, max_tokens: int) -> None:
    backend = AnthropicBackend(anthropic.Anthropic(base_url=url, api_key="test-key", max_retries=0))
    messages = [{"role": "user", "content": ("word " * words).strip()}]
    try:
        list(backend.stream_round(RoundRequest(model="tiny-api", messages=messages, max_tokens=max_tokens)))
    finally:
        backend.close()


def test_max_tokens_above_the_model_maximum_names_the_maximum(tiny_url):
    with pytest.raises(MaxTokensExceededError) as caught:
        _round(tiny_url, 5, 101)
    assert isinstance(caught.value, InvalidRequestError)
    assert caught.value.max_tokens_allowed == 100
    assert caught.value.status_code == 400


def test_a_prompt_over_the_window_names_its_size_and_the_window(tiny_url):
    with pytest.raises(ContextWindowError) as caught:
        _round(tiny_url, 500, 10)
    error = caught.value
    assert (error.prompt_tokens, error.context_window, error.max_tokens_allowed) == (503, 400, 0)


def test_a_prompt_that_fits_but_not_with_max_tokens_says_the_room_left(tiny_url):
    with pytest.raises(ContextWindowError) as caught:
        _round(tiny_url, 350, 60)  # 353 prompt tokens with the message overhead
    error = caught.value
    assert (error.prompt_tokens, error.context_window, error.max_tokens_allowed) == (353, 400, 47)
    _round(tiny_url, 350, error.max_tokens_allowed)  # the room it names is accepted


def test_the_local_backend_fills_the_same_fields():
    pytest.importorskip("llama_cpp")
    from autocontinue.backends.local import LocalBackend

    backend = LocalBackend(n_ctx=256)
    try:
        messages = [{"role": "user", "content": "Write a story about a lighthouse keeper."}]
        with pytest.raises(ContextWindowError) as caught:
            list(
                backend.stream_round(
                    RoundRequest(model=backend.default_model, messages=messages, max_tokens=300)
                )
            )
        error = caught.value
        assert error.context_window == 256
        assert error.prompt_tokens is not None and 0 < error.prompt_tokens < 256
        assert error.max_tokens_allowed == 256 - error.prompt_tokens
    finally:
        backend.close()


def test_the_engine_fits_the_calls_to_the_window_the_service_names():
    """The catalogue thinks the window is 8000; the service has 4000 and says so in its 400."""
    served = "claude-narrow:context=4000,max_output=1000,prefill=no"
    register_model(parse_model_spec("claude-narrow:context=8000,max_output=1000,prefill=no"))
    try:
        with run_emulator(seed=1, length=40_000, model_specs=[served]) as url:
            client = anthropic.Anthropic(base_url=url, api_key="test-key", max_retries=0)
            stream = autocontinue.stream("Write a very long story.", client=client, model="claude-narrow")
            events = list(itertools.islice(stream, 20_000))  # bounded: it once ended over and over
            stream.close()
    finally:
        CATALOGUE.pop("claude-narrow", None)
    finished = [e for e in events if isinstance(e, Finished)]
    assert len(finished) == 1 and events[-1] is finished[0]
    result = finished[0].result
    assert result.stop_reason == "context_exhausted"
    last = result.rounds[-1]
    assert last.usage.total_input_tokens + last.max_tokens <= 4000
    assert last.usage.total_input_tokens + last.usage.output_tokens > 3500  # the window is used up


def test_a_prompt_the_service_finds_too_long_is_an_error_not_an_empty_answer():
    """The catalogue lets the prompt through; the service refuses it: nothing was written."""
    register_model(parse_model_spec("claude-narrow2:context=8000,max_output=1000,prefill=no"))
    try:
        with run_emulator(
            seed=1, length=1000, model_specs=["claude-narrow2:context=400,max_output=100,prefill=no"]
        ) as url:
            client = anthropic.Anthropic(base_url=url, api_key="test-key", max_retries=0)
            with pytest.raises(ContextWindowError) as caught:
                autocontinue.generate(
                    "word " * 600, client=client, model="claude-narrow2", max_tokens_per_call=100
                )
    finally:
        CATALOGUE.pop("claude-narrow2", None)
    error = caught.value
    assert error.context_window == 400 and error.prompt_tokens > 400 and error.hint
    assert error.partial.text == ""


def test_a_refusal_without_numbers_after_some_text_ends_the_run_once():
    """A service whose 400 names no numbers (the emulator always names them, so this one is a
    ScriptedBackend that refuses its third call): the run ends there, with one Finished."""

    class Refuses(ScriptedBackend):
        def stream_round(self, request):
            if self.calls == 2:
                self.calls += 1
                raise ContextWindowError("context window exceeded", status_code=400)
            yield from super().stream_round(request)

    backend = Refuses(" ".join(f"w{i}" for i in range(3000)))
    events = list(itertools.islice(autocontinue.stream("w", backend=backend, max_tokens_per_call=100), 5000))
    finished = [e for e in events if isinstance(e, Finished)]
    assert len(finished) == 1 and events[-1] is finished[0]
    assert finished[0].result.stop_reason == "context_exhausted" and backend.calls == 3
