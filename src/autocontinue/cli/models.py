"""``autocontinue models``: the catalogue's limits, prefill support and prices."""

from __future__ import annotations

import click

from ..catalogue import ModelSpec, all_models

__all__ = ["models", "models_table"]


def _tokens(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return f"{n:,}"


def models_table(specs: list[ModelSpec]) -> list[str]:
    """Aligned lines: id, backend, context, max output, prefill, cache minimum, prices."""
    rows = [("MODEL", "BACKEND", "CONTEXT", "MAX OUT", "PREFILL", "MIN CACHE", "$/M IN", "$/M OUT", "ALIASES")]
    for s in specs:
        rows.append((
            s.id, s.family, _tokens(s.context_window), _tokens(s.max_output), "yes" if s.prefill else "no",
            _tokens(s.min_cacheable), f"{s.input_price:g}", f"{s.output_price:g}", ", ".join(s.aliases),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {2, 3, 5, 6, 7}
    return [
        "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
        for row in rows
    ]


@click.command("models")
def models() -> None:
    """The model catalogue: limits, prefill support, prices.

    An unknown claude-* id is treated as the newest generation (1M context, no prefill).
    """
    for line in models_table(all_models()):
        click.echo(line)
