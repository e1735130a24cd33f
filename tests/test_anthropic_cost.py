"""The hindsight-cheapest bill of bench/cost.py, on rounds whose sizes are known."""

from __future__ import annotations

import pytest

from autocontinue.events import RoundReport
from autocontinue.usage import Usage
from bench.cost import hindsight_bound


def _round(total_input: int, output: int) -> RoundReport:
    return RoundReport(
        index=0,
        strategy="user-turn",
        max_tokens=output,
        usage=Usage(input_tokens=total_input, output_tokens=output),
    )


def test_each_stretch_is_sent_uncached_or_cached_whichever_is_cheaper():
    # claude-sonnet-5-5: input 2, 5m write 2.5, read 0.1, output 10 ($/MTok)
    rounds = [_round(1_000, 100_000), _round(101_000, 100_000), _round(201_000, 50_000)]
    bound = hindsight_bound("claude-sonnet-5-5", rounds)
    prompt = 1_000 * min(3 * 2, 2.5 + 2 * 0.1)  # sent 3 times: cached
    first = 100_000 * min(2 * 2, 2.5 + 1 * 0.1)  # sent twice: cached
    second = 100_000 * min(1 * 2, 2.5)  # sent once: uncached is cheaper
    assert bound["input_usd"] == pytest.approx((prompt + first + second) / 1e6)
    assert bound["output_usd"] == pytest.approx(250_000 * 10 / 1e6)
    assert bound["cost_usd"] == pytest.approx(bound["input_usd"] + bound["output_usd"])


def test_one_round_costs_its_prompt_uncached():
    bound = hindsight_bound("claude-opus-5-5", [_round(500, 1_000)])
    assert bound["cost_usd"] == pytest.approx((500 * 4 + 1_000 * 20) / 1e6)
