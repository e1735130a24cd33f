"""Pacing many calls under a service's rate limits: requests, input and output tokens a minute.

``Pacer`` keeps a local copy of the service's token buckets (each holds a minute's worth and
refills continuously). It learns the limits and what remains from the response headers
(``anthropic-ratelimit-*``, and the OpenAI-compatible ``x-ratelimit-*``), reserves each call's
expected tokens before it is sent and settles them when its usage arrives, and on a 429 stops
sending until ``retry-after`` has passed and slows to a fraction of the limit, ramping back up
with every call that succeeds (additive increase, multiplicative decrease). It does no I/O:
``wait_time`` says how long to wait, the caller sleeps; the clock is injected.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["KINDS", "Bucket", "Need", "Pacer", "limits_from_headers", "parse_duration"]

#: What a call spends: one request, its input tokens, its output tokens.
KINDS = ("requests", "input", "output")

_ANTHROPIC = {"requests": "requests", "input": "input-tokens", "output": "output-tokens"}
_OPENAI = {"requests": "requests", "input": "tokens"}
#: Slowest fraction of the limit after repeated 429s, and the step back up per good call.
MIN_RATE = 0.25
BACKOFF = 0.7
RAMP = 0.05


@dataclass
class Bucket:
    """``limit`` a minute, refilled continuously up to ``limit``; may go below zero."""

    limit: float
    level: float
    stamp: float

    def refill(self, now: float, rate: float) -> None:
        self.level = min(self.limit, self.level + (now - self.stamp) * self.limit * rate / 60.0)
        self.stamp = now

    def wait_for(self, amount: float, rate: float) -> float:
        """Seconds until the level reaches ``amount`` at ``rate`` times the limit."""
        missing = amount - self.level
        return missing * 60.0 / (self.limit * rate) if missing > 1e-9 else 0.0


@dataclass(frozen=True)
class Need:
    """What one call is expected to spend."""

    input: float = 0.0
    output: float = 0.0

    def get(self, kind: str) -> float:
        return 1.0 if kind == "requests" else self.input if kind == "input" else self.output


def parse_duration(text: str) -> float | None:
    """OpenAI-style reset durations (``1s``, ``6m0s``, ``20ms``) in seconds."""
    total, found = 0.0, False
    for number, unit in re.findall(r"([\d.]+)(ms|s|m|h)", text):
        found = True
        total += float(number) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    return total if found else None


def limits_from_headers(headers: Mapping[str, str]) -> dict[str, tuple[float, float]]:
    """``{kind: (limit, remaining)}`` for every kind the headers tell."""
    found: dict[str, tuple[float, float]] = {}
    for prefix, names in (("anthropic-ratelimit-", _ANTHROPIC), ("x-ratelimit-", _OPENAI)):
        for kind, name in names.items():
            if kind in found:
                continue
            limit = _number(headers.get(f"{prefix}{name}-limit") or headers.get(f"{prefix}limit-{name}"))
            remaining = _number(
                headers.get(f"{prefix}{name}-remaining") or headers.get(f"{prefix}remaining-{name}")
            )
            if limit and remaining is not None:
                found[kind] = (limit, remaining)
    return found


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


@dataclass
class Pacer:
    """Local token buckets that follow the service's, and the adaptive rate."""

    clock: Callable[[], float] = time.monotonic
    #: Limits given by the caller (a minute's worth per kind); headers override them.
    given: dict[str, float] = field(default_factory=dict)
    buckets: dict[str, Bucket] = field(default_factory=dict)
    #: Fraction of the limits to pace at (lowered by 429s, raised by good calls).
    rate: float = 1.0
    paused_until: float = 0.0
    #: Reserved, not yet settled, per kind.
    reserved: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 0.0))
    #: True once the service told its limits (before that, one call at a time).
    informed: bool = False
    in_flight: int = 0
    calls: int = 0
    throttled: int = 0
    #: Running mean of output tokens per call, for the next call's reservation.
    mean_output: float | None = None

    def __post_init__(self) -> None:
        now = self.clock()
        for kind, limit in self.given.items():
            self.buckets[kind] = Bucket(limit, limit, now)
        self.informed = bool(self.given)

    # -- before a call ----------------------------------------------------------------------

    def estimate(self, input_tokens: int, max_tokens: int) -> Need:
        """What a call may spend: the running mean of the output so far, or (before any call
        came back) all of ``max_tokens``, which continuation rounds mostly use; reserving less
        for the first wave let the local level run ahead of the service's, into 429s."""
        expected = self.mean_output if self.mean_output is not None else max_tokens
        return Need(input=float(input_tokens), output=float(min(max_tokens, expected)))

    def wait_time(self, need: Need) -> float:
        """Seconds to wait before a call needing ``need`` may go (0: go now)."""
        now = self.clock()
        if now < self.paused_until:
            return self.paused_until - now
        if not self.informed and self.in_flight:
            return 0.05  # learn the limits from the first answer before opening up
        wait = 0.0
        for kind, bucket in self.buckets.items():
            bucket.refill(now, self.rate)
            # The service admits a call while any output allowance is left (it counts the
            # output when the call completes); requests and input must fit.
            wanted = {"requests": 1.0, "input": min(need.input, bucket.limit), "output": 1e-9}[kind]
            wait = max(wait, bucket.wait_for(wanted, self.rate))
        return wait

    def take(self, need: Need) -> None:
        """The call goes now: reserve what it is expected to spend."""
        self.in_flight += 1
        self.calls += 1
        for kind in KINDS:
            self.reserved[kind] += need.get(kind)
            if kind in self.buckets:
                self.buckets[kind].level -= need.get(kind)

    # -- after a call -----------------------------------------------------------------------

    def observe(self, headers: Mapping[str, str]) -> None:
        """Fold a response's rate-limit headers in: the limits, and what the service has left."""
        told = limits_from_headers(headers)
        if not told:
            return
        now = self.clock()
        self.informed = True
        for kind, (limit, remaining) in told.items():
            bucket = self.buckets.get(kind)
            if bucket is None:
                # First news: the service counts output when a call completes, so what the
                # calls now in flight will write is still to come off what it has left.
                due = self.reserved["output"] if kind == "output" else 0.0
                self.buckets[kind] = Bucket(limit, min(limit, remaining - due), now)
                continue
            # The service's remaining output does not yet count what the calls in flight will
            # write (it takes output when a call completes), the local level does: compare like
            # with like. Later headers only ever lower the local level (a header is older than
            # some calls, and a service over its allowance reports 0, not how far below it is).
            due = self.reserved["output"] if kind == "output" else 0.0
            bucket.refill(now, self.rate)
            bucket.limit, bucket.level = limit, min(bucket.level, remaining - due)

    def settle(self, need: Need, output_tokens: int | None, input_tokens: int | None = None) -> None:
        """A call ended (``output_tokens`` None: it failed and spent nothing)."""
        self.in_flight = max(0, self.in_flight - 1)
        for kind in KINDS:
            self.reserved[kind] = max(0.0, self.reserved[kind] - need.get(kind))
        actual = {
            "requests": 1.0 if output_tokens is not None else 0.0,
            "input": float(
                input_tokens if input_tokens is not None else need.input if output_tokens is not None else 0
            ),
            "output": float(output_tokens or 0),
        }
        for kind, bucket in self.buckets.items():
            bucket.level += need.get(kind) - actual[kind]
        if output_tokens is not None:
            # An answer came back: its headers (if any) were read before it, so a service that
            # told no limits tells none; pace it by its 429s alone, not one call at a time.
            self.informed = True
            self.mean_output = (
                output_tokens if self.mean_output is None else 0.8 * self.mean_output + 0.2 * output_tokens
            )
            self.rate = min(1.0, self.rate + RAMP)

    def on_throttled(self, retry_after: float | None) -> None:
        """The service answered 429: pause, then go on at a lower rate."""
        self.throttled += 1
        self.rate = max(MIN_RATE, self.rate * BACKOFF)
        now = self.clock()
        pause = retry_after if retry_after is not None else 1.0
        self.paused_until = max(self.paused_until, now + pause)
        # The service is out of allowance until then (how far below zero it went, its headers
        # do not say): what refills during the pause is already owed.
        for bucket in self.buckets.values():
            bucket.refill(now, self.rate)
            bucket.level = min(bucket.level, -bucket.limit * self.rate / 60.0 * pause)
