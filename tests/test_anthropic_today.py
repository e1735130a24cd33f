"""The Anthropic backend against today's API: what it sends, what it keeps, what it maps.

Through the official SDK over real HTTP: the emulator, and (for malformed streams) a tiny
loopback server that sends valid events then ``data: {garbage``. Request bodies are read with
an httpx2 event hook on the SDK's own HTTP client; nothing is mocked.
"""

from __future__ import annotations

import http.server
import json
import threading

import anthropic
import httpx2
import pytest
from conftest import emulator_stats, reset_emulator

import autocontinue
from autocontinue.backends.anthropic import AnthropicBackend
from autocontinue.backends.base import BackendDelta, RoundEnd, RoundRequest
from autocontinue.engine import RetryPolicy
from autocontinue.errors import (
    AutocontinueError,
    ConfigurationError,
    InvalidRequestError,
    StreamInterruptedError,
    UnknownModelError,
)

OLD = {"anthropic-version": "2023-06-01"}
PROMPT = [{"role": "user", "content": "Tell me a long story."}]


@pytest.fixture(scope="module")
def url():
    from autocontinue.emulator import run_emulator

    with run_emulator(length=3000, seed=9) as base:
        yield base


class Recorder:
    """The JSON bodies the SDK sent, read off its HTTP client."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []

    def __call__(self, request: httpx2.Request) -> None:
        if request.url.path.endswith("/v1/messages"):
            self.bodies.append(json.loads(request.content))


def backend(url: str, headers: dict | None = None) -> tuple[AnthropicBackend, Recorder]:
    recorder = Recorder()
    http = httpx2.Client(event_hooks={"request": [recorder]})
    client = anthropic.Anthropic(
        base_url=url, api_key="test", max_retries=0, default_headers=headers or {}, http_client=http
    )
    return AnthropicBackend(client), recorder


def run_round(b: AnthropicBackend, **kw) -> tuple[str, RoundEnd]:
    kw.setdefault("messages", PROMPT)
    kw.setdefault("max_tokens", 6000)
    events = list(b.stream_round(RoundRequest(**kw)))
    text = "".join(e.text for e in events if isinstance(e, BackendDelta))
    ends = [e for e in events if isinstance(e, RoundEnd)]
    assert len(ends) == 1 and events[-1] is ends[0]
    return text, ends[0]


# -- temperature ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    ["claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5", "claude-opus-4-6", "claude-haiku-4-5"],
)
def test_temperature_is_refused_under_2026_10_21_before_any_call(url, model):
    reset_emulator(url)
    b, _ = backend(url)
    with pytest.raises(ConfigurationError) as caught:
        b.check_request(RoundRequest(model=model, messages=PROMPT, max_tokens=10, temperature=0.5))
    assert "2026-10-21" in caught.value.message and caught.value.hint
    assert "\n" not in caught.value.one_line()
    with pytest.raises(ConfigurationError):
        run_round(b, model=model, temperature=0.5)  # never sent, even without check_request
    assert emulator_stats(url)["requests"] == 0


def test_temperature_through_generate_is_refused_without_a_request(url):
    reset_emulator(url)
    client = anthropic.Anthropic(base_url=url, api_key="test")
    with pytest.raises(ConfigurationError):
        autocontinue.generate("Hi", client=client, model="claude-sonnet-5-5", temperature=0.3)
    assert emulator_stats(url)["requests"] == 0


def test_temperature_reaches_older_models_under_2023_06_01_and_not_newer_ones(url):
    b, recorder = backend(url, OLD)
    text, end = run_round(b, model="claude-haiku-4-5", max_tokens=40, temperature=0.3)
    assert recorder.bodies[-1]["temperature"] == 0.3 and end.stop_reason == "max_tokens" and text
    with pytest.raises(ConfigurationError) as caught:
        b.check_request(
            RoundRequest(model="claude-sonnet-5-5", messages=PROMPT, max_tokens=10, temperature=0.3)
        )
    assert "claude-sonnet-5-5" in caught.value.message


# -- thinking and effort in the request -------------------------------------------------------


def test_thinking_adaptive_and_effort_are_sent_where_the_model_takes_them(url):
    b, recorder = backend(url)
    run_round(b, model="claude-sonnet-5-5", thinking="adaptive", effort="low")
    assert recorder.bodies[-1]["thinking"] == {"type": "adaptive"}
    assert recorder.bodies[-1]["output_config"] == {"effort": "low"}
    assert "temperature" not in recorder.bodies[-1] and "extra_body" not in recorder.bodies[-1]
    run_round(b, model="claude-haiku-4-5", effort="low", max_tokens=20)  # a continuation round's effort
    assert "output_config" not in recorder.bodies[-1] and "thinking" not in recorder.bodies[-1]


def test_an_effort_the_model_does_not_take_is_refused_before_the_first_call(url):
    b, _ = backend(url)
    for model, effort in (("claude-haiku-4-5", "low"), ("claude-opus-4-6", "xhigh")):
        with pytest.raises(ConfigurationError) as caught:
            b.check_request(RoundRequest(model=model, messages=PROMPT, max_tokens=10, effort=effort))
        assert effort in caught.value.message and caught.value.hint
    b.check_request(RoundRequest(model="claude-opus-4-6", messages=PROMPT, max_tokens=10, effort="max"))


def test_thinking_off_uses_each_models_own_switch(url):
    b, recorder = backend(url)
    _, end = run_round(b, model="claude-sonnet-5-5", thinking="off")
    assert recorder.bodies[-1]["thinking"] == {"type": "between_tools"}
    assert end.usage.thinking_tokens == 0 and end.stop_reason == "end_turn"
    run_round(b, model="claude-haiku-4-5", thinking="off", max_tokens=20)
    assert "thinking" not in recorder.bodies[-1]  # off already: nothing to send
    run_round(b, model="claude-haiku-5-5", thinking="off")
    assert recorder.bodies[-1]["thinking"] == {"type": "disabled"}


@pytest.mark.parametrize(
    "model, thinking, words",
    [
        ("claude-opus-5-5", "off", '"thinking.type.disabled" is not supported for this model.'),
        ("claude-haiku-4-5", "adaptive", "adaptive thinking is not supported on this model"),
    ],
)
def test_thinking_the_model_cannot_do_gets_the_apis_exact_400_with_a_hint(url, model, thinking, words):
    b, _ = backend(url)
    with pytest.raises(InvalidRequestError) as caught:
        run_round(b, model=model, thinking=thinking)
    assert caught.value.message.startswith(words) and caught.value.status_code == 400
    assert "thinking" in caught.value.hint


# -- thinking in the response -----------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, OLD])
@pytest.mark.parametrize("model", ["claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5"])
def test_thinking_is_consumed_and_counted_never_yielded(url, headers, model):
    b, _ = backend(url, headers)
    text, end = run_round(b, model=model)
    sdk = anthropic.Anthropic(base_url=url, api_key="t", default_headers=headers).messages.create(
        model=model, max_tokens=6000, messages=PROMPT
    )
    assert [block.type for block in sdk.content] == ["thinking", "text"]
    assert text == sdk.content[1].text and "Plan" not in text
    assert 0 < end.usage.thinking_tokens < end.usage.output_tokens == sdk.usage.output_tokens


def test_opus_4_6s_blank_block_before_thinking_does_not_start_the_answer(url):
    b, _ = backend(url)
    text, _ = run_round(b, model="claude-opus-4-6", thinking="adaptive")
    sdk = anthropic.Anthropic(base_url=url, api_key="t").messages.create(
        model="claude-opus-4-6", max_tokens=6000, messages=PROMPT, thinking={"type": "adaptive"}
    )
    assert sdk.content[0].text == "\n\n"
    assert text == sdk.content[2].text and not text[0].isspace()


def test_a_round_that_is_only_thinking_yields_no_text_and_counts_all_as_thinking(url):
    b, _ = backend(url)
    text, end = run_round(b, model="claude-sonnet-5-5", max_tokens=50)
    assert text == "" and end.stop_reason == "max_tokens"
    assert end.usage.thinking_tokens == end.usage.output_tokens == 50


def test_a_run_never_sends_thinking_back_and_bills_it(url):
    recorder = Recorder()
    client = anthropic.Anthropic(
        base_url=url, api_key="test", http_client=httpx2.Client(event_hooks={"request": [recorder]})
    )
    result = autocontinue.generate(
        "Tell me a long story.", client=client, model="claude-sonnet-5-5", max_tokens_per_call=2500
    )
    reference = anthropic.Anthropic(base_url=url, api_key="t").messages.create(
        model="claude-sonnet-5-5", max_tokens=20000, messages=PROMPT, thinking={"type": "between_tools"}
    )
    assert result.text == reference.content[0].text
    assert len(recorder.bodies) >= 2
    sent = json.dumps(recorder.bodies[1:])
    assert '"thinking"' not in sent.replace('"thinking": {', "") and "signature" not in sent
    assert sum(r.usage.thinking_tokens for r in result.rounds) > 0
    assert result.cost_usd == pytest.approx(sum(r.cost_usd for r in result.rounds))


# -- errors -----------------------------------------------------------------------------------


def test_a_retired_model_says_so_and_names_its_successor(url):
    client = anthropic.Anthropic(base_url=url, api_key="test", max_retries=0)
    with pytest.raises(UnknownModelError) as caught:
        autocontinue.generate("Hi", client=client, model="claude-sonnet-4-5")
    assert "retired on 2026-11-30" in caught.value.message
    assert "claude-sonnet-5-5" in caught.value.hint


GOOD_ROUND = [
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-5-5",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 1},
            },
        },
    ),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Once upon a time there"},
        },
    ),
]
GOOD_END = [
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
            "usage": {"output_tokens": 5},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]


def _sse(events) -> bytes:
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events).encode()


@pytest.fixture
def garbage_server():
    """``start(text_first)``: a server that answers the first request with a whole round and
    every later one with garbage, after some text (or right after ``message_start``)."""
    servers = []

    def start(text_first: bool = True):
        count = {"n": 0}
        later = (
            _sse(GOOD_ROUND if text_first else GOOD_ROUND[:1])
            + b"event: content_block_delta\ndata: {garbage\n\n"
        )

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["content-length"]))
                count["n"] += 1
                body = _sse(GOOD_ROUND + GOOD_END) if count["n"] == 1 else later
                self.send_response(200)
                self.send_header("content-type", "text/event-stream; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", count

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_malformed_stream_is_a_transient_interruption_that_keeps_the_text(garbage_server):
    base, _ = garbage_server()
    b = AnthropicBackend(anthropic.Anthropic(base_url=base, api_key="t", max_retries=0))
    run_round(b, model="claude-sonnet-5-5")
    with pytest.raises(StreamInterruptedError) as caught:
        run_round(b, model="claude-sonnet-5-5")
    assert "after 22 characters" in caught.value.message  # the 22 were yielded as deltas already
    assert "malformed" in caught.value.message


def test_generate_on_a_malformed_stream_keeps_the_text_in_partial(garbage_server):
    # garbage before any text of the round: each attempt is a failure the retry policy counts
    # (a stream that always breaks after new text is issue 15 item 2, the engine's bound)
    base, count = garbage_server(text_first=False)
    client = anthropic.Anthropic(base_url=base, api_key="t", max_retries=0)
    try:
        result = autocontinue.generate(
            "Go",
            client=client,
            model="claude-sonnet-5-5",
            max_rounds=3,
            retry=RetryPolicy(max_attempts=2, sleep=lambda _s: None),
        )
        text = result.text
    except AutocontinueError as error:  # never a raw JSONDecodeError
        assert error.partial is not None
        text = error.partial.text
    assert text.startswith("Once upon a time")
    assert count["n"] >= 2


def _block(index: int, kind: str, text: str) -> list[tuple[str, dict]]:
    if kind == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [
            {"type": "thinking_delta", "thinking": text},
            {"type": "signature_delta", "signature": "c2ln"},
        ]
    else:
        start, deltas = {"type": "text", "text": ""}, [{"type": "text_delta", "text": text}]
    return [
        ("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}),
        *[
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        ],
        ("content_block_stop", {"type": "content_block_stop", "index": index}),
    ]


def _scripted(blocks: list[tuple[str, str]]) -> bytes:
    events = GOOD_ROUND[:1]
    for i, (kind, text) in enumerate(blocks):
        events = [*events, *_block(i, kind, text)]
    return _sse([*events, *GOOD_END[1:]])


@pytest.fixture
def scripted_server():
    """``start(body)``: a loopback server answering every request with the SSE ``body``."""
    servers = []

    def start(body: bytes) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers["content-length"]))
                self.send_response(200)
                self.send_header("content-type", "text/event-stream; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "blocks, answer",
    [
        (
            [
                ("text", "\n\n"),
                ("thinking", "hmm"),
                ("text", "Once upon"),
                ("thinking", "more"),
                ("text", " a time"),
            ],
            "Once upon a time",
        ),
        (
            [("text", "\n\n"), ("text", "Once")],
            "\n\nOnce",
        ),  # no thinking after it: blank lines are the answer's
        ([("thinking", "hmm"), ("text", "\n\n"), ("text", "Once")], "\n\nOnce"),  # after thinking: kept
        ([("text", " "), ("text", "\n"), ("thinking", "x"), ("text", "Once")], "Once"),
    ],
)
def test_text_blocks_are_joined_in_order_and_only_a_blank_lead_before_thinking_is_dropped(
    scripted_server, blocks, answer
):
    b = AnthropicBackend(
        anthropic.Anthropic(base_url=scripted_server(_scripted(blocks)), api_key="t", max_retries=0)
    )
    text, end = run_round(b, model="claude-opus-4-6")
    assert text == answer
    assert (end.usage.thinking_tokens > 0) is any(kind == "thinking" for kind, _ in blocks)


def test_an_effort_the_model_does_not_take_is_refused_by_generate_before_any_request(url):
    reset_emulator(url)
    client = anthropic.Anthropic(base_url=url, api_key="test")
    with pytest.raises(ConfigurationError) as caught:
        autocontinue.generate("Hi", client=client, model="claude-opus-4-6", effort="xhigh")
    assert "xhigh" in caught.value.message
    assert emulator_stats(url)["requests"] == 0


async def test_the_async_client_maps_a_malformed_stream_too(garbage_server):
    base, _ = garbage_server()
    b = AnthropicBackend(anthropic.AsyncAnthropic(base_url=base, api_key="t", max_retries=0))
    request = RoundRequest(model="claude-sonnet-5-5", messages=PROMPT, max_tokens=100)
    first = [e async for e in b.astream_round(request)]
    assert isinstance(first[-1], RoundEnd)
    received = []
    with pytest.raises(StreamInterruptedError) as caught:
        async for event in b.astream_round(request):
            if isinstance(event, BackendDelta):
                received.append(event.text)
    assert "".join(received) == "Once upon a time there" and "malformed" in caught.value.message
