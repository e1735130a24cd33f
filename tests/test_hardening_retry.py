"""The retry policy's give-up bound is time without progress, with a hard bound on attempts.

Through real parts: the official SDK (its own retries off) against the emulator over loopback
HTTP, whose scripted and seeded faults stand in for a failing service. Only the policy's sleep
is injected (recorded, not waited), so a minute of backoff takes no time.
"""

from __future__ import annotations

import anthropic
import pytest

import autocontinue
from autocontinue.emulator import run_emulator

PROMPT = "Write a long story about a lighthouse keeper, in many short paragraphs."
MODEL = "claude-sonnet-4-6"


def _generate(url: str, policy: autocontinue.RetryPolicy) -> autocontinue.Result:
    client = anthropic.Anthropic(base_url=url, api_key="test-key", max_retries=0)
    try:
        return autocontinue.generate(
            PROMPT, client=client, model=MODEL, max_tokens_per_call=300, retry=policy
        )
    finally:
        client.close()


def _requests(url: str) -> int:
    import httpx2

    return int(httpx2.get(f"{url}/emulator/stats").json()["requests"])


def test_six_failures_in_a_row_then_an_answer_is_ridden_out_with_the_same_text():
    with run_emulator(seed=6, length=1500) as url:
        reference = _generate(url, autocontinue.RetryPolicy()).text
    sleeps: list[float] = []
    policy = autocontinue.RetryPolicy(sleep=sleeps.append, jitter=lambda: 0.0)
    # The 2nd to 7th requests fail before their stream (six in a row); the 8th answers.
    faults = ",".join(f"529@{n}" for n in range(2, 8))
    with run_emulator(seed=6, length=1500, faults=faults) as url:
        result = _generate(url, policy)
    assert result.text == reference and result.stop_reason == "end_turn"
    assert sleeps == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]  # doubling, capped at max_delay


def test_a_service_that_never_recovers_is_given_up_on_after_the_policy_time():
    sleeps: list[float] = []
    policy = autocontinue.RetryPolicy(sleep=sleeps.append, jitter=lambda: 0.0)
    with run_emulator(seed=1, length=1500, faults="529@2,529@3,529@4,529@5,529@6,529@7,529@8,529@9") as url:
        with pytest.raises(autocontinue.TransientBackendError) as caught:
            _generate(url, policy)
        requests = _requests(url)
    assert requests == 1 + 7  # one good round, then 7 failed attempts
    assert sum(sleeps) == 61.0 >= policy.give_up_after  # gave up at the first failure past 60 s
    partial = caught.value.partial
    assert partial is not None and partial.text and caught.value.hint


def test_tiny_delays_cannot_turn_the_time_bound_into_a_spin():
    sleeps: list[float] = []
    policy = autocontinue.RetryPolicy(base_delay=0.001, max_delay=0.001, sleep=sleeps.append)
    with run_emulator(seed=1, length=1500, faults="529:1") as url:
        with pytest.raises(autocontinue.TransientBackendError):
            _generate(url, policy)
        requests = _requests(url)
    assert requests == policy.max_failures + 1  # the run-wide hard bound, not 60 s of 1 ms waits


def test_a_count_bound_still_applies_when_set():
    sleeps: list[float] = []
    policy = autocontinue.RetryPolicy(max_attempts=3, sleep=sleeps.append, jitter=lambda: 0.0)
    with run_emulator(seed=1, length=1500, faults="529:1") as url:
        with pytest.raises(autocontinue.TransientBackendError):
            _generate(url, policy)
        requests = _requests(url)
    assert requests == 3 and sleeps == [1.0, 2.0]
