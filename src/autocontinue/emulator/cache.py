"""Prompt caching as the API bills it, on an injectable clock.

A block with ``cache_control`` (system, user or assistant; at most 4 per request) is a
breakpoint. The prefix ending at a breakpoint (every block up to and including it, in order:
system, then messages) is written to the cache when it holds at least the model's
``min_cacheable`` tokens; shorter prefixes are silently not cached.

Lookup, per breakpoint: the prefixes ending at that block and at each of the 20 blocks before
it are checked, and the longest one found in the cache is read. Billing of the request:

* ``cache_read_input_tokens``: tokens of the longest cached prefix found;
* ``cache_creation_input_tokens``: tokens from there up to the last cacheable breakpoint,
  each stretch between breakpoints priced by its breakpoint's ``ttl`` (``5m`` default, ``1h``),
  reported as ``cache_creation.ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``;
* ``input_tokens``: the rest.

Entries live 5 minutes or 1 hour on the emulator's clock; a read refreshes the lifetime.
Writes and refreshes take effect when the response completes (like billing), so a failed
request leaves the cache as it was. Entries are per model.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field

from .request import PromptBlock

__all__ = ["SystemClock", "ManualClock", "CacheOutcome", "PromptCache", "LOOKBACK_BLOCKS", "TTL_SECONDS"]

LOOKBACK_BLOCKS = 20
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


class SystemClock:
    """Wall-clock seconds since the epoch, plus an offset that ``advance`` moves forward.

    ``POST /emulator/clock`` with ``{"advance": 301}`` moves it over HTTP (to expire cache
    entries or refill rate-limit buckets without waiting).
    """

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class ManualClock:
    """A clock that only moves when told to (``advance``); for tests."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@dataclass
class CacheOutcome:
    """How a request's prompt splits into read, written and plain input tokens."""

    read_tokens: int = 0
    write_5m: int = 0
    write_1h: int = 0
    #: (prefix hash, ttl) of each entry to store on completion.
    writes: list[tuple[str, str]] = field(default_factory=list)
    #: Hash of the entry that was read, to refresh on completion.
    read_hash: str | None = None

    @property
    def creation_tokens(self) -> int:
        return self.write_5m + self.write_1h


def prefix_hashes(model: str, blocks: list[PromptBlock]) -> list[str]:
    """A running hash after each block: equal hashes mean equal prefixes."""
    running = hashlib.sha256(model.encode())
    out = []
    for block in blocks:
        running.update(b"\x1e" + block.role.encode() + b"\x1f" + block.key.encode("utf-8", "surrogatepass"))
        out.append(running.copy().hexdigest())
    return out


class PromptCache:
    """Prefix hash -> (expiry time, ttl)."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self._entries: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _alive(self, key: str, now: float) -> bool:
        entry = self._entries.get(key)
        return entry is not None and entry[0] > now

    def plan(self, model: str, blocks: list[PromptBlock], min_cacheable: int) -> CacheOutcome:
        """Split the prompt into read / written / plain tokens (no state change)."""
        breakpoints = [i for i, block in enumerate(blocks) if block.cache_control is not None]
        if not breakpoints:
            return CacheOutcome()
        hashes = prefix_hashes(model, blocks)
        cumulative = []
        total = 0
        for block in blocks:
            total += block.tokens
            cumulative.append(total)
        now = self.clock.now()
        outcome = CacheOutcome()
        with self._lock:
            for bp in breakpoints:
                for j in range(bp, max(-1, bp - LOOKBACK_BLOCKS - 1), -1):
                    if self._alive(hashes[j], now) and cumulative[j] > outcome.read_tokens:
                        outcome.read_tokens = cumulative[j]
                        outcome.read_hash = hashes[j]
                        break
        written_to = outcome.read_tokens
        for bp in breakpoints:
            if cumulative[bp] <= written_to or cumulative[bp] < min_cacheable:
                continue
            ttl = (blocks[bp].cache_control or {}).get("ttl", "5m")
            stretch = cumulative[bp] - written_to
            if ttl == "1h":
                outcome.write_1h += stretch
            else:
                outcome.write_5m += stretch
            outcome.writes.append((hashes[bp], ttl))
            written_to = cumulative[bp]
        return outcome

    def commit(self, outcome: CacheOutcome) -> None:
        """Store the writes and refresh the entry read."""
        now = self.clock.now()
        with self._lock:
            if outcome.read_hash is not None and outcome.read_hash in self._entries:
                ttl = self._entries[outcome.read_hash][1]
                self._entries[outcome.read_hash] = (now + TTL_SECONDS[ttl], ttl)
            for key, ttl in outcome.writes:
                self._entries[key] = (now + TTL_SECONDS[ttl], ttl)
