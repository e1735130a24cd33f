"""The Anthropic backend: any official SDK client, prompt-cache breakpoints, errors mapped once.

A round is one streaming ``messages.create`` call. Earlier rounds' text arrives as separate
assistant text blocks (see strategies.py); this module marks cache breakpoints on the end of
the system prompt, the end of the user prompt and the last assistant block, so each round
reads everything written before at the cache-read price and writes only its new text.

Requests carry only what the model and API version take (the catalogue says which):
``temperature`` only under ``anthropic-version: 2023-06-01`` on models before Opus 4.7 (else
``check_request`` refuses it before any call); ``thinking: "adaptive"`` as ``{"type":
"adaptive"}``, ``"off"`` as the model's way to turn it off (``between_tools`` on Sonnet 5.5,
nothing where it is off anyway, ``disabled`` elsewhere, so the API's exact 400 says when it
cannot be); ``effort`` as ``output_config.effort`` where the model takes that value.

Responses: thinking blocks are consumed, never yielded; every text block is yielded in order,
except a whitespace-only text block before the first thinking block (a real Opus 4.6 stream
opens with ``"\n\n"`` there). The API reports no thinking count, so ``Usage.thinking_tokens``
is an estimate: in a round that had a thinking block, the output tokens beyond the text's
(``len(text) / 4``, rounded up); 0 without one. It is part of ``output_tokens``, which is
exact and what cost uses. Earlier rounds' thinking is never sent back (only text is kept).
Any error from the SDK or the wire (a malformed event included) becomes ``autocontinue.errors``
here, keeping status, request id and the text already received.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..catalogue import (
    ANTHROPIC_DEFAULT_MODEL,
    LATEST_API_VERSION,
    ModelSpec,
    find_model,
    lookup_model,
)
from ..errors import (
    AuthenticationError,
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    ContextWindowError,
    InvalidRequestError,
    MaxTokensExceededError,
    MissingCredentialsError,
    PrefillNotSupportedError,
    StreamInterruptedError,
    TransientBackendError,
    UnknownModelError,
)
from ..usage import Usage
from .base import (
    Backend,
    BackendDelta,
    BackendEvent,
    RoundEnd,
    RoundOpened,
    RoundRequest,
    retry_after,
    transport_errors,
)

__all__ = [
    "AnthropicBackend",
    "api_version",
    "map_error",
    "refusal_error",
    "request_params",
    "request_refusal",
    "usage_of",
]

_PREFILL_REFUSED = "does not support assistant message prefill"
_CONTEXT_MARKERS = ("prompt is too long", "exceed context limit", "context window")
# The limits the API's own 400 texts name (see shared/reference/anthropic-api.md).
_PROMPT_TOO_LONG = re.compile(r"prompt is too long:\s*(\d+) tokens\s*>\s*(\d+)")
_PROMPT_PLUS_MAX = re.compile(r"exceed context limit:\s*(\d+)\s*\+\s*\d+\s*>\s*(\d+)")
_MAX_TOKENS_OVER = re.compile(r"max_tokens:\s*\d+\s*>\s*(\d+), which is the maximum")
#: Breakpoints used per request (the API allows 4).
MAX_BREAKPOINTS = 4


def _import_sdk() -> Any:
    try:
        import anthropic
    except ImportError:
        raise BackendUnavailableError(
            "the anthropic SDK is not installed",
            hint="pip install 'autocontinue[anthropic]'",
        ) from None
    return anthropic


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [dict(block) for block in content]


def _mark(block: dict[str, Any]) -> None:
    block["cache_control"] = {"type": "ephemeral"}


def request_params(request: RoundRequest, version: str = LATEST_API_VERSION) -> dict[str, Any]:
    """The keyword arguments of ``messages.create`` for one round, with cache breakpoints."""
    messages = [{"role": m["role"], "content": _blocks(m["content"])} for m in request.messages]
    system: Any = request.system
    if request.cache:
        marks = 0
        if system:
            system = _blocks(system)
            _mark(system[-1])
            marks += 1
        last_user_prompt = _last_prompt_user_index(messages)
        candidates = [last_user_prompt]
        assistant = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        if assistant:
            candidates.append(assistant[-1])
        for index in candidates:
            if index is not None and marks < MAX_BREAKPOINTS:
                _mark(messages[index]["content"][-1])
                marks += 1
    params: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": messages,
    }
    if system:
        params["system"] = system
    if request.stop_sequences:
        params["stop_sequences"] = list(request.stop_sequences)
    spec = lookup_model(request.model)
    if request.temperature is not None and _sampling_allowed(spec, version):
        # SDK 2.x has no temperature keyword: only 2023-06-01 takes it, in the body.
        params["extra_body"] = {"temperature": request.temperature}
    thinking = _thinking_param(request, spec)
    if thinking is not None:
        params["thinking"] = thinking
    effort = request.effort or request.extra.get("effort")
    if effort is not None and (spec.assumed or spec.takes_effort(effort)):
        params["output_config"] = {"effort": effort}
    return params


def _sampling_allowed(spec: ModelSpec, version: str) -> bool:
    return version < LATEST_API_VERSION and spec.sampling_2023 and not spec.assumed


def _thinking_param(request: RoundRequest, spec: ModelSpec) -> dict[str, Any] | None:
    """``thinking`` for the request: adaptive, the model's off switch, or None (omit it)."""
    legacy = request.extra.get("thinking")
    if isinstance(legacy, dict):
        return legacy
    mode = request.thinking or (legacy if isinstance(legacy, str) else None)
    if mode == "adaptive":
        return {"type": "adaptive"}
    if mode == "off":
        return spec.thinking_off()
    return None


def request_refusal(request: RoundRequest, version: str) -> ConfigurationError | None:
    """Why today's API would refuse ``request`` before it is sent (a parameter it rejects)."""
    spec = lookup_model(request.model)
    if request.temperature is not None and not _sampling_allowed(spec, version):
        if version >= LATEST_API_VERSION:
            reason = f"the Claude API version {version} removed temperature (and top_p, top_k) on every model"
        else:
            reason = f"{request.model} does not take temperature (deprecated from claude-opus-4-7 on)"
        return ConfigurationError(
            f"temperature cannot be sent: {reason}",
            hint="drop temperature (it stays for the local and OpenAI-compatible backends)",
        )
    effort = request.effort
    if effort is not None and not spec.assumed and not spec.takes_effort(effort):
        takes = f"it takes {', '.join(spec.efforts)}" if spec.efforts else "it takes no effort setting"
        return ConfigurationError(
            f"effort {effort!r} is not accepted by {request.model} ({takes})",
            hint="choose another effort, or leave effort unset",
        )
    return None


def _last_prompt_user_index(messages: list[dict[str, Any]]) -> int | None:
    """The last user message before the answer (not the continue instruction)."""
    index = None
    for i, message in enumerate(messages):
        if message["role"] == "assistant" and i > 0:
            return index
        if message["role"] == "user":
            index = i
    return index


def usage_of(raw: Any) -> Usage:
    """An SDK ``usage`` object (a stream's or a message's) as a ``Usage``; empty for None."""
    if raw is None:
        return Usage()
    created = getattr(raw, "cache_creation", None)
    one_hour = getattr(created, "ephemeral_1h_input_tokens", 0) if created is not None else 0
    return Usage(
        input_tokens=getattr(raw, "input_tokens", 0) or 0,
        output_tokens=getattr(raw, "output_tokens", 0) or 0,
        cache_creation_input_tokens=getattr(raw, "cache_creation_input_tokens", 0) or 0,
        cache_creation_1h_input_tokens=one_hour or 0,
        cache_read_input_tokens=getattr(raw, "cache_read_input_tokens", 0) or 0,
    )


def _error_body(error: Any) -> tuple[str | None, str]:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else body
        return inner.get("type"), str(inner.get("message") or error)
    return None, str(getattr(error, "message", None) or error)


def map_error(error: Exception, *, model: str, text_received: str = "", in_stream: bool = True) -> Exception:
    """Convert any SDK, transport or stream-parsing error into the autocontinue tree (returns it).

    A status error keeps its status, request id and type. Anything else that broke a stream
    (a connection error, an event that is not JSON, an SDK parsing failure) is a transient
    failure of the round; outside a stream only connection errors are.
    """
    anthropic = _import_sdk()
    status = getattr(error, "status_code", None)
    request_id = getattr(error, "request_id", None)
    error_type, message = _error_body(error)
    message = printable(message)
    common: dict[str, Any] = {"status_code": status, "request_id": request_id, "error_type": error_type}
    is_sdk = isinstance(error, anthropic.AnthropicError)
    if not is_sdk and not isinstance(error, (OSError, *transport_errors())):
        what = _malformed(error)
        if not in_stream:
            message = f"the server sent a malformed response ({what})"
            return BackendError(message, hint="check the base URL and the SDK version", **common)
        if text_received:
            message = f"the server sent a malformed event ({what}) after {len(text_received):,} characters"
            return StreamInterruptedError(message, **common)
        return TransientBackendError(f"the server sent a malformed event ({what}) before any text", **common)
    if _is_transient(anthropic, error, error_type, status):
        if text_received:
            return StreamInterruptedError(
                f"the stream broke after {len(text_received)} characters: {message}",
                retry_after=retry_after(error),
                **common,
            )
        return TransientBackendError(message, retry_after=retry_after(error), **common)
    return refusal_error(message, status, model, common)


#: C0 controls but tab and newline, DEL and C1: never let server text drive a terminal.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with every control character but tab and newline shown as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _excerpt(text: str, limit: int = 40) -> str:
    """The start of what a server sent, quoted, every non-ASCII or control character escaped."""
    return ascii(text[:limit]) + ("..." if len(text) > limit else "")


def _malformed(error: Exception) -> str:
    """What was wrong with an event (or body) the SDK could not read, in a few safe words."""
    if isinstance(error, json.JSONDecodeError):
        return f"invalid JSON: {_excerpt(error.doc)}"
    return f"{type(error).__name__}: {_excerpt(str(error), 80)}"


def incomplete_stream(events: int, text: str, size: int | None) -> TransientBackendError:
    """The stream ended without ``message_stop``: what arrived, as a transient failure."""
    if not events:
        got = f" ({size:,} bytes)" if size else ""
        return TransientBackendError(
            f"the server's stream had no Messages API events{got}",
            hint="check the base URL: it must be an Anthropic Messages API",
        )
    if text:
        return StreamInterruptedError(f"the stream ended without message_stop after {len(text):,} characters")
    return TransientBackendError(f"the stream ended without message_stop after {events} events and no text")


_TRANSIENT_TYPES = {"overloaded_error", "rate_limit_error", "api_error", "timeout_error"}


def _is_transient(anthropic: Any, error: Exception, error_type: str | None, status: int | None) -> bool:
    return (
        isinstance(error, (anthropic.APIConnectionError, OSError))
        or error_type in _TRANSIENT_TYPES
        or (status is not None and (status in (408, 409, 429) or status >= 500))
        or not isinstance(error, anthropic.APIStatusError)
    )


def refusal_error(message: str, status: int | None, model: str, common: dict[str, Any]) -> Exception:
    """A status the API will give again for the same request."""
    if status in (401, 403):
        return AuthenticationError(
            message, hint="check ANTHROPIC_API_KEY (or the client's credentials)", **common
        )
    if status == 404:
        return _not_found(message, model, common)
    if _PREFILL_REFUSED in message:
        return PrefillNotSupportedError(message, **common)
    if any(marker in message for marker in _CONTEXT_MARKERS) or _MAX_TOKENS_OVER.search(message):
        return limit_error(message, common)
    if status == 400:
        return InvalidRequestError(message, hint=_invalid_hint(message), **common)
    return BackendError(message, **common)


def _not_found(message: str, model: str, common: dict[str, Any]) -> Exception:
    """A retired model says so and names its successor; a 404 that is not about a model is a path."""
    spec = find_model(model)
    if spec is not None and spec.retired_on():
        note = f"model {model!r} was retired on {spec.retires}"
        return UnknownModelError(
            f"{note} (the API answers: {message})",
            hint=f"use its successor {spec.successor}" if spec.successor else "see `autocontinue models`",
        )
    if common.get("error_type") == "not_found_error" and message.startswith("model:"):
        return UnknownModelError(
            f"the API does not know model {model!r} ({message})",
            hint="see `autocontinue models` for known ids",
        )
    return BackendError(
        f"the API answered 404 Not Found ({message})",
        hint="check the base URL (ANTHROPIC_BASE_URL / --base-url): it should not end in /v1",
        **common,
    )


def _invalid_hint(message: str) -> str | None:
    if "thinking" in message:
        return "leave thinking unset, or use thinking='adaptive' (--thinking adaptive) on this model"
    if "effort" in message:
        return "choose another effort, or leave effort unset"
    if "temperature" in message or "top_p" in message or "top_k" in message:
        return "drop temperature: today's Claude API does not take it"
    return None


def limit_error(message: str, common: dict[str, Any]) -> BackendError:
    """A refusal for size, with the numbers the API's text names as fields."""
    over = _MAX_TOKENS_OVER.search(message)
    if over:
        return MaxTokensExceededError(message, max_tokens_allowed=int(over.group(1)), **common)
    found = _PROMPT_TOO_LONG.search(message) or _PROMPT_PLUS_MAX.search(message)
    if found:
        prompt, window = int(found.group(1)), int(found.group(2))
        return ContextWindowError(message, prompt_tokens=prompt, context_window=window, **common)
    return ContextWindowError(message, **common)


def _strip_userinfo(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class _Accumulator:
    """Folds the SDK's raw stream events into text deltas and one RoundEnd.

    Text of a text block that is still only whitespace, while no thinking block has come, is
    held: a thinking block next drops it, anything else lets it through.
    """

    def __init__(self) -> None:
        self.text: list[str] = []
        self.usage = Usage()
        self.request_id: str | None = None
        self.stop_reason: str | None = None
        self.stop_sequence: str | None = None
        self.thinking_seen = False
        self.held = ""
        self.events = 0
        self.ended = False

    def fold(self, event: Any) -> list[BackendEvent]:
        self.events += 1
        kind = getattr(event, "type", None)
        if kind == "message_start":
            self.usage = usage_of(event.message.usage)
            return [RoundOpened(self.usage, self.request_id)]
        elif kind == "content_block_start":
            block_type = getattr(event.content_block, "type", "")
            if block_type in ("thinking", "redacted_thinking"):
                self.thinking_seen = True
                self.held = ""  # the blank block(s) before the first thinking block
            elif block_type != "text":
                return self._emit("")
        elif kind == "content_block_delta" and getattr(event.delta, "type", None) == "text_delta":
            return self._text(event.delta.text)
        elif kind == "message_delta":
            self.stop_reason = event.delta.stop_reason
            self.stop_sequence = event.delta.stop_sequence
            self._merge_final_usage(event.usage)
        elif kind == "message_stop":
            self.ended = True
            return [*self._emit(""), self._end()]
        return []

    def _text(self, piece: str) -> list[BackendEvent]:
        if not self.thinking_seen and not self.text and (self.held + piece).isspace():
            self.held += piece
            return []
        return self._emit(piece)

    def _emit(self, piece: str) -> list[BackendEvent]:
        """``piece`` after any held whitespace (nothing when both are empty)."""
        text, self.held = self.held + piece, ""
        if not text:
            return []
        self.text.append(text)
        return [BackendDelta(text)]

    def _end(self) -> RoundEnd:
        usage = self.usage
        if self.thinking_seen:
            text_tokens = -(-len("".join(self.text)) // 4)
            usage = dataclasses.replace(usage, thinking_tokens=max(0, usage.output_tokens - text_tokens))
        return RoundEnd(
            stop_reason=self.stop_reason or "end_turn",
            usage=usage,
            stop_sequence=self.stop_sequence,
            request_id=self.request_id,
        )

    def incomplete(self, stream: Any) -> TransientBackendError:
        size = getattr(getattr(stream, "response", None), "num_bytes_downloaded", None)
        return incomplete_stream(self.events, "".join(self.text), size if isinstance(size, int) else None)

    def _merge_final_usage(self, raw: Any) -> None:
        final = usage_of(raw)
        self.usage = Usage(
            input_tokens=final.input_tokens or self.usage.input_tokens,
            output_tokens=final.output_tokens,
            cache_creation_input_tokens=final.cache_creation_input_tokens
            or self.usage.cache_creation_input_tokens,
            cache_creation_1h_input_tokens=final.cache_creation_1h_input_tokens
            or self.usage.cache_creation_1h_input_tokens,
            cache_read_input_tokens=final.cache_read_input_tokens or self.usage.cache_read_input_tokens,
        )


class AnthropicBackend(Backend):
    """Claude through the official SDK: first-party, Bedrock, Vertex or any compatible client."""

    name = "anthropic"
    default_model = ANTHROPIC_DEFAULT_MODEL
    _owns_client = False

    def __init__(self, client: Any = None) -> None:
        anthropic = _import_sdk()
        if client is None:
            key = os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")
            if not key:
                raise MissingCredentialsError(
                    "no Anthropic API key",
                    hint="export ANTHROPIC_API_KEY=sk-ant-... (or use --backend local)",
                )
            client = anthropic.Anthropic()
            self._owns_client = True
        self.client = client
        self.is_async = isinstance(client, anthropic.AsyncAnthropic) or type(client).__name__.startswith(
            "Async"
        )

    def model_spec(self, model: str) -> ModelSpec:
        return lookup_model(model)

    def close(self) -> None:
        """Close the client if this backend made it (a caller's client is the caller's)."""
        if self._owns_client:
            self.client.close()

    def endpoint_key(self) -> str:
        base = str(getattr(self.client, "base_url", "") or "")
        return f"{type(self.client).__name__}:{_strip_userinfo(base)}"

    def api_version(self) -> str:
        return api_version(self.client)

    def check_request(self, request: RoundRequest) -> None:
        """Refuse ``temperature`` where the API version or model removed it, and an effort the
        model does not take (ConfigurationError with a hint, before any call)."""
        refusal = request_refusal(request, self.api_version())
        if refusal is not None:
            raise refusal

    def _params(self, request: RoundRequest) -> dict[str, Any]:
        version = self.api_version()
        if request.temperature is not None:
            self.check_request(request)  # never send a parameter the API rejects
        return request_params(request, version)

    def stream_round(self, request: RoundRequest) -> Iterator[BackendEvent]:
        if self.is_async:
            raise BackendUnavailableError(
                "an async client needs the async API", hint="use agenerate() / astream()"
            )
        params = self._params(request)
        acc = _Accumulator()
        try:
            stream = self.client.messages.create(stream=True, **params)
        except Exception as error:
            raise map_error(error, model=request.model, in_stream=False) from error
        acc.request_id = _request_id(stream)
        try:
            with stream:
                for event in stream:
                    yield from acc.fold(event)
        except Exception as error:
            raise map_error(error, model=request.model, text_received="".join(acc.text)) from error
        if not acc.ended:
            raise acc.incomplete(stream)

    async def astream_round(self, request: RoundRequest) -> AsyncIterator[BackendEvent]:
        if not self.is_async:
            async for item in super().astream_round(request):
                yield item
            return
        params = self._params(request)
        acc = _Accumulator()
        try:
            stream = await self.client.messages.create(stream=True, **params)
        except Exception as error:
            raise map_error(error, model=request.model, in_stream=False) from error
        acc.request_id = _request_id(stream)
        try:
            async with stream:
                async for event in stream:
                    for out in acc.fold(event):
                        yield out
        except Exception as error:
            raise map_error(error, model=request.model, text_received="".join(acc.text)) from error
        if not acc.ended:
            raise acc.incomplete(stream)


def api_version(client: Any) -> str:
    """The ``anthropic-version`` the client sends (its default headers, else the SDK's)."""
    headers = getattr(client, "default_headers", None)
    value = headers.get("anthropic-version") if isinstance(headers, dict) else None
    if isinstance(value, str):
        return value
    try:
        from anthropic._constants import ANTHROPIC_API_VERSION
    except ImportError:
        return LATEST_API_VERSION
    return str(ANTHROPIC_API_VERSION)


def _request_id(stream: Any) -> str | None:
    response = getattr(stream, "response", None)
    headers = getattr(response, "headers", None)
    return headers.get("request-id") if headers else None
