"""Totals since start or ``POST /emulator/reset``, served by ``GET /emulator/stats``.

Billing rule: a request is billed when its response completes (a non-streaming 200, or a
stream that reached ``message_stop``), with exactly the usage that response reported, priced by
``autocontinue.catalogue.price_usage`` at the model's catalogue prices (its own cache write and
read prices; Haiku 5.5's higher tier when the request's prompt is over 100k tokens).
Thinking is part of ``output_tokens`` (billed as output); ``thinking_tokens`` counts it apart
(the API does not report it; the emulator knows it). ``models`` breaks the totals down per model
with ``long_tier_requests``, the requests billed at a long-prompt tier. Error responses and broken streams (a dropped
connection, an in-stream error) bill nothing; they count in ``errors``. ``requests`` counts
every ``POST /v1/messages``. A client that adds up the usage it received gets the same cost.
"""

from __future__ import annotations

import threading

from ..catalogue import ModelSpec, price_usage
from ..usage import Usage

__all__ = ["Stats"]


class Stats:
    """Thread-safe running totals."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.errors = 0
            self.usage = Usage()
            self.cost_usd = 0.0
            self.models: dict[str, dict[str, float]] = {}

    def count_request(self) -> int:
        """Count a request; returns its 1-based number since start or reset."""
        with self._lock:
            self.requests += 1
            return self.requests

    def count_error(self) -> None:
        with self._lock:
            self.errors += 1

    def bill(self, spec: ModelSpec, usage: Usage) -> None:
        cost = price_usage(spec, usage)
        long_tier = spec.prices_for(usage.total_input_tokens) is not spec.prices
        with self._lock:
            self.usage = self.usage + usage
            self.cost_usd += cost
            row = self.models.setdefault(spec.id, {"requests": 0, "cost_usd": 0.0, "long_tier_requests": 0})
            row["requests"] += 1
            row["cost_usd"] += cost
            row["long_tier_requests"] += int(long_tier)

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "requests": self.requests,
                "errors": self.errors,
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
                "thinking_tokens": self.usage.thinking_tokens,
                "cache_creation_input_tokens": self.usage.cache_creation_input_tokens,
                "cache_read_input_tokens": self.usage.cache_read_input_tokens,
                "cost_usd": self.cost_usd,
                "models": {name: dict(row) for name, row in self.models.items()},
            }
