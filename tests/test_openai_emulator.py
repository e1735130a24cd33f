"""The openai backend through the official ``openai`` SDK against the emulator's chat endpoint.

Every persona is a documented server behaviour (``emulator/openai_compat.py``); the emulator's
model writes one fixed answer, so a continued answer must equal one uncapped call exactly.
"""

from __future__ import annotations

import json

import pytest

openai = pytest.importorskip("openai")

import autocontinue  # noqa: E402
from autocontinue.backends.base import BackendDelta, RoundEnd, RoundRequest  # noqa: E402
from autocontinue.backends.openai import OpenAIBackend  # noqa: E402
from autocontinue.backends.openai.known import ServerMemory  # noqa: E402
from autocontinue.errors import (  # noqa: E402
    AuthenticationError,
    ConfigurationError,
    ContextWindowError,
    MissingCredentialsError,
    PrefillNotSupportedError,
)
from autocontinue.events import StrategyChanged  # noqa: E402

PROMPT = "Write a long story."


def base_for(url: str, persona: str) -> str:
    return f"{url}/v1" if persona == "openai" else f"{url}/{persona}/v1"


def uncapped(client) -> str:
    reply = client.chat.completions.create(
        model="emulated", messages=[{"role": "user", "content": PROMPT}], max_tokens=5000
    )
    return reply.choices[0].message.content


@pytest.fixture(scope="module")
def chat_url():
    from autocontinue.emulator import run_emulator

    with run_emulator(length=260) as url:
        yield url


@pytest.mark.parametrize(
    "persona, server",
    [
        ("vllm", None),  # detected from /v1/models owned_by
        ("llama-server", None),  # detected from /props
        ("ollama", None),  # detected from /api/version
        ("lmstudio", None),  # detected from its REST API's /api/v0/models
        ("sglang", "sglang"),
        ("tgi", "tgi"),
        ("deepseek", "deepseek"),
        ("mistral", "mistral"),
    ],
)
def test_continuing_servers_join_to_one_uncapped_answer(chat_url, persona, server):
    client = openai.OpenAI(base_url=base_for(chat_url, persona), api_key="test")
    result = autocontinue.generate(
        PROMPT, backend="openai", client=client, model="emulated", server=server, max_tokens_per_call=50
    )
    assert result.text == uncapped(client)
    assert result.stop_reason == "end_turn"
    assert len(result.rounds) >= 5
    assert {r.strategy for r in result.rounds[1:]} == {"prefill"}
    assert [r.stop_reason for r in result.rounds[:-1]] == ["max_tokens"] * (len(result.rounds) - 1)


def test_openai_and_unknown_servers_continue_by_user_turn(chat_url):
    client = openai.OpenAI(base_url=base_for(chat_url, "openai"), api_key="test")
    result = autocontinue.generate(PROMPT, client=client, model="emulated", max_tokens_per_call=50)
    assert result.backend == "openai"  # an openai client selects the backend
    assert result.text == uncapped(client)
    assert {r.strategy for r in result.rounds[1:]} == {"user-turn"}


def test_a_server_that_closes_the_turn_is_detected_and_remembered(chat_url):
    """Told it is llama-server, an endpoint that closes a trailing assistant turn is caught by
    the prompt-token check before the first call; the run goes on by user turn."""
    base = base_for(chat_url, "openai")
    client = openai.OpenAI(base_url=base, api_key="test")
    result = autocontinue.generate(
        PROMPT, client=client, model="emulated", server="llama-server", max_tokens_per_call=50
    )
    assert result.text == uncapped(client)
    assert {r.strategy for r in result.rounds[1:]} == {"user-turn"}
    assert ServerMemory().continues(OpenAIBackend(client).endpoint_key(), "emulated", "llama-server") is False


def test_forced_prefill_on_a_turn_closing_server_fails_with_a_hint(chat_url):
    client = openai.OpenAI(base_url=base_for(chat_url, "openai"), api_key="test")
    with pytest.raises(PrefillNotSupportedError) as caught:
        autocontinue.generate(
            PROMPT,
            client=client,
            model="emulated",
            server="llama-server",
            strategy="prefill",
            max_tokens_per_call=50,
        )
    assert "closes" in caught.value.message and "user-turn" in caught.value.hint
    assert caught.value.partial.text  # the first round's text is kept


def test_a_closed_turn_found_at_the_first_prefill_round_is_redone_by_user_turn(chat_url):
    """A backend whose check only runs at the first prefill round (a resumed or custom run):
    the round raises PrefillNotSupportedError and the engine switches and redoes it."""
    client = openai.OpenAI(base_url=base_for(chat_url, "openai"), api_key="test")

    class LateCheck(OpenAIBackend):
        def prefill_supported(self, model: str) -> bool:
            return True

    events = list(
        autocontinue.stream(
            PROMPT, backend=LateCheck(client, server="llama-server"), model="emulated", max_tokens_per_call=50
        )
    )
    changed = [e for e in events if isinstance(e, StrategyChanged)]
    assert len(changed) == 1 and "closes" in changed[0].reason
    assert events[-1].result.text == uncapped(client)


def _prefill_round(backend, prefill: str) -> tuple[str, RoundEnd]:
    request = RoundRequest(
        model="emulated",
        messages=[
            {"role": "user", "content": PROMPT},
            {"role": "assistant", "content": [{"type": "text", "text": prefill}]},
        ],
        max_tokens=20,
    )
    events = list(backend.stream_round(request))
    text = "".join(e.text for e in events if isinstance(e, BackendDelta))
    return text, events[-1]


def test_llama_server_echo_of_the_prefill_is_removed_exactly(chat_url):
    base = base_for(chat_url, "llama-server")
    client = openai.OpenAI(base_url=base, api_key="test")
    answer = uncapped(client)
    prefill = answer[:120]
    raw = client.chat.completions.create(
        model="emulated",
        messages=[{"role": "user", "content": PROMPT}, {"role": "assistant", "content": prefill}],
        max_tokens=20,
    )
    assert raw.choices[0].message.content.startswith(prefill)  # the server repeats it
    text, end = _prefill_round(OpenAIBackend(client), prefill)
    assert prefill + text == answer[: len(prefill) + len(text)]
    assert text and end.stop_reason == "max_tokens"
    assert end.usage.cache_read_input_tokens > 0  # the KV slot held the prompt prefix


def test_a_prefill_the_server_does_not_echo_is_not_touched(chat_url):
    """vLLM does not repeat the prefill; text that merely starts like it is kept whole."""
    client = openai.OpenAI(base_url=base_for(chat_url, "vllm"), api_key="test")
    answer = uncapped(client)
    text, _ = _prefill_round(OpenAIBackend(client), answer[:80])
    assert answer.startswith(answer[:80] + text)


def test_non_streaming_endpoint_and_vllm_flag_rules(chat_url):
    client = openai.OpenAI(base_url=base_for(chat_url, "vllm"), api_key="test")
    messages = [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": "Once"}]
    with pytest.raises(openai.BadRequestError, match="cannot both be true"):
        client.chat.completions.create(
            model="emulated", messages=messages, max_tokens=5, extra_body={"continue_final_message": True}
        )
    reply = client.chat.completions.create(model="emulated", messages=messages, max_tokens=5)
    assert reply.choices[0].message.content == uncapped(client)[: len(reply.choices[0].message.content)]
    assert reply.usage.completion_tokens == 5 and reply.choices[0].finish_reason == "length"


def test_context_error_is_mapped_with_its_numbers(chat_url):
    backend = OpenAIBackend(openai.OpenAI(base_url=base_for(chat_url, "vllm"), api_key="test"))
    request = RoundRequest(
        model="emulated", messages=[{"role": "user", "content": PROMPT}], max_tokens=40_000
    )
    with pytest.raises(ContextWindowError, match=r"\(\d+ \+ 40000 > 32768\)"):
        list(backend.stream_round(request))
    generic = OpenAIBackend(openai.OpenAI(base_url=base_for(chat_url, "openai"), api_key="test"))
    assert generic.model_spec("emulated").context_window == 131_072  # the server does not say
    with pytest.raises(ContextWindowError):
        list(generic.stream_round(request))
    assert generic.model_spec("emulated").context_window == 32_768  # learnt from the first error


def test_model_limits_come_from_the_server(chat_url):
    for persona in ("vllm", "llama-server", "lmstudio"):
        backend = OpenAIBackend(openai.OpenAI(base_url=base_for(chat_url, persona), api_key="test"))
        spec = backend.model_spec("emulated")
        assert spec.context_window == 32_768 and spec.family == "openai"
        assert backend.mode.kind == persona
        assert backend.default_model == "emulated"


def test_auth_error_has_a_hint(start_emulator):
    url = start_emulator(api_key="right")
    client = openai.OpenAI(base_url=f"{url}/vllm/v1", api_key="wrong", max_retries=0)
    with pytest.raises(AuthenticationError) as caught:
        autocontinue.generate(PROMPT, client=client, model="emulated", server="vllm")
    assert "OPENAI_API_KEY" in caught.value.hint
    assert "wrong" not in caught.value.one_line()


def test_bad_server_kind_and_missing_endpoint_are_refused(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="unknown server.*'vlm'"):
        autocontinue.generate(PROMPT, backend="openai", base_url="http://127.0.0.1:9/v1", server="vlm")
    with pytest.raises(MissingCredentialsError):
        autocontinue.generate(PROMPT, backend="openai")
    with pytest.raises(ConfigurationError, match="server= is for the openai backend"):
        autocontinue.generate(PROMPT, backend="local", server="vllm")


def test_environment_selects_the_backend(monkeypatch, chat_url):
    monkeypatch.setenv("OPENAI_BASE_URL", base_for(chat_url, "llama-server"))
    result = autocontinue.generate(PROMPT, max_tokens_per_call=100)
    assert result.backend == "openai" and result.model == "emulated"
    monkeypatch.setenv("ANTHROPIC_BASE_URL", chat_url)  # anthropic's variables still win
    from autocontinue.backends.select import infer_backend

    assert infer_backend() == "anthropic"


def test_price_table_prices_hosted_models_else_cost_is_unknown(chat_url, tmp_path, monkeypatch):
    client = openai.OpenAI(base_url=base_for(chat_url, "vllm"), api_key="test")
    unpriced = OpenAIBackend(client).model_spec("emulated")
    assert not unpriced.priced and "price unknown" in unpriced.notes
    unknown = autocontinue.generate(PROMPT, client=client, model="emulated", max_tokens_per_call=100)
    assert unknown.cost_known is False and unknown.to_dict()["cost_usd"] is None
    from autocontinue.cli.progress import summary_line

    assert "cost unknown" in summary_line(unknown) and "$" not in summary_line(unknown)
    from autocontinue.backends.openai.prices import price_file

    price_file().parent.mkdir(parents=True, exist_ok=True)
    price_file().write_text(json.dumps({"emulated": {"input": 1.0, "output": 2.0}}))
    result = autocontinue.generate(PROMPT, client=client, model="emulated", max_tokens_per_call=100)
    expected = result.usage.input_tokens * 1e-6 + result.usage.output_tokens * 2e-6
    assert result.cost_usd == pytest.approx(expected) and result.cost_known
    price_file().write_text("{not json")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        autocontinue.generate(PROMPT, client=client, model="emulated")


async def test_async_client(chat_url):
    client = openai.AsyncOpenAI(base_url=base_for(chat_url, "llama-server"), api_key="test")
    result = await autocontinue.agenerate(PROMPT, client=client, model="emulated", max_tokens_per_call=50)
    sync = openai.OpenAI(base_url=base_for(chat_url, "llama-server"), api_key="test")
    assert result.text == uncapped(sync)
    assert {r.strategy for r in result.rounds[1:]} == {"prefill"}
    await client.close()


def test_base_url_with_the_anthropic_backend_goes_to_that_endpoint(emulator_url, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    result = autocontinue.generate(
        PROMPT, backend="anthropic", base_url=emulator_url, model="claude-haiku-4-5", max_tokens_per_call=200
    )
    assert result.backend == "anthropic" and result.text  # the emulator answered, not the real API
