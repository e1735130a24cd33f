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

import json
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
        (
            "autocontinue (4,096/call, cache off)",
            lambda c: _autocontinue(c, model, size, max_tokens_per_call=PER_CALL, cache=False),
        ),
        (
            "seed loop (prefill, 4,096/call, no cache)"
            if prefill
            else "seed loop (prefill): fails on this model",
            lambda c: _loop(baselines.seed_loop(c, PROMPT, model=model, max_tokens=PER_CALL, max_calls=cap)),
        ),
    ]
    if not prefill:
        rows.append(
            (
                "seed loop, user-turn equivalent (4,096/call, no cache)",
                lambda c: _loop(
                    baselines.user_turn_loop(c, PROMPT, model=model, max_tokens=PER_CALL, max_calls=cap)
                ),
            )
        )
    rows.append(
        (
            "cookbook loop (user turn, 4,096/call, no cache, <= 6 rounds)",
            lambda c: _loop(baselines.cookbook_loop(c, PROMPT, model=model, max_tokens=PER_CALL)),
        )
    )
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
            log(
                f"  {model} {size:>7,} {name}: ${row['cost_usd']:.3f} ({row['ratio']}x) "
                f"calls={row['requests']} delivered={row['delivered']:.0%} exact={row['exact']}"
            )
    return rows


def run(
    sizes: tuple[int, ...] = SIZES, models: tuple[str, ...] = MODELS, *, log: Any = print
) -> dict[str, Any]:
    """Measure every model and size; writes bench/out/cost.json and returns its data."""
    results: dict[str, Any] = {}
    for model in models:
        for size in sizes:
            results.setdefault(model, {})[str(size)] = measure(model, size, log=log)
    data = {"sizes": list(sizes), "models": list(models), "per_call": PER_CALL, "results": results}
    save("cost", data)
    return data


# -------------------------------------------------------------- today's models (issue 10, item 5)
#
# Hindsight bound. A run of n rounds sends, in round i, everything of round i-1's prompt plus
# what round i-1 wrote (and the continue instruction). Call d_i the tokens that first appear in
# round i's prompt (d_1: the whole first prompt; d_i = in_i - in_(i-1)); that stretch is sent in
# rounds i..n, k = n - i + 1 times. In hindsight each stretch is either sent uncached every time
# (k * input) or written to the cache once and read after (write_5m + (k - 1) * read), whichever
# is cheaper at the model's prices; output (thinking included) is what it is. So
#     bound = sum_i d_i * min(k_i * input, write_5m + (k_i - 1) * read) + output * out_price.
# A stretch sent once (the text of the second-to-last round, read only by the last) is cheapest
# uncached: caching it is the one loss a run that cannot know which round is last must take.

TODAY_MODELS = ("claude-sonnet-5-5", "claude-opus-5-5")
TODAY_SIZES = (100_000, 300_000, 900_000)
EFFORTS = ("low", "medium", "high", "xhigh", "max")


def hindsight_bound(model: str, rounds: list[Any]) -> dict[str, float]:
    """The cheapest bill for these rounds in hindsight (see above), and its parts."""
    prices = lookup_model(model).prices
    sizes = [r.usage.total_input_tokens for r in rounds]
    n = len(sizes)
    new = [sizes[0]] + [max(0, b - a) for a, b in zip(sizes, sizes[1:])]
    inputs = 0.0
    for i, tokens in enumerate(new):
        k = n - i
        inputs += tokens * min(k * prices.input, prices.write_5m + (k - 1) * prices.read)
    output = sum(r.usage.output_tokens for r in rounds) * prices.output
    return {"cost_usd": (inputs + output) / 1e6, "input_usd": inputs / 1e6, "output_usd": output / 1e6}


def _generate(client: Any, model: str, **options: Any) -> Any:
    import autocontinue

    return autocontinue.generate(
        PROMPT, client=client, backend="anthropic", model=model, max_rounds=1000, **options
    )


def continuation_thinking(
    model: str, *, size: int = 40_000, per_call: int = 8192, log: Any = print
) -> dict[str, Any]:
    """Thinking tokens per continuation round at each effort (every round of the run at that
    effort), the run's cost, and whether the text is the same at every effort."""
    rows: dict[str, Any] = {}
    texts = set()
    with emulator_client(seed=0, length=size) as (client, url):
        first = {}
        for effort in EFFORTS:
            reset(url)
            client.messages.create(
                model=model,
                max_tokens=per_call,
                messages=[{"role": "user", "content": PROMPT}],
                output_config={"effort": effort},
            )
            first[effort] = bill(url)["thinking_tokens"]
        for effort in EFFORTS:
            reset(url)
            result = _generate(client, model, max_tokens_per_call=per_call, effort=effort)
            totals = bill(url)
            rounds = len(result.rounds)
            per_round = (totals["thinking_tokens"] - first[effort]) / max(1, rounds - 1)
            texts.add(result.text)
            rows[effort] = {
                "rounds": rounds,
                "first_round_thinking": first[effort],
                "thinking_per_continuation_round": round(per_round, 1),
                "thinking_tokens": totals["thinking_tokens"],
                "cost_usd": totals["cost_usd"],
                "stop": result.stop_reason,
            }
            log(
                f"  {model} effort={effort}: {per_round:,.0f} thinking tokens per continuation round, "
                f"{rounds} rounds, ${totals['cost_usd']:.4f}"
            )
    cheapest = min(rows, key=lambda e: rows[e]["cost_usd"])
    return {
        "rows": rows,
        "same_text_at_every_effort": len(texts) == 1,
        "cheapest": cheapest,
        "size": size,
        "per_call": per_call,
    }


def _one_call_raw(model: str, size: int) -> dict[str, Any]:
    """One uncapped streaming call read off the wire (the SDK's stream helper rebuilds its text
    snapshot on every delta, quadratic at 900k tokens): its text and the emulator's bill."""
    import httpx2

    spec = f"{model}:max_output={size + 100_000},context={2 * size + 200_000}"
    body = {
        "model": model,
        "max_tokens": size + 100_000,
        "stream": True,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    with emulator_client(seed=0, length=size, model_specs=[spec]) as (_client, url):
        pieces: list[str] = []
        with httpx2.stream(
            "POST", url + "/v1/messages", json=body, headers={"x-api-key": "bench"}, timeout=3600
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data: ") and '"text_delta"' in line:
                    pieces.append(json.loads(line[6:])["delta"]["text"])
        row: dict[str, Any] = {"text": "".join(pieces), "calls": 1}
        row.update(bill(url))
    return row


def measure_today(model: str, size: int, *, effort: str | None = None, log: Any = print) -> dict[str, Any]:
    """Defaults on a ``size``-token answer against the one-call and hindsight bounds."""
    one = _one_call_raw(model, size)
    reference = one.pop("text")
    options = {"effort": effort} if effort else {}
    with emulator_client(seed=0, length=size) as (client, url):
        reset(url)
        started = time.perf_counter()
        result = _generate(client, model, **options)
        wall = time.perf_counter() - started
        billed = bill(url)
    bound = hindsight_bound(model, result.rounds)
    last = result.rounds[-2].usage if len(result.rounds) > 1 else None
    row = {
        "rounds": len(result.rounds),
        "exact": result.text == reference,
        "stop": result.stop_reason,
        "cost_usd": billed["cost_usd"],
        "client_cost_usd": result.cost_usd,
        "wall_s": round(wall, 1),
        "one_call_usd": one["cost_usd"],
        "hindsight_usd": bound["cost_usd"],
        "vs_hindsight": round(billed["cost_usd"] / bound["cost_usd"], 4),
        "vs_one_call": round(billed["cost_usd"] / one["cost_usd"], 4),
        "thinking_tokens": billed["thinking_tokens"],
        "output_tokens": billed["output_tokens"],
        "cache_write_tokens": billed["cache_creation_input_tokens"],
        "cache_read_tokens": billed["cache_read_input_tokens"],
        "input_tokens": billed["input_tokens"],
        "effort": effort or "model default",
    }
    if last is not None:  # the write of round n-1's text, read once: its premium over plain input
        prices = lookup_model(model).prices
        stretch = result.rounds[-1].usage.total_input_tokens - last.total_input_tokens
        row["last_write_premium_usd"] = stretch * (prices.write_5m - prices.input) / 1e6
    log(
        f"  {model} {size:>7,} defaults: ${row['cost_usd']:.3f} in {row['rounds']} rounds = "
        f"{row['vs_hindsight']}x hindsight (${row['hindsight_usd']:.3f}), {row['vs_one_call']}x one call "
        f"(${row['one_call_usd']:.3f}) exact={row['exact']}"
    )
    return row


def run_today(
    sizes: tuple[int, ...] = TODAY_SIZES,
    models: tuple[str, ...] = TODAY_MODELS,
    *,
    effort: str | None = None,
    thinking_size: int = 40_000,
    log: Any = print,
) -> dict[str, Any]:
    """Both measurements; writes bench/out/cost_today.json."""
    data: dict[str, Any] = {
        "sizes": list(sizes),
        "models": list(models),
        "effort": effort,
        "thinking": {},
        "results": {},
    }
    for model in models:
        data["thinking"][model] = continuation_thinking(model, size=thinking_size, log=log)
        for size in sizes:
            data["results"].setdefault(model, {})[str(size)] = measure_today(
                model, size, effort=effort, log=log
            )
    save("cost_today", data)
    return data


def _usd(value: Any) -> str:
    return "-" if value is None else f"${value:.3f}"


def _count(value: Any) -> str:
    return "-" if value is None else f"{value:,}"


def today_section(out: list[str], data: dict[str, Any] | None) -> None:
    """The docs/benchmarks.md section for ``run_today``'s results."""
    out.append("## 1b. Cost at today's sizes: Sonnet 5.5 and Opus 5.5, thinking on\n")
    if not data:
        out.append("Not measured in this run (no bench/out/cost_today.json).\n")
        return
    effort = data.get("effort") or "each model's default"
    out.append(
        "The emulator writes one fixed answer of 100k, 300k and 900k tokens; autocontinue runs with its defaults "
        f"(128k tokens a call, prompt caching, thinking on) at effort {effort}, against two bounds: one uncapped "
        "call (the model's default effort), and the hindsight-cheapest bill for the rounds actually made. "
        "Hindsight bound: call d_i the tokens that first appear in round i's prompt (d_1 the first prompt, "
        "d_i = in_i - in_(i-1)); that stretch is sent k_i = n - i + 1 times, and costs in hindsight "
        "min(k_i x input, write_5m + (k_i - 1) x read); output (thinking included) is what it is.\n"
    )
    out.append("```sh\npython -m bench.cost --effort low     # bench/out/cost_today.json\n```\n")
    out.append(
        "| model | tokens | rounds | bill | hindsight bound | vs hindsight | one call | vs one call "
        "| thinking tokens | last-round write premium | exact |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for model, by_size in data["results"].items():
        for size, r in by_size.items():
            out.append(
                f"| {model} | {int(size):,} | {r['rounds']} | ${r['cost_usd']:.3f} | ${r['hindsight_usd']:.3f} "
                f"| {r['vs_hindsight']:.4f}x | ${r['one_call_usd']:.3f} | {r['vs_one_call']:.3f}x "
                f"| {_count(r.get('thinking_tokens'))} | {_usd(r.get('last_write_premium_usd'))} | {r['exact']} |"
            )
    out.append("")
    for model, by_size in data["results"].items():
        worst = max(by_size.values(), key=lambda r: r["vs_hindsight"])
        verdict = "met" if worst["vs_hindsight"] <= 1.03 else "missed"
        out.append(
            f"- {model}, 100k-900k tokens: at most **{worst['vs_hindsight']:.4f}x** the hindsight bound "
            f"(target <= 1.03x: {verdict})."
        )
    out.append("")
    out.append(
        "Thinking per continuation round, by effort (every round at that effort, "
        f"{data['thinking'][next(iter(data['thinking']))]['size']:,}-token answer, 8,192 tokens a call):\n"
    )
    out.append("| model | effort | first round thinking | per continuation round | rounds | bill |")
    out.append("|---|---|---|---|---|---|")
    for model, t in data["thinking"].items():
        for effort, r in t["rows"].items():
            out.append(
                f"| {model} | {effort} | {r['first_round_thinking']:,} | "
                f"{r['thinking_per_continuation_round']:,.0f} | {r['rounds']} | ${r['cost_usd']:.4f} |"
            )
    out.append("")
    for model, t in data["thinking"].items():
        same = "the same text at every effort" if t["same_text_at_every_effort"] else "texts differ"
        out.append(f"- {model}: cheapest continuation effort **{t['cheapest']}** ({same}).")
    out.append("")


if __name__ == "__main__":  # python -m bench.cost [--quick] [--effort E]
    import sys

    quick = "--quick" in sys.argv
    chosen = sys.argv[sys.argv.index("--effort") + 1] if "--effort" in sys.argv else None
    run_today(
        sizes=(20_000,) if quick else TODAY_SIZES, effort=chosen, thinking_size=12_000 if quick else 40_000
    )
