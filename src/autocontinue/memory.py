"""What the API taught us, kept on disk: which (endpoint, model) pairs refuse prefill.

Keyed by endpoint as well as model, so an emulator's answer never changes what is used
against the real API. Stored as JSON in the data directory (``AUTOCONTINUE_HOME`` overrides).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["data_dir", "PrefillMemory", "write_json_best_effort"]


def data_dir() -> Path:
    """Where autocontinue keeps its files: ``$AUTOCONTINUE_HOME`` or the user data directory."""
    home = os.environ.get("AUTOCONTINUE_HOME")
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("autocontinue"))


class PrefillMemory:
    """A small JSON file: ``{endpoint: {model: false}}`` for models that refused prefill."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or data_dir() / "prefill.json"

    def _load(self) -> dict[str, dict[str, bool]]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def refused(self, endpoint: str, model: str) -> bool:
        return self._load().get(endpoint, {}).get(model) is False

    def remember_refusal(self, endpoint: str, model: str) -> None:
        """Record that ``model`` at ``endpoint`` refuses prefill (best effort: never fails a run)."""
        data = self._load()
        data.setdefault(endpoint, {})[model] = False
        write_json_best_effort(self.path, data)


def write_json_best_effort(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically; a failure is ignored (never fails a run)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass
