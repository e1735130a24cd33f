"""The Anthropic backend: any official SDK client, prompt-cache breakpoints, errors mapped once.

A round is one streaming ``messages.create`` call. Earlier rounds' text arrives as separate
assistant text blocks (see strategies.py); this module marks cache breakpoints on the end of
the system prompt, the end of the user prompt and the last assistant block, so each round
reads everything written before at the cache-read price and writes only its new text.
SDK errors become ``autocontinue.errors`` here, keeping status and request id.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..catalogue import ANTHROPIC_DEFAULT_MODEL, ModelSpec, lookup_model
from ..errors import (
    AuthenticationError,
    BackendError,
    BackendUnavailableError,
    ContextWindowError,
    InvalidRequestError,
    MissingCredentialsError,
    PrefillNotSupportedError,
    StreamInterruptedError,
    TransientBackendError,
    UnknownModelError,
)
from ..usage import Usage
from .base import Backend, BackendDelta, BackendEvent, RoundEnd, RoundRequest

__all__ = ["AnthropicBackend", "request_params", "map_error"]

_PREFILL_REFUSED = "does not support assistant message prefill"
_CONTEXT_MARKERS = ("prompt is too long", "exceed context limit", "context window")
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


def request_params(request: RoundRequest) -> dict[str, Any]:
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
    if request.temperature is not None:
        # SDK 2.x has no temperature keyword (newer models fix sampling); older models still
        # take it in the body.
        params["extra_body"] = {"temperature": request.temperature}
    if request.extra.get("thinking"):
        params["thinking"] = request.extra["thinking"]
    return params


def _last_prompt_user_index(messages: list[dict[str, Any]]) -> int | None:
    """The last user message before the answer (not the continue instruction)."""
    index = None
    for i, message in enumerate(messages):
        if message["role"] == "assistant" and i > 0:
            return index
        if message["role"] == "user":
            index = i
    return index


def _usage(raw: Any) -> Usage:
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
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        return inner.get("type"), str(inner.get("message") or error)
    return None, str(getattr(error, "message", None) or error)


def _retry_after(error: Any) -> float | None:
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return float(value) * scale
            except ValueError:
                continue
    return None


def map_error(error: Exception, *, model: str, text_received: str = "") -> Exception:
    """Convert an SDK or transport error into the autocontinue tree (returns it, to raise)."""
    anthropic = _import_sdk()
    status = getattr(error, "status_code", None)
    request_id = getattr(error, "request_id", None)
    error_type, message = _error_body(error)
    common = {"status_code": status, "request_id": request_id, "error_type": error_type}
    transient_types = {"overloaded_error", "rate_limit_error", "api_error", "timeout_error"}
    is_transient = (
        isinstance(error, (anthropic.APIConnectionError, OSError))
        or error_type in transient_types
        or (status is not None and (status in (408, 409, 429) or status >= 500))
        or not isinstance(error, anthropic.APIStatusError)
    )
    if text_received and is_transient:
        return StreamInterruptedError(
            f"the stream broke after {len(text_received)} characters: {message}",
            text_received=text_received,
            retry_after=_retry_after(error),
            **common,
        )
    if is_transient:
        return TransientBackendError(message, retry_after=_retry_after(error), **common)
    if status in (401, 403):
        return AuthenticationError(
            message, hint="check ANTHROPIC_API_KEY (or the client's credentials)", **common
        )
    if status == 404:
        return UnknownModelError(
            f"the API does not know model {model!r} ({message})",
            hint="see `autocontinue models` for known ids",
        )
    if _PREFILL_REFUSED in message:
        return PrefillNotSupportedError(message, **common)
    if any(marker in message for marker in _CONTEXT_MARKERS):
        return ContextWindowError(message, **common)
    if status == 400:
        return InvalidRequestError(message, **common)
    return BackendError(message, **common)


def _strip_userinfo(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class _Accumulator:
    """Folds the SDK's raw stream events into deltas and one RoundEnd."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.usage = Usage()
        self.request_id: str | None = None
        self.stop_reason: str | None = None
        self.stop_sequence: str | None = None

    def fold(self, event: Any) -> BackendEvent | None:
        kind = getattr(event, "type", None)
        if kind == "message_start":
            self.usage = _usage(event.message.usage)
            return None
        if kind == "content_block_delta" and getattr(event.delta, "type", None) == "text_delta":
            self.text.append(event.delta.text)
            return BackendDelta(event.delta.text)
        if kind == "message_delta":
            self.stop_reason = event.delta.stop_reason
            self.stop_sequence = event.delta.stop_sequence
            self._merge_final_usage(event.usage)
            return None
        if kind == "message_stop":
            return RoundEnd(
                stop_reason=self.stop_reason or "end_turn",
                usage=self.usage,
                stop_sequence=self.stop_sequence,
                request_id=self.request_id,
            )
        return None

    def _merge_final_usage(self, raw: Any) -> None:
        final = _usage(raw)
        self.usage = Usage(
            input_tokens=final.input_tokens or self.usage.input_tokens,
            output_tokens=final.output_tokens,
            cache_creation_input_tokens=final.cache_creation_input_tokens
            or self.usage.cache_creation_input_tokens,
            cache_creation_1h_input_tokens=final.cache_creation_1h_input_tokens
            or self.usage.cache_creation_1h_input_tokens,
            cache_read_input_tokens=final.cache_read_input_tokens
            or self.usage.cache_read_input_tokens,
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
        self.is_async = isinstance(client, anthropic.AsyncAnthropic) or type(
            client
        ).__name__.startswith("Async")

    def model_spec(self, model: str) -> ModelSpec:
        return lookup_model(model)

    def close(self) -> None:
        """Close the client if this backend made it (a caller's client is the caller's)."""
        if self._owns_client:
            self.client.close()

    def endpoint_key(self) -> str:
        base = str(getattr(self.client, "base_url", "") or "")
        return f"{type(self.client).__name__}:{_strip_userinfo(base)}"

    def stream_round(self, request: RoundRequest) -> Iterator[BackendEvent]:
        if self.is_async:
            raise BackendUnavailableError(
                "an async client needs the async API", hint="use agenerate() / astream()"
            )
        anthropic = _import_sdk()
        acc = _Accumulator()
        try:
            stream = self.client.messages.create(stream=True, **request_params(request))
        except anthropic.AnthropicError as error:
            raise map_error(error, model=request.model) from error
        acc.request_id = _request_id(stream)
        try:
            with stream:
                for event in stream:
                    out = acc.fold(event)
                    if out is not None:
                        yield out
        except (anthropic.AnthropicError, OSError, *_transport_errors()) as error:
            raise map_error(error, model=request.model, text_received="".join(acc.text)) from error

    async def astream_round(self, request: RoundRequest) -> AsyncIterator[BackendEvent]:
        if not self.is_async:
            async for item in super().astream_round(request):
                yield item
            return
        anthropic = _import_sdk()
        acc = _Accumulator()
        try:
            stream = await self.client.messages.create(stream=True, **request_params(request))
        except anthropic.AnthropicError as error:
            raise map_error(error, model=request.model) from error
        acc.request_id = _request_id(stream)
        try:
            async with stream:
                async for event in stream:
                    out = acc.fold(event)
                    if out is not None:
                        yield out
        except (anthropic.AnthropicError, OSError, *_transport_errors()) as error:
            raise map_error(error, model=request.model, text_received="".join(acc.text)) from error


def _request_id(stream: Any) -> str | None:
    response = getattr(stream, "response", None)
    headers = getattr(response, "headers", None)
    return headers.get("request-id") if headers else None


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP library's errors (httpx2 for SDK 2.x, httpx before), when importable."""
    found: list[type[BaseException]] = []
    for name in ("httpx2", "httpx"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        error = getattr(module, "HTTPError", None) or getattr(module, "TransportError", None)
        if isinstance(error, type):
            found.append(error)
        stream_error = getattr(module, "StreamError", None)
        if isinstance(stream_error, type):
            found.append(stream_error)
    return tuple(found)
