"""Running one request to the end: the engine's events fan out to the journal, the answer
output and the progress display; interrupts and failures leave the run resumable."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import AutocontinueError, ContextWindowError, JournalError
from ..events import Checkpoint, Finished, Result
from .errors import (
    BUDGET_STOPS,
    EXIT_BUDGET,
    EXIT_BUG,
    EXIT_INTERRUPTED,
    EXIT_PIPE,
    EXIT_TERMINATED,
    RESUMABLE_STOPS,
    describe_bug,
    error_line,
    exit_code_for,
    resumable,
    say,
)
from .output import AnswerOutput
from .progress import Progress, summary_line

if TYPE_CHECKING:
    from ..journal import Journal, RunRecord, RunRecorder

__all__ = ["execute", "stream_options"]


class _Terminated(BaseException):
    """SIGTERM arrived: stop like Ctrl-C, keep the run resumable."""


def stream_options(request: dict[str, Any], backend: str | None = None) -> dict[str, Any]:
    """The keyword arguments for ``autocontinue.stream`` from a journal request: the Options
    fields that differ from their defaults (``Options.from_record``), and the backend name."""
    import dataclasses

    from ..options import Options

    options = Options.from_record(request)
    defaults = Options()
    chosen = {
        f.name: getattr(options, f.name)
        for f in dataclasses.fields(Options)
        if f.name != "extra" and getattr(options, f.name) != getattr(defaults, f.name)
    }
    chosen["backend"] = backend or request.get("backend")
    return chosen


def execute(
    request: dict[str, Any],
    *,
    journal: Journal | None,
    output: AnswerOutput,
    quiet: bool,
    resume_from: RunRecord | None = None,
    checkpoint: Checkpoint | None = None,
    budget_exit: int = EXIT_BUDGET,
    on_result: Callable[[Result], None] | None = None,
) -> int:
    """Run ``request`` to the end, or continue run ``resume_from`` from ``checkpoint``.

    Returns the exit code. A checkpoint with no text and no rounds starts the run afresh. A
    resumed run is claimed first (RunBusyError if another live process drives it), so that
    two processes never pay for the same run.
    """
    from .. import api

    options = stream_options(request, resume_from.backend if resume_from else None)
    if checkpoint is not None and not (checkpoint.text or checkpoint.rounds):
        checkpoint = None
    if checkpoint is not None:
        options["resume"] = checkpoint
    recorder = _recorder(journal, request, resume_from, checkpoint, output)
    run_id = recorder.start() if recorder and resume_from else None
    try:
        events = api.stream(request["prompt"], **options)
    except BaseException as error:
        if recorder and run_id:
            return _fail(error, recorder, run_id, output)
        raise
    if recorder and not run_id:
        run_id = recorder.start()
    progress = Progress(
        live=_live_line_wanted(output, quiet),
        quiet=quiet,
        rounds_done=len(checkpoint.rounds) if checkpoint else 0,
        cost_so_far=sum(r.cost_usd for r in checkpoint.rounds) if checkpoint else 0.0,
        tokens_so_far=sum(r.usage.output_tokens for r in checkpoint.rounds) if checkpoint else 0,
        cost_known=all(r.cost_known for r in checkpoint.rounds) if checkpoint else True,
    )
    result: Result | None = None
    with _sigterm_raises():
        try:
            if checkpoint is not None:
                output.write(checkpoint.text)
            with progress:
                for event in events:
                    if isinstance(event, Finished):
                        _refuse_if_nothing_fits(event.result)
                        event.result.run_id = run_id
                        result = event.result
                    if recorder:
                        recorder.on_event(event)
                    output.on_event(event)
                    progress.on_event(event)
        except (Exception, KeyboardInterrupt, _Terminated) as error:  # every way out stays resumable
            with _shielded():
                _close(events)
                return _fail(error, recorder, run_id, output)
    assert result is not None, "the engine ended without a Finished event"
    try:
        return _finish(result, output, quiet, progress.elapsed, run_id, budget_exit, on_result)
    except BrokenPipeError:  # -o /dev/stdout closed once the run was done: as a closed stdout
        silence_stdout()
        kept = f"; the answer is kept: autocontinue show {run_id} > FILE" if run_id else ""
        say(f"stdout was closed{kept}")
        return EXIT_PIPE


def _refuse_if_nothing_fits(result: Result) -> None:
    """A run that ended on a full context before its first round: the prompt itself does not
    fit. That is an error the user must fix (exit 2), not a finished run with no text."""
    if result.stop_reason == "context_exhausted" and not result.rounds and not result.text:
        raise ContextWindowError(
            f"the prompt does not fit the context window of {result.model}",
            hint="shorten the prompt, or choose a model with a larger context window: see autocontinue models",
        )


def _finish(
    result: Result,
    output: AnswerOutput,
    quiet: bool,
    elapsed: float,
    run_id: str | None,
    budget_exit: int,
    on_result: Callable[[Result], None] | None,
) -> int:
    """Write the answer's file or JSON, say the summary, and return the exit code."""
    output.finish(result)  # OutputError if the -o file cannot be written: the journal keeps it
    if on_result is not None:
        on_result(result)
    budget = result.stop_reason in BUDGET_STOPS
    stalled = result.stop_reason in RESUMABLE_STOPS
    if not quiet:
        line = ("stopped: " if budget or stalled else "done: ") + summary_line(result, elapsed=elapsed)
        if stalled and run_id:
            line += f"; try again with: autocontinue resume {run_id}"
        say(line + (f" · wrote {output.out_file}" if output.out_file else ""))
    if stalled:
        return EXIT_BUDGET
    return budget_exit if budget else 0


def _close(events: Any) -> None:
    try:
        close = getattr(events, "close", None)
        if close is not None:
            close()
    except Exception:  # noqa: BLE001 - the run already ended; its cleanup may not add an error
        pass


def _recorder(
    journal: Journal | None,
    request: dict[str, Any],
    resume_from: RunRecord | None,
    checkpoint: Checkpoint | None,
    output: AnswerOutput,
) -> RunRecorder | None:
    if journal is None:
        return None
    from ..journal import RunRecorder

    if resume_from is not None:
        return RunRecorder.resuming(journal, resume_from, checkpoint)
    out_file = _recorded_output(output.out_file)
    return RunRecorder(
        journal,
        backend=request["backend"],
        model=request.get("model") or "default",
        request=request,
        output=out_file,
    )


def _recorded_output(out_file: Path | None) -> str | None:
    """The -o path a later ``resume`` writes again: a regular file's, made absolute; None for a
    device, FIFO or descriptor (``/dev/fd/N`` is another process's pipe, gone by then)."""
    if out_file is None:
        return None
    from ..outfile import in_place

    if in_place(out_file):
        return None
    return os.path.abspath(out_file.expanduser())


_INTERRUPTS: dict[type[BaseException], tuple[int, str]] = {
    KeyboardInterrupt: (EXIT_INTERRUPTED, "interrupted"),
    _Terminated: (EXIT_TERMINATED, "terminated"),
    BrokenPipeError: (EXIT_PIPE, "stdout was closed"),
}


def _fail(
    error: BaseException, recorder: RunRecorder | None, run_id: str | None, output: AnswerOutput
) -> int:
    """Record how the run ended, say so in one line, and return the exit code.

    Only a failure a later try can fix is offered as resumable. A run whose stdout was closed
    before its first round finished is removed from the journal (nobody wanted its text).
    """
    if type(error) in _INTERRUPTS:
        code, message = _INTERRUPTS[type(error)]
        state, detail, again = "interrupted", None, True
    elif isinstance(error, AutocontinueError):
        code, message, again = exit_code_for(error), error_line(error), resumable(error)
        state, detail = ("interrupted" if again else "failed"), message
    else:
        state, code, message, again = "failed", EXIT_BUG, describe_bug(error), True
        detail = message
    if isinstance(error, BrokenPipeError):
        silence_stdout()
        if recorder is not None and recorder.new_run and recorder.rounds_finished == 0 and _discard(recorder):
            say(message + "; nothing was finished, so the run was not kept")
            return code
    saved = _save(recorder, state, detail)
    if saved and run_id and again:
        message += f"; resume with: autocontinue resume {run_id}"
    elif recorder is None and state == "interrupted":
        message += " (not resumable: the run was not journaled)"
    say(message)
    if output.as_json and not isinstance(error, BrokenPipeError):
        _print_partial(error, recorder, run_id, output, code, again)
    return code


def _print_partial(
    error: BaseException,
    recorder: RunRecorder | None,
    run_id: str | None,
    output: AnswerOutput,
    code: int,
    again: bool,
) -> None:
    """``--json`` on a failure: the text so far and how the run ended, as one object."""
    partial = getattr(error, "partial", None)
    if isinstance(partial, Result):
        data = partial.to_dict()
    else:
        data = {"text": recorder.text if recorder else "", "stop_reason": None}
    data.update(
        run_id=run_id,
        error=str(getattr(error, "message", "") or type(error).__name__),
        exit_code=code,
        resumable=again and run_id is not None,
    )
    with suppress(OSError):
        output.print_json(data)


def _discard(recorder: RunRecorder) -> bool:
    try:
        recorder.discard()
    except JournalError:
        return False
    return True


def _save(recorder: RunRecorder | None, state: str, detail: str | None) -> bool:
    if recorder is None:
        return False
    try:
        recorder.stop(state, error=detail)
    except JournalError as exc:
        say(f"could not save the run: {error_line(exc)}")
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


def silence_stdout() -> None:
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
