"""The emulator's HTTP application (starlette): routes, wire format and the per-request flow.

Routes:

``POST /v1/messages``
    Streaming (server-sent events) and not. Flow: authenticate (only when started with an API
    key: 401 ``invalid x-api-key`` with ``x-should-retry: false``), read the JSON (anything
    unreadable: 400 ``The request body is not valid JSON: <reason>: line 1 column 2 (char 1)``
    in the API's error shape, never a 500), check the request
    (``request.py``), check the context window, rate limits (``ratelimit.py``), injected faults
    (``faults.py``), then answer (``continuation.py`` over ``sources.py``, quirks from
    ``quirks.py``), price the prompt against the cache (``cache.py``) and bill on completion
    (``billing.py``).
``POST /v1/messages/count_tokens``
    ``{"input_tokens": N}`` by the emulator's tokenizer, with the same checks on the prompt.
``GET /emulator/stats``, ``POST /emulator/reset``
    Totals since start or reset; reset also clears the prompt cache, the rate-limit buckets,
    the request counter that scripted faults use and the Message Batches (the batches, what
    they billed and downloaded; their settings stay, see ``batches.py``).
``POST /emulator/clock``
    ``{"advance": seconds}`` moves the emulated clock (cache lifetimes, rate-limit refills).

Wire format, as recorded from the real API: every response has a ``request-id: req_...``
header; errors are ``{"type":"error","error":{"type","message"},"request_id"}``; a stream is
``message_start`` (usage with the input and cache fields and ``output_tokens: 1``),
``content_block_start``, ``ping``, ``content_block_delta``... (several tokens per delta),
``content_block_stop``, ``message_delta`` (stop reason, cumulative usage), ``message_stop``,
framed ``event: NAME\\ndata: JSON\\n\\n`` with content type ``text/event-stream; charset=utf-8``.
When the model thinks (``thinking.py``), the content opens with a thinking block
(``thinking_delta`` events, none with ``display: omitted``, then one ``signature_delta``), after
a blank text block on the models that send one; a response cut at ``max_tokens`` while thinking
has no text block. The ``anthropic-version`` header selects the rules of ``request.py``.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..catalogue import LATEST_API_VERSION, ModelSpec, find_model
from ..usage import Usage
from . import openai_compat
from .batches import batch_routes
from .billing import Stats
from .cache import CacheOutcome, PromptCache, SystemClock
from .continuation import Plan, plan_output
from .faults import CUT_FAULTS, MALFORMED_DATA, MALFORMED_EVENT, FaultPlan
from .quirks import decide_quirks
from .ratelimit import RateLimiter
from .request import ApiError, ParsedRequest, check_context, parse_request
from .sources import answer_for
from .thinking import ThinkingPlan, plan_thinking
from .tokenizer import token_starts

__all__ = ["Emulator", "EmulatorConfig", "build_app"]

log = logging.getLogger("autocontinue.emulator")

#: Tokens per content_block_delta when no decode rate is set.
FAST_TOKENS_PER_DELTA = 8
#: Delta events per network write when no decode rate is set.
FAST_EVENTS_PER_WRITE = 8
#: Delta events per second aimed at when a decode rate is set.
PACED_EVENTS_PER_SECOND = 40

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _random_id(prefix: str, length: int = 24) -> str:
    number = int.from_bytes(os.urandom(18), "big")
    chars = []
    for _ in range(length):
        number, rest = divmod(number, 62)
        chars.append(_B62[rest])
    return prefix + "".join(chars)


@dataclass
class EmulatorConfig:
    """Checked options of one emulator instance (see ``autocontinue.emulator.run_emulator``)."""

    seed: int = 0
    length: int = 2000
    source: str = "numbered"
    quirks: dict[str, float] = field(default_factory=dict)
    faults: FaultPlan = field(default_factory=FaultPlan)
    decode_rate: float | None = None
    rpm: int | None = None
    otpm: int | None = None
    #: Per-instance models (``--model-spec``), by id and alias; they shadow the catalogue.
    models: dict[str, ModelSpec] = field(default_factory=dict)
    api_key: str | None = None
    clock: Any = field(default_factory=SystemClock)
    #: Model ids the OpenAI-compatible endpoint serves (``/v1/models``; others get a 404 there).
    openai_models: tuple[str, ...] = ("emulated",)
    #: The server the OpenAI-compatible endpoint plays at ``/v1`` and the root (``/props``, ...).
    openai_persona: str = "openai"


@dataclass
class Outcome:
    """Everything decided about a successful request before the first byte is sent."""

    request: ParsedRequest
    plan: Plan
    cache: CacheOutcome
    usage: Usage
    fault: str | None
    number: int
    thinking: ThinkingPlan = field(default_factory=ThinkingPlan)


class Emulator:
    """State of one emulator: config, stats, prompt cache, rate limits."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.stats = Stats()
        self.cache = PromptCache(config.clock)
        self.limiter = RateLimiter(config.clock, config.rpm, config.otpm)
        self._local = None

    def resolve(self, name: str) -> ModelSpec | None:
        return self.config.models.get(name) or find_model(name)

    def today(self) -> datetime.date:
        """The emulated clock's date (retirements are checked against it)."""
        return datetime.datetime.fromtimestamp(self.config.clock.now(), datetime.timezone.utc).date()

    def reset(self) -> None:
        self.stats.reset()
        self.cache.clear()
        self.limiter.reset()
        batches = getattr(self, "batches", None)
        if batches is not None:
            batches.reset()

    # -- the request flow -------------------------------------------------------------------

    def authenticate(self, request: Request) -> None:
        expected = self.config.api_key
        if expected is None:
            return
        given = request.headers.get("x-api-key")
        if given is None:
            auth = request.headers.get("authorization", "")
            given = auth[7:] if auth.lower().startswith("bearer ") else None
        if given is None:
            raise ApiError(
                401, "authentication_error", "x-api-key header is required", {"x-should-retry": "false"}
            )
        if given != expected:
            raise ApiError(401, "authentication_error", "invalid x-api-key", {"x-should-retry": "false"})

    async def read_json(self, request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:
            detail = str(exc) if isinstance(exc, json.JSONDecodeError) else "invalid UTF-8"
            raise ApiError(
                400, "invalid_request_error", f"The request body is not valid JSON: {detail}"
            ) from None

    def decide(self, parsed: ParsedRequest, number: int) -> Outcome:
        config = self.config
        check_context(parsed)
        self.limiter.admit(parsed.model)
        fault = config.faults.fault_for(config.seed, number)
        if fault == "stream-error" and not parsed.stream:
            fault = "529"
        if fault == "no-stop" and not parsed.stream:
            fault = "drop"  # a JSON body cannot end early and cleanly
        _raise_status_fault(fault, config.faults.retry_after)
        thinking = plan_thinking(parsed, config.seed) if config.source != "local" else ThinkingPlan()
        plan = self.plan(parsed, parsed.max_tokens - thinking.tokens - thinking.lead_tokens)
        cache = self.cache.plan(parsed.spec.id, parsed.blocks, parsed.spec.min_cacheable)
        usage = Usage(
            input_tokens=parsed.input_tokens - cache.read_tokens - cache.creation_tokens,
            output_tokens=plan.output_tokens + thinking.tokens + thinking.lead_tokens,
            thinking_tokens=thinking.tokens,
            cache_creation_input_tokens=cache.creation_tokens,
            cache_creation_1h_input_tokens=cache.write_1h,
            cache_read_input_tokens=cache.read_tokens,
        )
        return Outcome(parsed, plan, cache, usage, fault, number, thinking)

    def plan(self, parsed: ParsedRequest, room: int | None = None) -> Plan:
        """The text of the response, in ``room`` tokens (what thinking left of max_tokens)."""
        config = self.config
        room = parsed.max_tokens if room is None else room
        if room <= 0:
            return Plan("", [0], 0, "max_tokens")
        if config.source == "local":
            from .local import local_plan

            return local_plan(self, parsed)
        answer = answer_for(
            config.source, config.seed, config.length, parsed.system_text, parsed.first_user_text
        )
        quirks = decide_quirks(
            config.quirks,
            config.seed,
            parsed.content_key,
            parsed.mode,
            assistant_text=parsed.assistant_text,
            user_text=parsed.last_user_text,
        )
        return plan_output(answer, parsed.mode, parsed.assistant_text, quirks, room, parsed.stop_sequences)

    def complete(self, outcome: Outcome) -> None:
        """The response reached its end: bill it, store its cache writes, spend its tokens."""
        self.stats.bill(outcome.request.spec, outcome.usage)
        self.cache.commit(outcome.cache)
        self.limiter.spend_output(outcome.usage.output_tokens)

    # -- handlers ---------------------------------------------------------------------------

    async def messages(self, request: Request) -> Response | SSEResponse | DroppedJSONResponse:
        request_id = _random_id("req_011C", 20)
        number = self.stats.count_request()
        try:
            self.authenticate(request)
            body = await self.read_json(request)
            parsed = parse_request(body, self.resolve, version=api_version(request), today=self.today())
            # off the event loop: building a long answer or running the local model takes a while
            outcome = await asyncio.to_thread(self.decide, parsed, number)
        except ApiError as error:
            self.stats.count_error()
            return self.error_response(error, request_id)
        except Exception:  # a bug: answer in the API's shape, keep the server up
            log.exception("emulator failed on a request")
            self.stats.count_error()
            return self.error_response(ApiError(500, "api_error", "Internal server error"), request_id)
        headers = {"request-id": request_id, **self.limiter.headers()}
        if parsed.stream:
            return SSEResponse(self, outcome, headers)
        if self.config.decode_rate:
            await asyncio.sleep(outcome.usage.output_tokens / self.config.decode_rate)
        if outcome.fault == "drop":
            return DroppedJSONResponse(self, message_json(outcome), headers)
        if outcome.fault == "malformed":
            self.stats.count_error()
            return Response(MALFORMED_DATA, headers=headers, media_type="application/json")
        self.complete(outcome)
        return JSONResponse(message_json(outcome), headers=headers)

    async def count_tokens(self, request: Request) -> Response:
        request_id = _random_id("req_011C", 20)
        try:
            self.authenticate(request)
            body = await self.read_json(request)
            parsed = parse_request(body, self.resolve, count_only=True, today=self.today())
        except ApiError as error:
            return self.error_response(error, request_id)
        return JSONResponse({"input_tokens": parsed.input_tokens}, headers={"request-id": request_id})

    async def get_stats(self, request: Request) -> Response:
        return JSONResponse(self.stats.snapshot())

    async def post_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True})

    async def post_clock(self, request: Request) -> Response:
        try:
            seconds = float((await request.json())["advance"])
        except Exception:
            return self.error_response(
                ApiError(400, "invalid_request_error", 'send {"advance": seconds}'), _random_id("req_")
            )
        self.config.clock.advance(seconds)
        return JSONResponse({"now": self.config.clock.now()})

    def error_response(self, error: ApiError, request_id: str) -> Response:
        body = {
            "type": "error",
            "error": {"type": error.error_type, "message": error.message},
            "request_id": request_id,
        }
        headers = {"request-id": request_id, **self.limiter.headers(), **error.headers}
        return JSONResponse(body, status_code=error.status, headers=headers)


def api_version(request: Request) -> str:
    """The request's ``anthropic-version`` (the SDK's, 2026-10-21, when absent)."""
    return request.headers.get("anthropic-version") or LATEST_API_VERSION


def _raise_status_fault(fault: str | None, retry_after: int) -> None:
    if fault == "529":
        raise ApiError(529, "overloaded_error", "Overloaded")
    if fault == "500":
        raise ApiError(500, "api_error", "Internal server error")
    if fault == "429":
        raise ApiError(
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit "
            "(https://docs.claude.com/en/api/rate-limits); see the response headers for current usage. "
            "Please reduce the prompt length or the maximum tokens requested, or try again later.",
            {"retry-after": str(retry_after)},
        )


def response_model(requested: str, spec: ModelSpec) -> str:
    """The model name the API reports: the dated snapshot when an undated id was asked for."""
    if requested == spec.id:
        for alias in spec.aliases:
            if alias.startswith(spec.id + "-") and alias[-8:].isdigit():
                return alias
    return requested


def usage_json(usage: Usage, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage.cache_creation_input_tokens
            - usage.cache_creation_1h_input_tokens,
            "ephemeral_1h_input_tokens": usage.cache_creation_1h_input_tokens,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
        "inference_geo": "not_available",
    }


def _thinking_blocks(outcome: Outcome) -> list[dict[str, Any]]:
    """The blocks before the answer's text: a blank lead text block, then the thinking block."""
    thinking = outcome.thinking
    if not thinking.tokens:
        return []
    blocks: list[dict[str, Any]] = [{"type": "text", "text": thinking.lead}] if thinking.lead else []
    blocks.append({"type": "thinking", "thinking": thinking.text, "signature": thinking.signature})
    return blocks


def _has_text_block(outcome: Outcome) -> bool:
    """A response that is only thinking (cut at max_tokens) has no text block."""
    return not outcome.thinking.capped


def message_json(outcome: Outcome, *, streaming_start: bool = False) -> dict[str, Any]:
    plan = outcome.plan
    content: list[dict[str, Any]] = []
    if not streaming_start:
        content = _thinking_blocks(outcome)
        if plan.text:
            content.append({"type": "text", "text": plan.text})
    return {
        "model": response_model(outcome.request.model, outcome.request.spec),
        "id": _random_id("msg_01", 22),
        "type": "message",
        "role": "assistant",
        "content": content,
        "stop_reason": None if streaming_start else plan.stop_reason,
        "stop_sequence": None if streaming_start else plan.stop_sequence,
        "stop_details": None,
        "usage": usage_json(outcome.usage, 1 if streaming_start else outcome.usage.output_tokens),
    }


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {_dumps(data)}\n\n"


_PING = 'event: ping\ndata: {"type": "ping"}\n\n'
#: Thinking tokens per ``thinking_delta`` event.
THINKING_TOKENS_PER_DELTA = 32


def delta_event(text: str, index: int = 0) -> str:
    return (
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":' + str(index) + ","
        '"delta":{"type":"text_delta","text":' + json.dumps(text, ensure_ascii=False) + "}}\n\n"
    )


def _block_stop(index: int) -> str:
    return sse("content_block_stop", {"type": "content_block_stop", "index": index})


def _thinking_events(block: dict[str, Any], index: int) -> str:
    """One thinking block: start, ``thinking_delta`` pieces (none when omitted), signature, stop."""
    out = [
        sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
        )
    ]
    starts = token_starts(block["thinking"]) if block["thinking"] else [0]
    for i in range(0, len(starts) - 1, THINKING_TOKENS_PER_DELTA):
        piece = block["thinking"][starts[i] : starts[min(i + THINKING_TOKENS_PER_DELTA, len(starts) - 1)]]
        out.append(
            sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "thinking_delta", "thinking": piece},
                },
            )
        )
    out.append(
        sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "signature_delta", "signature": block["signature"]},
            },
        )
    )
    out.append(_block_stop(index))
    return "".join(out)


def _leading_events(outcome: Outcome) -> str:
    """Every block before the answer's text block, complete."""
    out = []
    for index, block in enumerate(_thinking_blocks(outcome)):
        if block["type"] == "thinking":
            out.append(_thinking_events(block, index))
        else:
            start = {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            }
            out.append(
                sse("content_block_start", start) + delta_event(block["text"], index) + _block_stop(index)
            )
    return "".join(out)


def text_index(outcome: Outcome) -> int:
    """Index of the answer's text block in the response's content."""
    return len(_thinking_blocks(outcome))


def stream_head(outcome: Outcome) -> str:
    """``message_start``, the first ``content_block_start``, a ``ping`` (as recorded), then the
    leading blank and thinking blocks whole, then the start of the answer's text block."""
    body = _leading_events(outcome)
    if _has_text_block(outcome):
        start = {
            "type": "content_block_start",
            "index": text_index(outcome),
            "content_block": {"type": "text", "text": ""},
        }
        body += sse("content_block_start", start)
    first_end = body.index("\n\n") + 2
    message = sse(
        "message_start", {"type": "message_start", "message": message_json(outcome, streaming_start=True)}
    )
    return message + body[:first_end] + _PING + body[first_end:]


def stream_tail(outcome: Outcome) -> str:
    usage = outcome.usage
    plan = outcome.plan
    stop = _block_stop(text_index(outcome)) if _has_text_block(outcome) else ""
    return (
        stop
        + sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": plan.stop_reason,
                    "stop_sequence": plan.stop_sequence,
                    "stop_details": None,
                },
                "usage": {
                    "input_tokens": usage.input_tokens,
                    "cache_creation_input_tokens": usage.cache_creation_input_tokens,
                    "cache_read_input_tokens": usage.cache_read_input_tokens,
                    "output_tokens": usage.output_tokens,
                },
            },
        )
        + sse("message_stop", {"type": "message_stop"})
    )


STREAM_ERROR = sse("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
#: The last bytes of a stream a fault ends cleanly (the terminating chunk follows them).
CLEAN_ENDS = {"stream-error": STREAM_ERROR.encode(), "malformed": MALFORMED_EVENT.encode(), "no-stop": b""}


class SSEResponse:
    """An ASGI response that streams one answer, paced and faulted as configured."""

    def __init__(self, emulator: Emulator, outcome: Outcome, headers: dict[str, str]) -> None:
        self.emulator = emulator
        self.outcome = outcome
        self.headers = headers

    def _raw_headers(self) -> list[tuple[bytes, bytes]]:
        headers = {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            **self.headers,
        }
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope, receive, send) -> None:
        emulator, outcome = self.emulator, self.outcome
        disconnected = asyncio.Event()

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._raw_headers()})
            await send(
                {"type": "http.response.body", "body": stream_head(outcome).encode(), "more_body": True}
            )
            finished = await self._send_deltas(send, disconnected)
            if not finished or disconnected.is_set():
                emulator.stats.count_error()
                last = CLEAN_ENDS.get(outcome.fault or "")
                if last is not None and not disconnected.is_set():
                    await send({"type": "http.response.body", "body": last, "more_body": False})
                # a drop: returning without the final body makes uvicorn close the connection
                # with no terminating chunk, so the client's HTTP library raises
                return
            await send(
                {"type": "http.response.body", "body": stream_tail(outcome).encode(), "more_body": False}
            )
            emulator.complete(outcome)
        finally:
            watcher.cancel()

    async def _send_deltas(self, send, disconnected: asyncio.Event) -> bool:
        """Send the text; False when a fault cut it short."""
        rate = self.emulator.config.decode_rate
        per_delta = max(1, round(rate / PACED_EVENTS_PER_SECOND)) if rate else FAST_TOKENS_PER_DELTA
        chunks = self.outcome.plan.chunks(per_delta)
        cut = len(chunks) // 3 if self.outcome.fault in CUT_FAULTS else None
        if cut is not None and chunks:
            cut = max(cut, 1)
        events_per_write = 1 if rate else FAST_EVENTS_PER_WRITE
        index = text_index(self.outcome)
        if rate and self.outcome.thinking.tokens:  # thinking takes decode time too
            await asyncio.sleep(self.outcome.thinking.tokens / rate)
        started = time.monotonic()
        sent_tokens = 0
        limit = len(chunks) if cut is None else cut
        for i in range(0, limit, events_per_write):
            group = chunks[i : min(i + events_per_write, limit)]
            body = "".join(delta_event(text, index) for text, _ in group).encode()
            await send({"type": "http.response.body", "body": body, "more_body": True})
            if disconnected.is_set():
                return False
            sent_tokens += sum(n for _, n in group)
            if rate:
                delay = started + sent_tokens / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
        return cut is None


class DroppedJSONResponse:
    """A non-streaming response whose connection is closed halfway through the JSON body."""

    def __init__(self, emulator: Emulator, body: dict[str, Any], headers: dict[str, str]) -> None:
        self.emulator = emulator
        self.body = _dumps(body).encode()
        self.headers = headers

    async def __call__(self, scope, receive, send) -> None:
        self.emulator.stats.count_error()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self.body)).encode())]
        headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": self.body[: len(self.body) // 2], "more_body": True}
        )


class _QuietIncomplete(logging.Filter):
    """Hide uvicorn's complaint about the responses the ``drop`` fault cuts on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


logging.getLogger("uvicorn.error").addFilter(_QuietIncomplete())


def build_app(emulator: Emulator) -> Starlette:
    async def not_found(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)  # registered for HTTPException only
        error = ApiError(
            exc.status_code,
            "not_found_error" if exc.status_code == 404 else "invalid_request_error",
            exc.detail or "Not found",
        )
        return emulator.error_response(error, _random_id("req_011C", 20))

    routes = [
        Route("/v1/messages", emulator.messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", emulator.count_tokens, methods=["POST"]),
        Route("/emulator/stats", emulator.get_stats, methods=["GET"]),
        Route("/emulator/reset", emulator.post_reset, methods=["POST"]),
        Route("/emulator/clock", emulator.post_clock, methods=["POST"]),
        *openai_compat.routes(emulator),  # /v1/chat/completions (see openai_compat.py)
        *batch_routes(emulator),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found})
    app.state.emulator = emulator
    return app
