"""The user's price table for hosted OpenAI-compatible models (nobody else knows them).

A JSON file ``prices.json`` in the config directory (``$AUTOCONTINUE_HOME`` when set, else the
platformdirs user config directory), dollars per million tokens::

    {"deepseek-chat": {"input": 0.27, "output": 1.10}}

Cache reads are priced as the catalogue prices them (a tenth of the input price). A model not
in the table has no known price: its cost is reported as unknown, never as $0.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ...errors import ConfigurationError

__all__ = ["price_file", "load_prices"]


def price_file() -> Path:
    home = os.environ.get("AUTOCONTINUE_HOME")
    if home:
        return Path(home).expanduser() / "prices.json"
    import platformdirs

    return Path(platformdirs.user_config_dir("autocontinue")) / "prices.json"


def _price(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def load_prices(path: Path | None = None) -> dict[str, tuple[float, float]]:
    """``{model: (input, output)}`` in dollars per million tokens; {} when there is no file."""
    path = path or price_file()
    try:
        raw = path.read_text("utf-8")
    except OSError:
        return {}
    hint = 'write it as {"MODEL": {"input": 0.27, "output": 1.1}} (dollars per million tokens)'
    try:
        data = json.loads(raw)
    except ValueError as error:
        raise ConfigurationError(f"the price table {path} is not valid JSON ({error})", hint=hint) from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"the price table {path} is not a JSON object", hint=hint)
    table: dict[str, tuple[float, float]] = {}
    for model, entry in data.items():
        prices = (
            (_price(entry.get("input")), _price(entry.get("output")))
            if isinstance(entry, dict)
            else (None, None)
        )
        if prices[0] is None or prices[1] is None:
            raise ConfigurationError(f"the price table {path} has no valid prices for {model!r}", hint=hint)
        table[model] = (prices[0], prices[1])
    return table
