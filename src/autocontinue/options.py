"""Every option of a run, in one frozen, typed dataclass: the single source of truth.

``generate``/``stream``/``agenerate``/``astream`` take these as keyword arguments (their
signatures are derived from ``Options``), the CLI derives its option set from ``OPTION_FIELDS``,
the journal stores ``to_record()`` and a batch item may set any of the recordable ones.
``validate()`` refuses a wrong value before any call with a ConfigurationError that has a hint;
the type checks are read from the annotations, so a field's type is written once.

CONTRACT (other modules depend on these names):

- ``Options(**kwargs)`` (keyword-only); ``Options.validate() -> Options`` (returns self, raises
  ConfigurationError); ``Options.replace(**changes) -> Options``; ``Options.keywords()`` the
  fields as keyword arguments of ``generate``.
- ``to_record() -> dict``: the JSON-safe options (no client, backend object, resume
  checkpoint or retry policy; never a secret). ``Options.from_record(dict)`` is its inverse
  (keys it does not know are ignored: older records stay readable).
- ``OPTION_FIELDS``: the field names in declaration order (the README lists them);
  ``option_doc(name)``: the one-line description of a field.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Union
from urllib.parse import urlsplit

from .backends.base import Backend
from .errors import ConfigurationError
from .events import Checkpoint

if TYPE_CHECKING:
    from .engine import RetryPolicy

__all__ = [
    "Strategy",
    "Effort",
    "Thinking",
    "ServerKind",
    "BackendName",
    "Options",
    "OPTION_FIELDS",
    "option_doc",
]

Strategy = Literal["auto", "prefill", "user-turn"]
Effort = Literal["low", "medium", "high", "xhigh", "max"]
Thinking = Literal["adaptive", "off"]
ServerKind = Literal[
    "vllm", "sglang", "tgi", "llama-server", "ollama", "lmstudio", "deepseek", "mistral", "openai", "generic"
]
BackendName = Literal["anthropic", "local", "openai"]

#: Fields that may hold live objects, not settings: never recorded (the journal keeps the
#: backend's name beside the record itself).
_RUNTIME = ("backend", "client", "resume", "retry")


def _opt(default: Any, doc: str) -> Any:
    """A field with its one-line description (shown by ``help(generate)``; the CLI may reuse it)."""
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True, kw_only=True)
class Options:
    """The settings of one run. Defaults are what ``generate(prompt)`` does."""

    model: str | None = _opt(None, "model id or alias; None: the backend's default model")
    backend: BackendName | Backend | None = _opt(
        None, '"anthropic" | "local" | "openai" | a Backend instance; None: chosen from the environment'
    )
    client: Any = _opt(None, "an SDK client (anthropic.Anthropic, AnthropicBedrock, openai.OpenAI, ...)")
    system: str | list[dict[str, Any]] | None = _opt(None, "the system prompt (text or content blocks)")
    prefill: str | None = _opt(None, "text the answer must start with")
    max_tokens_per_call: int | None = _opt(None, "max_tokens of each call; None: the model's maximum output")
    max_rounds: int = _opt(20, "at most this many calls")
    max_output_tokens: int | None = _opt(None, "stop once the answer has used this many output tokens")
    strategy: Strategy = _opt("auto", '"auto" | "prefill" | "user-turn": how a cut answer is continued')
    stop_sequences: Sequence[str] = _opt((), "the model stops at any of these")
    until: str | None = _opt(None, "stop once the answer contains this text (cut right after it)")
    min_words: int | None = _opt(None, "keep asking for more until the answer has this many words")
    max_words: int | None = _opt(None, "stop at a sentence end once the answer has passed this many words")
    temperature: float | None = _opt(
        None,
        "sampling temperature, 0 to 1 (local and OpenAI-compatible backends; refused by the Claude 5 API)",
    )
    cache: bool = _opt(True, "prompt caching where the backend has it")
    seed: int | None = _opt(None, "sampling seed, any whole number (local backend: deterministic output)")
    model_path: str | None = _opt(None, "a GGUF file for the local backend")
    thinking: Thinking | None = _opt(None, '"adaptive" | "off": thinking where the model allows a choice')
    effort: Effort | None = _opt(
        None, '"low" | "medium" | "high" | "xhigh" | "max": effort of the first round'
    )
    base_url: str | None = _opt(None, "the endpoint of an OpenAI-compatible (or Anthropic) server")
    server: ServerKind | None = _opt(
        None, "how an OpenAI-compatible server continues a final assistant message; None: probe it"
    )
    resume: Checkpoint | None = _opt(None, "a Checkpoint to resume from")
    retry: RetryPolicy | None = _opt(None, "a RetryPolicy for round retries after the SDK's own")

    def __post_init__(self) -> None:
        # The forms a caller naturally passes, kept as one immutable shape.
        stops = self.stop_sequences
        if stops is None:
            stops = ()
        elif isinstance(stops, str):
            stops = (stops,)
        elif isinstance(stops, list):
            stops = tuple(stops)
        object.__setattr__(self, "stop_sequences", stops)
        if isinstance(self.model_path, os.PathLike):
            object.__setattr__(self, "model_path", os.fspath(self.model_path))

    def replace(self, **changes: Any) -> Options:
        return dataclasses.replace(self, **changes)

    def keywords(self) -> dict[str, Any]:
        """The fields as keyword arguments of ``generate`` (live objects kept as they are)."""
        return {name: getattr(self, name) for name in OPTION_FIELDS}

    def validate(self) -> Options:
        """Check types and ranges; raise ConfigurationError with a hint. Returns self."""
        for name, hint in _field_types().items():
            _check_type(name, getattr(self, name), hint)
        _check_client(self.client)
        _check_ranges(self)
        return self

    def to_record(self) -> dict[str, Any]:
        """The settings as JSON-safe values (no backend, client, checkpoint or retry policy)."""
        record = {name: getattr(self, name) for name in OPTION_FIELDS if name not in _RUNTIME}
        record["stop_sequences"] = list(self.stop_sequences)
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Options:
        names = set(OPTION_FIELDS) - set(_RUNTIME)
        return cls(**{k: v for k, v in record.items() if k in names})


#: The public option names, in declaration order.
OPTION_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Options))


def option_doc(name: str) -> str:
    """The one-line description of option ``name``."""
    return str(_FIELDS[name].metadata["doc"])


_FIELDS = {f.name: f for f in dataclasses.fields(Options)}


# -- validation ------------------------------------------------------------------------------


@functools.cache
def _field_types() -> dict[str, Any]:
    from .engine import RetryPolicy  # the engine imports this module: resolved on first use

    return typing.get_type_hints(Options, localns={"RetryPolicy": RetryPolicy})


def _check_type(name: str, value: Any, hint: Any) -> None:
    if _conforms(value, hint):
        return
    choices = _choices(hint)
    if choices and isinstance(value, str):
        names = [repr(c) for c in choices]
        raise ConfigurationError(
            f"unknown {name} {value!r}", hint=f"use {', '.join(names[:-1])} or {names[-1]}"
        )
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise ConfigurationError(
        f"{name} must be {_describe(hint)}, got {shown}", hint=f"{name}: {option_doc(name)}"
    )


def _choices(hint: Any) -> tuple[str, ...]:
    """The strings a Literal in ``hint`` allows (empty if none)."""
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    return tuple(c for arg in typing.get_args(hint) for c in _choices(arg))


def _conforms(value: Any, hint: Any) -> bool:
    """Whether ``value`` has type ``hint`` (the subset of typing the options use)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_conforms(value, arg) for arg in args)
    if origin is Literal:
        return isinstance(value, str) and value in args
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple, Sequence):
        return isinstance(value, (list, tuple)) and all(_conforms(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    return isinstance(value, origin or hint)


def _describe(hint: Any) -> str:
    """``hint`` in words, for an error message."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple, Sequence):
        return f"a list of {_describe(args[0]).removeprefix('a ')}s"
    words = {
        type(None): "None",
        str: "a string",
        int: "a whole number",
        float: "a number",
        bool: "True or False",
    }
    if hint in words:
        return words[hint]
    return "a dict" if origin is dict else f"a {getattr(hint, '__name__', hint)}"


def _check_client(client: Any) -> None:
    # Duck-typed, so no SDK is imported: Anthropic clients have .messages, OpenAI ones .chat.
    if client is not None and not (hasattr(client, "messages") or hasattr(client, "chat")):
        raise ConfigurationError(
            f"client must be an Anthropic or OpenAI SDK client, got {type(client).__name__}",
            hint="pass e.g. anthropic.Anthropic() or openai.OpenAI(), or drop client=",
        )


def _check_ranges(options: Options) -> None:
    for name in ("max_tokens_per_call", "max_rounds", "max_output_tokens", "min_words", "max_words"):
        value = getattr(options, name)
        if value is not None and value < 1:
            raise ConfigurationError(
                f"{name} must be a positive whole number, got {value}", hint=f"{name}: {option_doc(name)}"
            )
    o = options
    if o.min_words is not None and o.max_words is not None and o.min_words > o.max_words:
        raise ConfigurationError(
            f"min_words ({o.min_words}) is above max_words ({o.max_words})",
            hint="raise max_words or lower min_words",
        )
    if o.temperature is not None and not 0 <= o.temperature <= 1:
        raise ConfigurationError(
            f"temperature must be between 0 and 1, got {o.temperature}", hint="e.g. temperature=0.7"
        )
    if o.model is not None and not o.model.strip():
        raise ConfigurationError("model is empty", hint="give a model id, or None for the default")
    if o.until is not None and not o.until:
        raise ConfigurationError("until is empty", hint="give the text to stop at, or None")
    if any(not s.strip() for s in o.stop_sequences):
        raise ConfigurationError("a stop sequence is empty or blank", hint="remove it")
    if o.thinking == "adaptive" and (o.prefill or o.strategy == "prefill"):
        raise ConfigurationError(
            "thinking cannot be combined with prefill",
            hint="drop prefill= and use strategy='user-turn' or 'auto', or thinking='off'",
        )
    _check_url(o.base_url)
    _check_text(o)


def _check_url(url: str | None) -> None:
    if url is None:
        return
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:
        ok = False
    if not ok:
        raise ConfigurationError(
            "base_url is not an http(s) URL", hint="e.g. base_url='http://127.0.0.1:8000/v1'"
        )


def _check_text(options: Options) -> None:
    """Refuse text that cannot be sent: a lone surrogate has no UTF-8 encoding."""
    for name in ("model", "system", "prefill", "until", "stop_sequences", "model_path", "base_url"):
        if not encodable(getattr(options, name)):
            raise ConfigurationError(
                f"{name} contains a lone surrogate (text that cannot be encoded as UTF-8)",
                hint="decode the text with errors='replace' (or fix its source) before passing it",
            )


def encodable(value: Any) -> bool:
    """Whether every string inside ``value`` (nested lists and dicts too) encodes as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(encodable(k) and encodable(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(encodable(v) for v in value)
    return True
