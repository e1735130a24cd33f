"""Refusals for size carry their numbers as fields, filled once at the backend boundary.

Through real parts: the official SDK talking HTTP to the emulator (whose 400 texts are the
API's own, see tests/test_emulator_rules.py), and the embedded SmolLM2 through llama.cpp.
"""

from __future__ import annotations

import anthropic
import pytest

from autocontinue.backends.anthropic import AnthropicBackend
from autocontinue.backends.base import RoundRequest
from autocontinue.emulator import run_emulator
from autocontinue.errors import ContextWindowError, InvalidRequestError, MaxTokensExceededError

SPECS = ("tiny-api:context=400,max_output=100,prefill=yes",)


@pytest.fixture(scope="module")
def tiny_url():
    with run_emulator(length=500, model_specs=SPECS) as url:
        yield url


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
            list(backend.stream_round(RoundRequest(model=backend.default_model, messages=messages, max_tokens=300)))
        error = caught.value
        assert error.context_window == 256
        assert error.prompt_tokens is not None and 0 < error.prompt_tokens < 256
        assert error.max_tokens_allowed == 256 - error.prompt_tokens
    finally:
        backend.close()
