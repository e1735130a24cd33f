"""The emulator follows today's API (late 2026), per ``anthropic-version``, through the official SDK.

The SDK sends ``anthropic-version: 2026-10-21``; ``default_headers`` selects 2023-06-01. Every
rule is checked for Sonnet 5.5, Opus 5.5, Haiku 5.5, Opus 4.6 and Haiku 4.5 at least: sampling
parameters, thinking modes with the exact 400 texts, effort, prefill, thinking blocks on the
wire, thinking that grows with effort and is billed as output, ``max_tokens`` reached inside
thinking, 5.x prices and the Haiku 5.5 tiers in ``/emulator/stats``, the 512-token cache
minimum, retired models. Real HTTP, nothing mocked.
"""

from __future__ import annotations

import anthropic
import pytest
from conftest import emulator_stats, reset_emulator

from autocontinue.catalogue import find_model, price_usage
from autocontinue.usage import Usage

CURRENT = ("claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5", "claude-opus-4-6", "claude-haiku-4-5")
OLD = {"anthropic-version": "2023-06-01"}
USER = [{"role": "user", "content": "Tell me a long story."}]
VERSIONS = [pytest.param({}, id="2026-10-21"), pytest.param(OLD, id="2023-06-01")]


@pytest.fixture(scope="module")
def url():
    from autocontinue.emulator import run_emulator

    with run_emulator(length=3000, seed=4) as base:
        yield base


def client(url: str, headers: dict | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="test", max_retries=0, default_headers=headers or {})


def refusal(url: str, headers: dict | None = None, **params) -> str:
    params.setdefault("max_tokens", 50)
    params.setdefault("messages", USER)
    with pytest.raises(anthropic.BadRequestError) as caught:
        client(url, headers).messages.create(**params)
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    return caught.value.body["error"]["message"]


def call(url: str, headers: dict | None = None, **params) -> anthropic.types.Message:
    params.setdefault("max_tokens", 4000)
    params.setdefault("messages", USER)
    return client(url, headers).messages.create(**params)


# -- sampling parameters per API version ------------------------------------------------------


@pytest.mark.parametrize("model", CURRENT)
@pytest.mark.parametrize("name, value", [("temperature", 1.0), ("top_p", 0.9), ("top_k", 5)])
def test_sampling_parameters_are_removed_under_2026_10_21_even_at_their_default(url, model, name, value):
    assert refusal(url, model=model, extra_body={name: value}) == f"{name}: Extra inputs are not permitted"


@pytest.mark.parametrize("model", ["claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5"])
def test_sampling_is_deprecated_on_newer_models_under_2023_06_01(url, model):
    assert (
        refusal(url, OLD, model=model, extra_body={"temperature": 0.5})
        == "`temperature` is deprecated for this model."
    )


@pytest.mark.parametrize("model", ["claude-opus-4-6", "claude-haiku-4-5"])
def test_sampling_is_accepted_on_older_models_under_2023_06_01(url, model):
    message = call(url, OLD, model=model, max_tokens=20, extra_body={"temperature": 0.5, "top_k": 3})
    assert message.stop_reason == "max_tokens"
    assert refusal(url, OLD, model=model, extra_body={"temperature": 1.5}) == "temperature: range: 0..1"


# -- thinking modes and their exact 400s ------------------------------------------------------

ENABLED = {"type": "enabled", "budget_tokens": 1024}
THINKING_400 = [
    (
        "claude-opus-5-5",
        {"type": "disabled"},
        (
            '"thinking.type.disabled" is not supported for this model. Use "thinking.type.adaptive" and '
            '"output_config.effort" to control thinking behavior.'
        ),
    ),
    (
        "claude-fable-5-1",
        {"type": "disabled"},
        (
            '"thinking.type.disabled" is not supported for this model. Thinking defaults to adaptive mode when not '
            'specified; use "thinking.type.enabled" with "budget_tokens" for extended thinking.'
        ),
    ),
    (
        "claude-sonnet-5-5",
        {"type": "disabled"},
        (
            'To turn thinking off on this model, send "thinking": {"type": "between_tools"} instead of {"type": "disabled"}. '
            "The model does not think before responding. The short updates it writes between tool calls come back as "
            "thinking blocks."
        ),
    ),
]
ENABLED_400 = (
    '"thinking.type.enabled" is not supported for this model. Use "thinking.type.adaptive" and '
    '"output_config.effort" to control thinking behavior.'
)


@pytest.mark.parametrize("headers", VERSIONS)
@pytest.mark.parametrize("model, thinking, message", THINKING_400)
def test_thinking_off_where_the_model_cannot_is_the_exact_400(url, headers, model, thinking, message):
    assert refusal(url, headers, model=model, thinking=thinking) == message


@pytest.mark.parametrize(
    "model", ["claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5", "claude-opus-4-8"]
)
def test_enabled_thinking_is_refused_from_4_7_on(url, model):
    assert refusal(url, model=model, max_tokens=2000, thinking=ENABLED) == ENABLED_400


def test_adaptive_thinking_is_refused_on_haiku_4_5(url):
    assert (
        refusal(url, model="claude-haiku-4-5", thinking={"type": "adaptive"})
        == "adaptive thinking is not supported on this model"
    )


def test_haiku_5_5_turns_thinking_off_only_up_to_high_effort(url):
    off = call(url, model="claude-haiku-5-5", thinking={"type": "disabled"}, output_config={"effort": "high"})
    assert [block.type for block in off.content] == ["text"]
    message = refusal(
        url, model="claude-haiku-5-5", thinking={"type": "disabled"}, output_config={"effort": "max"}
    )
    assert message.startswith('"thinking.type.disabled" is not supported at effort "max"')


def test_sonnet_5_5_turns_thinking_off_with_between_tools(url):
    message = call(url, model="claude-sonnet-5-5", thinking={"type": "between_tools"})
    assert [block.type for block in message.content] == ["text"]


@pytest.mark.parametrize(
    "model, thinks",
    [
        ("claude-sonnet-5-5", True),
        ("claude-opus-5-5", True),
        ("claude-haiku-5-5", True),
        ("claude-opus-4-6", False),
        ("claude-haiku-4-5", False),
    ],
)
def test_thinking_when_omitted_follows_the_model(url, model, thinks):
    message = call(url, model=model)
    assert (message.content[0].type == "thinking") is thinks


# -- effort -----------------------------------------------------------------------------------


def test_xhigh_effort_is_refused_on_4_6_and_effort_on_haiku_4_5(url):
    assert "xhigh" in refusal(url, model="claude-opus-4-6", output_config={"effort": "xhigh"})
    assert "effort" in refusal(url, model="claude-haiku-4-5", output_config={"effort": "low"})
    assert (
        call(url, model="claude-opus-4-6", output_config={"effort": "max"}, max_tokens=20).stop_reason
        == "max_tokens"
    )


@pytest.mark.parametrize(
    "model", ["claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5", "claude-opus-4-6"]
)
def test_thinking_grows_with_effort_and_is_billed_as_output(url, model):
    reset_emulator(url)
    spent = []
    for effort in ("low", "medium", "high", "max"):
        before = emulator_stats(url)
        message = call(
            url,
            model=model,
            max_tokens=12000,
            output_config={"effort": effort},
            thinking={"type": "adaptive"},
        )
        after = emulator_stats(url)
        thinking = after["thinking_tokens"] - before["thinking_tokens"]
        text_tokens = message.usage.output_tokens - thinking
        spent.append(thinking)
        assert text_tokens >= 3000  # the whole answer, after the thinking
        assert after["output_tokens"] - before["output_tokens"] == message.usage.output_tokens
        assert after["cost_usd"] - before["cost_usd"] == pytest.approx(
            price_usage(
                find_model(model),
                Usage(input_tokens=message.usage.input_tokens, output_tokens=message.usage.output_tokens),
            )
        )
    assert spent == sorted(spent) and spent[0] < spent[-1] / 10


def test_the_same_request_thinks_the_same_and_the_answer_does_not_depend_on_effort(url):
    a = call(url, model="claude-sonnet-5-5", max_tokens=12000, output_config={"effort": "low"})
    b = call(url, model="claude-sonnet-5-5", max_tokens=12000, output_config={"effort": "low"})
    c = call(url, model="claude-sonnet-5-5", max_tokens=12000, output_config={"effort": "high"})
    assert a.stop_reason == c.stop_reason == "end_turn"
    assert a.content[0].thinking == b.content[0].thinking and a.usage == b.usage
    assert a.content[-1].text == c.content[-1].text
    assert a.content[0].signature and a.content[0].signature == b.content[0].signature


# -- thinking on the wire ---------------------------------------------------------------------


@pytest.mark.parametrize("headers", VERSIONS)
@pytest.mark.parametrize("model", ["claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5"])
def test_stream_has_a_thinking_block_with_thinking_and_signature_deltas_before_the_text(url, headers, model):
    with client(url, headers).messages.stream(model=model, max_tokens=4000, messages=USER) as stream:
        kinds = [(e.type, getattr(getattr(e, "delta", None), "type", None)) for e in stream]
        final = stream.get_final_message()
    deltas = [d for kind, d in kinds if kind == "content_block_delta"]
    assert deltas.index("signature_delta") == deltas.count("thinking_delta") > 0
    assert deltas.count("signature_delta") == 1
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking and final.content[0].signature


def test_display_omitted_sends_a_signature_and_no_thinking_text(url):
    with client(url).messages.stream(
        model="claude-opus-5-5",
        max_tokens=4000,
        messages=USER,
        thinking={"type": "adaptive", "display": "omitted"},
    ) as stream:
        deltas = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert "thinking_delta" not in deltas and "signature_delta" in deltas
    assert (
        final.content[0].type == "thinking" and final.content[0].thinking == "" and final.content[0].signature
    )


def test_opus_4_6_opens_with_a_blank_text_block_before_its_thinking(url):
    message = call(url, model="claude-opus-4-6", thinking={"type": "adaptive"})
    assert [b.type for b in message.content] == ["text", "thinking", "text"]
    assert message.content[0].text == "\n\n"
    assert not message.content[2].text[0].isspace()


@pytest.mark.parametrize("model", ["claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5"])
def test_max_tokens_reached_inside_thinking_gives_a_response_that_is_only_thinking(url, model):
    with client(url).messages.stream(model=model, max_tokens=40, messages=USER) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking"]
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 40
    assert call(url, model=model, max_tokens=40).content[0].type == "thinking"


def test_enabled_thinking_is_capped_by_its_budget_on_haiku_4_5(url):
    message = call(
        url,
        OLD,
        model="claude-haiku-4-5",
        max_tokens=5000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        output_config=None,
    )
    assert [b.type for b in message.content] == ["thinking", "text"]


@pytest.mark.parametrize(
    "model", ["claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5", "claude-opus-4-6"]
)
def test_prefill_is_refused_under_both_versions(url, model):
    for headers in ({}, OLD):
        message = refusal(
            url, headers, model=model, messages=USER + [{"role": "assistant", "content": "Once"}]
        )
        assert (
            message
            == "This model does not support assistant message prefill. The conversation must end with a user message."
        )


def test_haiku_4_5_still_takes_a_prefill_under_both_versions(url):
    for headers in ({}, OLD):
        message = call(
            url,
            headers,
            model="claude-haiku-4-5",
            max_tokens=10,
            messages=USER + [{"role": "assistant", "content": "<story_1>"}],
        )
        assert message.content[0].text.startswith("\n")


# -- retirement, prices, cache ----------------------------------------------------------------


def test_a_retired_model_is_not_found(url):
    with pytest.raises(anthropic.NotFoundError) as caught:
        call(url, model="claude-sonnet-4-5")
    assert caught.value.body["error"]["message"] == "model: claude-sonnet-4-5"


def test_stats_bill_5x_prices_and_the_haiku_5_5_tier_by_prompt_length(url):
    reset_emulator(url)
    thinking_off = {"type": "disabled"}
    short = call(url, model="claude-haiku-5-5", max_tokens=100, thinking=thinking_off)
    short_cost = emulator_stats(url)["cost_usd"]
    assert short_cost == pytest.approx((short.usage.input_tokens * 0.10 + 100 * 0.50) / 1e6)
    long_prompt = [{"role": "user", "content": "word " * 100_500}]
    reset_emulator(url)
    long = call(url, model="claude-haiku-5-5", max_tokens=100, thinking=thinking_off, messages=long_prompt)
    assert long.usage.input_tokens > 100_000
    assert emulator_stats(url)["cost_usd"] == pytest.approx(
        (long.usage.input_tokens * 0.50 + 100 * 2.50) / 1e6
    )
    reset_emulator(url)
    opus = call(url, model="claude-opus-5-5", max_tokens=100)
    assert emulator_stats(url)["cost_usd"] == pytest.approx((opus.usage.input_tokens * 4 + 100 * 20) / 1e6)


@pytest.mark.parametrize("model", ["claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5"])
def test_the_cache_minimum_is_512_tokens_on_5_5(url, model):
    reset_emulator(url)
    c = client(url)

    def cached(words: int) -> int:
        system = [{"type": "text", "text": "x " * words, "cache_control": {"type": "ephemeral"}}]
        usage = c.messages.create(model=model, max_tokens=5, system=system, messages=USER).usage
        return usage.cache_creation_input_tokens

    assert cached(400) == 0  # about 400 tokens: below the minimum, silently not cached
    assert cached(600) > 512
