"""What Message Batches change about a model: half prices, and 300k output on some models.

Shared by the client (``--via batches``) and the emulator's Batches endpoints, so both agree.
The 300k-output beta (header ``output-300k-2026-03-24``) exists only in Message Batches and
only on the models listed in ``shared/reference/anthropic-api.md`` ("Late 2026"); the
catalogue's ``batch_300k`` flag wins when a ModelSpec has it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..catalogue import ModelSpec

__all__ = ["BETA_300K", "BATCH_MAX_OUTPUT", "BATCH_DISCOUNT", "allows_300k", "batch_spec"]

BETA_300K = "output-300k-2026-03-24"
BATCH_MAX_OUTPUT = 300_000
#: Message Batches bill every token at half the price.
BATCH_DISCOUNT = 0.5

_300K_MODELS = frozenset(
    {
        "claude-opus-5-5",
        "claude-opus-5",
        "claude-sonnet-5-5",
        "claude-sonnet-5",
        "claude-haiku-5-5",
        "claude-opus-4-8",
        "claude-opus-4-7",
        "claude-opus-4-6",
        "claude-sonnet-4-6",
    }
)


def allows_300k(spec: ModelSpec) -> bool:
    flag = getattr(spec, "batch_300k", None)
    if isinstance(flag, bool):
        return flag
    return spec.id in _300K_MODELS


def batch_spec(spec: ModelSpec, *, beta_300k: bool) -> ModelSpec:
    """``spec`` as a Message Batches request sees it: half prices, 300k output if enabled."""
    max_output = BATCH_MAX_OUTPUT if beta_300k and allows_300k(spec) else spec.max_output
    prices = {f.name: _half(getattr(spec, f.name)) for f in dataclasses.fields(spec) if "price" in f.name}
    return dataclasses.replace(spec, max_output=max_output, **prices)


def _half(value: Any) -> Any:
    """A price, a tuple of prices or a price table at the batch discount (flags untouched)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value * BATCH_DISCOUNT
    if isinstance(value, tuple):
        return tuple(_half(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(
            value, **{f.name: _half(getattr(value, f.name)) for f in dataclasses.fields(value)}
        )
    return value
