"""Shared bench plumbing: the emulator client, its bill, the machine, and JSON output."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import statistics
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "OUT",
    "REPO",
    "out_dir",
    "set_out_dir",
    "emulator_client",
    "bill",
    "reset",
    "machine",
    "save",
    "load",
    "median",
]

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
_out = [OUT]


def out_dir() -> Path:
    """Where results go: bench/out, or what ``set_out_dir`` chose (quick runs, tests)."""
    return _out[0]


def set_out_dir(path: Path) -> None:
    _out[0] = Path(path)


#: Prompt used by the emulator benches (the emulator's answer depends only on seed, length, prompt).
PROMPT = "Please write five long stories, each in <story_N> tags. Write as much as you can."


@contextlib.contextmanager
def emulator_client(**options: Any) -> Iterator[tuple[Any, str]]:
    """An emulator in a thread and an official SDK client on it: yields (client, base_url)."""
    import anthropic

    from autocontinue.emulator import run_emulator

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    with run_emulator(**options) as url:
        client = anthropic.Anthropic(base_url=url, api_key="bench", max_retries=0, timeout=600)
        try:
            yield client, url
        finally:
            client.close()


def _http() -> Any:
    import httpx2

    return httpx2


def reset(url: str) -> None:
    """Zero the emulator's running totals."""
    _http().post(url + "/emulator/reset").raise_for_status()


def bill(url: str) -> dict[str, Any]:
    """The emulator's totals since the last reset (requests, tokens, cost_usd)."""
    response = _http().get(url + "/emulator/stats")
    response.raise_for_status()
    return response.json()


def machine() -> dict[str, Any]:
    """Where and when the figures were made."""
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def save(name: str, data: dict[str, Any]) -> Path:
    """Write ``bench/out/NAME.json`` (with the machine stamp) and return its path."""
    out_dir().mkdir(parents=True, exist_ok=True)
    path = out_dir() / f"{name}.json"
    data = {"machine": machine(), **data}
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def load(name: str) -> dict[str, Any] | None:
    path = out_dir() / f"{name}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
