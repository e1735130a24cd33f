"""``--source local``: answer with the embedded local model instead of a fixed text.

The request's messages, system prompt, stop sequences and ``max_tokens`` go to
``autocontinue.backends.local.LocalBackend`` (SmolLM2 run by llama.cpp, seeded with the
emulator's seed) whatever model name the client asked for; its text comes back through the
same wire format, rules, caching and billing as the fixed answers. Token counts are the
emulator's own tokenizer's (so usage and billing stay consistent with the other sources).
Quirks and the fixed-answer continuation do not apply: the model continues as it can.
"""

from __future__ import annotations

import threading

from ..backends.base import RoundEnd, RoundRequest
from ..catalogue import LOCAL_DEFAULT_MODEL
from ..errors import AutocontinueError
from .continuation import Plan, _apply_stops
from .request import ApiError, ParsedRequest
from .tokenizer import token_starts

__all__ = ["local_plan"]

_lock = threading.Lock()


def _backend(emulator):
    with _lock:
        if emulator._local is None:
            from ..backends.local import LocalBackend

            emulator._local = LocalBackend(seed=emulator.config.seed)
        return emulator._local


def local_plan(emulator, parsed: ParsedRequest) -> Plan:
    """Run the local model on the request; blocking (call it from a worker thread)."""
    raw = parsed.raw
    request = RoundRequest(
        model=LOCAL_DEFAULT_MODEL,
        messages=raw["messages"],
        max_tokens=parsed.max_tokens,
        system=raw.get("system"),
        stop_sequences=parsed.stop_sequences,
        temperature=raw.get("temperature"),
        seed=emulator.config.seed,
    )
    pieces: list[str] = []
    end: RoundEnd | None = None
    try:
        for event in _backend(emulator).stream_round(request):
            if isinstance(event, RoundEnd):
                end = event
            else:
                pieces.append(event.text)
    except AutocontinueError as exc:
        raise ApiError(400, "invalid_request_error", exc.message) from None
    text = "".join(pieces)
    bounds = token_starts(text)
    if len(bounds) - 1 > parsed.max_tokens:
        bounds = bounds[: parsed.max_tokens + 1]
        text = text[: bounds[-1]]
    reason = end.stop_reason if end is not None else "end_turn"
    if end is not None and end.stop_reason == "stop_sequence":
        return Plan(text, bounds, len(bounds) - 1, "stop_sequence", end.stop_sequence)
    return _apply_stops(text, bounds, parsed.stop_sequences, reason)
