"""How far a batch is: items done, running and failed, tokens a second, dollars, time left.

A listener on every item's events (pure bookkeeping; the CLI draws ``line()``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..events import Event, RoundFinished, RoundStarted, TextDelta
from .output import ItemResult

__all__ = ["BatchProgress", "format_seconds"]


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


@dataclass
class BatchProgress:
    total: int
    #: Items already finished before this process started (a resumed batch).
    done: int = 0
    failed: int = 0
    budget_stops: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    #: Items started on a model whose prices are known, and on one whose prices are not.
    priced_items: int = 0
    unpriced_items: int = 0
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)
    _running: set[str] = field(default_factory=set)
    _streamed_chars: int = 0
    _done_here: int = 0

    def __post_init__(self) -> None:
        self.started = self.started or self.clock()

    @property
    def running(self) -> int:
        return len(self._running)

    def on_event(self, item_id: str, event: Event) -> None:
        if isinstance(event, RoundStarted):
            self._running.add(item_id)
        elif isinstance(event, TextDelta):
            self._streamed_chars += len(event.text)
        elif isinstance(event, RoundFinished):
            self.output_tokens += event.report.usage.output_tokens
            self.cost_usd += event.report.cost_usd

    def on_start(self, item_id: str, priced: bool) -> None:
        """An item's run begins on a model whose prices are known (or not)."""
        if priced:
            self.priced_items += 1
        else:
            self.unpriced_items += 1

    def cost_text(self) -> str:
        """Dollars so far; "cost unknown" for models nobody has prices for, never $0."""
        if self.unpriced_items:
            return f"${self.cost_usd:.4f} + unknown" if self.priced_items else "cost unknown"
        if not self.priced_items and not self.cost_usd:
            return "cost -"  # nothing has started yet: not known to be priced
        return f"${self.cost_usd:.4f}"

    def on_item(self, result: ItemResult, status: str, *, counted: bool = True) -> None:
        """An item ended; ``counted`` False for items finished in an earlier process."""
        self._running.discard(result.id)
        if status == "failed":
            self.failed += 1
        else:
            self.done += 1
        if counted:
            self._done_here += 1
        else:
            self.cost_usd += result.cost_usd
            self.on_start(result.id, result.cost_known)
        if result.stop_reason in ("max_rounds", "max_output_tokens", "context_exhausted"):
            self.budget_stops += 1

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def eta(self) -> float | None:
        left = self.total - self.done - self.failed
        if not self._done_here or left <= 0:
            return None
        return self.elapsed / self._done_here * left

    def line(self) -> str:
        elapsed = self.elapsed
        rate = self.output_tokens / elapsed if elapsed > 0 else 0.0
        eta = self.eta()
        parts = [
            f"{self.done}/{self.total} done",
            f"{self.running} running",
            f"{self.failed} failed",
            f"{rate:,.0f} tok/s",
            self.cost_text(),
            f"ETA {format_seconds(eta)}" if eta is not None else "ETA -",
        ]
        return " · ".join(parts)
