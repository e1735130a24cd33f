"""The emulator's wire format against real recordings, read by the official SDK over HTTP.

The recordings in ``tests/fixtures/anthropic/`` (copied from the project's shared fixtures; see
its NOTICE: llm-anthropic cassettes, Apache-2.0; anthropic-sdk-python stream fixtures, MIT) are served to the SDK through
``httpx2.MockTransport``: the mock stands in for the real API, which cannot be reached here.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import anthropic
import httpx2
import pytest
import yaml

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
MODEL = "claude-haiku-4-5"


def parse_sse(text: str) -> list[tuple[str, dict]]:
    """(event name, JSON data) of each server-sent event."""
    events = []
    for frame in text.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in frame.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if name:
            events.append((name, json.loads("\n".join(data))))
    return events


def cassette(name: str) -> tuple[dict, dict]:
    """(request body, response) of the single interaction of a VCR cassette."""
    interaction = yaml.safe_load((FIXTURES / name).read_text())["interactions"][0]
    body = interaction["response"]["body"]["string"]
    if isinstance(body, bytes):
        body = gzip.decompress(body).decode()
    response = dict(interaction["response"], text=body)
    return json.loads(interaction["request"]["body"]), response


def event_kinds(events: list[tuple[str, dict]]) -> list[str]:
    """Event names with runs of deltas collapsed into one."""
    kinds: list[str] = []
    for name, _ in events:
        if not (kinds and kinds[-1] == name == "content_block_delta"):
            kinds.append(name)
    return kinds


def shape(value):
    """The nested key structure of a JSON value (leaf values dropped)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value[:1]]
    return None


def interaction_version(name: str) -> str:
    """The ``anthropic-version`` the recorded request was sent with."""
    headers = yaml.safe_load((FIXTURES / name).read_text())["interactions"][0]["request"]["headers"]
    return {k.lower(): v for k, v in headers.items()}["anthropic-version"][0]


def raw_stream(url: str, body: dict, version: str = "2023-06-01") -> httpx2.Response:
    """POST ``body`` as the recording's client did (its ``anthropic-version`` included)."""
    headers = {"x-api-key": "test", "anthropic-version": version}
    return httpx2.post(f"{url}/v1/messages", json=body, headers=headers, timeout=30)


def sdk_final_message(sse_text: str, request: dict) -> anthropic.types.Message:
    """What the SDK builds from a recorded stream (served by a mock transport, see the module doc)."""

    def handler(_request):
        return httpx2.Response(
            200, text=sse_text, headers={"content-type": "text/event-stream; charset=utf-8"}
        )

    client = anthropic.Anthropic(
        api_key="test",
        base_url="http://recorded.invalid",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    params = {k: v for k, v in request.items() if k in ("model", "max_tokens", "messages", "stop_sequences")}
    with client.messages.stream(**params) as stream:
        return stream.get_final_message()


@pytest.mark.parametrize(
    "fixture", ["llm_anthropic_prompt.yaml", "llm_anthropic_prefill_stop_sequences.yaml"]
)
def test_stream_has_the_recorded_event_order_and_fields(emulator_url, fixture):
    request, recorded = cassette(fixture)
    recorded_events = parse_sse(recorded["text"])
    body = dict(request, model=MODEL, max_tokens=300)
    if request.get("stop_sequences"):
        body["stop_sequences"] = ["·5 "]  # a stop the numbered answer is sure to reach
    version = interaction_version(fixture)
    response = raw_stream(emulator_url, body, version)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == recorded["headers"]["Content-Type"][0]
    ours = parse_sse(response.text)
    assert event_kinds(ours) == event_kinds(recorded_events)
    recorded_by_kind = {name: data for name, data in recorded_events}
    for name, data in ours:
        expected = shape(recorded_by_kind[name])
        got = shape(data)
        if fixture == "llm_anthropic_prompt.yaml":  # older recording: fields added since then allowed
            assert _contains(got, expected), name
        else:
            assert got == expected, name


def _contains(big, small) -> bool:
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and _contains(big[k], v) for k, v in small.items())
    return True


def test_stop_sequence_stream_reports_the_match_like_the_recording(emulator_url):
    request, recorded = cassette("llm_anthropic_prefill_stop_sequences.yaml")
    recorded_final = sdk_final_message(recorded["text"], request)
    client = anthropic.Anthropic(base_url=emulator_url, api_key="test")
    with client.messages.stream(
        model=MODEL, max_tokens=300, messages=[{"role": "user", "content": "go"}], stop_sequences=["·5 "]
    ) as stream:
        ours = stream.get_final_message()
    assert (ours.stop_reason, recorded_final.stop_reason) == ("stop_sequence", "stop_sequence")
    assert ours.stop_sequence == "·5 " and recorded_final.stop_sequence == "```"
    full = client.messages.create(model=MODEL, max_tokens=300, messages=[{"role": "user", "content": "go"}])
    assert full.content[0].text.startswith(ours.content[0].text + "·5 ")
    assert "·5 " not in ours.content[0].text
    assert type(ours) is type(recorded_final)
    assert set(ours.usage.model_dump()) == set(recorded_final.usage.model_dump())


def test_sdk_reads_emulator_stream_into_the_same_kind_of_message_as_the_recording(emulator_url):
    request, recorded = cassette("llm_anthropic_prompt.yaml")
    recorded_final = sdk_final_message(recorded["text"], request)
    client = anthropic.Anthropic(base_url=emulator_url, api_key="test")
    with client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=50, messages=request["messages"]
    ) as stream:
        text = "".join(stream.text_stream)
        ours = stream.get_final_message()
    assert ours.type == recorded_final.type == "message"
    assert ours.role == recorded_final.role == "assistant"
    assert (
        [block.type for block in ours.content] == [block.type for block in recorded_final.content] == ["text"]
    )
    assert ours.content[0].text == text
    assert ours.stop_reason == "max_tokens"
    assert ours.usage.output_tokens == 50


def test_basic_sdk_fixture_events_are_a_subset_of_what_the_emulator_sends(emulator_url):
    recorded = parse_sse((FIXTURES / "sdk_basic_response.sse").read_text())
    response = raw_stream(
        emulator_url,
        {"model": MODEL, "max_tokens": 20, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    )
    ours = parse_sse(response.text)
    assert event_kinds(ours) == event_kinds(recorded)
    assert ours[2] == ("ping", {"type": "ping"})


def test_stream_framing_and_headers_match_the_real_api(emulator_url):
    response = raw_stream(
        emulator_url,
        {"model": MODEL, "max_tokens": 20, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.headers["request-id"].startswith("req_")
    assert response.text.startswith("event: message_start\ndata: {")
    assert response.text.endswith('event: message_stop\ndata: {"type":"message_stop"}\n\n')
    events = parse_sse(response.text)
    start = events[0][1]["message"]
    assert start["id"].startswith("msg_")
    assert start["usage"]["output_tokens"] == 1
    assert start["usage"]["input_tokens"] > 0
    assert start["model"] == "claude-haiku-4-5-20251001"
    final = events[-2][1]
    assert final["usage"]["output_tokens"] == 20
    assert final["delta"]["stop_reason"] == "max_tokens"
    assert "anthropic-ratelimit-requests-remaining" in response.headers


def test_message_deltas_carry_cumulative_output_equal_to_the_text_tokens(emulator_url):
    from autocontinue.emulator.tokenizer import count_tokens

    response = raw_stream(
        emulator_url,
        {"model": MODEL, "max_tokens": 77, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    )
    events = parse_sse(response.text)
    text = "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta")
    assert count_tokens(text) == 77 == events[-2][1]["usage"]["output_tokens"]


def test_non_streaming_response_has_the_message_shape(emulator_url):
    response = httpx2.post(
        f"{emulator_url}/v1/messages",
        json={
            "model": "claude-haiku-4-5-20251001",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    data = response.json()
    assert response.headers["request-id"].startswith("req_")
    assert set(data) >= {"id", "type", "role", "content", "model", "stop_reason", "stop_sequence", "usage"}
    assert data["model"] == "claude-haiku-4-5-20251001"
    assert data["content"][0]["type"] == "text"
    usage = data["usage"]
    assert set(usage) >= {
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "cache_creation",
    }
    assert usage["cache_creation"] == {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}


async def test_async_client_streams_the_same_text_as_the_sync_client(emulator_url):
    messages = [{"role": "user", "content": "async please"}]
    sync = anthropic.Anthropic(base_url=emulator_url, api_key="test").messages.create(
        model=MODEL, max_tokens=60, messages=messages
    )
    client = anthropic.AsyncAnthropic(base_url=emulator_url, api_key="test")
    async with client.messages.stream(model=MODEL, max_tokens=60, messages=messages) as stream:
        pieces = [piece async for piece in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(pieces) == sync.content[0].text == final.content[0].text
    assert len(pieces) > 1


def test_count_tokens_equals_the_input_tokens_of_a_call(emulator_url):
    client = anthropic.Anthropic(base_url=emulator_url, api_key="test")
    params = {
        "model": MODEL,
        "system": "Be terse.",
        "messages": [{"role": "user", "content": "Count my tokens, café 日本"}],
    }
    counted = client.messages.count_tokens(**params)
    message = client.messages.create(max_tokens=5, **params)
    assert counted.input_tokens == message.usage.input_tokens > 0


def _collapsed(events: list[tuple[str, dict]]) -> list[tuple[str, str | None]]:
    """(event, block or delta type) with repeats of the same pair folded into one."""
    out: list[tuple[str, str | None]] = []
    for name, data in events:
        inner = data.get("delta") or data.get("content_block") or {}
        key = (name, inner.get("type") if name != "message_delta" else None)
        if not out or out[-1] != key:
            out.append(key)
    return out


@pytest.mark.parametrize(
    "fixture", ["llm_anthropic_stream_events_thinking.yaml", "llm_anthropic_thinking_prompt.yaml"]
)
def test_thinking_stream_has_the_recorded_block_order(emulator_url, fixture):
    """A thinking block (thinking_delta..., one signature_delta) then the text, as recorded."""
    request, recorded = cassette(fixture)
    recorded_events = parse_sse(recorded["text"])
    body = {k: v for k, v in request.items() if k != "temperature"}
    body.update(model=MODEL, max_tokens=4000)
    response = raw_stream(emulator_url, body, interaction_version(fixture))
    assert response.status_code == 200, response.text
    ours = parse_sse(response.text)
    # the recording has one empty thinking_delta before its signature; folded away here
    assert _collapsed(ours) == _collapsed(recorded_events)
    by_kind = {(n, (d.get("content_block") or {}).get("type")): d for n, d in recorded_events}
    assert shape(ours[1][1]) == shape(by_kind[("content_block_start", "thinking")])


def test_sdk_reads_a_thinking_stream_into_the_same_blocks_as_the_recording(emulator_url):
    request, recorded = cassette("llm_anthropic_stream_events_thinking.yaml")
    recorded_final = sdk_final_message(recorded["text"], request)
    client = anthropic.Anthropic(
        base_url=emulator_url, api_key="test", default_headers={"anthropic-version": "2023-06-01"}
    )
    with client.messages.stream(
        model=MODEL, max_tokens=4000, messages=request["messages"], thinking=request["thinking"]
    ) as stream:
        ours = stream.get_final_message()
    assert [b.type for b in ours.content] == [b.type for b in recorded_final.content] == ["thinking", "text"]
    assert ours.content[0].signature and recorded_final.content[0].signature


def test_effort_stream_of_sonnet_4_6_has_the_recorded_shape(emulator_url):
    request, recorded = cassette("llm_anthropic_sonnet_46_effort_without_thinking.yaml")
    body = {k: v for k, v in request.items() if k != "temperature"}
    response = raw_stream(emulator_url, dict(body, max_tokens=300), "2026-10-21")
    assert response.status_code == 200, response.text
    assert event_kinds(parse_sse(response.text)) == event_kinds(parse_sse(recorded["text"]))
    with_temperature = raw_stream(emulator_url, dict(request, max_tokens=300), "2026-10-21")
    assert with_temperature.json()["error"]["message"] == "temperature: Extra inputs are not permitted"
    assert (
        raw_stream(
            emulator_url,
            dict(request, max_tokens=300),
            interaction_version("llm_anthropic_sonnet_46_effort_without_thinking.yaml"),
        ).status_code
        == 200
    )
