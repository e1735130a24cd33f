"""``autocontinue runs`` and ``autocontinue show``: what the journal holds.

On a terminal, control characters in journal contents (model names, answers, errors) are
made visible; ``show --raw`` keeps the answer's as they are. ``--json`` gives the same data
as one JSON object (``runs``: a list).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from .common import open_journal, raw_option
from .errors import say
from .progress import cost_text
from .terminal import for_stream, is_terminal, json_for_terminal

if TYPE_CHECKING:
    from ..journal import RunRecord

__all__ = ["runs", "show", "runs_table", "seam_lines", "run_summary", "plural"]


def plural(n: int, word: str) -> str:
    """``1 round``, ``3 rounds``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def runs_table(records: list[RunRecord]) -> list[str]:
    """Aligned lines: id, when, model, rounds, tokens, cost, state."""
    rows = [("ID", "WHEN", "MODEL", "ROUNDS", "TOKENS", "COST", "STATE")]
    for r in records:
        usage = r.usage
        rows.append(
            (
                r.id,
                _when(r.created),
                r.model,
                str(len(r.rounds)),
                f"{usage.output_tokens:,}",
                cost_text(r.cost_usd, r.cost_known, r.backend),
                r.display_state
                + (f" ({r.stop_reason})" if r.stop_reason and r.stop_reason != "end_turn" else ""),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {3, 4, 5}
    return [
        "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))
        ).rstrip()
        for row in rows
    ]


def _describe_seam(seam: dict[str, Any]) -> str:
    parts = [
        f"{key}={json.dumps(value, ensure_ascii=False)}"
        for key, value in seam.items()
        if key != "strategy" and value not in (None, "", [], {}, 0, False)
    ]
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


def run_summary(record: RunRecord) -> dict[str, Any]:
    """A run as JSON-ready data (``runs --json`` leaves out the text)."""
    return {
        "id": record.id,
        "created": record.created,
        "state": record.display_state,
        "stop_reason": record.stop_reason,
        "error": record.error,
        "backend": record.backend,
        "model": record.model,
        "rounds": len(record.rounds),
        "stalled_rounds": record.stalled_rounds,
        "usage": record.usage.to_dict(),
        "cost_usd": record.cost_usd if record.cost_known else None,
        "cost_known": record.cost_known,
    }


def _echo(text: str, *, answer: bool = False, nl: bool = True) -> None:
    # color=True: a pipe gets the journal's text byte-exact (click would strip ANSI sequences).
    click.echo(for_stream(text, click.get_text_stream("stdout"), answer=answer), nl=nl, color=True)


def _echo_json(data: Any) -> None:
    text = json.dumps(data, ensure_ascii=False)
    click.echo(json_for_terminal(text) if is_terminal(click.get_text_stream("stdout")) else text)


@click.command("runs")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(1, 100_000),
    default=20,
    show_default=True,
    help="How many runs, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON list of runs (no text).")
@click.option("--journal", "journal_path", metavar="PATH", help="Journal file (it must exist).")
def runs(limit: int, as_json: bool, journal_path: str | None) -> None:
    """List recent runs: id, when, model, rounds, tokens, cost, state."""
    journal = open_journal(journal_path, create=False)
    assert journal is not None
    records = journal.list_runs(limit)
    if as_json:
        _echo_json([run_summary(r) for r in records])
        return
    if not records:
        say(f"no runs yet in {journal.path}")
        return
    for line in runs_table(records):
        _echo(line)


@click.command("show")
@click.argument("run_id")
@click.option("--seams", is_flag=True, help="After the text, what each round's seam repaired.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the text, rounds, usage, seams.")
@click.option("--journal", "journal_path", metavar="PATH", help="Journal file (it must exist).")
@raw_option
def show(run_id: str, seams: bool, as_json: bool, journal_path: str | None) -> None:
    """Print a run's answer (so far, if it did not finish)."""
    from .resume import find_run

    journal = open_journal(journal_path, create=False)
    assert journal is not None
    record = find_run(journal, run_id)
    if as_json:
        _echo_json(
            {**run_summary(record), "text": record.text, "rounds": [r.to_dict() for r in record.rounds]}
        )
        return
    _echo(record.text, answer=True, nl=False)
    if seams or (
        record.text and not record.text.endswith("\n") and is_terminal(click.get_text_stream("stdout"))
    ):
        click.echo("")
    if not record.finished:
        detail = f" ({record.error})" if record.error else ""
        say(
            f"run {record.id} is {record.display_state}{detail}; this is the text so far; finish it with: autocontinue resume {record.id}"
        )
    if seams:
        stalled = f", {plural(record.stalled_rounds, 'round')} added no text" if record.stalled_rounds else ""
        _echo(
            f"--- run {record.id}: {record.state}, {record.model} on {record.backend}, "
            f"{plural(len(record.rounds), 'round')}{stalled}"
        )
        for line in seam_lines(record):
            _echo(line)
