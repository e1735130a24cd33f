"""An instant in-process backend that "writes" a fixed answer: for tests and benchmarks.

``ScriptedBackend(answer)`` behaves like a perfectly obedient model: each call continues
``answer`` from wherever the given assistant text ends in it (prefill or user turn alike),
stops at ``max_tokens`` (4 characters a token) and ends with ``end_turn`` at the end of the
answer. It does no I/O, so engine overhead can be measured on its own.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..catalogue import ModelSpec, lookup_model
from ..prefix import common_prefix_length
from ..usage import Usage
from .base import Backend, BackendDelta, BackendEvent, RoundEnd, RoundRequest

__all__ = ["ScriptedBackend", "assistant_text"]

CHARS_PER_TOKEN = 4


def assistant_text(request: RoundRequest) -> str:
    """The answer so far in a request: the text of its last assistant message."""
    for message in reversed(request.messages):
        if message["role"] == "assistant":
            content = message["content"]
            if isinstance(content, str):
                return content
            return "".join(block.get("text", "") for block in content)
    return ""


def _chars(content: object) -> int:
    if isinstance(content, str):
        return len(content)
    if not isinstance(content, list):
        return 0
    return sum(len(block.get("text", "")) for block in content if isinstance(block, dict))


class ScriptedBackend(Backend):
    """A model that always continues ``answer`` exactly (see module docstring)."""

    name = "scripted"

    def __init__(
        self,
        answer: str,
        *,
        model: str = "claude-sonnet-4-5",
        delta_chars: int = 64,
        spec: ModelSpec | None = None,
    ) -> None:
        self.answer = answer
        self.default_model = model
        self.delta_chars = delta_chars
        self.spec = spec
        self.calls = 0

    def model_spec(self, model: str) -> ModelSpec:
        return self.spec or lookup_model(model)

    def stream_round(self, request: RoundRequest) -> Iterator[BackendEvent]:
        self.calls += 1
        start = common_prefix_length(assistant_text(request), self.answer)
        end = min(len(self.answer), start + request.max_tokens * CHARS_PER_TOKEN)
        for i in range(start, end, self.delta_chars):
            yield BackendDelta(self.answer[i : min(end, i + self.delta_chars)])
        prompt_chars = sum(_chars(m["content"]) for m in request.messages)
        usage = Usage(
            input_tokens=prompt_chars // CHARS_PER_TOKEN + 1,
            output_tokens=(end - start + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN,
        )
        stop = "end_turn" if end >= len(self.answer) else "max_tokens"
        yield RoundEnd(stop_reason=stop, usage=usage)
