"""Prompt caching, billing and /emulator/stats: what the emulator bills equals what it reported."""

from __future__ import annotations

import anthropic
import httpx2
import pytest
from conftest import emulator_stats, reset_emulator

from autocontinue.catalogue import find_model, parse_model_spec, price_usage
from autocontinue.emulator import ManualClock
from autocontinue.emulator.tokenizer import MESSAGE_OVERHEAD, SYSTEM_OVERHEAD, count_tokens
from autocontinue.usage import Usage

SPEC = "cachey:context=100000,max_output=2000,min_cache=50,input_price=3,output_price=15"
SYSTEM_TEXT = " ".join(f"rule{i}" for i in range(60))  # 120 tokens: "rule" and the number
USER = [{"role": "user", "content": "Write five stories."}]


@pytest.fixture
def cached(start_emulator):
    clock = ManualClock()
    url = start_emulator(length=300, model_specs=[SPEC], clock=clock)
    return url, clock


def call(url: str, system=None, messages=USER, max_tokens: int = 20, stream: bool = False):
    client = anthropic.Anthropic(base_url=url, api_key="test", max_retries=0)
    params = dict(model="cachey", max_tokens=max_tokens, messages=messages)
    if system is not None:
        params["system"] = system
    if stream:
        with client.messages.stream(**params) as s:
            return s.get_final_message()
    return client.messages.create(**params)


def cached_system(ttl: str | None = None):
    control = {"type": "ephemeral"} if ttl is None else {"type": "ephemeral", "ttl": ttl}
    return [{"type": "text", "text": SYSTEM_TEXT, "cache_control": control}]


SYSTEM_TOKENS = count_tokens(SYSTEM_TEXT) + SYSTEM_OVERHEAD
USER_TOKENS = count_tokens(USER[0]["content"]) + MESSAGE_OVERHEAD


def test_a_cached_prefix_is_written_then_read(cached):
    url, _ = cached
    first = call(url, cached_system())
    assert first.usage.cache_creation_input_tokens == SYSTEM_TOKENS
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == SYSTEM_TOKENS
    assert first.usage.cache_read_input_tokens == 0
    assert first.usage.input_tokens == USER_TOKENS
    second = call(url, cached_system(), stream=True)
    assert second.usage.cache_read_input_tokens == SYSTEM_TOKENS
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.input_tokens == USER_TOKENS


def test_a_prefix_below_the_model_minimum_is_not_cached(cached):
    url, _ = cached
    short = [{"type": "text", "text": "tiny rules", "cache_control": {"type": "ephemeral"}}]
    for _ in range(2):
        usage = call(url, short).usage
        assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)


def test_catalogue_minimum_applies_to_catalogue_models(emulator_url):
    minimum = find_model("claude-haiku-4-5").min_cacheable
    client = anthropic.Anthropic(base_url=emulator_url, api_key="test")
    text = "word " * (minimum - 10)
    system = [{"type": "text", "text": text.strip(), "cache_control": {"type": "ephemeral"}}]
    usage = client.messages.create(model="claude-haiku-4-5", max_tokens=5, system=system, messages=USER).usage
    assert usage.cache_creation_input_tokens == 0


def test_five_minute_entries_expire_and_reads_refresh_them(cached):
    url, clock = cached
    call(url, cached_system())
    clock.advance(240)
    assert call(url, cached_system()).usage.cache_read_input_tokens == SYSTEM_TOKENS
    clock.advance(240)  # 480 s after the write, 240 s after the refreshing read
    assert call(url, cached_system()).usage.cache_read_input_tokens == SYSTEM_TOKENS
    clock.advance(301)
    usage = call(url, cached_system()).usage
    assert usage.cache_read_input_tokens == 0 and usage.cache_creation_input_tokens == SYSTEM_TOKENS


def test_one_hour_entries_are_reported_and_outlive_five_minutes(cached):
    url, clock = cached
    first = call(url, cached_system("1h")).usage
    assert first.cache_creation.ephemeral_1h_input_tokens == SYSTEM_TOKENS
    assert first.cache_creation.ephemeral_5m_input_tokens == 0
    clock.advance(1800)
    assert call(url, cached_system("1h")).usage.cache_read_input_tokens == SYSTEM_TOKENS
    clock.advance(3601)
    assert call(url, cached_system("1h")).usage.cache_read_input_tokens == 0


def test_clock_endpoint_moves_the_emulated_time(start_emulator):
    url = start_emulator(length=300, model_specs=[SPEC])
    call(url, cached_system())
    httpx2.post(f"{url}/emulator/clock", json={"advance": 301})
    assert call(url, cached_system()).usage.cache_read_input_tokens == 0


def assistant_rounds(n: int) -> list[dict]:
    """An assistant message of ``n`` segments with the breakpoint on the last one."""
    blocks = [{"type": "text", "text": " ".join(f"seg{r}w{i}" for i in range(30))} for r in range(n)]
    blocks[-1] = dict(blocks[-1], cache_control={"type": "ephemeral"})
    return USER + [{"role": "assistant", "content": blocks}, {"role": "user", "content": "Continue."}]


def test_moving_breakpoint_on_assistant_blocks_reads_the_previous_round(cached):
    url, _ = cached
    first = call(url, messages=assistant_rounds(3)).usage
    assert first.cache_creation_input_tokens > 0 and first.cache_read_input_tokens == 0
    second = call(url, messages=assistant_rounds(4)).usage
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    segment = count_tokens(" ".join(f"seg3w{i}" for i in range(30)))
    assert second.cache_creation_input_tokens == segment
    total = second.input_tokens + second.cache_creation_input_tokens + second.cache_read_input_tokens
    assert total == first.input_tokens + first.cache_creation_input_tokens + segment


def test_lookback_stops_twenty_blocks_before_the_breakpoint(cached):
    url, _ = cached
    call(url, messages=assistant_rounds(2))
    assert call(url, messages=assistant_rounds(22)).usage.cache_read_input_tokens > 0
    reset_emulator(url)
    call(url, messages=assistant_rounds(2))
    assert call(url, messages=assistant_rounds(23)).usage.cache_read_input_tokens == 0


def test_stats_bill_exactly_the_usage_reported_and_price_it(cached):
    url, _ = cached
    reset_emulator(url)
    usages = [
        call(url, cached_system()).usage,
        call(url, cached_system("1h"), stream=True).usage,
        call(url, messages=assistant_rounds(3), stream=True).usage,
        call(url, messages=assistant_rounds(4)).usage,
    ]
    totals = [
        Usage(
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cache_creation_input_tokens=u.cache_creation_input_tokens,
            cache_creation_1h_input_tokens=u.cache_creation.ephemeral_1h_input_tokens,
            cache_read_input_tokens=u.cache_read_input_tokens,
        )
        for u in usages
    ]
    spec = parse_model_spec(SPEC)
    stats = emulator_stats(url)
    summed = sum(totals, Usage())
    assert stats["requests"] == 4 and stats["errors"] == 0
    assert stats["input_tokens"] == summed.input_tokens
    assert stats["output_tokens"] == summed.output_tokens
    assert stats["cache_creation_input_tokens"] == summed.cache_creation_input_tokens > 0
    assert stats["cache_read_input_tokens"] == summed.cache_read_input_tokens > 0
    assert stats["cost_usd"] == pytest.approx(sum(price_usage(spec, u) for u in totals), rel=1e-12)


def test_errors_bill_nothing_and_reset_clears_stats_and_cache(cached):
    url, _ = cached
    call(url, cached_system())
    with pytest.raises(anthropic.BadRequestError):
        call(url, cached_system(), max_tokens=5000)
    stats = emulator_stats(url)
    assert stats["requests"] == 2 and stats["errors"] == 1
    assert stats["output_tokens"] == 20
    reset_emulator(url)
    assert emulator_stats(url) == {
        "requests": 0,
        "errors": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "thinking_tokens": 0,
        "cost_usd": 0.0,
        "models": {},
    }
    assert call(url, cached_system()).usage.cache_creation_input_tokens == SYSTEM_TOKENS


def test_stream_start_reports_cache_usage(cached):
    url, _ = cached
    call(url, cached_system())
    client = anthropic.Anthropic(base_url=url, api_key="test")
    with client.messages.stream(
        model="cachey", max_tokens=5, system=cached_system(), messages=USER
    ) as stream:
        start = next(event for event in stream if event.type == "message_start")
    assert start.message.usage.cache_read_input_tokens == SYSTEM_TOKENS
    assert start.message.usage.output_tokens == 1


# -- the cache as a pure planner -------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from autocontinue.emulator.cache import PromptCache  # noqa: E402
from autocontinue.emulator.request import PromptBlock  # noqa: E402


def _blocks(sizes_and_marks):
    return [
        PromptBlock("user", f"block{i}:{size}", size, {"type": "ephemeral"} if marked else None)
        for i, (size, marked) in enumerate(sizes_and_marks)
    ]


@given(
    st.lists(
        st.lists(st.tuples(st.integers(1, 400), st.booleans()), min_size=1, max_size=30),
        min_size=1,
        max_size=4,
    ),
    st.integers(0, 1000),
)
@settings(max_examples=150, deadline=None)
def test_read_plus_written_never_exceeds_the_prompt_and_a_repeat_reads_all_it_wrote(prompts, minimum):
    cache = PromptCache(ManualClock())
    for spec in prompts:
        marks = [i for i, (_, marked) in enumerate(spec) if marked][-4:]
        spec = [(size, i in marks) for i, (size, _) in enumerate(spec)]
        blocks = _blocks(spec)
        total = sum(block.tokens for block in blocks)
        outcome = cache.plan("m", blocks, minimum)
        assert 0 <= outcome.read_tokens + outcome.creation_tokens <= total
        cache.commit(outcome)
        again = cache.plan("m", blocks, minimum)
        assert again.creation_tokens == 0
        assert again.read_tokens == outcome.read_tokens + outcome.creation_tokens
