"""``autocontinue runs`` and ``autocontinue show``: what the journal holds."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click

from ..journal import RunRecord
from .common import open_journal
from .errors import say
from .resume import find_run

__all__ = ["runs", "show", "runs_table", "seam_lines"]


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def runs_table(records: list[RunRecord]) -> list[str]:
    """Aligned lines: id, when, model, rounds, tokens, cost, state."""
    rows = [("ID", "WHEN", "MODEL", "ROUNDS", "TOKENS", "COST", "STATE")]
    for r in records:
        usage = r.usage
        rows.append((
            r.id, _when(r.created), r.model, str(len(r.rounds)),
            f"{usage.output_tokens:,}", f"${r.cost_usd:.4f}",
            r.display_state + (f" ({r.stop_reason})" if r.stop_reason and r.stop_reason != "end_turn" else ""),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {3, 4, 5}
    return [
        "  ".join(cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
        for row in rows
    ]


def _describe_seam(seam: dict[str, Any]) -> str:
    parts = [f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in seam.items()
             if key != "strategy" and value not in (None, "", [], {}, 0, False)]
    return ", ".join(parts) or "nothing to repair"


def seam_lines(record: RunRecord) -> list[str]:
    """One line per round: strategy, stop reason, tokens, characters added, the seam repair."""
    lines = []
    for report in record.rounds:
        lines.append(
            f"round {report.index + 1}: {report.strategy}, stop {report.stop_reason}, "
            f"{report.usage.output_tokens:,} tokens out, +{report.chars:,} chars; seam: {_describe_seam(report.seam)}"
        )
    return lines


@click.command("runs")
@click.option("-n", "--limit", type=click.IntRange(1, 100_000), default=20, show_default=True, help="How many runs, newest first.")
@click.option("--journal", "journal_path", metavar="PATH", help="Journal file.")
def runs(limit: int, journal_path: str | None) -> None:
    """List recent runs: id, when, model, rounds, tokens, cost, state."""
    journal = open_journal(journal_path)
    assert journal is not None
    records = journal.list_runs(limit)
    if not records:
        click.echo("no runs yet", err=True)
        return
    for line in runs_table(records):
        click.echo(line)


@click.command("show")
@click.argument("run_id")
@click.option("--seams", is_flag=True, help="After the text, what each round's seam repaired.")
@click.option("--journal", "journal_path", metavar="PATH", help="Journal file.")
def show(run_id: str, seams: bool, journal_path: str | None) -> None:
    """Print a run's answer (so far, if it did not finish)."""
    journal = open_journal(journal_path)
    assert journal is not None
    record = find_run(journal, run_id)
    click.echo(record.text, nl=False)
    if seams or (record.text and not record.text.endswith("\n") and sys.stdout.isatty()):
        click.echo("")
    if not record.finished:
        detail = f" ({record.error})" if record.error else ""
        say(f"run {record.id} is {record.display_state}{detail}; this is the text so far; finish it with: autocontinue resume {record.id}")
    if seams:
        click.echo(f"--- run {record.id}: {record.state}, {record.model} on {record.backend}, {len(record.rounds)} rounds")
        for line in seam_lines(record):
            click.echo(line)
