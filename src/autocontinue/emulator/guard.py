"""The emulator's door: request size limits and the API key, checked before any route runs.

An ASGI middleware around the whole app, so every endpoint is covered, the control endpoints
(``/emulator/stats``, ``/emulator/reset``, ``/emulator/clock``) included:

* a body over the API's own limit is refused with 413 ``request_too_large`` before it is read
  (from ``content-length``) or as soon as it grows past the limit (chunked), never parsed. The
  limits are the documented ones: 32 MB for the Messages and Token Counting APIs, 256 MB for
  Message Batches (https://docs.anthropic.com/en/api/errors#request-size-limits); the message
  is the real one (``Request exceeds the maximum size``, anthropic-sdk-python issue 938). Like
  the real API (where Cloudflare answers 413 first), the size is checked before the key;
* with an API key set, a request without it (``x-api-key``, or ``Authorization: Bearer``) gets
  401 ``authentication_error`` on every path.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["MESSAGES_LIMIT", "BATCHES_LIMIT", "Guard", "body_limit"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

MB = 1024 * 1024
MESSAGES_LIMIT = 32 * MB
BATCHES_LIMIT = 256 * MB
# A refused body is read and dropped up to this much (then the connection is closed).
DRAIN_BUDGET = 1024 * MB


class TooLarge(Exception):
    """The body grew past its limit while it was being read."""


def body_limit(path: str) -> int:
    """The largest request body the API accepts on ``path``, in bytes."""
    return BATCHES_LIMIT if path.startswith("/v1/messages/batches") else MESSAGES_LIMIT


def given_key(headers: dict[bytes, bytes]) -> str | None:
    """The key a request carries: ``x-api-key``, else an ``Authorization: Bearer`` token."""
    key = headers.get(b"x-api-key")
    if key is not None:
        return key.decode("latin-1")
    auth = headers.get(b"authorization", b"").decode("latin-1")
    return auth[7:] if auth.lower().startswith("bearer ") else None


def key_problem(headers: dict[bytes, bytes], expected: str) -> str | None:
    """Why the request's key is refused (the API's message), or None when it is the right one."""
    key = given_key(headers)
    if key is None:
        return "x-api-key header is required"
    if not hmac.compare_digest(key.encode("utf-8", "surrogateescape"), expected.encode("utf-8")):
        return "invalid x-api-key"
    return None


def declared_length(headers: dict[bytes, bytes]) -> int | None:
    value = headers.get(b"content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


async def error(send: Send, status: int, error_type: str, message: str, extra: dict[str, str]) -> None:
    """Send an error in the API's shape, with a ``request-id``; closes the connection."""
    request_id = "req_011C" + os.urandom(10).hex()
    body = json.dumps(
        {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"request-id", request_id.encode()),
        (b"connection", b"close"),
        *((k.encode(), v.encode()) for k, v in extra.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def drain(receive: Receive, budget: int) -> None:
    """Read and drop the rest of a refused body (up to ``budget`` bytes), so the client, still
    writing, is not cut off before it reads the 413; nothing is kept."""
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        budget -= len(message.get("body", b""))


async def read_bounded(receive: Receive, limit: int) -> bytes:
    """The whole body, or TooLarge as soon as it passes ``limit`` (what was read is dropped)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            chunks.clear()
            if message.get("more_body", False):
                await drain(receive, DRAIN_BUDGET)
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then the connection's own messages (disconnects)."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def again() -> Message:
        return pending.pop() if pending else await receive()

    return again


async def too_large(send: Send) -> None:
    await error(send, 413, "request_too_large", "Request exceeds the maximum size", {})


class Guard:
    """Wraps an ASGI app: refuses oversized bodies, then requests without the key (if one is set)."""

    def __init__(self, app: App, *, api_key: str | None = None) -> None:
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        limit = body_limit(scope.get("path", ""))
        length = declared_length(headers)
        if length is not None and length > limit:
            await drain(receive, DRAIN_BUDGET)
            await too_large(send)
            return
        if length is None and scope.get("method") not in ("GET", "HEAD"):
            try:
                receive = replay(await read_bounded(receive, limit), receive)
            except TooLarge:
                await too_large(send)
                return
        if self.api_key is not None:
            problem = key_problem(headers, self.api_key)
            if problem is not None:
                await error(send, 401, "authentication_error", problem, {"x-should-retry": "false"})
                return
        await self.app(scope, receive, send)
