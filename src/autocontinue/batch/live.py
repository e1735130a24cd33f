"""Running a batch's items live: concurrently on one shared client, paced by the rate limits.

Each item is an ordinary run (``autocontinue.astream``), journaled by a ``RunRecorder``; the
items share one backend wrapped in ``PacedBackend``, which waits for the ``Pacer`` before
every call, retries a call the service refused with 429 (before any text) once the pacer
allows, and reports each call's usage back to it. Nothing here plans rounds or repairs seams:
the engine does, exactly as for a single run.

``run_items`` runs them: first the batch's own options are checked once, then each call goes
through the batch's ``BatchGuard`` (``preflight.py``), so a mistake about the whole batch (a
refused key, an unknown default model) is one call and one error, not one per item. An item
counts as running (its ``RoundStarted`` is passed on) from the moment its call is sent, not
while it waits for the pacer or for the first call on its model.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .. import api
from ..backends.base import Backend, BackendDelta, BackendEvent, RoundEnd, RoundRequest
from ..catalogue import ModelSpec
from ..errors import AutocontinueError, TransientBackendError, UnknownModelError
from ..events import Checkpoint, Event, Finished, Result, RoundStarted
from ..journal import Journal, RunRecord, RunRecorder
from ..state import estimate_tokens
from .items import BatchItem
from .output import ItemResult
from .pacing import Pacer
from .preflight import BatchGuard, BatchStopped, about_the_batch, check_defaults
from .store import ItemRecord

__all__ = ["PacedBackend", "ItemRunner", "run_items", "resume_point", "result_of", "failed_result"]

#: 429s in a row on one call (before any text) before it counts as a failure of the round.
MAX_THROTTLED = 12

#: Told when the current item's call is sent (set by ``ItemRunner`` in each item's task).
_ON_SEND: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "autocontinue_batch_on_send", default=None
)


class PacedBackend(Backend):
    """Delegates to ``inner``; every call first waits for its turn (``guard``) and the pacer,
    then settles with the pacer."""

    def __init__(self, inner: Backend, pacer: Pacer, guard: BatchGuard | None = None) -> None:
        self.inner = inner
        self.pacer = pacer
        self.guard = guard or BatchGuard()
        self.name = inner.name
        self.default_model = inner.default_model
        self.prefill_takes_trailing_whitespace = inner.prefill_takes_trailing_whitespace

    def model_spec(self, model: str) -> ModelSpec:
        return self.inner.model_spec(model)

    def prefill_supported(self, model: str) -> bool:
        return self.inner.prefill_supported(model)

    def endpoint_key(self) -> str:
        return self.inner.endpoint_key()

    def check_request(self, request: RoundRequest) -> None:
        self.inner.check_request(request)

    def count_tokens(self, request: RoundRequest) -> int | None:
        return self.inner.count_tokens(request)

    def close(self) -> None:
        """The shared backend outlives every item: the batch closes it."""

    def stream_round(self, request: RoundRequest) -> Iterator[BackendEvent]:
        return self.inner.stream_round(request)

    async def astream_round(self, request: RoundRequest) -> AsyncIterator[BackendEvent]:
        """The call, once the batch allows it: the first on its model goes alone until the
        service takes it (its first event), the others on that model wait for that."""
        first = await self.guard.enter(request.model)
        try:
            # Closed here, not later by the garbage collector in another task (its ``finally``
            # settles with the pacer and ends the task's call: it must run before the next one).
            async with _closing(self._paced(request)) as paced:
                async for item in paced:
                    if first:
                        first = False
                        self.guard.taken(request.model)
                    yield item
        except AutocontinueError as error:
            if first:
                first = False
                self.guard.refused(request.model, error)
            raise
        finally:
            if first:
                self.guard.leave(request.model)

    async def _paced(self, request: RoundRequest) -> AsyncIterator[BackendEvent]:
        need = self.pacer.estimate(
            estimate_tokens(str(request.system or "") + str(request.messages)), request.max_tokens
        )
        for _ in range(MAX_THROTTLED):
            await self._acquire(need)
            produced, settled = False, False
            task = asyncio.current_task()
            try:
                _sending()
                if task is not None:
                    self.guard.calling.add(task)
                async with _closing(self.inner.astream_round(request)) as stream:
                    async for item in stream:
                        if isinstance(item, BackendDelta):
                            produced = True
                        elif isinstance(item, RoundEnd):
                            settled = True
                            self.pacer.settle(need, item.usage.output_tokens, item.usage.total_input_tokens)
                        yield item
                return
            except TransientBackendError as error:
                if not settled:
                    self.pacer.settle(need, None)
                    settled = True
                if error.status_code != 429 or produced:
                    raise
                self.pacer.on_throttled(error.retry_after)
            finally:
                self.guard.calling.discard(task)
                if not settled:  # the consumer stopped reading (until=, cancellation)
                    self.pacer.settle(need, 0)
        raise TransientBackendError("the service kept refusing calls with 429", status_code=429)

    async def _acquire(self, need: Any) -> None:
        while True:
            self.guard.check()  # a stopped batch sends nothing more
            wait = self.pacer.wait_time(need)
            if wait <= 0:
                self.pacer.take(need)
                return
            await asyncio.sleep(min(wait, 0.5))


@contextlib.asynccontextmanager
async def _closing(stream: AsyncIterator[BackendEvent]) -> AsyncIterator[AsyncIterator[BackendEvent]]:
    """``stream``, closed when the block ends (an async generator left unfinished would be
    closed later, by the garbage collector, in another task)."""
    try:
        yield stream
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


def _sending() -> None:
    told = _ON_SEND.get()
    if told is not None:
        told()


def resume_point(record: RunRecord) -> Checkpoint | None:
    """Where an item's run continues: the end of its last landed round (None: from the start).

    The end of a round, not the text streamed since: the interrupted call was never
    completed, so it was not billed, and redoing it from the same place makes the resumed
    item's rounds and text those of an uninterrupted batch. A seeded local run replays from
    the start (see ``autocontinue.cli.resume.resume_point``).
    """
    if not record.rounds or (record.backend == "local" and record.request.get("seed") is not None):
        return None
    return record.round_checkpoint()


def result_of(item: BatchItem, result: Result, run_id: str | None) -> ItemResult:
    return ItemResult(
        id=item.id,
        text=result.text,
        stop_reason=result.stop_reason,
        rounds=len(result.rounds),
        usage=result.usage,
        cost_usd=result.cost_usd,
        cost_known=result.cost_known,
        run_id=run_id,
    )


def failed_result(
    item: BatchItem, error: AutocontinueError, fallback: Checkpoint | None, run_id: str | None
) -> ItemResult:
    """The item's line when it failed: the text so far is kept, the error is one line."""
    partial = error.partial
    if partial is not None:
        base = result_of(item, partial, run_id)
        base.stop_reason = None
    else:
        text = fallback.text if fallback else ""
        rounds = fallback.rounds if fallback else []
        base = ItemResult(id=item.id, text=text, rounds=len(rounds), run_id=run_id)
    base.error = error.one_line()
    return base


@dataclass
class ItemRunner:
    """Runs one item as a journaled run on the shared backend."""

    backend: Backend
    journal: Journal
    defaults: dict[str, Any]
    batch_id: str
    on_event: Callable[[str, Event], None]
    on_run: Callable[[str, str], None]
    #: Told each item's start, and whether its model's prices are known.
    on_start: Callable[[str, bool], None] | None = None
    #: Whether the batch can be resumed (False: its journal is thrown away at the end, so a
    #: stop's hint promises no resume).
    resumable: bool = True
    #: The batch's guard: the paced backend's (its calls go through it), else one of its own.
    guard: BatchGuard = field(init=False)

    def __post_init__(self) -> None:
        self.guard = self.backend.guard if isinstance(self.backend, PacedBackend) else BatchGuard()

    def request_for(self, item: BatchItem) -> dict[str, Any]:
        options = {**self.defaults, **item.options}
        return {
            "prompt": item.prompt,
            "system": item.system,
            **options,
            "backend": self.backend.name,
            "batch": self.batch_id,
            "item": item.id,
        }

    def options_for(self, item: BatchItem) -> dict[str, Any]:
        options = {k: v for k, v in {**self.defaults, **item.options}.items() if v is not None}
        if "stop_sequences" in options:
            options["stop_sequences"] = tuple(options["stop_sequences"])
        return {**options, "system": item.system, "backend": self.backend}

    async def run(self, item: BatchItem, run_id: str | None) -> ItemResult:
        record = self.journal.get(run_id) if run_id else None
        if record is not None and record.state == "finished":
            # Killed after its run was journaled finished, before the batch heard of it: the
            # answer is in the journal, nothing is sent (claiming the run would be refused).
            return result_of(item, record.result(), record.id)
        checkpoint = resume_point(record) if record else None
        recorder = self._recorder(item, record, checkpoint)
        run_id = recorder.start()
        if record is None:
            self.on_run(item.id, run_id)
        if self.on_start is not None:
            self.on_start(item.id, self._priced(item))
        try:
            result = await self._drive(item, checkpoint, recorder)
        except AutocontinueError as error:
            if about_the_batch(error, self._model(item), self.default_model):
                # Not this item's fault: it stays resumable, and the batch stops.
                recorder.stop("interrupted", error=error.one_line())
                self.guard.stop(self._stopping(error))
                raise BatchStopped(error.one_line()) from None
            recorder.stop("failed", error=error.one_line())
            return failed_result(item, error, checkpoint, run_id)
        except BaseException:
            recorder.stop("interrupted")
            raise
        return result_of(item, result, run_id)

    async def _drive(self, item: BatchItem, checkpoint: Checkpoint | None, recorder: RunRecorder) -> Result:
        result = None
        # A round's start is passed on when its call is sent, not while the call waits.
        waiting: list[Event] = []

        def tell(event: Event) -> None:
            recorder.on_event(event)
            self.on_event(item.id, event)

        def sent() -> None:
            while waiting:
                tell(waiting.pop(0))

        token = _ON_SEND.set(sent)
        try:
            events = api.astream(item.prompt, resume=checkpoint, **self.options_for(item))
            async for event in events:
                if isinstance(event, RoundStarted):
                    waiting.append(event)
                    continue
                sent()  # whatever came before this event, in order (a backend that never says)
                if isinstance(event, Finished):
                    event.result.run_id = recorder.run_id
                    result = event.result
                tell(event)
        finally:
            _ON_SEND.reset(token)
        assert result is not None, "the engine ended without a Finished event"
        return result

    @property
    def default_model(self) -> str:
        """The model of an item that names none."""
        return str(self.defaults.get("model") or self.backend.default_model or "default")

    def _stopping(self, error: AutocontinueError) -> AutocontinueError:
        """``error`` as the batch reports it: no item's text, and how to go on once it is fixed."""
        error.partial = None
        if self.resumable and not isinstance(error, UnknownModelError):  # fixed, it resumes
            hint = error.hint or "check the credentials and the account"
            error.hint = f"{hint}, then resume with: autocontinue batch --resume {self.batch_id}"
        return error

    def _priced(self, item: BatchItem) -> bool:
        try:
            return self.backend.model_spec(self._model(item)).priced
        except AutocontinueError:
            return True  # an unknown model: the item fails at its start, having cost nothing

    def _model(self, item: BatchItem) -> str:
        return str(item.options.get("model") or self.default_model)

    def _recorder(
        self, item: BatchItem, record: RunRecord | None, checkpoint: Checkpoint | None
    ) -> RunRecorder:
        if record is not None:
            return RunRecorder.resuming(self.journal, record, checkpoint, interval=2.0)
        return RunRecorder(
            self.journal,
            backend=self.backend.name,
            model=self._model(item),
            request=self.request_for(item),
            interval=2.0,
        )


async def run_items(
    runner: ItemRunner, todo: list[ItemRecord], concurrency: int, done: Callable[[ItemResult, str], None]
) -> None:
    """Run the items of ``todo`` (at most ``concurrency`` at once), telling ``done`` each result.

    The batch's own options are checked first (``check_defaults``: one error, nothing spent).
    An error about the whole batch stops it: items not started stay so, items waiting for a
    call are stopped, calls in flight finish their round; then that error is raised, once.
    """
    check_defaults(runner.options_for, [record.item for record in todo])
    guard = runner.guard
    slots = asyncio.Semaphore(concurrency)

    async def one(record: ItemRecord) -> None:
        async with slots:
            if guard.error is not None:
                return  # the batch stopped before this item started: it stays to do
            result = await runner.run(record.item, record.run_id)
        done(result, "failed" if result.error else "finished")

    tasks = [asyncio.ensure_future(one(r)) for r in todo]
    try:
        pending: set[asyncio.Future[None]] = set(tasks)
        while pending:
            finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                error = None if task.cancelled() else task.exception()
                if error is not None and not isinstance(error, BatchStopped):
                    raise error
            if guard.error is not None:
                for task in pending:
                    if task not in guard.calling:  # waiting, or sleeping before a retry
                        task.cancel()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if guard.error is not None:
        raise guard.error
