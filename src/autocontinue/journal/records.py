"""A run as the journal holds it, run ids, redaction, and which process owns a run."""

from __future__ import annotations

import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..events import Checkpoint, Result, RoundReport
from ..usage import Usage

__all__ = [
    "RUN_STATES",
    "RunRecord",
    "new_run_id",
    "redact_url",
    "redact_request",
    "process_start",
    "owner_alive",
]

RUN_STATES = ("running", "finished", "failed", "interrupted")

#: Request keys that may hold a secret; they never reach the file.
_SECRET_KEYS = {"api_key", "auth_token", "authorization", "headers", "default_headers", "client", "x-api-key"}

#: A run marked running by a process on another host counts as alive this long after its
#: last write (its pid cannot be checked from here).
REMOTE_LOCK_S = 600.0


def new_run_id(now: float | None = None) -> str:
    """Short, sortable, unique enough: ``20261125-153012-a1b2`` (UTC time + 4 random hex)."""
    stamp = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc)
    return f"{stamp:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def redact_url(url: str) -> str:
    """The URL without user:password and without a query string (tokens hide there)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    host = parts.hostname or ""
    if port:
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact_request(request: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``request`` that is safe to store: no keys, headers or clients; clean URLs."""
    clean: dict[str, Any] = {}
    for key, value in request.items():
        if key.lower() in _SECRET_KEYS:
            continue
        if isinstance(value, str) and "://" in value and key.endswith("url"):
            value = redact_url(value)
        clean[key] = value
    return clean


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None if unknown.

    Together with the pid it names one process: a pid reused by a later process has another
    start time.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def owner_alive(host: str | None, pid: int | None, started: str | None, updated: float) -> bool:
    """True if the process recorded as a run's owner may still be working on it."""
    if not pid:
        return False
    if host != socket.gethostname():
        return time.time() - updated < REMOTE_LOCK_S
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now_started = process_start(pid)
    return started is None or now_started is None or now_started == started


@dataclass
class RunRecord:
    """One run as the journal holds it."""

    id: str
    created: float
    updated: float
    state: str
    backend: str
    model: str
    #: The prompt plus ``Options.to_record()`` (plus, in old journals, a few more keys).
    request: dict[str, Any]
    stop_reason: str | None = None
    error: str | None = None
    host: str | None = None
    pid: int | None = None
    #: Start time of the owning process (see ``process_start``).
    proc_start: str | None = None
    #: Rounds that added no text.
    stalled_rounds: int = 0
    #: The ``-o FILE`` the answer was written to (absolute), if any.
    output: str | None = None
    text: str = ""
    held: str = ""
    #: Text and held tail at the end of the last finished round.
    round_text: str = ""
    round_held: str = ""
    rounds: list[RoundReport] = field(default_factory=list)

    @property
    def usage(self) -> Usage:
        total = Usage()
        for report in self.rounds:
            total = total + report.usage
        return total

    @property
    def cost_usd(self) -> float:
        return sum(report.cost_usd for report in self.rounds)

    @property
    def cost_known(self) -> bool:
        """False if any round's model had no known prices (its ``cost_usd`` 0.0 means nothing)."""
        return all(report.cost_known for report in self.rounds)

    @property
    def finished(self) -> bool:
        return self.state == "finished"

    def checkpoint(self) -> Checkpoint:
        """What ``stream(..., resume=...)`` needs to continue this run."""
        return Checkpoint(text=self.text, held=self.held, rounds=list(self.rounds))

    def round_checkpoint(self) -> Checkpoint:
        """Where the run stood at the end of its last finished round."""
        return Checkpoint(text=self.round_text, held=self.round_held, rounds=list(self.rounds))

    def result(self) -> Result:
        """The run as a Result (for a finished run, the final one)."""
        result = Result(
            text=self.text,
            stop_reason=self.stop_reason or "",
            rounds=list(self.rounds),
            usage=self.usage,
            cost_usd=self.cost_usd,
            model=self.model,
            backend=self.backend,
            run_id=self.id,
            cost_known=self.cost_known,
        )
        if hasattr(result, "stalled_rounds"):
            result.stalled_rounds = self.stalled_rounds
        return result

    @property
    def display_state(self) -> str:
        """The state, saying "interrupted (process gone)" for a run whose process died."""
        if self.state == "running" and not self.is_alive_elsewhere() and self.pid != os.getpid():
            return "interrupted (process gone)"
        return self.state

    def is_alive_elsewhere(self) -> bool:
        """True if another process that may still run is recorded as this run's owner."""
        if self.state != "running" or (self.pid == os.getpid() and self.host == socket.gethostname()):
            return False
        return owner_alive(self.host, self.pid, self.proc_start, self.updated)
