"""``autocontinue batch INPUT -o OUTPUT.jsonl``: many prompts, each answered to its end.

The items run concurrently under the service's rate limits (or, with ``--via batches``,
through Anthropic's Message Batches at half price), one journal entry for the whole batch:
``--resume BATCH_ID`` or simply the same command again skips the finished items and continues
the others from their last landed round. stderr shows one live line on a terminal, and a
summary table at the end. Exit codes as for ``run``: 0 every item finished, 1 some stopped at
a budget, 2 bad input, 3 some failed (rerun to retry them), 130 interrupted, 141 stdout was
closed (both resumable: the items in flight stop and keep their landed rounds).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import click

from ..batch.output import ItemResult
from ..batch.progress import BatchProgress, format_seconds
from ..batch.runner import DEFAULT_POLL_INTERVAL, BatchResult, StrictInputError, abatch
from .common import journal_options
from .errors import (
    BUDGET_STOPS,
    EXIT_BACKEND,
    EXIT_BUDGET,
    EXIT_INTERRUPTED,
    EXIT_PIPE,
    CommandFailed,
    say,
    warn,
)
from .execute import silence_stdout
from .inputs import check_output_path, check_url, clean_prefill
from .options import cli_options, options_from_cli
from .terminal import visible

__all__ = ["batch"]

#: Where a run option means something else as the default of every item.
_ITEM_HELP = {
    "model": "Model of every item that names none.",
    "backend": "Default: as for run (openai: at OPENAI_BASE_URL).",
    "system": "System prompt of every item that has none.",
    "max_rounds": "Most model calls per item.",
    "max_output_tokens": "Output tokens per item in all.",
    "base_url": "API endpoint (default: ANTHROPIC_BASE_URL for anthropic and --via batches; "
    "required for openai).",
}


@click.command("batch")
@click.argument("input_path", metavar="INPUT", required=False, type=click.Path(dir_okay=False))
@click.option(
    "-o", "--output", metavar="FILE", help="Write one JSON line per item to FILE (default: stdout)."
)
@click.option(
    "--output-dir",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Write each item to DIR/<id>.json instead.",
)
@click.option(
    "--via",
    type=click.Choice(["live", "batches"]),
    default="live",
    show_default=True,
    help="live calls, paced by the rate limits; or Anthropic Message Batches (half price, slower).",
)
@click.option(
    "--resume", "resume_id", metavar="BATCH_ID", help="Continue this batch (INPUT may then be left out)."
)
@click.option("--fresh", is_flag=True, help="Start a new batch even if the same input ran before.")
@click.option(
    "--strict", is_flag=True, help="Refuse the whole input if any line is bad (default: skip bad lines)."
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 4096),
    default=32,
    show_default=True,
    metavar="N",
    help="Most items at once (live).",
)
@click.option(
    "--rpm", type=click.IntRange(1), metavar="N", help="Requests a minute, if the service does not say."
)
@click.option(
    "--itpm", type=click.IntRange(1), metavar="N", help="Input tokens a minute, if the service does not say."
)
@click.option(
    "--otpm", type=click.IntRange(1), metavar="N", help="Output tokens a minute, if the service does not say."
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(0.01),
    default=DEFAULT_POLL_INTERVAL,
    show_default=True,
    metavar="S",
    help="Seconds between polls of a Message Batch.",
)
@cli_options(help=_ITEM_HELP, defaults=False)
@click.option("-q", "--quiet", is_flag=True, help="Nothing on stderr but errors.")
@journal_options
def batch(
    input_path: str | None,
    output: str | None,
    output_dir: str | None,
    via: str,
    resume_id: str | None,
    fresh: bool,
    strict: bool,
    concurrency: int,
    rpm: int | None,
    itpm: int | None,
    otpm: int | None,
    poll_interval: float,
    quiet: bool,
    journal_path: str | None,
    no_journal: bool,
    **values: Any,
) -> None:
    """Answer every prompt of INPUT (JSONL, or one prompt a line), each to its end.

    \b
    INPUT lines: {"id": ..., "prompt": ...} or {"id": ..., "messages": [...], "system": ...},
    plus any run option per item (max_rounds, min_words, model, ...). Every run option
    below is the default of every item that does not set it.
    Output: one JSON object per item (id, text, stop_reason, rounds, usage, cost_usd, error),
    written as each item finishes.
    """
    if input_path is None and resume_id is None:
        raise CommandFailed(
            "no input given", hint="autocontinue batch INPUT.jsonl -o OUTPUT.jsonl, or --resume BATCH_ID"
        )
    if output and output_dir:
        raise CommandFailed("-o and --output-dir contradict each other", hint="keep one of them")
    if input_path is not None and not Path(input_path).is_file():
        raise CommandFailed(f"cannot read {input_path}: no such file", hint="check the path")
    check_output_path(output)
    if no_journal and resume_id:
        raise CommandFailed(
            "--resume reads the journal; --no-journal leaves nothing to resume", hint="drop --no-journal"
        )
    run_options = options_from_cli(values)
    backend = run_options.pop("backend", None)
    if "prefill" in run_options:
        run_options["prefill"] = clean_prefill(run_options["prefill"], quiet=quiet)
    if "base_url" in run_options:
        check_url(run_options["base_url"], "--base-url")
    limits = {k: float(v) for k, v in (("requests", rpm), ("input", itpm), ("output", otpm)) if v}
    view = _View(quiet=quiet)
    with tempfile.TemporaryDirectory() as scratch:
        journal = str(Path(scratch) / "journal.sqlite3") if no_journal else journal_path
        try:
            result = asyncio.run(
                abatch(
                    input_path,
                    output=output,
                    output_dir=output_dir,
                    journal=journal,
                    resume=resume_id,
                    fresh=fresh,
                    via=via,
                    concurrency=concurrency,
                    backend=backend,
                    limits=limits or None,
                    strict=strict,
                    poll_interval=poll_interval,
                    on_batch=view.started,
                    on_item=view.item_done,
                    on_bad_line=view.bad_line,
                    on_warning=view.warning,
                    on_note=view.note,
                    resumable=not no_journal,
                    **run_options,
                )
            )
        except StrictInputError as error:
            raise CommandFailed(error.message, hint="fix them, or drop --strict to skip them") from None
        except (KeyboardInterrupt, BrokenPipeError) as error:
            view.close()
            if isinstance(error, BrokenPipeError):
                silence_stdout()
            message, code = (
                ("stdout was closed", EXIT_PIPE)
                if isinstance(error, BrokenPipeError)
                else ("interrupted", EXIT_INTERRUPTED)
            )
            if view.batch_id and not no_journal:
                message += f"; resume with: autocontinue batch --resume {view.batch_id}"
            elif no_journal:
                message += " (not resumable: the batch was not journaled)"
            say(message)
            raise SystemExit(code) from None
        finally:
            view.close()
    raise SystemExit(view.summary(result, resumable=not no_journal))


class _View:
    """stderr: bad lines, failed items, a live line on a terminal, the summary table.

    Ids, error text, warnings and notes come from the input, the model or the service: every
    line of them is shown with its control characters made visible (``terminal.visible``),
    whether it goes through ``say`` or the live display's console (rich lets ESC through).
    """

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.batch_id: str | None = None
        self.progress: BatchProgress | None = None
        self._live: Any = None
        self._warned: set[str] = set()

    def started(self, batch_id: str, progress: BatchProgress) -> None:
        self.batch_id, self.progress = batch_id, progress
        if not self.quiet and _isatty(sys.stderr):
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text

            self._live = Live(
                get_renderable=lambda: Text(visible(progress.line()), style="dim"),
                console=Console(stderr=True),
                transient=True,
                refresh_per_second=4,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()

    def bad_line(self, bad: Any) -> None:
        if not self.quiet:
            self._note(f"input {bad} (skipped)")

    def item_done(self, result: ItemResult, progress: BatchProgress) -> None:
        if result.error and not self.quiet:
            self._note(f"item {result.id} failed: {result.error}")

    def warning(self, line: str) -> None:
        """A line about money (a round billed twice): shown at once, even under -q."""
        self._warned.add(line)
        self._note(f"warning: {line}")

    def note(self, line: str) -> None:
        """A line not about money (why a --via batches run waits, items taken from earlier
        batches): not under -q."""
        if not self.quiet:
            self._note(line)

    def _note(self, line: str) -> None:
        if self._live is not None:
            self._live.console.print(f"autocontinue: {visible(line)}", markup=False, highlight=False)
        else:
            say(visible(line))

    def close(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()

    def summary(self, result: BatchResult, *, resumable: bool) -> int:
        failed = result.failed
        budget = [r for r in result.results if r.stop_reason in BUDGET_STOPS]
        for line in result.warnings:  # money: even under -q; earlier runs' ones too
            if line not in self._warned:
                warn(visible(line))
        if not self.quiet:
            self._table(result)
            if failed and resumable:
                say(
                    f"{len(failed)} item{'s' if len(failed) != 1 else ''} failed; retry them with: "
                    f"autocontinue batch --resume {result.batch_id}"
                )
        if failed:
            return EXIT_BACKEND
        return EXIT_BUDGET if budget else 0

    def _table(self, result: BatchResult) -> None:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        rows: Counter[str] = Counter()
        tokens: Counter[str] = Counter()
        cost: dict[str, float] = {}
        unknown: Counter[str] = Counter()
        for r in result.results:
            key = "failed" if r.error else (r.stop_reason or "?")
            rows[key] += 1
            tokens[key] += r.usage.output_tokens
            cost[key] = cost.get(key, 0.0) + r.cost_usd
            unknown[key] += not r.cost_known
            unknown["total"] += not r.cost_known
        table = Table(title=Text(f"batch {visible(result.batch_id)}"), title_justify="left", show_edge=False)
        for name in ("outcome", "items", "tokens out", "cost"):
            table.add_column(name, justify="left" if name == "outcome" else "right")
        for key, count in rows.most_common():
            table.add_row(
                Text(visible(key)), str(count), f"{tokens[key]:,}", _dollars(cost[key], unknown[key], count)
            )
        total = len(result.results)
        table.add_row(
            "total",
            str(total),
            f"{sum(tokens.values()):,}",
            _dollars(result.cost_usd, unknown["total"], total),
        )
        console = Console(stderr=True, highlight=False)
        console.print(table)
        # pacing means nothing on a local model, nor where no limit was known and none hit
        paced = result.calls and result.paced
        extra = f" · {result.throttled} of {result.calls} calls throttled (429)" if paced else ""
        bad = f" · {len(result.bad_lines)} bad input lines skipped" if result.bad_lines else ""
        say(
            visible(
                f"batch {result.batch_id}: {len(result.results)} items in "
                f"{format_seconds(result.elapsed_s)}{extra}{bad}"
            )
        )


def _dollars(cost: float, unknown: int, count: int) -> str:
    """A cost cell: "unknown" when no item of the row has known prices, never $0."""
    if not unknown:
        return f"${cost:.4f}"
    return "unknown" if unknown == count else f"${cost:.4f} + unknown"


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
