"""What OpenAI-compatible endpoints told us, kept on disk, so a later process asks nothing again.

One small JSON file beside the prefill memory (``<data dir>/openai-servers.json``), keyed by
endpoint (``OpenAIBackend.endpoint_key``: the base URL without credentials, query or
fragment). Per endpoint it keeps what the probe found (the server kind, its models and context
windows) and, per model, whether a trailing assistant message was continued or closed as a past
turn, with the server kind it was checked as. A verdict is used again only under that same
kind, so ``server=`` / ``--server`` naming another kind always wins and checks afresh.
Only what the server said is written here, never the caller's ``server=``. Deleting the file
(or an entry) forgets it; so does the backend when a call is refused in a way the entry may
explain (another server now at the URL), asking the server again once. Writes are best effort
and never fail a run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...memory import data_dir, write_json_best_effort
from .probe import ServerInfo

__all__ = ["ServerMemory", "FILE_NAME"]

FILE_NAME = "openai-servers.json"


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


class ServerMemory:
    """``{endpoint: {"kind", "models", "context_window", "continues": {model: {kind, value}}}}``."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or data_dir() / FILE_NAME

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _entry(self, endpoint: str) -> dict[str, Any]:
        entry = self._load().get(endpoint)
        return entry if isinstance(entry, dict) else {}

    def info(self, endpoint: str) -> ServerInfo | None:
        """What the endpoint said when it was probed, or None when it never was."""
        entry = self._entry(endpoint)
        if not isinstance(entry.get("kind"), str):
            return None
        raw = entry.get("models")
        models = {str(k): _positive_int(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        return ServerInfo(entry["kind"], models, _positive_int(entry.get("context_window")))

    def remember_info(self, endpoint: str, info: ServerInfo, *, fresh: bool = False) -> None:
        """Keep what the endpoint said; ``fresh`` drops the rest of its entry (its prefill
        verdicts were another server's), in the same write."""
        self._update(
            endpoint,
            {"kind": info.kind, "models": dict(info.models), "context_window": info.context_window},
            fresh=fresh,
        )

    def continues(self, endpoint: str, model: str, kind: str) -> bool | None:
        """Whether ``model`` continued a trailing assistant message when checked as ``kind``."""
        verdicts = self._entry(endpoint).get("continues")
        verdict = verdicts.get(model) if isinstance(verdicts, dict) else None
        if (
            isinstance(verdict, dict)
            and verdict.get("kind") == kind
            and isinstance(verdict.get("value"), bool)
        ):
            return bool(verdict["value"])
        return None

    def remember_continues(self, endpoint: str, model: str, kind: str, value: bool) -> None:
        verdicts = self._entry(endpoint).get("continues")
        verdicts = verdicts if isinstance(verdicts, dict) else {}
        self._update(endpoint, {"continues": {**verdicts, model: {"kind": kind, "value": value}}})

    def forget(self, endpoint: str) -> None:
        data = self._load()
        if data.pop(endpoint, None) is not None:
            self._write(data)

    def _update(self, endpoint: str, fields: dict[str, Any], *, fresh: bool = False) -> None:
        data = self._load()
        entry = None if fresh else data.get(endpoint)
        entry = entry if isinstance(entry, dict) else {}
        data[endpoint] = {**entry, **fields}
        self._write(data)

    def _write(self, data: dict[str, Any]) -> None:
        write_json_best_effort(self.path, data)
