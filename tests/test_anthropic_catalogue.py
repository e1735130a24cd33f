"""The catalogue holds the late-2026 lineup of the reference, one source for client and emulator."""

from __future__ import annotations

import datetime

import pytest

from autocontinue.backends.anthropic import AnthropicBackend
from autocontinue.catalogue import (
    ANTHROPIC_DEFAULT_MODEL,
    find_model,
    lookup_model,
    parse_model_spec,
    price_usage,
)
from autocontinue.usage import Usage

#: id -> (context, max output, input, output, 5m write, 1h write, read, cache minimum, prefill)
LINEUP = {
    "claude-fable-5-1": (1_000_000, 128_000, 10, 50, 12.5, 20, 0.25, 512, False),
    "claude-opus-5-5": (1_000_000, 128_000, 4, 20, 5, 8, 0.2, 512, False),
    "claude-sonnet-5-5": (1_000_000, 128_000, 2, 10, 2.5, 4, 0.1, 512, False),
    "claude-haiku-5-5": (1_000_000, 128_000, 0.1, 0.5, 0.125, 0.2, 0.01, 512, False),
    "claude-opus-5": (1_000_000, 128_000, 5, 25, 6.25, 10, 0.5, 512, False),
    "claude-sonnet-5": (1_000_000, 128_000, 2, 10, 2.5, 4, 0.2, 1024, False),
    "claude-opus-4-8": (1_000_000, 128_000, 5, 25, 6.25, 10, 0.5, 1024, False),
    "claude-opus-4-6": (1_000_000, 128_000, 5, 25, 6.25, 10, 0.5, 4096, False),
    "claude-sonnet-4-6": (1_000_000, 128_000, 3, 15, 3.75, 6, 0.3, 2048, False),
    "claude-haiku-4-5": (200_000, 64_000, 1, 5, 1.25, 2, 0.1, 4096, True),
    "claude-opus-4-5": (200_000, 64_000, 5, 25, 6.25, 10, 0.5, 4096, True),
}


@pytest.mark.parametrize("model", sorted(LINEUP))
def test_every_model_of_the_reference_has_its_limits_and_prices(model):
    spec = find_model(model)
    p = spec.prices
    got = (
        spec.context_window,
        spec.max_output,
        p.input,
        p.output,
        p.write_5m,
        p.write_1h,
        p.read,
        spec.min_cacheable,
        spec.prefill,
    )
    assert got == pytest.approx(LINEUP[model])


def test_the_default_is_the_current_sonnet_and_the_backend_uses_it():
    assert ANTHROPIC_DEFAULT_MODEL == "claude-sonnet-5-5" == AnthropicBackend.default_model


def test_haiku_5_5_bills_prompts_over_100k_tokens_at_its_higher_tier():
    haiku = find_model("claude-haiku-5-5")
    short = Usage(input_tokens=100_000, output_tokens=1000)
    long = Usage(input_tokens=60_000, cache_read_input_tokens=40_001, output_tokens=1000)
    assert price_usage(haiku, short) == pytest.approx((100_000 * 0.10 + 1000 * 0.50) / 1e6)
    assert price_usage(haiku, long) == pytest.approx((60_000 * 0.50 + 40_001 * 0.05 + 1000 * 2.50) / 1e6)


def test_thinking_is_billed_as_output():
    sonnet = find_model("claude-sonnet-5-5")
    assert price_usage(sonnet, Usage(output_tokens=1000, thinking_tokens=900)) == pytest.approx(
        1000 * 10 / 1e6
    )


def test_thinking_modes_efforts_and_sampling_per_model():
    assert find_model("claude-opus-5-5").thinking_default == "always"
    assert find_model("claude-opus-5-5").default_effort == "medium"
    assert find_model("claude-sonnet-5-5").thinking_off() == {"type": "between_tools"}
    assert find_model("claude-haiku-4-5").thinking_off() is None  # off when omitted
    assert (
        "xhigh" not in find_model("claude-opus-4-6").efforts
        and "max" in find_model("claude-opus-4-6").efforts
    )
    assert find_model("claude-haiku-4-5").efforts == ()
    assert find_model("claude-haiku-5-5").thinking_refusal("disabled", "high") is None
    assert find_model("claude-haiku-5-5").thinking_refusal("disabled", "xhigh")
    assert [m for m in LINEUP if find_model(m).sampling_2023] == [
        "claude-opus-4-6",
        "claude-sonnet-4-6",
        "claude-haiku-4-5",
        "claude-opus-4-5",
    ]
    assert {m for m in LINEUP if find_model(m).batch_300k} == set(LINEUP) - {
        "claude-fable-5-1",
        "claude-haiku-4-5",
        "claude-opus-4-5",
    }


def test_retirements_and_unconfirmed_figures_are_marked():
    sonnet45 = find_model("claude-sonnet-4-5")
    assert sonnet45.retired_on(datetime.date(2026, 12, 1)) == "2026-11-30"
    assert sonnet45.retired_on(datetime.date(2026, 11, 29)) is None
    assert sonnet45.successor == "claude-sonnet-5-5"
    assert find_model("claude-opus-4-5").retires == "2027-01-22"
    assert (
        not find_model("claude-fable-5-2").confirmed
        and "cache prices" in find_model("claude-fable-5-2").unconfirmed
    )
    assert not find_model("claude-opus-4-7").confirmed
    assert find_model("claude-sonnet-5-5").confirmed


def test_an_unknown_claude_id_is_taken_as_the_newest_generation():
    spec = lookup_model("claude-sonnet-9")
    assert spec.assumed and not spec.prefill and spec.thinks_by_default() and not spec.sampling_2023


def test_a_model_spec_override_keeps_the_models_behaviour():
    spec = parse_model_spec("claude-sonnet-5-5:max_output=50")
    assert spec.max_output == 50 and spec.thinking_default == "on" and spec.prices.read == 0.1
