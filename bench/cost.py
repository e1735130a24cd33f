"""Cost of a long answer: autocontinue against the loops people use today (issue 6, item 1).

For each model and answer length the emulator writes the same fixed answer (seed 0, the same
prompt), bills every call at catalogue prices, and each way of getting the answer is run
against a freshly reset bill:

- ``lower bound``: one uncapped call (a separate emulator whose model spec allows a huge
  ``max_output``; prices unchanged);
- ``autocontinue (defaults)`` and ``autocontinue (4,096/call)``, and the latter with
  ``cache=False`` to show what caching buys;
- ``seed loop``: prefill, 4,096 per call, no caching, until done. A model that rejects
  prefill fails it on the second call; it is run as it fails, and the nearest equivalent
  (the same loop continued by a user turn) is run beside it;
- ``cookbook loop``: user-turn continuation, no caching, at most 6 rounds of 4,096 tokens.

Each row records dollars, calls, the fraction of the answer delivered and whether the text is
exactly the one-call answer.
"""

from __future__ import annotations

import time
from typing import Any

from autocontinue.catalogue import lookup_model
from autocontinue.prefix import common_prefix_length as prefix_len

from . import baselines
from .common import PROMPT, bill, emulator_client, reset, save

__all__ = ["MODELS", "SIZES", "run"]

#: The prefill model (Haiku 4.5) and the current Sonnet (no prefill, thinks).
MODELS = ("claude-haiku-4-5", "claude-sonnet-5-5")
SIZES = (20_000, 100_000, 300_000)
PER_CALL = 4096


def _autocontinue(client: Any, model: str, size: int, **options: Any) -> dict[str, Any]:
    import autocontinue

    started = time.perf_counter()
    result = autocontinue.generate(
        PROMPT, client=client, backend="anthropic", model=model, max_rounds=1000, **options
    )
    return {
        "text": result.text,
        "calls": len(result.rounds),
        "stop": result.stop_reason,
        "client_cost_usd": result.cost_usd,
        "wall_s": time.perf_counter() - started,
        "per_call": [r.max_tokens for r in result.rounds][:1],
    }


def _loop(run: baselines.LoopRun) -> dict[str, Any]:
    return {
        "text": run.text,
        "calls": run.calls,
        "stop": run.stop,
        "error": run.error,
        "client_cost_usd": run.cost_usd,
        "wall_s": run.wall_s,
    }


def _variants(model: str, size: int) -> list[tuple[str, Any]]:
    prefill = lookup_model(model).prefill
    cap = 3 * (size // PER_CALL + 2)
    rows: list[tuple[str, Any]] = [
        ("autocontinue (defaults)", lambda c: _autocontinue(c, model, size)),
        ("autocontinue (4,096/call)", lambda c: _autocontinue(c, model, size, max_tokens_per_call=PER_CALL)),
        ("autocontinue (4,096/call, cache off)",
         lambda c: _autocontinue(c, model, size, max_tokens_per_call=PER_CALL, cache=False)),
        ("seed loop (prefill, 4,096/call, no cache)" if prefill else "seed loop (prefill): fails on this model",
         lambda c: _loop(baselines.seed_loop(c, PROMPT, model=model, max_tokens=PER_CALL, max_calls=cap))),
    ]
    if not prefill:
        rows.append((
            "seed loop, user-turn equivalent (4,096/call, no cache)",
            lambda c: _loop(baselines.user_turn_loop(c, PROMPT, model=model, max_tokens=PER_CALL, max_calls=cap)),
        ))
    rows.append((
        "cookbook loop (user turn, 4,096/call, no cache, <= 6 rounds)",
        lambda c: _loop(baselines.cookbook_loop(c, PROMPT, model=model, max_tokens=PER_CALL)),
    ))
    return rows


def _lower_bound(model: str, size: int) -> dict[str, Any]:
    spec = f"{model}:max_output={size + 100_000},context={2 * size + 200_000}"
    with emulator_client(seed=0, length=size, model_specs=[spec]) as (client, url):
        row = _loop(baselines.one_call(client, PROMPT, model=model, max_tokens=size + 100_000))
        row.update(bill(url))
    return row


def _score(row: dict[str, Any], reference: str, lower: float) -> dict[str, Any]:
    text = row.pop("text")
    row["delivered"] = round(prefix_len(text, reference) / len(reference), 4)
    row["exact"] = text == reference
    row["ratio"] = round(row["cost_usd"] / lower, 3) if lower else None
    return row


def measure(model: str, size: int, *, log: Any = print) -> dict[str, Any]:
    """Every variant for one (model, answer length); rows keyed by variant name."""
    lower = _lower_bound(model, size)
    reference = lower.pop("text")
    rows = {"lower bound (one uncapped call)": {**lower, "delivered": 1.0, "exact": True, "ratio": 1.0}}
    log(f"  {model} {size:>7,} lower bound ${lower['cost_usd']:.3f}")
    with emulator_client(seed=0, length=size) as (client, url):
        for name, run in _variants(model, size):
            reset(url)
            try:
                row = run(client)
            except Exception as exc:  # a failing variant is a result, not a crash of the bench
                row = {"text": "", "calls": None, "stop": "error", "error": f"{type(exc).__name__}: {exc}"}
            row.update(bill(url))
            rows[name] = _score(row, reference, lower["cost_usd"])
            log(f"  {model} {size:>7,} {name}: ${row['cost_usd']:.3f} ({row['ratio']}x) "
                f"calls={row['requests']} delivered={row['delivered']:.0%} exact={row['exact']}")
    return rows


def run(sizes: tuple[int, ...] = SIZES, models: tuple[str, ...] = MODELS, *, log: Any = print) -> dict[str, Any]:
    """Measure every model and size; writes bench/out/cost.json and returns its data."""
    results: dict[str, Any] = {}
    for model in models:
        for size in sizes:
            results.setdefault(model, {})[str(size)] = measure(model, size, log=log)
    data = {"sizes": list(sizes), "models": list(models), "per_call": PER_CALL, "results": results}
    save("cost", data)
    return data
