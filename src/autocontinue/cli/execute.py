"""Running one request to the end: the engine's events fan out to the journal, the answer
output and the progress display; interrupts and failures leave the run resumable."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .. import api
from ..errors import AutocontinueError, JournalError
from ..events import Checkpoint, Finished, Result
from ..journal import Journal, RunRecord, RunRecorder
from .errors import (
    BUDGET_STOPS,
    EXIT_BUG,
    EXIT_INTERRUPTED,
    EXIT_PIPE,
    EXIT_TERMINATED,
    CommandFailed,
    describe_bug,
    exit_code_for,
    say,
)
from .output import AnswerOutput
from .progress import Progress, summary_line

__all__ = ["STREAM_KEYS", "execute", "stream_options"]

#: Request keys passed to ``autocontinue.stream`` (the rest of a request is for the record).
STREAM_KEYS = (
    "model", "backend", "system", "prefill", "max_tokens_per_call", "max_rounds",
    "max_output_tokens", "strategy", "stop_sequences", "until", "min_words", "temperature",
    "cache", "seed", "model_path",
)


class _Terminated(BaseException):
    """SIGTERM arrived: stop like Ctrl-C, keep the run resumable."""


def stream_options(request: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments for ``autocontinue.stream`` from a journal request."""
    return {key: request[key] for key in STREAM_KEYS if request.get(key) is not None}


def execute(
    request: dict[str, Any],
    *,
    journal: Journal | None,
    output: AnswerOutput,
    quiet: bool,
    resume_from: RunRecord | None = None,
    checkpoint: Checkpoint | None = None,
    budget_exit: int = 1,
) -> int:
    """Run ``request`` to the end, or continue run ``resume_from`` from ``checkpoint``.

    Returns the exit code. A checkpoint with no text and no rounds starts the run afresh.
    """
    options = stream_options(request)
    if checkpoint is not None and not (checkpoint.text or checkpoint.rounds):
        checkpoint = None
    if checkpoint is not None:
        options["resume"] = checkpoint
    events = api.stream(request["prompt"], **options)
    recorder = _recorder(journal, request, resume_from, checkpoint)
    run_id = recorder.start() if recorder else None
    progress = Progress(
        live=_live_line_wanted(output, quiet), quiet=quiet,
        rounds_done=len(checkpoint.rounds) if checkpoint else 0,
        cost_so_far=sum(r.cost_usd for r in checkpoint.rounds) if checkpoint else 0.0,
    )
    result: Result | None = None
    with _sigterm_raises():
        try:
            if checkpoint is not None:
                output.write(checkpoint.text)
            with progress:
                for event in events:
                    if isinstance(event, Finished):
                        event.result.run_id = run_id
                        result = event.result
                    if recorder:
                        recorder.on_event(event)
                    output.on_event(event)
                    progress.on_event(event)
        except (Exception, KeyboardInterrupt, _Terminated) as error:  # every way out stays resumable
            with _shielded():
                _close(events)
                return _fail(error, recorder, run_id)
    assert result is not None, "the engine ended without a Finished event"
    try:
        output.finish(result)
    except CommandFailed as error:
        if run_id:
            error.hint = f"the answer is kept in the journal: autocontinue show {run_id} > FILE"
        raise
    budget = result.stop_reason in BUDGET_STOPS
    if not quiet:
        line = ("stopped: " if budget else "done: ") + summary_line(result, elapsed=progress.elapsed)
        say(line + (f" · wrote {output.out_file}" if output.out_file else ""))
    return budget_exit if budget else 0


def _close(events: Any) -> None:
    try:
        close = getattr(events, "close", None)
        if close is not None:
            close()
    except Exception:  # noqa: BLE001 - the run already ended; its cleanup may not add an error
        pass


def _recorder(
    journal: Journal | None, request: dict[str, Any], resume_from: RunRecord | None, checkpoint: Checkpoint | None
) -> RunRecorder | None:
    if journal is None:
        return None
    if resume_from is not None:
        start = checkpoint or Checkpoint(text="")
        return RunRecorder(
            journal, backend=resume_from.backend, model=resume_from.model, request=resume_from.request,
            run_id=resume_from.id, text=start.text, held=start.held,
        )
    return RunRecorder(journal, backend=request["backend"], model=request.get("model") or "default", request=request)


def _fail(error: BaseException, recorder: RunRecorder | None, run_id: str | None) -> int:
    """Record how the run ended, say so in one line, and return the exit code."""
    if isinstance(error, (KeyboardInterrupt, _Terminated, BrokenPipeError)):
        state, code = "interrupted", {
            KeyboardInterrupt: EXIT_INTERRUPTED, _Terminated: EXIT_TERMINATED, BrokenPipeError: EXIT_PIPE
        }[type(error)]
        message = {EXIT_INTERRUPTED: "interrupted", EXIT_TERMINATED: "terminated", EXIT_PIPE: "stdout was closed"}[code]
        detail = None
    elif isinstance(error, AutocontinueError):
        state, code, message = "failed", exit_code_for(error), error.one_line()
        detail = message
    else:
        state, code, message = "failed", EXIT_BUG, describe_bug(error)
        detail = message
    if isinstance(error, BrokenPipeError):
        _silence_stdout()
    saved = _save(recorder, state, detail)
    if saved and run_id:
        message += f"; resume with: autocontinue resume {run_id}"
    elif recorder is None and state == "interrupted":
        message += " (not resumable: the run was not journaled)"
    say(message)
    return code


def _save(recorder: RunRecorder | None, state: str, detail: str | None) -> bool:
    if recorder is None:
        return False
    try:
        recorder.stop(state, error=detail)
    except JournalError as exc:
        say(f"could not save the run: {exc.one_line()}")
        return False
    return True


def _live_line_wanted(output: AnswerOutput, quiet: bool) -> bool:
    """A live line only on a terminal stderr that is not also showing the streamed text."""
    if quiet or not _isatty(sys.stderr):
        return False
    return not (output.streams and _isatty(sys.stdout))


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the exit flush does not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, AttributeError, ValueError):
        pass


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        raise _Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _shielded() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while the last checkpoint is written."""
    try:
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
