"""The loops people use today, written as they would be: straight on the official SDK.

Each returns a ``LoopRun`` (text, calls, summed usage, cost at catalogue prices, why it
stopped, and the error that ended it if one did). None uses autocontinue's engine; the cost
comes from the usage the API reported, priced by ``autocontinue.catalogue.price_usage``
exactly as the emulator bills it.

- ``seed_loop``: prefill continuation (the partial answer sent back as a final assistant
  message, trailing whitespace stripped because the API rejects it), 4,096 tokens per call,
  no prompt caching, repeated until the model ends its turn.
- ``user_turn_loop``: the same loop continued by a user turn instead of a prefill; the
  nearest equivalent of the seed loop on a model that rejects prefill.
- ``cookbook_loop``: the official cookbook's recipe: cut the text back to its last
  whitespace, send [prompt, assistant: text, user: "continue exactly where you stopped..."],
  no caching, at most 6 rounds.
- ``one_call``: one streaming call with ``max_tokens`` as large as the answer (the lower bound).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from autocontinue.catalogue import lookup_model, price_usage
from autocontinue.usage import Usage

__all__ = ["LoopRun", "seed_loop", "user_turn_loop", "cookbook_loop", "one_call", "CONTINUE_INSTRUCTION"]

#: The cookbook's continuation instruction (shared/reference/anthropic-api.md).
CONTINUE_INSTRUCTION = (
    "Continue exactly where you stopped. Do not repeat anything; "
    "your reply is appended directly to the text above."
)


@dataclass
class LoopRun:
    """What one baseline loop produced and paid."""

    text: str
    calls: int
    usage: Usage
    cost_usd: float
    #: "end_turn" when the answer is finished; "max_rounds" when the loop gave up;
    #: "error" when the API refused a call (see ``error``).
    stop: str
    error: str | None = None
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _usage(raw: Any) -> Usage:
    return Usage(
        input_tokens=raw.input_tokens or 0,
        output_tokens=raw.output_tokens or 0,
        cache_creation_input_tokens=getattr(raw, "cache_creation_input_tokens", 0) or 0,
        cache_read_input_tokens=getattr(raw, "cache_read_input_tokens", 0) or 0,
    )


def _text(message: Any) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def _finish(
    model: str, text: str, calls: int, usage: Usage, stop: str, started: float, error: str | None = None
) -> LoopRun:
    cost = price_usage(lookup_model(model), usage)
    return LoopRun(text, calls, usage, cost, stop, error, time.perf_counter() - started)


def seed_loop(
    client: Any, prompt: str, *, model: str, max_tokens: int = 4096, max_calls: int = 1000
) -> LoopRun:
    """Prefill continuation, no caching, until end_turn (or the API refuses prefill)."""
    import anthropic

    started = time.perf_counter()
    text, usage, calls = "", Usage(), 0
    while calls < max_calls:
        messages = [{"role": "user", "content": prompt}]
        if text:
            messages.append({"role": "assistant", "content": text.rstrip()})
            text = text.rstrip()
        try:
            message = client.messages.create(model=model, max_tokens=max_tokens, messages=messages)
        except anthropic.BadRequestError as exc:
            return _finish(model, text, calls, usage, "error", started, error=exc.message)
        calls += 1
        usage = usage + _usage(message.usage)
        text += _text(message)
        if message.stop_reason != "max_tokens":
            return _finish(model, text, calls, usage, message.stop_reason or "end_turn", started)
    return _finish(model, text, calls, usage, "max_rounds", started)


def _user_turn_messages(prompt: str, text: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    if text:
        messages.append({"role": "assistant", "content": text.rstrip()})
        messages.append({"role": "user", "content": CONTINUE_INSTRUCTION})
    return messages


def _cut_to_whitespace(text: str) -> str:
    """The cookbook's cut: drop the half word after the last whitespace (it is regenerated).

    The caller strips the trailing whitespace too; the reply is appended directly.
    """
    cut = max(text.rfind(" "), text.rfind("\n"))
    return text[: cut + 1] if cut >= 0 else text


def user_turn_loop(
    client: Any,
    prompt: str,
    *,
    model: str,
    max_tokens: int = 4096,
    max_calls: int = 1000,
    max_rounds: int | None = None,
) -> LoopRun:
    """User-turn continuation, no caching, until end_turn or ``max_rounds`` calls."""
    import anthropic

    started = time.perf_counter()
    limit = min(max_calls, max_rounds or max_calls)
    text, usage, calls = "", Usage(), 0
    while calls < limit:
        try:
            message = client.messages.create(
                model=model, max_tokens=max_tokens, messages=_user_turn_messages(prompt, text)
            )
        except anthropic.BadRequestError as exc:  # e.g. the prompt outgrew the context window
            return _finish(model, text, calls, usage, "error", started, error=exc.message)
        calls += 1
        usage = usage + _usage(message.usage)
        piece = _text(message)
        text += piece
        if message.stop_reason != "max_tokens":
            return _finish(model, text, calls, usage, message.stop_reason or "end_turn", started)
        text = _cut_to_whitespace(text).rstrip()
    return _finish(model, text, calls, usage, "max_rounds", started)


def cookbook_loop(client: Any, prompt: str, *, model: str, max_tokens: int = 4096) -> LoopRun:
    """The cookbook recipe: user-turn continuation, no caching, at most 6 rounds."""
    return user_turn_loop(client, prompt, model=model, max_tokens=max_tokens, max_rounds=6)


def one_call(client: Any, prompt: str, *, model: str, max_tokens: int) -> LoopRun:
    """One streaming call asked for the whole answer: the lower bound on cost and time."""
    started = time.perf_counter()
    with client.messages.stream(
        model=model, max_tokens=max_tokens, messages=[{"role": "user", "content": prompt}]
    ) as stream:
        message = stream.get_final_message()
    return _finish(model, _text(message), 1, _usage(message.usage), message.stop_reason or "", started)
