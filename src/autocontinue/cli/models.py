"""``autocontinue models``: the catalogue's limits, prefill support and prices."""

from __future__ import annotations

import json

import click

from ..catalogue import ModelSpec, all_models
from .terminal import for_stream, is_terminal, json_for_terminal

__all__ = ["models", "models_table", "model_data"]


def _tokens(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return f"{n:,}"


def models_table(specs: list[ModelSpec]) -> list[str]:
    """Aligned lines: id, backend, context, max output, prefill, cache minimum, prices (input,
    output, cache read), thinking when omitted, efforts, retirement, aliases."""
    rows = [
        (
            "MODEL",
            "BACKEND",
            "CONTEXT",
            "MAX OUT",
            "PREFILL",
            "MIN CACHE",
            "$/M IN",
            "$/M OUT",
            "$/M READ",
            "THINKING",
            "EFFORT",
            "RETIRES",
            "ALIASES",
        )
    ]
    for s in specs:
        rows.append(
            (
                s.id,
                s.family,
                _tokens(s.context_window),
                _tokens(s.max_output),
                "yes" if s.prefill else "no",
                _tokens(s.min_cacheable),
                f"{s.input_price:g}",
                f"{s.output_price:g}",
                f"{s.prices.read:g}",
                s.thinking_default if s.family == "anthropic" else "-",
                _efforts(s.efforts),
                s.retires or "-",
                ", ".join(s.aliases)
                + (" (unconfirmed: " + ", ".join(s.unconfirmed) + ")" if s.unconfirmed else ""),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {2, 3, 5, 6, 7, 8}
    return [
        "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))
        ).rstrip()
        for row in rows
    ]


def model_data(spec: ModelSpec) -> dict[str, object]:
    """One catalogue entry as JSON-ready data."""
    return {
        "id": spec.id,
        "backend": spec.family,
        "aliases": list(spec.aliases),
        "context_window": spec.context_window,
        "max_output": spec.max_output,
        "prefill": spec.prefill,
        "min_cacheable": spec.min_cacheable,
        "input_price": spec.input_price,
        "output_price": spec.output_price,
        "cache_read_price": spec.prices.read,
        "thinking": spec.thinking_default,
        "efforts": list(spec.efforts),
        "retires": spec.retires,
        "successor": spec.successor,
        "unconfirmed": list(spec.unconfirmed),
    }


def _efforts(efforts: tuple[str, ...]) -> str:
    if not efforts:
        return "-"
    return "all" if len(efforts) == 5 else "/".join(efforts)


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="One JSON list of models.")
def models(as_json: bool) -> None:
    """The model catalogue: limits, prefill support, prices, thinking, retirements.

    THINKING is what the API does when thinking is not set (always, on, off). Haiku 5.5 bills
    prompts over 100k tokens at its higher tier. An unknown claude-* id is treated as the
    newest generation (1M context, no prefill).
    """
    stdout = click.get_text_stream("stdout")
    if as_json:
        text = json.dumps([model_data(spec) for spec in all_models()], ensure_ascii=False)
        click.echo(json_for_terminal(text) if is_terminal(stdout) else text)
        return
    for line in models_table(all_models()):
        click.echo(for_stream(line, stdout))
