"""The engine's stall and retry rules through the official SDK against the emulator over HTTP.

Nothing is mocked: ``anthropic.Anthropic`` talks HTTP to the emulator (a uvicorn server in a
thread); its seeded quirks and faults stand in for a real model's echoes and a real network's
breaks. The request bodies are read off the wire with an httpx2 event hook (the SDK's own HTTP client).
"""

from __future__ import annotations

import json
import urllib.request

import anthropic
import httpx2
import pytest

import autocontinue
from autocontinue.emulator import run_emulator

PROMPT = "Write a long story about a lighthouse keeper, in many short paragraphs."
QUIRKS = "echo:0.5,preamble:0.5,drop-space:0.5"
#: 40% of requests fail: 15% before the stream (529/429/500), 25% in it (dropped, error event).
FAULTS = "529:0.1,429:0.025,500:0.025,drop:0.15,stream-error:0.1"


def _client(url: str, sent: list[dict] | None = None) -> anthropic.Anthropic:
    def record(request: httpx2.Request) -> None:
        if sent is not None and request.url.path.endswith("/v1/messages"):
            sent.append(json.loads(request.content))

    http = httpx2.Client(event_hooks={"request": [record]})
    return anthropic.Anthropic(base_url=url, api_key="test-key", max_retries=0, http_client=http)


def _stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/emulator/stats") as response:
        return json.load(response)


def _reference(seed: int, length: int) -> str:
    with run_emulator(seed=seed, length=length) as url:
        message = _client(url).messages.create(
            model="claude-sonnet-4-6", max_tokens=20_000, messages=[{"role": "user", "content": PROMPT}]
        )
    assert message.stop_reason == "end_turn"
    return message.content[0].text


@pytest.mark.parametrize("seed", range(10))
def test_faults_on_top_of_seam_quirks_change_nothing_in_the_text(seed):
    reference = _reference(seed, 3000)
    sleeps: list[float] = []
    with run_emulator(seed=seed, length=3000, quirks=QUIRKS, faults=FAULTS) as url:
        result = autocontinue.generate(
            PROMPT,
            client=_client(url),
            model="claude-sonnet-4-6",
            max_tokens_per_call=150,
            max_rounds=60,
            retry=autocontinue.RetryPolicy(max_attempts=12, sleep=sleeps.append),
        )
        requests = _stats(url)["requests"]
    assert result.text == reference
    assert result.stop_reason == "end_turn"
    completed = sum(1 for r in result.rounds if r.stop_reason != "interrupted")
    assert requests <= 3 * completed  # the faults cost retries, never a spin


@pytest.mark.parametrize("fault", ["drop:1", "stream-error:1"])
def test_every_stream_cut_ends_the_run_after_a_bounded_number_of_requests(fault):
    sleeps: list[float] = []
    policy = autocontinue.RetryPolicy(max_attempts=6, max_failures=12, sleep=sleeps.append)
    with run_emulator(seed=2, length=20_000, faults=fault) as url:
        with pytest.raises(autocontinue.TransientBackendError) as caught:
            autocontinue.generate(
                PROMPT, client=_client(url), model="claude-sonnet-4-6", max_tokens_per_call=400, retry=policy
            )
        requests = _stats(url)["requests"]
    assert requests <= 13
    assert caught.value.partial is not None and caught.value.hint
    total_wait = sum(sleeps)
    assert total_wait <= 6 * policy.max_delay * 1.1  # within the policy's own time


def test_after_a_round_that_added_nothing_the_next_request_is_never_the_same():
    sent: list[dict] = []
    # Every continuation opens with an echo of the text's last words; at 2 tokens a call an
    # echo fills the whole call, so the round adds nothing.
    with run_emulator(seed=4, length=600, quirks="echo:1") as url:
        result = autocontinue.generate(
            PROMPT, client=_client(url, sent), model="claude-sonnet-4-6", max_tokens_per_call=2, max_rounds=12
        )
    stalled = [i for i, r in enumerate(result.rounds) if r.chars == 0]
    assert stalled, "the echo should have filled at least one call"
    for i in stalled:
        if i + 1 < len(sent):
            assert sent[i + 1] != sent[i]
    assert result.stalled_rounds == len(stalled)
    assert result.stop_reason in ("max_rounds", "stalled", "end_turn")
