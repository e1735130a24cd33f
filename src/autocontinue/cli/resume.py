"""``autocontinue resume [RUN_ID]``: finish an interrupted run from its last checkpoint."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from ..events import Checkpoint
from .common import journal_options, open_journal, output_options
from .errors import CommandFailed, say, warn
from .execute import execute
from .inputs import check_output_path
from .output import AnswerOutput
from .progress import summary_line

if TYPE_CHECKING:
    from ..journal import Journal, RunRecord

__all__ = ["resume", "find_run", "resume_point"]


def find_run(journal: Journal, run_id: str) -> RunRecord:
    """The run with this id (or unique prefix); CommandFailed naming the id if absent."""
    try:
        return journal.get(run_id)
    except KeyError:
        raise CommandFailed(
            f"no run {run_id!r} in the journal {journal.path}", hint="list runs with: autocontinue runs"
        ) from None


@click.command("resume")
@click.argument("run_id", required=False)
@output_options
@journal_options
def resume(
    run_id: str | None,
    output: str | None,
    as_json: bool,
    quiet: bool,
    journal_path: str | None,
    no_journal: bool,
) -> None:
    """Finish an interrupted run (default: the latest unfinished one).

    Prints the whole answer: the text saved before the interruption, then the rest as it
    streams; a run started with -o FILE writes FILE again (unless -o is given). The request
    (prompt, model, options) is the one the journal recorded. A run is driven by one process
    at a time: resuming one that another live process is working on is refused.
    """
    if no_journal:
        raise CommandFailed(
            "resume reads the journal; --no-journal leaves nothing to resume", hint="drop --no-journal"
        )
    journal = open_journal(journal_path)
    assert journal is not None
    record = find_run(journal, run_id) if run_id else journal.latest_unfinished()
    if output is None and record is not None and record.output:
        output = _recorded_file(record.output, quiet)
        if output and not quiet and not record.finished:
            say(f"writing the answer to {output} (the run's -o FILE)")
    out_file = check_output_path(output)
    answer = AnswerOutput(out_file=out_file, as_json=as_json)
    if record is None:
        if not quiet:
            say("no unfinished run to resume (list runs with: autocontinue runs)")
        raise SystemExit(0)
    if record.finished:
        say(f"run {record.id} already finished ({record.stop_reason}); printing its answer")
        answer.write(record.text)
        result = record.result()
        answer.finish(result)
        if not quiet:
            say("done: " + summary_line(result))
        raise SystemExit(0)
    journal.claim_run(record.id)  # RunBusyError (one line, exit 2) if another process drives it
    _warn_if_endpoint_changed(record, quiet)
    checkpoint = resume_point(record)
    if not quiet:
        say(
            f"resuming run {record.id} from {len(checkpoint.text):,} characters and {len(record.rounds)} "
            f"finished round{'s' if len(record.rounds) != 1 else ''}"
        )
    code = execute(
        record.request, journal=journal, output=answer, quiet=quiet, resume_from=record, checkpoint=checkpoint
    )
    raise SystemExit(code)


def _recorded_file(path: str, quiet: bool) -> str | None:
    """The run's -o FILE to write again; None (stdout) for one an older version recorded that
    was written in place: a device, a FIFO, or ``/proc/PID/fd/N`` of a process now gone."""
    from ..outfile import in_place

    if not in_place(path):
        return path
    if not quiet:
        say(f"the run's -o {path} is not a file to write again; printing the answer here")
    return None


def resume_point(record: RunRecord) -> Checkpoint:
    """Where to continue: the last checkpoint, or for a seeded local model the very start.

    llama.cpp computes a token's KV entries with slightly different rounding when it decodes
    the token alone (as in the original run) than when it evaluates the same text in one batch
    (as a fresh process must), so a seeded local run continued from a checkpoint drifts from
    the uninterrupted one. Replaying it from the start with the same seed is bit-identical and
    costs nothing but local time (``resume`` prints the whole answer either way). A remote
    model continues from the last checkpoint and pays only for text not yet seen.
    """
    if record.backend == "local" and record.request.get("seed") is not None:
        return Checkpoint(text="")
    return record.checkpoint()


def _warn_if_endpoint_changed(record: RunRecord, quiet: bool) -> None:
    """A resumed anthropic run goes wherever the environment points now; say if that moved."""
    if quiet or record.backend != "anthropic":
        return
    from ..journal import redact_url

    if record.request.get("base_url"):
        return  # sent to the --base-url it was given, whatever the environment says now
    before = record.request.get("endpoint")
    now = os.environ.get("ANTHROPIC_BASE_URL")
    now = redact_url(now) if now else None
    if before != now:
        warn(
            f"run {record.id} was sent to {before or 'the Anthropic API'}; now it goes to {now or 'the Anthropic API'}"
        )
