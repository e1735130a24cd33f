"""Injected faults, rate limits and pacing, as the SDK sees them."""

from __future__ import annotations

import json
import re
import socket

import anthropic
import httpx2
import pytest
from conftest import emulator_stats

from autocontinue.emulator import ManualClock
from autocontinue.emulator.faults import parse_faults

MODEL = "claude-haiku-4-5"
USER = [{"role": "user", "content": "Tell me everything."}]


def client_for(url: str, retries: int = 0) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="test", max_retries=retries)


def create(url: str, retries: int = 0, **params):
    params = {"model": MODEL, "max_tokens": 100, "messages": USER, **params}
    return client_for(url, retries).messages.create(**params)


def stream_pieces(url: str, max_tokens: int = 300) -> tuple[list[str], Exception | None]:
    pieces: list[str] = []
    try:
        with client_for(url).messages.stream(model=MODEL, max_tokens=max_tokens, messages=USER) as stream:
            for piece in stream.text_stream:
                pieces.append(piece)
    except Exception as exc:  # the kind is checked by the caller
        return pieces, exc
    return pieces, None


def test_fault_list_reads_probabilities_and_scripts():
    plan = parse_faults("529:0.1,drop@3,stream-error@5")
    assert plan.probabilities == {"529": 0.1}
    assert plan.script == {3: "drop", 5: "stream-error"}
    for bad in ("nope:0.1", "529:x", "529:1.5", "drop@0", "drop@x"):
        with pytest.raises(ValueError):
            parse_faults(bad)


@pytest.mark.parametrize(
    "fault, error_class, status, error_type",
    [
        ("529", anthropic.OverloadedError, 529, "overloaded_error"),
        ("429", anthropic.RateLimitError, 429, "rate_limit_error"),
        ("500", anthropic.InternalServerError, 500, "api_error"),
    ],
)
def test_status_faults_raise_the_matching_sdk_error(start_emulator, fault, error_class, status, error_type):
    url = start_emulator(length=200, faults=f"{fault}@1")
    with pytest.raises(error_class) as caught:
        create(url)
    assert caught.value.status_code == status
    assert caught.value.body["error"]["type"] == error_type
    if fault == "429":
        assert caught.value.response.headers["retry-after"] == "1"
    assert create(url).stop_reason == "max_tokens"  # the 2nd request is clean
    stats = emulator_stats(url)
    assert (stats["requests"], stats["errors"]) == (2, 1)


def test_sdk_retries_a_529_and_succeeds(start_emulator):
    url = start_emulator(length=200, faults="529@1")
    message = create(url, retries=2)
    assert message.usage.output_tokens == 100
    assert emulator_stats(url)["requests"] == 2


def test_drop_fault_delivers_some_text_then_breaks_the_stream(start_emulator):
    url = start_emulator(length=300, faults="drop@1")
    pieces, error = stream_pieces(url)
    assert pieces and error is not None
    assert not isinstance(error, anthropic.APIStatusError)
    full = create(url, max_tokens=300).content[0].text
    assert full.startswith("".join(pieces)) and len("".join(pieces)) < len(full)
    stats = emulator_stats(url)
    assert stats["errors"] == 1 and stats["output_tokens"] == 300  # the broken stream billed nothing


def raw_stream(url: str) -> bytes:
    """A streaming request over a plain socket: every byte the server sent before it closed."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"model": MODEL, "max_tokens": 300, "stream": True, "messages": USER}).encode()
    head = (
        f"POST /v1/messages HTTP/1.1\r\nhost: {host}\r\nx-api-key: test\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    received = b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode() + body)
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_drop_fault_cuts_the_connection_inside_the_chunked_body_as_a_lost_network_does(start_emulator):
    url = start_emulator(length=300, faults="drop@1,drop@2")
    received = raw_stream(url)
    assert b"transfer-encoding: chunked" in received.lower() and b"content_block_delta" in received
    assert not received.endswith(b"\r\n0\r\n\r\n")  # no terminating chunk: the body is incomplete
    pieces, error = stream_pieces(url)
    assert pieces and isinstance(error, httpx2.RemoteProtocolError), error  # what a lost network gives
    assert "incomplete chunked read" in str(error)


def test_no_stop_fault_ends_the_stream_cleanly_without_message_stop(start_emulator):
    url = start_emulator(length=300, faults="no-stop@1,no-stop@2")
    received = raw_stream(url)
    assert received.endswith(b"\r\n0\r\n\r\n") and b"content_block_delta" in received
    assert b"message_stop" not in received and b"event: error" not in received
    events = list(client_for(url).messages.create(model=MODEL, max_tokens=300, messages=USER, stream=True))
    assert events and all(event.type != "message_stop" for event in events)  # the SDK raises nothing
    full = create(url, max_tokens=300).content[0].text
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text and full.startswith(text) and len(text) < len(full)
    stats = emulator_stats(url)
    assert stats["errors"] == 2 and stats["output_tokens"] == 300


def test_no_stop_fault_on_a_non_streaming_call_is_a_drop(start_emulator):
    url = start_emulator(length=200, faults="no-stop@1")
    with pytest.raises(anthropic.APIConnectionError):
        create(url)


def test_a_fault_added_last_leaves_the_faults_earlier_seeds_gave_unchanged():
    before = parse_faults("529:0.1,429:0.05,500:0.05,drop:0.1,stream-error:0.1,malformed:0.05")
    after = parse_faults("529:0.1,429:0.05,500:0.05,drop:0.1,stream-error:0.1,malformed:0.05,no-stop:0.05")
    for seed in range(5):
        old = [before.fault_for(seed, n) for n in range(1, 200)]
        new = [after.fault_for(seed, n) for n in range(1, 200)]
        assert all(o == n for o, n in zip(old, new) if o is not None)  # only clean requests may change
        assert "no-stop" in new and all(n == "no-stop" for o, n in zip(old, new) if o != n)


def test_drop_fault_on_a_non_streaming_call_is_a_connection_error(start_emulator):
    url = start_emulator(length=200, faults="drop@1")
    with pytest.raises(anthropic.APIConnectionError):
        create(url)


def test_stream_error_fault_sends_an_overloaded_error_event_after_some_text(start_emulator):
    url = start_emulator(length=300, faults="stream-error@1")
    pieces, error = stream_pieces(url)
    assert pieces
    assert isinstance(error, anthropic.APIStatusError)
    assert "overloaded_error" in str(error)
    raw = httpx2.post(
        f"{url}/v1/messages", json={"model": MODEL, "max_tokens": 300, "stream": True, "messages": USER}
    )
    assert raw.status_code == 200 and "event: error" not in raw.text  # request 2 is clean
    stats = emulator_stats(url)
    assert stats["errors"] == 1 and stats["output_tokens"] == 300


def test_stream_error_fault_on_a_non_streaming_call_is_a_529(start_emulator):
    url = start_emulator(length=200, faults="stream-error@1")
    with pytest.raises(anthropic.OverloadedError):
        create(url)


def test_fault_probabilities_are_seeded_and_repeatable(start_emulator):
    outcomes = []
    for _ in range(2):
        url = start_emulator(seed=4, length=50, faults="529:0.4,500:0.2")
        run = []
        for _ in range(15):
            try:
                create(url, max_tokens=5)
                run.append("ok")
            except anthropic.APIStatusError as exc:
                run.append(str(exc.status_code))
        outcomes.append(run)
    assert outcomes[0] == outcomes[1]
    assert {"ok", "529"} <= set(outcomes[0])


def test_requests_per_minute_limit_gives_429_with_headers_until_refilled(start_emulator):
    clock = ManualClock()
    url = start_emulator(length=100, rpm=2, clock=clock)
    first = client_for(url).messages.with_raw_response.create(model=MODEL, max_tokens=5, messages=USER)
    assert first.headers["anthropic-ratelimit-requests-limit"] == "2"
    assert first.headers["anthropic-ratelimit-requests-remaining"] == "1"
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first.headers["anthropic-ratelimit-requests-reset"]
    )
    create(url, max_tokens=5)
    with pytest.raises(anthropic.RateLimitError) as caught:
        create(url, max_tokens=5)
    headers = caught.value.response.headers
    assert int(headers["retry-after"]) >= 1
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert "2 requests per minute" in caught.value.body["error"]["message"]
    clock.advance(30)
    assert create(url, max_tokens=5).stop_reason == "max_tokens"


def test_output_tokens_per_minute_limit_blocks_after_a_long_answer(start_emulator):
    clock = ManualClock()
    url = start_emulator(length=500, otpm=100, clock=clock)
    create(url, max_tokens=150)
    with pytest.raises(anthropic.RateLimitError) as caught:
        create(url, max_tokens=5)
    assert "100 output tokens per minute" in caught.value.body["error"]["message"]
    assert int(caught.value.response.headers["retry-after"]) >= 1
    clock.advance(60)
    assert create(url, max_tokens=5).usage.output_tokens == 5


def test_decode_rate_batches_several_tokens_per_delta(start_emulator):
    url = start_emulator(length=100, decode_rate=1000)
    raw = httpx2.post(
        f"{url}/v1/messages", json={"model": MODEL, "max_tokens": 100, "stream": True, "messages": USER}
    )
    deltas = raw.text.count("event: content_block_delta")
    assert 1 < deltas <= 100 // (1000 // 40) + 1
    message = create(url)
    assert message.usage.output_tokens == 100


def test_faults_and_quirks_accept_dicts(start_emulator):
    plan = parse_faults({"529": 0.25, "drop@2": True})
    assert plan.probabilities == {"529": 0.25} and plan.script == {2: "drop"}
    url = start_emulator(length=100, faults={"500@1": True}, quirks={"echo": 1.0})
    with pytest.raises(anthropic.InternalServerError):
        create(url)


def test_injected_429_can_carry_a_longer_retry_after(start_emulator):
    assert parse_faults("429/7:0.5").retry_after == 7
    url = start_emulator(length=100, faults="429/3@1")
    with pytest.raises(anthropic.RateLimitError) as caught:
        create(url)
    assert caught.value.response.headers["retry-after"] == "3"
