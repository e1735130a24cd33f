"""The whole loop on the real embedded model (SmolLM2-135M through llama.cpp): no mocks."""

from __future__ import annotations

import pytest

import autocontinue
from autocontinue.events import TextDelta

pytest.importorskip("llama_cpp")

PROMPT = "Write a long story about a lighthouse keeper who finds a message in a bottle."


def test_three_prefill_rounds_equal_one_uncapped_greedy_call_and_reuse_the_kv_cache():
    one = autocontinue.generate(
        PROMPT, backend="local", max_tokens_per_call=120, max_rounds=1, temperature=0, seed=1
    )
    events = list(
        autocontinue.stream(
            PROMPT, backend="local", max_tokens_per_call=40, max_rounds=3, temperature=0, seed=1
        )
    )
    three = events[-1].result
    streamed = "".join(e.text for e in events if isinstance(e, TextDelta))
    # Greedy decoding makes the model's answer a fixed text: three capped rounds joined by
    # prefill must be exactly the one call's text, so the seam is invisible.
    assert three.text == streamed == one.text
    assert [r.strategy for r in three.rounds] == ["initial", "prefill", "prefill"]
    assert [r.stop_reason for r in three.rounds] == ["max_tokens"] * 3
    for report in three.rounds[1:]:
        assert report.usage.reused_prompt_tokens > 40
        assert report.usage.evaluated_prompt_tokens < 10
    assert "\ufffd" not in three.text
    assert three.cost_usd == 0.0


def test_seeded_sampling_is_reproducible_across_runs():
    options = dict(backend="local", max_tokens_per_call=30, max_rounds=2, seed=42)
    first = autocontinue.generate(PROMPT, **options)
    second = autocontinue.generate(PROMPT, **options)
    assert first.text == second.text and len(first.text) > 50


def test_user_turn_strategy_also_runs_on_the_local_model():
    result = autocontinue.generate(
        PROMPT, backend="local", strategy="user-turn", max_tokens_per_call=30, max_rounds=2, seed=3
    )
    assert [r.strategy for r in result.rounds] == ["initial", "user-turn"]
    assert "\ufffd" not in result.text and len(result.text.split()) > 20


def test_local_is_the_default_backend_without_key_url_or_client(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    backend = autocontinue.resolve_backend(None)
    assert backend.name == "local"
    result = autocontinue.generate("Say hello.", max_tokens_per_call=8, max_rounds=1, seed=1)
    assert result.backend == "local" and result.model == "smollm2-135m-instruct"


def test_a_missing_model_file_is_a_one_line_error_with_a_hint(tmp_path):
    with pytest.raises(autocontinue.BackendUnavailableError) as caught:
        autocontinue.generate("hi", backend="local", model_path=str(tmp_path / "nope.gguf"))
    assert "\n" not in caught.value.one_line() and caught.value.hint
