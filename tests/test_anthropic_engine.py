"""The engine and the anthropic backend through the official SDK against the emulator over HTTP.

Every test here goes through real parts: ``anthropic.Anthropic`` talking HTTP to the emulator
(a uvicorn server in a thread). Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from contextlib import ExitStack

import anthropic
import pytest

import autocontinue
from autocontinue.catalogue import CATALOGUE, parse_model_spec, register_model
from autocontinue.emulator import run_emulator
from autocontinue.events import StrategyChanged, TextDelta

STORIES = (
    "Please write five stories. Each should be at least 1000 words. Make them varied in tone "
    "and setting. Put them in <story_1>, <story_2>, ... tags."
)
LENGTH = 12_000


@pytest.fixture(scope="module")
def emulators():
    """A clean emulator, one with every seam quirk, and one with a fault mix (same seed)."""
    with ExitStack() as stack:
        yield {
            "clean": stack.enter_context(run_emulator(seed=3, length=LENGTH)),
            "quirky": stack.enter_context(
                run_emulator(seed=3, length=LENGTH, quirks="echo:0.5,preamble:0.5,drop-space:0.5")
            ),
            "early": stack.enter_context(
                run_emulator(seed=3, length=LENGTH, quirks="early-stop:1,echo:0.5,preamble:0.5")
            ),
            "faulty": stack.enter_context(
                run_emulator(
                    seed=3,
                    length=LENGTH,
                    faults="529:0.15,429:0.1,500:0.1,drop:0.2,stream-error:0.2",
                )
            ),
        }


def _client(url: str, **kw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="test-key", **kw)


def _stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/emulator/stats") as response:
        return json.load(response)


def _reset(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/emulator/reset", method="POST")).read()


def _uncapped(url: str, model: str = "claude-haiku-4-5") -> str:
    """The whole answer in one streamed call: the reference every joined text must equal.

    The emulator's answer depends on the seed and the prompt only, so one 64k call on a
    prefill model gives the answer that every model and strategy must reproduce.
    """
    with _client(url).messages.stream(
        model="claude-haiku-4-5", max_tokens=60_000, messages=[{"role": "user", "content": STORIES}]
    ) as stream:
        message = stream.get_final_message()
    assert message.stop_reason == "end_turn"
    return message.content[0].text


@pytest.mark.parametrize(
    "model, strategy", [("claude-haiku-4-5", "prefill"), ("claude-sonnet-5-5", "user-turn")]
)
def test_five_stories_join_into_one_seamless_text(emulators, model, strategy):
    url = emulators["clean"]
    reference = _uncapped(url, model)
    result = autocontinue.generate(STORIES, client=_client(url), model=model, max_tokens_per_call=4096)
    assert result.text == reference
    assert result.stop_reason == "end_turn"
    assert len(result.rounds) >= 3
    assert {r.strategy for r in result.rounds[1:]} == {strategy}
    assert "<story_1>" in result.text


@pytest.mark.parametrize("model", ["claude-haiku-4-5", "claude-sonnet-5-5"])
def test_every_quirk_on_still_gives_the_uncapped_answer(emulators, model):
    reference = _uncapped(emulators["clean"], model)
    events = list(
        autocontinue.stream(
            STORIES, client=_client(emulators["quirky"]), model=model, max_tokens_per_call=2500
        )
    )
    result = events[-1].result
    streamed = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert streamed == result.text == reference
    repaired = [r.seam for r in result.rounds if r.seam]
    if model == "claude-sonnet-5-5":  # echoes and preambles are user-turn quirks (seams issue 9)
        assert any(s.get("trimmed_echo") for s in repaired)
        assert any(s.get("trimmed_preamble") for s in repaired)
        assert any(s.get("restored_whitespace") for s in repaired)


def test_min_words_carries_an_early_stop_to_the_full_length(emulators):
    reference = _uncapped(emulators["clean"], "claude-sonnet-5-5")
    result = autocontinue.generate(
        STORIES,
        client=_client(emulators["early"]),
        model="claude-sonnet-5-5",
        max_tokens_per_call=4096,
        min_words=len(reference.split()) - 5,
    )
    # Stops as soon as the answer has enough words: a prefix of the full answer, seamless.
    assert reference.startswith(result.text)
    assert len(result.text.split()) >= len(reference.split()) - 5
    early_ends = [r for r in result.rounds[:-1] if r.stop_reason == "end_turn"]
    assert len(early_ends) >= 2
    assert result.stop_reason == "end_turn"


def test_cost_equals_what_the_emulator_billed_and_caching_reads_earlier_text(emulators):
    url = emulators["clean"]
    _reset(url)
    result = autocontinue.generate(
        STORIES, client=_client(url), model="claude-sonnet-5-5", max_tokens_per_call=3000
    )
    stats = _stats(url)
    assert stats["requests"] == len(result.rounds)
    assert result.cost_usd == pytest.approx(stats["cost_usd"], rel=1e-12, abs=1e-12)
    assert result.usage.output_tokens == stats["output_tokens"]
    assert result.usage.cache_read_input_tokens == stats["cache_read_input_tokens"] > 0
    later = result.rounds[2:]
    assert all(r.usage.cache_read_input_tokens > r.usage.input_tokens for r in later)


def test_caching_makes_a_long_answer_cheaper_than_without(emulators):
    url = emulators["clean"]
    options = dict(client=_client(url), model="claude-sonnet-5-5", max_tokens_per_call=2000)
    cached = autocontinue.generate(STORIES, **options)
    plain = autocontinue.generate(STORIES, cache=False, **options)
    assert cached.text == plain.text
    assert cached.cost_usd < plain.cost_usd


def test_the_fault_mix_changes_nothing_in_the_text(emulators):
    reference = _uncapped(emulators["clean"], "claude-sonnet-5-5")
    sleeps: list[float] = []
    result = autocontinue.generate(
        STORIES,
        client=_client(emulators["faulty"], max_retries=0),
        model="claude-sonnet-5-5",
        max_tokens_per_call=2000,
        retry=autocontinue.RetryPolicy(max_attempts=12, sleep=sleeps.append),
    )
    assert result.text == reference
    assert result.stop_reason == "end_turn"
    assert sleeps, "the fault mix should have caused at least one backoff"
    assert any(r.stop_reason == "interrupted" for r in result.rounds)


def test_sdk_retries_a_scripted_overload_and_the_run_goes_on():
    with run_emulator(seed=3, length=3000, faults="529@1") as url:
        result = autocontinue.generate(STORIES, client=_client(url), model="claude-sonnet-5-5")
        stats = _stats(url)
    assert result.stop_reason == "end_turn"
    assert stats["errors"] == 1


def test_prefill_refusal_switches_remembers_per_endpoint_and_loses_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOCONTINUE_HOME", str(tmp_path))
    spec = "claude-haiku-4-5:prefill=no"
    with run_emulator(seed=5, length=4000, model_specs=[spec]) as url:
        reference = _uncapped(url)
        events = list(
            autocontinue.stream(
                STORIES, client=_client(url), model="claude-haiku-4-5", max_tokens_per_call=1200
            )
        )
        result = events[-1].result
        changed = [e for e in events if isinstance(e, StrategyChanged)]
        assert len(changed) == 1 and changed[0].new == "user-turn"
        assert result.text == reference
        errors_after_first = _stats(url)["errors"]
        again = autocontinue.generate(
            STORIES, client=_client(url), model="claude-haiku-4-5", max_tokens_per_call=1200
        )
        assert again.text == reference
        assert _stats(url)["errors"] == errors_after_first
    memory = json.loads((tmp_path / "prefill.json").read_text())
    assert list(memory.values()) == [{"claude-haiku-4-5": False}]
    assert "127.0.0.1" in next(iter(memory))


def test_small_context_window_ends_in_context_exhausted_without_an_api_error():
    spec_text = "claude-tiny-ctx:context=4000,max_output=300,prefill=no"
    previous = CATALOGUE.get("claude-tiny-ctx")
    register_model(parse_model_spec(spec_text))
    try:
        with run_emulator(seed=1, length=20_000, model_specs=[spec_text]) as url:
            result = autocontinue.generate(STORIES, client=_client(url), model="claude-tiny-ctx")
            stats = _stats(url)
    finally:
        CATALOGUE.pop("claude-tiny-ctx", None)
        if previous:
            register_model(previous)
    assert result.stop_reason == "context_exhausted"
    assert stats["errors"] == 0
    assert len(result.rounds) >= 5
    assert all(r.max_tokens <= 300 for r in result.rounds)


def test_model_output_limit_learned_from_the_api_error():
    with run_emulator(seed=1, length=3000, model_specs=["claude-newer-9:max_output=500"]) as url:
        result = autocontinue.generate(STORIES, client=_client(url), model="claude-newer-9")
    assert result.stop_reason == "end_turn"
    assert all(r.max_tokens <= 500 for r in result.rounds)


def test_unknown_model_is_a_one_line_error_with_a_hint(emulators):
    with pytest.raises(autocontinue.UnknownModelError) as caught:
        autocontinue.generate("hi", client=_client(emulators["clean"]), model="claude-nope-1")
    assert "claude-nope-1" in caught.value.one_line()
    assert caught.value.hint


def test_bad_key_maps_to_authentication_error_with_status_and_request_id():
    with run_emulator(seed=1, length=100, api_key="right-key") as url:
        client = anthropic.Anthropic(base_url=url, api_key="wrong-secret-key")
        with pytest.raises(autocontinue.AuthenticationError) as caught:
            autocontinue.generate("hi", client=client)
    error = caught.value
    assert error.status_code == 401
    assert (error.request_id or "").startswith("req_")
    assert "wrong-secret-key" not in error.one_line()


def test_missing_key_is_refused_before_any_call(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    with pytest.raises(autocontinue.MissingCredentialsError) as caught:
        autocontinue.generate("hi", backend="anthropic")
    assert "ANTHROPIC_API_KEY" in caught.value.one_line()


def test_default_backend_is_anthropic_when_a_base_url_is_set(monkeypatch, emulators):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulators["clean"])
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    result = autocontinue.generate("Say something long.", max_rounds=1, max_tokens_per_call=50)
    assert result.backend == "anthropic"


def test_stop_sequence_ends_the_run(emulators):
    result = autocontinue.generate(
        STORIES,
        client=_client(emulators["clean"]),
        model="claude-sonnet-5-5",
        max_tokens_per_call=2000,
        stop_sequences=["</story_2>"],
    )
    assert result.stop_reason == "stop_sequence"
    assert "</story_1>" in result.text and "</story_2>" not in result.text


def test_async_client_runs_the_same_loop(emulators):
    url = emulators["clean"]
    reference = _uncapped(url, "claude-sonnet-5-5")

    async def main():
        client = anthropic.AsyncAnthropic(base_url=url, api_key="test-key")
        return await autocontinue.agenerate(
            STORIES, client=client, model="claude-sonnet-5-5", max_tokens_per_call=4096
        )

    result = asyncio.run(main())
    assert result.text == reference
    assert len(result.rounds) >= 3


def test_temperature_reaches_the_api_through_the_sdk_under_the_old_api_version(emulators):
    # 2026-10-21 (the SDK's default) removed temperature: see test_anthropic_today.py
    client = _client(emulators["clean"], default_headers={"anthropic-version": "2023-06-01"})
    result = autocontinue.generate(
        "Say something long.",
        client=client,
        model="claude-haiku-4-5",
        temperature=0.3,
        max_rounds=1,
        max_tokens_per_call=40,
    )
    assert result.rounds[0].usage.output_tokens == 40
