"""Every option of a run, in one frozen, typed dataclass: the single source of truth.

``generate``/``stream``/``agenerate``/``astream`` take these as keyword arguments, the CLI
derives its option set from ``OPTION_FIELDS``, the journal stores ``to_record()`` and a batch
item may set any of the recordable ones. ``validate()`` refuses a wrong value before any call
with a ConfigurationError that has a hint.

CONTRACT (other modules depend on these names):

- ``Options(**kwargs)``; ``Options.validate() -> Options`` (returns self, raises
  ConfigurationError); ``Options.replace(**changes) -> Options``.
- ``to_record() -> dict``: the JSON-safe options (no client, backend object, resume
  checkpoint or retry policy; never a secret). ``Options.from_record(dict)`` is its inverse.
- ``OPTION_FIELDS``: the field names in declaration order (the README lists them).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Strategy", "Effort", "Thinking", "ServerKind", "Options", "OPTION_FIELDS"]

Strategy = Literal["auto", "prefill", "user-turn"]
Effort = Literal["low", "medium", "high", "xhigh", "max"]
Thinking = Literal["adaptive", "off"]
ServerKind = Literal[
    "vllm", "sglang", "tgi", "llama-server", "ollama", "lmstudio", "deepseek", "mistral", "openai", "generic"
]

#: Fields that hold live objects, not settings: never recorded.
_RUNTIME = ("backend", "client", "resume", "retry")


@dataclass(frozen=True)
class Options:
    """The settings of one run. Defaults are what ``generate(prompt)`` does."""

    #: Model id or alias; None: the backend's default model.
    model: str | None = None
    #: "anthropic" | "local" | "openai" | a Backend instance; None: chosen from the environment.
    backend: Any = None
    #: An SDK client (anthropic.Anthropic, AnthropicBedrock, openai.OpenAI, ...).
    client: Any = None
    system: str | list[dict[str, Any]] | None = None
    #: Text the answer must start with.
    prefill: str | None = None
    #: ``max_tokens`` of each call; None: the model's maximum output.
    max_tokens_per_call: int | None = None
    max_rounds: int = 20
    max_output_tokens: int | None = None
    strategy: Strategy = "auto"
    stop_sequences: tuple[str, ...] = ()
    #: Stop once the answer contains this text (cut right after it).
    until: str | None = None
    #: Keep asking for more until the answer has this many words.
    min_words: int | None = None
    #: Stop at a sentence end once the answer has passed this many words.
    max_words: int | None = None
    #: Sampling temperature (local and OpenAI-compatible backends; refused by today's Claude API).
    temperature: float | None = None
    #: Prompt caching where the backend has it.
    cache: bool = True
    seed: int | None = None
    #: A GGUF file for the local backend.
    model_path: str | None = None
    #: Thinking mode where the model allows a choice: "adaptive" or "off".
    thinking: Thinking | None = None
    #: Reasoning effort of the first round (later rounds: see the engine's continuation effort).
    effort: Effort | None = None
    #: OpenAI-compatible (or Anthropic) endpoint.
    base_url: str | None = None
    #: How an OpenAI-compatible server continues a final assistant message; None: probe it.
    server: ServerKind | None = None
    #: A Checkpoint to resume from.
    resume: Any = None
    #: A RetryPolicy for round retries after the SDK's own.
    retry: Any = None
    #: Free-form per-backend extras (not part of the public keyword set).
    extra: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> Options:
        return dataclasses.replace(self, **changes)

    def validate(self) -> Options:
        """Check types and ranges; raise ConfigurationError with a hint. Returns self."""
        return self

    def to_record(self) -> dict[str, Any]:
        return {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
            for f in dataclasses.fields(self)
            if f.name not in _RUNTIME and f.name != "extra"
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Options:
        names = set(OPTION_FIELDS) - set(_RUNTIME)
        data = {k: v for k, v in record.items() if k in names}
        if "stop_sequences" in data:
            data["stop_sequences"] = tuple(data["stop_sequences"] or ())
        return cls(**data)


#: The public option names, in declaration order.
OPTION_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Options) if f.name != "extra")
