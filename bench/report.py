"""Write docs/benchmarks.md and its PNG plots from the JSON in bench/out (matplotlib, Agg).

Every section says which command made it and degrades to a short note when its JSON is
missing, so the page can always be regenerated (``python -m bench --report-only``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import REPO, load

__all__ = ["write", "PAGE", "IMG"]

PAGE = REPO / "docs" / "benchmarks.md"
IMG = REPO / "docs" / "img"

LOWER = "lower bound (one uncapped call)"
DEFAULTS = "autocontinue (defaults)"
PER_CALL = "autocontinue (4,096/call)"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_img = [IMG]


def _save(fig: Any, name: str) -> str:
    _img[0].mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(_img[0] / name, dpi=110)
    _plt().close(fig)
    return f"img/{name}"


def _stamp(data: dict[str, Any]) -> str:
    m = data.get("machine", {})
    return (
        f"_Measured {m.get('date', '?')} on {m.get('cpus', '?')} CPU cores, Python "
        f"{m.get('python', '?')}, 1-minute load average {m.get('load_avg_1m', '?')} at the end "
        "(the machine was shared)._"
    )


def _cmd(part: str) -> str:
    return f"Command: `python -m bench --only {part}`"


def _money(x: float | None) -> str:
    return "n/a" if x is None else f"${x:,.3f}"


def _seed_name(rows: dict[str, Any]) -> str | None:
    for name in rows:
        if name.startswith("seed loop, user-turn equivalent"):
            return name
    for name in rows:
        if name.startswith("seed loop"):
            return name
    return None


# ----------------------------------------------------------------------------- cost


def _cost_cell(row: dict[str, Any]) -> str:
    cell = f"{_money(row.get('cost_usd'))} ({row.get('ratio', 0):.2f}x)"
    notes = []
    if row.get("delivered", 1) < 0.9995:
        notes.append(f"{row['delivered']:.0%} delivered")
        if row.get("delivered") and row.get("ratio"):
            notes.append(f"{row['ratio'] / row['delivered']:.2f}x one call of that length")
    if row.get("stop") not in (None, "end_turn") and row.get("delivered", 1) < 0.9995:
        notes.append(f"stop: {row['stop']}")
    elif row.get("delivered", 1) >= 0.9995 and not row.get("exact", True):
        notes.append("text differs")
    return cell + (f" <br>{'; '.join(notes)}" if notes else "")


def _error_text(error: str) -> str:
    """The API's message inside an SDK error string, without its request id."""
    import re

    found = re.search(r"'message': '([^']*)'", error)
    return found.group(1) if found else error


def _cost_plot(data: dict[str, Any]) -> str:
    plt = _plt()
    models = data["models"]
    fig, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 5.8), squeeze=False)
    for ax, model in zip(axes[0], models):
        by_size = data["results"][model]
        sizes = [s for s in map(str, data["sizes"]) if s in by_size]
        names = [n for n in by_size[sizes[0]] if n != LOWER]
        width = 0.84 / max(1, len(names))
        for i, name in enumerate(names):
            ys = [by_size[s][name].get("ratio") or 0 for s in sizes]
            bars = ax.bar([k + i * width for k in range(len(sizes))], ys, width, label=name)
            for bar, s, y in zip(bars, sizes, ys):
                partial = by_size[s][name].get("delivered", 1) < 0.9995
                if partial:
                    bar.set_hatch("//")
                ax.annotate(
                    f"{y:.2f}" + ("*" if partial else ""),
                    (bar.get_x() + bar.get_width() / 2, y),
                    ha="center",
                    va="bottom",
                    fontsize=6,
                    rotation=90,
                    xytext=(0, 2),
                    textcoords="offset points",
                )
        ax.axhline(1.0, color="black", lw=0.8)
        ax.axhline(1.2, color="green", lw=0.8, ls="--")
        ax.set_xticks([k + width * (len(names) - 1) / 2 for k in range(len(sizes))])
        ax.set_xticklabels([f"{int(s):,} tokens" for s in sizes])
        ax.set_ylabel("cost / one uncapped call (green: 1.20x)")
        ax.set_ylim(0, max(ax.get_ylim()[1], 1.5) * 1.08)
        ax.set_title(model)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=2, frameon=False)
    fig.suptitle(
        "Cost of one long answer, as a multiple of the lower bound "
        "(hatched, *: the method delivered only part of the answer)",
        fontsize=9,
    )
    return _save(fig, "cost.png")


def _breakdown(row: dict[str, Any], model: str) -> str:
    from autocontinue.catalogue import CACHE_READ, CACHE_WRITE_5M, lookup_model

    spec = lookup_model(model)
    pin, pout = spec.input_price / 1e6, spec.output_price / 1e6
    return (
        f"output {_money(row['output_tokens'] * pout)}, uncached input {_money(row['input_tokens'] * pin)}, "
        f"cache writes {_money(row['cache_creation_input_tokens'] * pin * CACHE_WRITE_5M)}, "
        f"cache reads {_money(row['cache_read_input_tokens'] * pin * CACHE_READ)}"
    )


def _cost_targets(data: dict[str, Any]) -> list[str]:
    lines = []
    at = "100000"
    for model in data["models"]:
        rows = data["results"].get(model, {}).get(at)
        if not rows:
            continue
        d, p = rows.get(DEFAULTS), rows.get(PER_CALL)
        seed_name = _seed_name(rows)
        seed = rows.get(seed_name) if seed_name else None
        if d:
            ok = d["ratio"] <= 1.20
            lines.append(
                f"- {model}, 100k tokens, defaults: **{d['ratio']:.3f}x** the lower bound "
                f"(target <= 1.20x: {'met' if ok else 'missed by ' + format(d['ratio'] / 1.20 - 1, '.1%')}). "
                f"Bill: {_breakdown(d, model)}."
            )
        if p:
            ok = p["ratio"] <= 1.6
            lines.append(
                f"- {model}, 100k tokens, 4,096 tokens/call: **{p['ratio']:.3f}x** "
                f"(target <= 1.6x: {'met' if ok else 'missed by ' + format(p['ratio'] / 1.6 - 1, '.1%')}). "
                f"Bill: {_breakdown(p, model)}."
            )
        if d and seed and seed.get("delivered", 0) >= 0.9995:
            times = seed["cost_usd"] / d["cost_usd"]
            verdict = "met" if times >= 3 else f"missed by {1 - times / 3:.1%}"
            lines.append(
                f"- {model}, 100k tokens: defaults are **{times:.2f}x cheaper** than the {seed_name} "
                f"(target >= 3x: {verdict})."
            )
            if times < 3:
                lines.append(_why_seed_missed(d, seed, model))
    return lines


def _why_seed_missed(d: dict[str, Any], seed: dict[str, Any], model: str) -> str:
    from autocontinue.catalogue import CACHE_WRITE_5M, lookup_model

    spec = lookup_model(model)
    pin = spec.input_price / 1e6
    write = d["cache_creation_input_tokens"] * pin * CACHE_WRITE_5M
    plain = d["cache_creation_input_tokens"] * pin
    without = d["cost_usd"] - write + plain
    return (
        f"  Why: at this model's 64,000-token output cap the defaults need {d['requests']} calls, and the "
        f"last call writes the first {d['cache_creation_input_tokens']:,} tokens to the prompt cache at "
        f"1.25x the input price ({_money(write)}) although no later call reads them. Sent uncached, that "
        f"input would cost {_money(plain)}, the run {_money(without)}, "
        f"{seed['cost_usd'] / without:.2f}x cheaper than the seed loop. The engine cannot know that a round "
        "is the last; a cache write pays for itself only when at least one more round reads it "
        "(reads cost 0.1x, so one read saves 0.9x against a 0.25x premium). The gap widens with longer "
        "answers (the 300k column) and smaller calls, where the seed loop re-sends everything every call."
    )


def _cost_section(out: list[str]) -> None:
    data = load("cost")
    out.append("## 1. Cost of one long answer\n")
    if not data:
        out.append("Not measured in this run (no bench/out/cost.json).\n")
        return
    out.append(
        "The emulator (`autocontinue.emulator`, served over HTTP, driven through the official "
        "`anthropic` SDK) writes the same fixed answer for every method and bills each call at catalogue "
        "prices ($3 / $15 per million input / output tokens; cache writes 1.25x, reads 0.1x of the input "
        "price). Each cell: dollars, and the multiple of the lower bound. The lower bound is one uncapped "
        "call that writes the whole answer (an emulator whose model spec allows a huge `max_output`; no "
        "real call can do this above 64k tokens on claude-sonnet-4-5 or 128k on claude-sonnet-4-6). "
        "Rows: autocontinue with its defaults (`max_tokens_per_call` = the model's maximum output, caching "
        "on); held to 4,096 tokens a call; the same with `cache=False`; the seed loop (prefill, 4,096 a "
        "call, no caching, until done: `bench/baselines.py`); the cookbook loop (user turn, 4,096 a call, "
        "no caching, at most 6 rounds).\n"
    )
    out.append(f"![cost]({_cost_plot(data)})\n")
    out.append(_cmd("cost") + "\n")
    for model in data["models"]:
        by_size = data["results"].get(model, {})
        sizes = [s for s in map(str, data["sizes"]) if s in by_size]
        if not sizes:
            continue
        out.append(f"\n### {model}\n")
        out.append("| method | " + " | ".join(f"{int(s):,} tokens" for s in sizes) + " |")
        out.append("|---|" + "---:|" * len(sizes))
        names = list(by_size[sizes[0]])
        for name in names:
            cells = [_cost_cell(by_size[s][name]) if name in by_size[s] else "" for s in sizes]
            calls = by_size[sizes[-1]].get(name, {}).get("requests")
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        out.append("")
        errors = {
            _error_text(by_size[s][n]["error"])
            for s in sizes
            for n in by_size[s]
            if by_size[s][n].get("error")
        }
        for error in sorted(errors):
            out.append(f"- The API's refusal that ended a loop above: ``{error}``")
        calls = "; ".join(
            f"{n}: " + ", ".join(str(by_size[s][n].get("requests")) for s in sizes) for n in names
        )
        out.append(f"- Calls per run ({', '.join(f'{int(s) // 1000}k' for s in sizes)}): {calls}.\n")
    out.append("\n### Targets (at 100k tokens)\n")
    out.extend(_cost_targets(data))
    out.append("")
    out.append(
        "- Notes. On claude-sonnet-4-6 the seed loop cannot run: the API refuses prefill "
        "(`This model does not support assistant message prefill...`), so it stops after its first call "
        "with 4,096 tokens; its nearest equivalent, the same loop continued by a user turn, is run beside "
        "it and is the one compared. The cookbook loop costs less only because it stops after 6 rounds "
        "(24,576 tokens at 4,096 a call) and delivers part of the answer. On claude-sonnet-4-5 no "
        "continuation can go past its 200,000-token context window (the answer so far is part of every "
        "prompt), so at 300k tokens every loop ends early (`context_exhausted` or the API's "
        "`prompt is too long`) and only the hypothetical uncapped call writes it all.\n"
    )


# ----------------------------------------------------------------------------- speed


def _speed_section(out: list[str]) -> None:
    data = load("speed")
    out.append("## 2. Speed: 10 rounds against one uncapped call\n")
    if not data:
        out.append("Not measured in this run (no bench/out/speed.json).\n")
        return
    c = data["config"]
    out.append(
        f"The emulator paces its output at {c['decode_rate']:,.0f} tokens/s; the answer is "
        f"{c['tokens']:,} tokens, fetched in one streaming SDK call, in one autocontinue round, and in "
        f"{c['rounds']} autocontinue rounds of {c['tokens'] // c['rounds']:,} tokens; the three alternate, "
        f"{c['repeats']} times each, and the median wall time is kept. The seam gap is the pause a reader of "
        "`autocontinue.stream()` sees at a round boundary (last text event of one round to first text event "
        "of the next); the inner gap is the ordinary pause between two text events within a round (the "
        "emulator sends 40 events a second). The emulator models decode time but no time to first token: "
        "against the real API each extra round also waits the service's time to first token (often 0.5-2 s), "
        "which this figure cannot show and which no continuation method avoids.\n"
    )
    plt = _plt()
    models = list(data["results"])
    fig, (ax, gx) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    names = list(data["results"][models[0]])
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        rows = [data["results"][m][name] for m in models]
        bars = ax.bar(
            [k + i * width for k in range(len(models))], [r["wall_s"] for r in rows], width, label=name
        )
        for bar, r in zip(bars, rows):
            ax.annotate(
                f"{r['ratio']:.3f}x",
                (bar.get_x() + bar.get_width() / 2, r["wall_s"]),
                ha="center",
                va="bottom",
                fontsize=7,
                xytext=(0, 2),
                textcoords="offset points",
            )
    ax.set_xticks([k + width * (len(names) - 1) / 2 for k in range(len(models))])
    ax.set_xticklabels(models)
    ax.set_ylabel("wall time (s), median")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.1)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"{c['tokens']:,} tokens at {c['decode_rate']:,.0f} tokens/s", fontsize=9)
    for k, model in enumerate(models):
        for row in data["results"][model].values():
            gaps = row.get("seam_gaps_ms") or []
            if gaps:
                gx.scatter([k + (j % 7 - 3) * 0.03 for j in range(len(gaps))], gaps, s=12, alpha=0.7)
                if row.get("inner_gap_ms_median") is not None:
                    gx.hlines(row["inner_gap_ms_median"], k - 0.3, k + 0.3, color="black", lw=0.8)
    gx.set_xticks(range(len(models)))
    gx.set_xticklabels(models)
    gx.set_xlim(-0.6, len(models) - 0.4)
    gx.set_ylim(0, gx.get_ylim()[1] * 1.1)
    gx.set_ylabel("ms")
    gx.set_title("pause at each seam (dots) and between events in a round (line)", fontsize=8)
    out.append(f"![speed]({_save(fig, 'speed.png')})\n")
    out.append(_cmd("speed") + "\n")
    out.append(
        "| model | method | wall time (median) | ratio | rounds | seam gap median / max | inner gap median | same text |"
    )
    out.append("|---|---|---:|---:|---:|---:|---:|---|")
    for model in models:
        for name, row in data["results"][model].items():
            gap = (
                f"{row['seam_gap_ms_median']:.0f} / {row['seam_gap_ms_max']:.0f} ms"
                if row.get("seam_gap_ms_median") is not None
                else "-"
            )
            inner = (
                f"{row['inner_gap_ms_median']:.0f} ms" if row.get("inner_gap_ms_median") is not None else "-"
            )
            out.append(
                f"| {model} | {name} | {row['wall_s']:.2f} s | {row['ratio']:.3f}x | {row['rounds']} | "
                f"{gap} | {inner} | {'yes' if row['exact'] else 'no'} |"
            )
    out.append("")
    many = [n for n in names if n not in ("one call (SDK)", "autocontinue, 1 round")]
    for model in models:
        for name in many:
            r = data["results"][model][name]["ratio"]
            verdict = "met" if r <= 1.05 else f"missed by {r / 1.05 - 1:.1%}"
            rounds = data["results"][model][name]["rounds"]
            out.append(
                f"- {model}: {name} ({rounds} rounds) took **{r:.3f}x** the uncapped call "
                f"(target for 10 rounds <= 1.05x: {verdict})."
            )
    out.append(
        "- The seam gap includes one pacing interval of the emulator (it sends a chunk, then waits that "
        "chunk's decode time before the next event or the end of the stream), a new HTTP request, and the "
        "word autocontinue holds back until the seam is repaired; the uncapped call spends the same pacing "
        "interval inside its stream, which is why the wall-time ratio is far smaller than "
        "rounds x seam gap suggests.\n"
    )


# ----------------------------------------------------------------------------- length


def _length_section(out: list[str]) -> None:
    data = load("length")
    out.append("## 3. Length-following (LongBench-Write, local model)\n")
    if not data:
        out.append("Not measured in this run (no bench/out/length.json).\n")
        return
    items = data["items"]
    s = data["summary"]
    out.append(
        f"Prompts from `{data['data']}` (LongBench-Write, Apache-2.0). Subset: the first two prompts of each "
        f"required length up to 1,000 words (lines {', '.join(map(str, data['subset_lines']))}: "
        f"{len(items)} prompts), chosen to fit in about 15 minutes on this machine. The embedded model "
        f"(SmolLM2-135M-Instruct, llama.cpp, seed {data['seed']}) answers each prompt twice: in one call of up "
        f"to {data['one_call_max_tokens']:,} tokens until it stops, and with "
        '`autocontinue.generate(prompt, backend="local", min_words=required)`. Score: LongBench-Write\'s '
        "S_l (100 * max(0, 1 - (y/x - 1)/3) when y > x, else 100 * max(0, 1 - (x/y - 1)/2); x required, y "
        "produced, words counted by whitespace).\n"
    )
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    xs = [i["required"] for i in items]
    methods = (("one_call", "one call, until it stops", "o"), ("min_words", "autocontinue min_words", "^"))
    for method, label, marker in methods:
        ys = [max(1, i[method]["words"]) for i in items]
        a1.scatter(xs, ys, label=f"{label} (mean S_l {s[method]['mean_s_l']:.1f})", marker=marker, alpha=0.75)
    low = min(xs + [max(1, i[m]["words"]) for i in items for m in ("one_call", "min_words")]) * 0.8
    top = max(xs + [i[m]["words"] for i in items for m in ("one_call", "min_words")]) * 1.25
    a1.plot([low, top], [low, top], color="black", lw=0.8, label="produced = required")
    a1.set_xscale("log")
    a1.set_yscale("log")
    a1.set_xlabel("required words")
    a1.set_ylabel("produced words")
    a1.legend(fontsize=7)
    bins = [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 4, 6]
    a2.hist(
        [[min(5.9, i[m]["words"] / i["required"]) for i in items] for m, _, _ in methods],
        bins=bins,
        label=[label for _, label, _ in methods],
    )
    a2.axvline(1.0, color="black", lw=0.8)
    a2.set_xlabel("produced / required words (last bin: 4 and more)")
    a2.set_ylabel("prompts")
    a2.legend(fontsize=7)
    out.append(f"![length]({_save(fig, 'length.png')})\n")
    out.append(_cmd("length") + "\n")
    out.append("| method | mean S_l | prompts reaching the required length | total wall time |")
    out.append("|---|---:|---:|---:|")
    for method, label in (
        ("one_call", "one call, until it stops"),
        ("min_words", "autocontinue, min_words = required"),
        ("min_max_words", "autocontinue, min_words = max_words = required"),
    ):
        if method not in s:
            continue
        out.append(
            f"| {label} | **{s[method]['mean_s_l']:.1f}** | {s[method]['reached_required']} / {len(items)} | "
            f"{s[method]['wall_s']:.0f} s |"
        )
    out.append("")
    runaway = [i for i in items if i["min_words"]["words"] > 4 * i["required"]]
    over = [i for i in items if i["min_words"]["words"] > i["required"] * 1.5]
    out.append(
        f"- With `min_words`, {s['min_words']['reached_required']} of {len(items)} answers reach the required "
        "length (one call: " + f"{s['one_call']['reached_required']}); what it loses of S_l is overshoot. "
        "`min_words` is a floor: a round that ends at its 512-token cap is continued whatever the length, "
        "because the model has not finished its answer. "
        + (f"{len(over)} of {len(items)} answers ran past 1.5x the required length" if over else "")
        + (
            "; "
            + "; ".join(
                f"line {i['line']} ({i['required']} words required) never ended its turn and wrote "
                f"{i['min_words']['words']:,} words in {i['min_words']['rounds']} rounds, until the run stopped "
                f"with `{i['min_words']['stop']}`"
                for i in runaway
            )
            if runaway
            else ""
        )
        + ". Without "
        + (f"line {runaway[0]['line']}" if len(runaway) == 1 else "the runaways")
        + (
            f", the mean S_l with min_words would be "
            f"{sum(i['min_words']['s_l'] for i in items if i not in runaway) / max(1, len(items) - len(runaway)):.1f}"
            f" (one call: {sum(i['one_call']['s_l'] for i in items if i not in runaway) / max(1, len(items) - len(runaway)):.1f})."
            if runaway
            else ""
        )
        + "\n"
    )
    out.append("<details><summary>Every prompt</summary>\n")
    out.append("| line | required | one call: words (S_l) | min_words: words (S_l, rounds) |")
    out.append("|---:|---:|---:|---:|")
    for i in items:
        o, m = i["one_call"], i["min_words"]
        out.append(
            f"| {i['line']} | {i['required']} | {o['words']} ({o['s_l']:.0f}) | "
            f"{m['words']} ({m['s_l']:.0f}, {m['rounds']}) |"
        )
    out.append("\n</details>\n")


# ----------------------------------------------------------------------------- engine


def _engine_compare(out: list[str], data: dict[str, Any] | None) -> None:
    """The engine against an older one, interleaved run by run (``--baseline-src``)."""
    if not data:
        return
    out.append(
        f"Against the engine in `{data['baseline_src']}`, in fresh interpreters interleaved run by run "
        f"({data['runs']} runs each, median; 1-minute load average {data['load_average']:.2f} at the end). "
        f"Command: `python -m bench.engine_overhead --baseline-src DIR --runs {data['runs']}`.\n"
    )
    out.append("| part | before | now | now / before |")
    out.append("|---|---:|---:|---:|")
    for name, row in data["table"].items():
        ratio = "n/a" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        out.append(f"| {name.replace('_', ' ')} | {row['before']:.3f} ms | {row['now']:.3f} ms | {ratio} |")
    out.append("")


def _engine_section(out: list[str]) -> None:
    data = load("engine_overhead")
    out.append("## 4. Engine overhead per round, and a 1,000,000-token answer\n")
    if not data:
        out.append("Not measured in this run (no bench/out/engine_overhead.json).\n")
        return
    out.append(
        "The real engine (`autocontinue.generate`) over `ScriptedBackend`, an instant in-process model that "
        "streams a fixed answer in 64-character deltas. Overhead = wall time minus the time spent inside the "
        "backend, per round (median of repeats).\n"
    )
    out.append(_cmd("engine") + "\n")
    out.append("| strategy | tokens a round | engine ms a round |")
    out.append("|---|---:|---:|")
    for row in data["overhead"]:
        out.append(f"| {row['strategy']} | {row['tokens_per_round']:,} | {row['engine_ms_per_round']:.3f} |")
    out.append("")
    for strategy, fit in data.get("fit", {}).items():
        ok = fit["fixed_ms_per_round"] < 1.0
        out.append(
            f"- Engine overhead, {strategy}: **{fit['fixed_ms_per_round']:.3f} ms a round** fixed (target < 1 ms: "
            f"{'met' if ok else 'missed by ' + format(fit['fixed_ms_per_round'] - 1, '.3f') + ' ms'}) "
            f"plus {fit['ms_per_1k_tokens']:.3f} ms per 1,000 tokens streamed (seam repair and "
            "tail-holding on every delta; a model needs seconds to write 1,000 tokens)."
        )
    out.append("")
    _engine_compare(out, load("engine_compare"))
    join = data["join"]
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    xs = [r["tokens"] for r in join]
    a1.plot(xs, [r["wall_s"] for r in join], "o-", label="wall time (engine + scripted backend)")
    a1.plot(xs, [r["engine_s"] for r in join], "s-", label="engine alone")
    a1.legend(fontsize=7)
    a1.set_xlabel("answer tokens")
    a1.set_ylabel("wall time (s)")
    a1.set_title("time to join", fontsize=9)
    a2.plot(xs, [r["peak_rss_mb"] for r in join], "o-", label="peak RSS, whole process")
    a2.plot(xs, [r["tracemalloc_peak_mb"] for r in join], "s-", label="peak Python allocations in the run")
    a2.axhline(150, color="red", lw=0.8, ls="--", label="150 MB target")
    a2.set_xlabel("answer tokens")
    a2.set_ylabel("MB")
    a2.legend(fontsize=7)
    a2.set_title("memory", fontsize=9)
    out.append(f"![join]({_save(fig, 'join.png')})\n")
    out.append(
        f"Answers of increasing length in rounds of {data.get('join_per_call', 8192):,} tokens, each in a fresh "
        "subprocess (peak RSS from `VmHWM` in /proc/self/status, Python allocations from `tracemalloc` in a "
        "second pass).\n"
    )
    out.append(
        "| tokens | rounds | wall time | engine alone | engine µs per token | peak RSS | tracemalloc peak | answer size | exact |"
    )
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in join:
        out.append(
            f"| {r['tokens']:,} | {r['rounds']} | {r['wall_s']:.3f} s | {r['engine_s']:.3f} s | "
            f"{r['engine_s'] / r['tokens'] * 1e6:.3f} | "
            f"{r['peak_rss_mb']} MB | {r['tracemalloc_peak_mb']} MB | {r['answer_mb']} MB | "
            f"{'yes' if r['exact'] else 'no'} |"
        )
    big = max(join, key=lambda r: r["tokens"])
    per = [r["engine_s"] / r["tokens"] for r in join]
    out.append("")
    out.append(
        f"- Joining the largest answer ({big['tokens']:,} tokens): peak RSS **{big['peak_rss_mb']} MB** (target < 150 MB: "
        f"{'met' if big['peak_rss_mb'] < 150 else 'missed'}); the engine's time per token varies "
        f"{max(per) / min(per):.2f}x from the smallest to the largest answer (1.0 = perfectly linear).\n"
    )


# ----------------------------------------------------------------------------- folded in


def _local_kv_section(out: list[str]) -> None:
    data = load("local_kv")
    out.append("## 5. Local model: KV-cache reuse across rounds\n")
    if not data:
        out.append("Not measured in this run (no bench/out/local_kv.json; `bench/local_kv.py`).\n")
        return
    out.append(
        f"`bench/local_kv.py` (local-backend helper): the embedded model writes {data.get('tokens')} tokens "
        f"greedily, in one call and in {data.get('rounds')} prefill rounds with and without KV reuse, "
        f"{data.get('repeat')} interleaved repeats, median kept; {data.get('threads')} llama.cpp thread(s).\n"
    )
    out.append(_cmd("local_kv") + "\n")
    out.append("| mode | wall time | ratio to uncapped | prompt tokens evaluated | reused | same text |")
    out.append("|---|---:|---:|---:|---:|---|")
    for mode in ("uncapped", "rounds_reuse", "rounds_no_reuse", "engine_reuse"):
        row = data.get(mode)
        if row:
            out.append(
                f"| {mode} | {row['seconds']:.2f} s | {row['ratio_to_uncapped']:.3f}x | "
                f"{row['evaluated_prompt_tokens']} | {row['reused_prompt_tokens']} | "
                f"{'yes' if row['same_text_as_uncapped'] else 'no'} |"
            )
    if "rounds_reuse" in data:
        r = data["rounds_reuse"]["ratio_to_uncapped"]
        verdict = "met" if r <= 1.10 else f"missed by {r / 1.10 - 1:.1%}"
        out.append(
            f"\n- Local model, {data.get('rounds')} rounds with KV reuse: **{r:.3f}x** the uncapped call (target <= 1.10x: {verdict}).\n"
        )


def _throughput_section(out: list[str]) -> None:
    data = load("emulator_throughput")
    out.append("## 6. Emulator throughput\n")
    if not data or not data.get("runs"):
        out.append(
            "Not measured in this run (no bench/out/emulator_throughput.json; "
            "`bench/emulator_throughput.py`).\n"
        )
        return
    out.append(
        "`bench/emulator_throughput.py` (emulator helper): the emulator in its own process, no decode "
        "rate, concurrent streaming clients on one event loop in another process. `raw` reads the "
        "event stream with httpx2 (measures the server); `sdk` uses `anthropic.AsyncAnthropic` (server "
        "and SDK parsing share the two cores).\n"
    )
    out.append(_cmd("emulator") + "\n")
    out.append("| client | concurrent clients | tokens each | output tokens/s |")
    out.append("|---|---:|---:|---:|")
    for name, row in data["runs"].items():
        if "error" in row:
            out.append(f"| {name} | - | - | failed: {row['error']} |")
            continue
        out.append(
            f"| {name} | {row.get('clients')} | {row.get('tokens_per_client', row.get('tokens'))} | "
            f"{row.get('tokens_per_s', 0):,} |"
        )
    raw = data["runs"].get("raw", {})
    if raw.get("tokens_per_s"):
        ok = raw["tokens_per_s"] >= 20_000
        out.append(
            f"\n- Emulator, raw client: **{raw['tokens_per_s']:,} tokens/s** (target >= 20,000 with 50 clients: "
            f"{'met' if ok else 'missed by ' + format(1 - raw['tokens_per_s'] / 20000, '.1%')}).\n"
        )


def _seams_section(out: list[str]) -> None:
    data = load("seams_join")
    out.append("## 7. Seam repair alone: linear time on a long answer\n")
    if not data:
        out.append("Not measured in this run (no bench/out/seams_join.json; `bench/seams_join.py`).\n")
        return
    out.append(
        f"`bench/seams_join.py` (seams helper): the seam module alone joins a long answer written in "
        f"rounds of {data.get('round_tokens')} tokens by a simulated model with quirks (repeated tails, "
        "preambles, dropped spaces); the joined text must equal the answer.\n"
    )
    out.append(_cmd("seams") + "\n")
    out.append("| strategy | tokens | rounds | seconds | s per MB | exact |")
    out.append("|---|---:|---:|---:|---:|---|")
    for strategy in ("prefill", "user-turn"):
        for r in data.get(strategy, []):
            out.append(
                f"| {strategy} | {r['tokens']:,} | {r['rounds']} | {r['seconds']:.3f} | {r['s_per_mb']:.4f} | "
                f"{'yes' if r['exact'] else 'no'} |"
            )
    mem = data.get("memory")
    if mem:
        out.append(
            f"\n- Peak Python allocations joining {mem['tokens']:,} tokens ({mem['answer_mb']} MB): "
            f"{mem['peak_python_mb']} MB."
        )
    spread = data.get("s_per_mb_spread")
    if spread:
        out.append(
            "- Time per MB, largest over smallest across sizes (1.0 = linear): "
            + ", ".join(f"{k} {v}x" for k, v in spread.items())
            + "."
        )
    out.append("")
    from .seams_real import report_section

    report_section(out, load("seams_real"))


# ----------------------------------------------------------------------------- page


def _cost_today_section(out: list[str]) -> None:
    from .cost import today_section

    today_section(out, load("cost_today"))


def _openai_section(out: list[str]) -> None:
    from .openai_rounds import report_section

    report_section(out, load("openai_rounds"))


def _batch_section(out: list[str]) -> None:
    from .batch import report_section

    report_section(out, load("batch"))


def _local_batch_section(out: list[str]) -> None:
    from .local_batch import report_section

    report_section(out, load("local_batch"))


def _soak_section(out: list[str]) -> None:
    from .soak import report_section

    report_section(out, load("soak"))


def _startup_section(out: list[str]) -> None:
    from .startup import markdown

    data = load("startup")
    out.append("## 10. Start-up of the command line\n")
    if not data:
        out.append("Not measured in this run (no bench/out/startup.json; `python -m bench.startup`).\n")
        return
    out.append(
        "`autocontinue --help` imports only the command line itself (the package is lazy, PEP 562; commands "
        "load when used), and a missing API key is refused before the SDK is imported. Each command runs "
        f"{data['repeat']} times as a fresh process, interleaved, beside the interpreter's own start "
        "(`python -c pass`, the floor no command can beat). CPU time moves far less with the machine's load "
        "than wall time.\n"
    )
    out.append(_cmd("startup") + " (or `python -m bench.startup --repeat 15`)\n")
    out.append(markdown(data) + "\n")


# Each section: its writer, the bench/out JSON it is made from, and the heading it owns on the page.
SECTIONS: tuple[tuple[Any, tuple[str, ...], str], ...] = (
    (_cost_section, ("cost",), "## 1. "),
    (_cost_today_section, ("cost_today",), "## 1b. "),
    (_speed_section, ("speed",), "## 2. "),
    (_length_section, ("length",), "## 3. "),
    (_engine_section, ("engine_overhead",), "## 4. "),
    (_local_kv_section, ("local_kv",), "## 5. "),
    (_throughput_section, ("emulator_throughput",), "## 6. "),
    (_seams_section, ("seams_join", "seams_real"), "## 7. "),
    (_openai_section, ("openai_rounds",), "## 8. "),
    (_batch_section, ("batch",), "## 9. "),
    (_local_batch_section, ("local_batch",), "## 9b. "),
    (_startup_section, ("startup",), "## 10. "),
    (_soak_section, ("soak",), "## Soak"),
)


def page_sections(text: str) -> dict[str, str]:
    """The ``## `` sections of an existing page, keyed by their heading line."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line, [])
        if current is not None:
            current.append(line)
    return {heading: "\n".join(lines).rstrip() + "\n" for heading, lines in sections.items()}


def _kept(existing: dict[str, str], prefix: str) -> str | None:
    for heading, text in existing.items():
        if heading.startswith(prefix):
            return text
    return None


def _body(existing: dict[str, str]) -> list[str]:
    """Every section: written anew from its JSON, else kept as the page has it, else a short note.

    So ``python -m bench --only openai`` rewrites section 8 and leaves the figures of parts that were
    not re-run (their JSON is not in bench/out on this checkout) exactly as they were published.
    """
    body: list[str] = []
    for section, sources, prefix in SECTIONS:
        kept = _kept(existing, prefix)
        if kept is not None and all(load(name) is None for name in sources):
            body.append(kept)
            continue
        try:
            section(body)
        except Exception as exc:  # one broken section must not lose the page
            body.append(f"(This section could not be written: {type(exc).__name__}: {exc})\n")
    return body


def write(page: Path = PAGE, *, command: str = "python -m bench") -> Path:
    """Regenerate ``page`` (docs/benchmarks.md) and its PNGs (in img/ beside it) from the JSON.

    Sections with no JSON in bench/out keep the text the page already has (see ``_body``).
    """
    page = Path(page)
    _img[0] = page.parent / "img"
    existing = page_sections(page.read_text(encoding="utf-8")) if page.exists() else {}
    out: list[str] = ["# Benchmarks\n"]
    stamps = [d for d in (load(n) for n in ("cost", "speed", "length", "engine_overhead")) if d]
    out.append(
        "Is autocontinue cheaper than the loops people write today, as fast as one uncapped call, and does it "
        "deliver the length asked for? Every figure on this page is produced by one command, on this machine, "
        f"side by side in one run:\n\n```sh\n{command}            # everything, from scratch (15-25 minutes)\n"
        "python -m bench --quick    # a smoke run in about a minute\n"
        "python -m bench --only cost,speed    # some parts; --report-only rewrites this page from bench/out/\n```\n"
        "\nA section whose results are not in bench/out/ (a part not re-run on this checkout) is kept as it "
        "was published, with its own date and machine load.\n"
    )
    if stamps:
        out.append(
            _stamp(stamps[0]) + " Times on a shared 2-core machine move with its load; the ratios "
            "below compare runs made side by side and are the figures to quote.\n"
        )
    body = [block for text in _body(existing) for block in text.split("\n")]
    verdicts = [line.strip() for line in body if line.strip().startswith("- ") and "(target" in line]
    if verdicts:
        out.append("## Targets at a glance\n")
        out.extend(verdicts)
        out.append("")
    out.extend(body)
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(out).rstrip() + "\n", encoding="utf-8")
    return page
