"""The Backend interface: one round in, a stream of text deltas and one RoundEnd out.

A backend knows nothing about continuation: the engine builds each round's messages (in the
Messages API shape; a final assistant message is a prefill), and the backend turns them into
one model call. Errors are converted to the ``autocontinue.errors`` tree here, at the boundary.
"""

from __future__ import annotations

import abc
import math
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Any

from ..catalogue import ModelSpec
from ..usage import Usage

__all__ = [
    "transport_errors",
    "RoundOpened",
    "retry_after",
    "parse_retry_after",
    "MAX_RETRY_AFTER",
    "RoundRequest",
    "BackendDelta",
    "RoundEnd",
    "BackendEvent",
    "Backend",
]


@dataclass(frozen=True)
class RoundRequest:
    """One model call, in Messages API terms."""

    model: str
    #: Messages API messages. Assistant content may be a list of text blocks (segments of the
    #: answer so far, one per earlier round); a final assistant message is a prefill.
    messages: list[dict[str, Any]]
    max_tokens: int
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: tuple[str, ...] = ()
    temperature: float | None = None
    #: Ask the backend to use prompt caching where it has it.
    cache: bool = True
    #: Seed for backends that sample locally.
    seed: int | None = None
    #: Index of the round (0-based), for backends that keep per-run state (KV cache).
    round_index: int = 0
    #: "adaptive" | "off" | None (the model's default). Backends that cannot think ignore it.
    thinking: str | None = None
    #: "low" | "medium" | "high" | "xhigh" | "max" | None (the model's default).
    effort: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BackendDelta:
    """A piece of generated text, exactly as the model produced it."""

    text: str


@dataclass(frozen=True)
class RoundEnd:
    """The call finished. ``stop_reason`` uses the Messages API's values."""

    stop_reason: str
    usage: Usage
    stop_sequence: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class RoundOpened:
    """The service took the call: what it counts so far (the prompt's side) and its request id.

    Sent first by a backend that knows it (the Messages API's ``message_start``), so a round
    that is cut short (``until``, a restart) or breaks still reports what it was billed for the
    prompt, and its request id, instead of nothing.
    """

    usage: Usage
    request_id: str | None = None


BackendEvent = BackendDelta | RoundOpened | RoundEnd


class Backend(abc.ABC):
    """One model service. Subclasses implement ``stream_round`` (and may override the rest)."""

    #: "anthropic", "local", ...
    name: str = "base"
    #: Model used when the caller names none.
    default_model: str = ""
    #: A prefill may end in whitespace (the Messages API refuses that; llama.cpp does not).
    #: Then the whole text so far is sent and nothing is held back at a prefill seam.
    prefill_takes_trailing_whitespace: bool = False

    @abc.abstractmethod
    def model_spec(self, model: str) -> ModelSpec:
        """Limits and prices for ``model``; raises UnknownModelError if it cannot serve it."""

    @abc.abstractmethod
    def stream_round(self, request: RoundRequest) -> Iterator[BackendEvent]:
        """Run one call: yield BackendDelta items, then exactly one RoundEnd.

        A stream that breaks after text arrived raises StreamInterruptedError carrying that
        text; other failures raise the matching BackendError subclass.
        """

    async def astream_round(self, request: RoundRequest) -> AsyncIterator[BackendEvent]:
        """Async twin of ``stream_round``; the default runs the sync one in a worker thread."""
        import asyncio

        iterator = self.stream_round(request)
        while True:
            item = await asyncio.to_thread(next, iterator, None)  # events are never None
            if item is None:
                return
            yield item

    def check_request(self, request: RoundRequest) -> None:
        """Refuse, before any call, a request this backend would send and the service rejects.

        Raises ConfigurationError with a hint (e.g. ``temperature`` under an API version that
        removed it). The engine calls it on the first request of a run. Default: accept.
        """

    def count_tokens(self, request: RoundRequest) -> int | None:
        """Prompt tokens of ``request`` if the backend can tell cheaply, else None."""
        return None

    def endpoint_key(self) -> str:
        """Identifies where calls go (for remembering per-endpoint facts such as prefill)."""
        return self.name

    def prefill_supported(self, model: str) -> bool:
        """Whether a final assistant message continues the same turn on this backend."""
        return self.model_spec(model).prefill

    def close(self) -> None:
        """Release resources (model weights, connections)."""


def transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP library's errors (httpx2 under the anthropic 2.x and openai 3.x SDKs, httpx before), when importable."""
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


#: The longest wait a server's ``retry-after`` can ask for (seconds); a longer one is cut to
#: this, so a wrong header (an epoch, a day) cannot park a run for hours.
MAX_RETRY_AFTER = 600.0


def retry_after(error: Any) -> float | None:
    """Seconds the response behind an SDK status error asks to wait (``parse_retry_after``)."""
    return parse_retry_after(getattr(getattr(error, "response", None), "headers", None))


def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds a response's headers ask to wait before the next call; None when they do not say.

    ``retry-after-ms`` (milliseconds) wins over ``retry-after``, which is delta-seconds or an
    HTTP-date (a date in the past is 0). A value that is not a number (or, in ``retry-after``,
    a date), is negative or is not finite is ignored: the next header, then the caller's own
    backoff decide. One above ``MAX_RETRY_AFTER`` is cut to it. ``now`` (epoch seconds) is for
    tests.
    """
    if not headers:
        return None
    milliseconds = _number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return min(milliseconds / 1000, MAX_RETRY_AFTER)
    value = headers.get("retry-after")
    seconds = _number(value)
    if seconds is None and value:
        seconds = _until(value, time.time() if now is None else now)
    return None if seconds is None else min(seconds, MAX_RETRY_AFTER)


def _number(value: str | None) -> float | None:
    """A non-negative finite number, or None."""
    try:
        number = float(value or "")
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _until(value: str, now: float) -> float | None:
    """Seconds from ``now`` to an HTTP-date (0 when it is past), or None if it is not one."""
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000"; HTTP-dates are always GMT
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)
