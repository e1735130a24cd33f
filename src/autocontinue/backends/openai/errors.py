"""OpenAI SDK and transport errors mapped once into the ``autocontinue.errors`` tree.

Context-window errors carry the numbers the server's message gives as fields
(``prompt_tokens``, ``context_window``; ``max_tokens_allowed`` for a too-large max_tokens), so
the engine can shrink the next call instead of failing (see ``Engine.on_limit``); the message
says them too, as ``P + M > C`` or ``max_tokens: M > L``.
"""

from __future__ import annotations

import re
from typing import Any

from ...errors import (
    AuthenticationError,
    BackendError,
    ContextWindowError,
    InvalidRequestError,
    MaxTokensExceededError,
    StreamInterruptedError,
    TransientBackendError,
    UnknownModelError,
)
from ..base import retry_after

__all__ = ["map_error"]

_CONTEXT_MARKERS = (
    "maximum context length",
    "context_length_exceeded",
    "exceed_context_size",
    "exceeds the available context size",
    "exceed context window",
    "context window of",
    "too many tokens",
)
#: OpenAI / older vLLM: "maximum context length is C tokens. However, you requested T tokens (P in
#: the messages, M in the completion)".
_REQUESTED = re.compile(
    r"maximum context length is (\d+) tokens.*?\((\d+) in the messages, (\d+) in the completion"
)
#: Newer vLLM: "... too large: M. This model's maximum context length is C tokens and your
#: request has P input tokens".
_TOO_LARGE = re.compile(
    r"too large: (\d+)\. This model's maximum context length is (\d+) tokens and your request has (\d+)"
)
#: llama-cpp-python: "Requested tokens (P) exceed context window of C".
_REQUESTED_TOKENS = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")
#: OpenAI: "max_tokens is too large: M. This model supports at most L completion tokens".
_AT_MOST = re.compile(r"too large: (\d+)\. This model supports at most (\d+) completion tokens")


def _body(error: Any) -> dict[str, Any]:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error")
        return inner if isinstance(inner, dict) else body
    return {}


def _message(error: Any, body: dict[str, Any]) -> str:
    message = body.get("message")
    return str(message) if message else str(getattr(error, "message", None) or error)


def _limits(message: str, body: dict[str, Any], max_tokens: int) -> tuple[str, dict[str, int]]:
    """`` (P + M > C)`` or `` (max_tokens: M > L)`` when the numbers are known, else '', and
    the same numbers as the error's fields (prompt_tokens, context_window / max_tokens_allowed)."""
    if match := _REQUESTED.search(message):
        window, prompt, completion = map(int, match.groups())
    elif match := _TOO_LARGE.search(message):
        completion, window, prompt = map(int, match.groups())
    elif match := _REQUESTED_TOKENS.search(message):
        prompt, window = map(int, match.groups())
        completion = max_tokens
    elif match := _AT_MOST.search(message):
        asked, allowed = map(int, match.groups())
        return f" (max_tokens: {asked} > {allowed})", {"max_tokens_allowed": allowed}
    elif isinstance(body.get("n_prompt_tokens"), int) and isinstance(body.get("n_ctx"), int):
        prompt, window, completion = body["n_prompt_tokens"], body["n_ctx"], max_tokens  # llama-server's
    else:
        return "", {}
    return f" ({prompt} + {completion} > {window})", {"prompt_tokens": prompt, "context_window": window}


def map_error(error: Exception, *, model: str, max_tokens: int = 0, text_received: str = "") -> Exception:
    """Convert an SDK or transport error into the autocontinue tree (returns it, to raise)."""
    import openai

    status = getattr(error, "status_code", None)
    body = _body(error)
    message = _message(error, body)
    error_type = body.get("type") if isinstance(body.get("type"), str) else None
    common: dict[str, Any] = {"status_code": status, "request_id": getattr(error, "request_id", None)}
    common["error_type"] = error_type
    transient = (
        not isinstance(error, openai.APIStatusError) or status in (408, 409, 429) or (status or 0) >= 500
    )
    if transient and text_received:
        return StreamInterruptedError(
            f"the stream broke after {len(text_received)} characters: {message}",
            retry_after=retry_after(error),
            **common,
        )
    if transient:
        return TransientBackendError(message, retry_after=retry_after(error), **common)
    if status in (401, 403):
        return AuthenticationError(message, hint="check OPENAI_API_KEY (or the client's api_key)", **common)
    lowered = f"{message} {body.get('code', '')} {error_type or ''}".lower()
    if any(marker in lowered for marker in _CONTEXT_MARKERS):
        numbers, limits = _limits(message, body, max_tokens)
        return ContextWindowError(message + numbers, **limits, **common)
    if _AT_MOST.search(message):
        numbers, limits = _limits(message, body, max_tokens)
        return MaxTokensExceededError(message + numbers, **limits, **common)
    if status == 404:
        return UnknownModelError(
            f"the server does not know model {model!r} or the URL ({message})",
            hint="check --model and that --base-url ends in /v1",
        )
    if status in (400, 422):
        return InvalidRequestError(message, **common)
    return BackendError(message, **common)
