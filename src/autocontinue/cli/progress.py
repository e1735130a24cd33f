"""What the user sees on stderr: a live progress line (terminal only) and a one-line summary.

``Progress`` is a listener on engine events; it never touches stdout. The live line is drawn
with rich only when stderr is a terminal and stdout is not the same terminal showing the
streamed answer (a redrawn line there would tear the text); otherwise only notes (retries,
strategy changes) and the final summary are printed.
"""

from __future__ import annotations

import time
from typing import Any

from ..events import Finished, Result, Retrying, RoundFinished, RoundStarted, StrategyChanged, TextDelta
from .errors import BUDGET_STOPS
from .terminal import visible

__all__ = ["Progress", "summary_line", "progress_line", "cost_text"]

_BUDGET_HINTS = {
    "max_rounds": "raise --max-rounds",
    "max_output_tokens": "raise --max-output-tokens",
    "context_exhausted": "the context window is full; shorten the prompt",
}


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def cost_text(cost: float, known: bool, backend: str | None = None) -> str:
    """``$0.0123``; ``cost unknown`` when the model has no known prices (never a made-up
    ``$0``); ``$0 (local)`` for the local model, whose compute is the user's own."""
    if not known:
        return "cost unknown"
    if backend == "local" and not cost:
        return "$0 (local)"
    return f"${cost:.4f}"


def progress_line(
    *,
    round_index: int,
    strategy: str,
    tokens: int,
    elapsed: float,
    cost: float | None,
    cost_known: bool = True,
) -> str:
    """``round 3 · prefill · ~1,234 tokens · 52 tok/s · $0.0123`` (no cost before a round has
    reported one, ``cost unknown`` for a model without prices)."""
    rate = tokens / elapsed if elapsed > 0 else 0.0
    line = f"round {round_index + 1} · {strategy} · ~{tokens:,} tokens · {rate:.0f} tok/s"
    if cost is None:
        return line
    return f"{line} · {cost_text(cost, cost_known)}"


def summary_line(result: Result, *, elapsed: float | None = None) -> str:
    """One line for the end of a run: stop reason, rounds, tokens, cost, run id."""
    parts = [result.stop_reason or "stopped"]
    parts.append(_plural(len(result.rounds), "round"))
    stalled = getattr(result, "stalled_rounds", 0)
    if stalled:
        parts.append(f"{_plural(stalled, 'round')} added no text")
    parts.append(f"{result.usage.output_tokens:,} tokens out, {result.usage.total_input_tokens:,} in")
    if elapsed is not None:
        parts.append(f"{elapsed:.1f} s")
    parts.append(cost_text(result.cost_usd, result.cost_known, result.backend))
    if result.run_id:
        parts.append(f"run {result.run_id}")
    line = " · ".join(parts)
    if result.stop_reason in BUDGET_STOPS:
        line += f" (the answer may be incomplete: {_BUDGET_HINTS[result.stop_reason]})"
    return line


class Progress:
    """Listens to a run's events; shows a live line if ``live`` and notes unless ``quiet``."""

    def __init__(
        self,
        *,
        live: bool,
        quiet: bool,
        rounds_done: int = 0,
        cost_so_far: float = 0.0,
        tokens_so_far: int = 0,
        cost_known: bool = True,
    ) -> None:
        self.quiet = quiet
        self.live_enabled = live and not quiet
        self.started = time.monotonic()
        self._round = rounds_done
        self._strategy = ""
        self._chars = 0
        self._tokens_done = tokens_so_far
        #: The largest count shown so far: the estimate of a round in flight may exceed what
        #: the round then reports, and the line never counts backwards.
        self._tokens_shown = tokens_so_far
        self._cost = cost_so_far
        #: Whether a round has reported its cost yet, and whether every one knew its prices.
        self._cost_seen = rounds_done > 0
        self._cost_known = cost_known
        self._live: Any = None
        self._console: Any = None

    def __enter__(self) -> Progress:
        if self.live_enabled:
            from rich.console import Console
            from rich.live import Live

            self._console = Console(stderr=True)
            self._live = Live(
                self._render(),
                console=self._console,
                transient=True,
                refresh_per_second=4,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.__exit__(None, None, None)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def on_event(self, event: object) -> None:
        if isinstance(event, TextDelta):
            self._chars += len(event.text)
        elif isinstance(event, RoundStarted):
            self._round, self._strategy = event.index, event.strategy
        elif isinstance(event, RoundFinished):
            self._tokens_done += event.report.usage.output_tokens
            self._cost += event.report.cost_usd
            self._cost_seen = True
            self._cost_known = self._cost_known and event.report.cost_known
            self._chars = 0
        elif isinstance(event, Retrying):
            self.note(
                f"round {event.index + 1} failed ({event.error}); retry {event.attempt} in {event.delay_s:.1f} s"
            )
        elif isinstance(event, StrategyChanged):
            self.note(f"{event.model} refused {event.old} ({event.reason}); continuing with {event.new}")
        elif isinstance(event, Finished):
            self.close()
            return
        if self._live is not None:
            self._live.update(self._render())

    def note(self, line: str) -> None:
        """A one-line note on stderr (above the live line when there is one)."""
        if self.quiet:
            return
        from .errors import say

        if self._console is not None:
            self._console.print(visible(f"autocontinue: {line}"), markup=False, highlight=False)
        else:
            say(line)

    def shown_tokens(self) -> int:
        """Output tokens so far for the live line: an estimate inside a round, never lower
        than a count already shown."""
        self._tokens_shown = max(self._tokens_shown, self._tokens_done + self._chars // 4)
        return self._tokens_shown

    def _render(self) -> Any:
        from rich.text import Text

        tokens = self.shown_tokens()
        line = progress_line(
            round_index=self._round,
            strategy=visible(self._strategy) or "starting",
            tokens=tokens,
            elapsed=self.elapsed,
            cost=self._cost if self._cost_seen else None,
            cost_known=self._cost_known,
        )
        return Text(line, style="dim")
