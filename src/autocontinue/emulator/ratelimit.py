"""Rate limits: token buckets for requests and output tokens per minute, on the emulator clock.

``--rpm N`` allows N requests a minute, ``--otpm N`` N output tokens a minute; each bucket
holds a minute's worth and refills continuously. A request needs one request token and a
positive output-token balance; its output tokens are taken when it is answered (so one long
answer can drive the balance below zero, and later requests wait, as with the real API).
Refused requests get 429 ``rate_limit_error`` with ``retry-after`` (whole seconds until the
bucket allows one more). Every response carries ``anthropic-ratelimit-{requests,tokens,
input-tokens,output-tokens}-{limit,remaining,reset}`` (reset as an RFC 3339 time: when the
bucket will be full again); unlimited kinds report generous fixed limits, like a large tier.
"""

from __future__ import annotations

import math
import threading
from datetime import datetime, timezone

from .request import ApiError

__all__ = ["Bucket", "RateLimiter"]

DEFAULT_RPM = 4000
DEFAULT_ITPM = 2_000_000
DEFAULT_OTPM = 400_000


def rfc3339(timestamp: float, *, micro: bool = False) -> str:
    """RFC 3339 in UTC, to the second (rate-limit resets) or the microsecond (``micro``: how the
    API dates a batch, ``2024-08-20T18:37:24.100435Z``)."""
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ"
    )


class Bucket:
    """``limit`` per minute, refilled continuously; may go negative."""

    def __init__(self, limit: int, now: float) -> None:
        self.limit = limit
        self.level = float(limit)
        self.stamp = now

    def refill(self, now: float) -> None:
        self.level = min(self.limit, self.level + (now - self.stamp) * self.limit / 60.0)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until the level reaches ``amount``."""
        missing = amount - self.level
        return max(0.0, missing * 60.0 / self.limit) if self.limit else math.inf

    def full_at(self, now: float) -> float:
        return now + self.wait_for(self.limit)


class RateLimiter:
    """Enforces ``rpm``/``otpm`` (None = unlimited) and writes the rate-limit headers."""

    def __init__(self, clock, rpm: int | None = None, otpm: int | None = None) -> None:
        self.clock = clock
        self.rpm = rpm
        self.otpm = otpm
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        now = self.clock.now()
        with self._lock:
            self.requests = Bucket(self.rpm or DEFAULT_RPM, now)
            self.output = Bucket(self.otpm or DEFAULT_OTPM, now)

    def admit(self, model: str) -> None:
        """Take one request token, or raise the 429 the API would send."""
        now = self.clock.now()
        with self._lock:
            self.requests.refill(now)
            self.output.refill(now)
            if self.rpm and self.requests.level < 1:
                self._refuse(self.requests.wait_for(1), f"{self.rpm} requests per minute", model)
            if self.otpm and self.output.level <= 0:
                self._refuse(self.output.wait_for(1), f"{self.otpm} output tokens per minute", model)
            self.requests.level -= 1

    def _refuse(self, wait: float, what: str, model: str) -> None:
        message = (
            f"This request would exceed the rate limit for your organization of {what} (model: {model}). "
            "For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response "
            "headers for current usage. Please reduce the prompt length or the maximum tokens requested, "
            "or try again later."
        )
        raise ApiError(429, "rate_limit_error", message, {"retry-after": str(max(1, math.ceil(wait)))})

    def spend_output(self, tokens: int) -> None:
        with self._lock:
            self.output.refill(self.clock.now())
            self.output.level -= tokens

    def headers(self) -> dict[str, str]:
        now = self.clock.now()
        with self._lock:
            self.requests.refill(now)
            self.output.refill(now)
            req, out = self.requests, self.output
            out_remaining = max(0, int(out.level))
            req_remaining = max(0, int(req.level))
            req_reset, out_reset, now_text = (
                rfc3339(req.full_at(now)),
                rfc3339(out.full_at(now)),
                rfc3339(now),
            )
        tokens_limit = DEFAULT_ITPM + out.limit
        return {
            "anthropic-ratelimit-requests-limit": str(req.limit),
            "anthropic-ratelimit-requests-remaining": str(req_remaining),
            "anthropic-ratelimit-requests-reset": req_reset,
            "anthropic-ratelimit-input-tokens-limit": str(DEFAULT_ITPM),
            "anthropic-ratelimit-input-tokens-remaining": str(DEFAULT_ITPM),
            "anthropic-ratelimit-input-tokens-reset": now_text,
            "anthropic-ratelimit-output-tokens-limit": str(out.limit),
            "anthropic-ratelimit-output-tokens-remaining": str(out_remaining),
            "anthropic-ratelimit-output-tokens-reset": out_reset,
            "anthropic-ratelimit-tokens-limit": str(tokens_limit),
            "anthropic-ratelimit-tokens-remaining": str(DEFAULT_ITPM + out_remaining),
            "anthropic-ratelimit-tokens-reset": out_reset,
        }
