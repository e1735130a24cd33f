"""Running a batch through Anthropic's Message Batches: every round of every item at half price.

Each item keeps its own sans-I/O ``Engine`` (built by ``api.prepare``, as a live run's; the
same round planning, seam repair and stop decisions), driven by ``begin``/``step`` like the
live drivers drive it. A round of the batch collects every unfinished engine's ``Call``, sends
all of them as one Message Batches job (``custom_id`` ``<item>-r<round>``; two jobs when the
round mixes models with and without the 300k beta, whose header is per job), polls until the
job has ended, and steps each engine with its result: ``Answered`` (the text and the round's
end at once) or the error a live call would have raised. An engine whose next action is a
``Call`` again (it stopped at ``max_tokens``) goes into the next job. Errored, expired and
canceled results are retried like failed calls (the engine's retry policy decides when an
item gives up; its backoff ``Sleep`` is the next job's turnaround, not a wait of its own); a
job canceled on the service (by someone in the console) is polled through ``canceling`` until
it has ended, and its answered requests are kept. Calls carry 1-hour cache breakpoints (rounds of an
item may be more than 5 minutes apart) and, on the models that have it, the 300k-output beta.
Before each create call the job is journaled as an intent (its custom ids and the time), and
the service's id joins it as soon as the call returns; a resumed batch collects a job that is
still running instead of paying for it again, and an intent left without an id (the process
was killed between the service accepting the job and the journal learning its id) is looked
for on the service (``ServiceDriver.find_landed``) before its round is sent again; the results
that confirmed the job are the ones collected (one download). Waits the user cannot see (that
search, a job canceled on the service) are told in one line each (``on_note``).

Before anything is sent, the batch's own options are checked once (``_preflight``): a bare
item's first request with the batch's options is refused locally as a live call would be
(temperature, effort, max_tokens_per_call) and counted by ``count_tokens`` (free), so a refused
key, an unknown default model or an option the API refuses stops the whole batch with one
error instead of failing every item; an item's own model the service does not know fails that
item alone, before it is sent. Every call to the service (create, list, retrieve, results,
count_tokens) that fails as the service may recover from (lost connection, timeout, 429, 5xx,
529) is tried again with a backoff a bounded number of times (``call_attempts``); any other
failure, or the last one, stops the batch as the error a live call would have raised (one line
with a hint, ``_stopped``): what is journaled stays, and running the command again continues.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from .. import api
from ..backends.anthropic import (
    api_version,
    map_error,
    refusal_error,
    request_params,
    request_refusal,
    usage_of,
)
from ..backends.base import Backend, BackendEvent, RoundEnd, RoundRequest, retry_after
from ..catalogue import ANTHROPIC_DEFAULT_MODEL, ModelSpec, find_model, lookup_model
from ..engine import Action, Answered, Call, Done, Engine, Sleep, Slept
from ..errors import (
    AuthenticationError,
    AutocontinueError,
    BackendError,
    BackendUnavailableError,
    TransientBackendError,
    UnknownModelError,
)
from ..events import Event, Result, RoundFinished
from ..journal import Journal, redact_url
from ..options import Options
from .items import BatchItem
from .live import failed_result, result_of, resume_point
from .models import BETA_300K, allows_300k, batch_spec
from .output import ItemResult
from .preflight import about_the_batch, bare_item, first_call
from .store import BatchStore, JobIntent

__all__ = ["BatchesBackend", "ServiceDriver", "custom_id", "batch_params", "CLOCK_SKEW"]

#: Create calls per job (the SDK's own retries are off for them, see ServiceDriver._create),
#: and the first wait between them in seconds (doubling).
_CREATE_ATTEMPTS = 3
_CREATE_BACKOFF = 1.0

#: Seconds a service job may seem to predate its intent (this machine's clock against the
#: service's); only jobs created since the intent, less this, are taken for its job.
CLOCK_SKEW = 60.0
#: Seconds a create call may take before it is given up (its response lost): a job created
#: later than its intent plus this (and the skew) was not made by that call.
CREATE_TIMEOUT = 600.0
#: Seconds the service may take to list a job once no create call can still be on its way
#: (the process that sent it is dead, or the service has answered it).
LIST_DELAY = 30.0

#: How far a result's input tokens may be from ``count_tokens`` for its request and still be
#: taken for that request: the API calls the count an estimate that "may differ by a small
#: amount" from what a message bills (tokens it adds itself). Tight on purpose: a job wrongly
#: refused is paid again, a job wrongly taken gives another prompt's answers.
_TOKEN_SLACK = 4
_TOKEN_SLACK_SHARE = 0.005
#: The parameters of a batch request that ``count_tokens`` takes (it counts what they make).
_COUNTED = ("model", "messages", "system", "thinking", "tools", "tool_choice", "output_config")
#: Token counts asked at once while checking a job.
_COUNT_CONCURRENCY = 8

#: Tries of a call to the service that failed as the service may recover from (lost
#: connection, timeout, 429, 5xx, 529), and the first wait between them in seconds (doubling,
#: at most ``_CALL_BACKOFF_MAX``): about two minutes of outage before a batch stops.
CALL_ATTEMPTS = 7
CALL_BACKOFF = 1.0
_CALL_BACKOFF_MAX = 60.0

_TRANSIENT = {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}
#: The HTTP status a live call gets with each error type an errored batch result names.
_STATUS_OF = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
}
#: What to do when the batch stopped for a failure the service may recover from.
_AGAIN = "what the batch has done is journaled: run the same command again later to continue"


def custom_id(item: BatchItem, round_index: int) -> str:
    return f"{item.key}-r{round_index}"


class BatchesBackend(Backend):
    """The model as Message Batches serve it (half prices, 300k output); it never streams."""

    name = "anthropic"

    def __init__(self, client: Any, *, beta_300k: bool = True) -> None:
        self.client = client
        self.beta_300k = beta_300k
        self.default_model = ANTHROPIC_DEFAULT_MODEL

    def model_spec(self, model: str) -> ModelSpec:
        return batch_spec(lookup_model(model), beta_300k=self.beta_300k)

    def endpoint_key(self) -> str:
        where = str(getattr(self.client, "base_url", "") or "")
        return f"batches:{redact_url(where) if where else ''}"

    def stream_round(self, request: RoundRequest) -> Iterator[BackendEvent]:
        raise BackendUnavailableError(
            "Message Batches do not stream", hint="drive the engine with ServiceDriver"
        )

    async def astream_round(self, request: RoundRequest) -> AsyncIterator[BackendEvent]:
        raise BackendUnavailableError(
            "Message Batches do not stream", hint="drive the engine with ServiceDriver"
        )
        yield  # pragma: no cover


def batch_params(request: RoundRequest) -> dict[str, Any]:
    """A round's ``messages.create`` parameters with every cache breakpoint at the 1-hour TTL."""
    params = request_params(request)
    for part in [params.get("system"), *(m["content"] for m in params["messages"])]:
        for block in part if isinstance(part, list) else []:
            if "cache_control" in block:
                block["cache_control"] = {**block["cache_control"], "ttl": "1h"}
    return params


@dataclass
class _Item:
    """One item's engine and where it stands."""

    item: BatchItem
    engine: Engine
    run_id: str
    #: The engine's next action: a Call to send in the next job (None once done).
    action: Action | None = None
    sent_id: str | None = None
    done: bool = False

    @property
    def request(self) -> RoundRequest | None:
        return self.action.request if isinstance(self.action, Call) else None


@dataclass
class ServiceDriver:
    """Drives every unfinished item's engine through Message Batches jobs."""

    client: Any
    journal: Journal
    store: BatchStore
    batch_id: str
    defaults: dict[str, Any]
    on_event: Callable[[str, Event], None]
    on_done: Callable[[ItemResult, str], None]
    poll_interval: float = 5.0
    beta_300k: bool = True
    #: Told each item's start, and whether its model's prices are known.
    on_start: Callable[[str, bool], None] | None = None
    #: Service job ids collected by this driver, in order (for tests and the summary).
    collected: list[str] = field(default_factory=list)
    #: One line each for what the user should know but that did not stop the batch (money:
    #: a round billed twice); also journaled with the batch and told to ``on_warning`` at once.
    warnings: list[str] = field(default_factory=list)
    on_warning: Callable[[str], None] | None = None
    #: Told one line (not about money) when the driver waits on the service for a reason the
    #: user cannot see: looking for the job a killed run may have made, a candidate still
    #: running, a job canceled on the service.
    on_note: Callable[[str], None] | None = None
    #: ``CREATE_TIMEOUT`` and ``CLOCK_SKEW`` for this driver (small in tests).
    create_timeout: float = CREATE_TIMEOUT
    clock_skew: float = CLOCK_SKEW
    list_delay: float = LIST_DELAY
    #: ``CALL_ATTEMPTS`` and ``CALL_BACKOFF`` for this driver (small in tests).
    call_attempts: int = CALL_ATTEMPTS
    call_backoff: float = CALL_BACKOFF
    #: Whether the batch can be resumed (False: its journal is thrown away at the end, so a
    #: stop's hint promises no rerun that continues it).
    resumable: bool = True
    #: The results of jobs confirmed by ``find_landed`` (downloaded to confirm them), kept
    #: until they are collected so that they are not downloaded a second time.
    _kept: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False)

    async def run(self, records: list[Any]) -> None:
        backend = BatchesBackend(self.client, beta_300k=self.beta_300k)
        bare = (
            self._bare_request(backend, [r.item for r in records]) if records else None
        )  # before any item fails for it
        active = [a for a in (self._open(backend, record) for record in records) if a is not None]
        if active:
            await self._preflight(bare, [a for a in active if not a.done])
            await self._settle_intents(active)
        pending = [job for job in self.store.jobs(self.batch_id) if job.state == "submitted"]
        while True:
            active = [a for a in active if not a.done]
            if not active:
                return
            if pending:
                # A job this batch sent before it was stopped: collect it, never send it again.
                job = pending.pop(0)
                jobs = [(job.service_id, set(job.custom_ids))]
            else:
                jobs = [
                    (await self._submit(group, beta), {str(a.sent_id) for a in group})
                    for group, beta in self._groups(active)
                ]
            for service_id, sent in jobs:
                results = await self._collect(service_id)
                self._apply(active, results, sent)
                self.store.job_collected(self.batch_id, service_id)
                self.collected.append(service_id)

    # -- opening items ----------------------------------------------------------------------

    def _open(self, backend: Backend, record: Any) -> _Item | None:
        item: BatchItem = record.item
        run = self.journal.get(record.run_id) if record.run_id else None
        if run is not None and run.finished:
            self.on_done(result_of(item, run.result(), run.id), "finished")
            return None
        checkpoint = resume_point(run) if run is not None else None
        options = {k: v for k, v in {**self.defaults, **item.options}.items() if v is not None}
        if "stop_sequences" in options:
            options["stop_sequences"] = tuple(options["stop_sequences"])
        try:
            settings = Options(**{**options, "system": item.system, "backend": backend, "resume": checkpoint})
            engine, opening, emitted = api.prepare(item.prompt, settings.validate())
        except AutocontinueError as error:
            self.on_done(failed_result(item, error, checkpoint, run.id if run else None), "failed")
            return None
        if run is None:
            request = {
                "prompt": item.prompt,
                "system": item.system,
                **options,
                "backend": "anthropic",
                "via": "batches",
                "batch": self.batch_id,
                "item": item.id,
            }
            run_id = self.journal.start_run(backend="anthropic", model=engine.model, request=request)
            self.store.set_run(self.batch_id, item.id, run_id)
        else:
            run_id = run.id
            self.journal.set_state(run_id, "running")
        if self.on_start is not None:
            self.on_start(item.id, engine.state.spec.priced)
        a = _Item(item, engine, run_id)
        self._advance(a, *engine.begin(opening, emitted))
        return a

    # -- the batch's own options, checked once ------------------------------------------------

    async def _preflight(self, bare: RoundRequest | None, active: list[_Item]) -> None:
        """Stop the batch at once for a mistake of its own, before anything is sent.

        A bare item with the batch's options: what its engine refuses before any call
        (``max_tokens_per_call`` above the model's maximum), what the live backend refuses
        before sending (temperature, effort) and what ``count_tokens`` (free) refuses for its
        first request (a wrong key, an unknown default model, an option the API rejects) would
        fail every item alike, so it is raised here, once. Each other model the items ask for
        is counted once too: one the service does not know fails its items now, as a live call
        would, and the others go on. Anything else (a count that failed as the service may
        recover from, a base URL without ``count_tokens``) is left to the calls that follow.
        ``bare`` is that first request (``_bare_request``, which raised the local refusals
        before any item was opened).
        """
        if bare is None or not active:
            return
        asked = {a.request.model for a in active if a.request is not None}
        error = await self._counted(bare)
        if (
            error is not None
            and about_the_batch(error, bare=True)
            and (bare.model in asked or not isinstance(error, UnknownModelError))
        ):
            raise error
        for model in sorted(asked - {bare.model}):
            error = await self._counted(replace(bare, model=model))
            if isinstance(error, AuthenticationError):
                raise error
            if not isinstance(error, UnknownModelError):
                continue
            for a in active:
                if a.request is not None and a.request.model == model:
                    a.action, a.sent_id = None, None
                    self._advance(a, *a.engine.step(copy.copy(error)))

    def _bare_request(self, backend: Backend, items: list[Any]) -> RoundRequest | None:
        """The first request of a bare item with the batch's options (``preflight.bare_item``),
        or what refuses them."""
        bare = bare_item(items)
        if bare is None:
            return None
        options = {k: v for k, v in {**self.defaults, **bare.options}.items() if v is not None}
        if "stop_sequences" in options:
            options["stop_sequences"] = tuple(options["stop_sequences"])
        request = first_call({**options, "backend": backend})
        if request is None:
            return None
        refusal = request_refusal(request, api_version(self.client))
        if refusal is not None:
            raise refusal
        return request

    async def _counted(self, request: RoundRequest) -> AutocontinueError | None:
        """What ``count_tokens`` refuses for ``request`` (None if it counted it, or has no answer)."""
        count = getattr(getattr(self.client, "messages", None), "count_tokens", None)
        if count is None:
            return None
        params = {k: v for k, v in batch_params(request).items() if k in _COUNTED}
        try:
            await count(**params)
        except Exception as error:
            mapped = _mapped(error, request.model)
            if not isinstance(mapped, AutocontinueError):
                raise
            return mapped
        return None

    # -- one job ----------------------------------------------------------------------------

    def _advance(self, a: _Item, events: list[Event], action: Action | None) -> None:
        """Pass the engine's events on; keep its next Call, or end the item on Done."""
        assert action is not None, "the engine always acts on a whole answer or an error"
        self._emit(a, events)
        while isinstance(action, Sleep):
            events, action = a.engine.step(Slept())
            assert action is not None
            self._emit(a, events)
        if isinstance(action, Done):
            if action.error is not None:
                self._fail(a, action.error)
            else:
                assert action.result is not None
                self._finish(a, action.result)
            return
        refusal = request_refusal(action.request, api_version(self.client))
        if refusal is not None:  # what the live backend refuses before sending it
            self._advance(a, *a.engine.step(refusal))
            return
        a.action = action
        a.sent_id = custom_id(a.item, action.request.round_index)

    async def _submit(self, active: list[_Item], beta: bool) -> str:
        ours = _our_requests(active)
        requests = [{"custom_id": cid, "params": params} for cid, params in ours.items()]
        headers = {"anthropic-beta": BETA_300K} if beta else {}
        # Committed before the call: if this process dies once the service has the job but
        # before the line after the call, the resume finds the job instead of paying again.
        intent = self.store.add_intent(self.batch_id, list(ours))
        service_id = await self._create(intent, ours, requests, headers)
        self.store.intent_landed(self.batch_id, intent.id, service_id)
        return service_id

    async def _create(
        self, intent: JobIntent, ours: dict[str, Any], requests: list[Any], headers: dict[str, str]
    ) -> str:
        """The service's id for the intent's job, created once even when a response is lost.

        The SDK would resend a create whose response timed out or failed with no idempotency
        key, and the service would make and bill a second job; so its own retries are off for
        this call, and after an error that may come from a job the service did make (lost
        connection, timeout, 5xx) the job is looked for (``find_landed``) before sending again.
        Each attempt's send time is journaled before it goes out, so a resume looks for the job
        of the last one too. A 429 waits what its ``retry-after`` asks; the last failure ends
        the batch as the error a live call would have raised (one line, with a hint).
        """
        batches = self.client.messages.batches
        if hasattr(self.client, "with_options"):
            batches = self.client.with_options(max_retries=0, timeout=self.create_timeout).messages.batches
        model = str(requests[0]["params"].get("model", "")) if requests else ""
        for attempt in range(_CREATE_ATTEMPTS):
            self.store.intent_sent(intent)
            try:
                job = await batches.create(requests=requests, extra_headers=headers)
                return str(job.id)
            except Exception as error:
                landed, retry = _create_failure(error)
                if attempt == _CREATE_ATTEMPTS - 1 or not retry:
                    if not landed and (
                        _never_sent(error) or isinstance(getattr(error, "status_code", None), int)
                    ):
                        # The service refused it, or it never left this machine: no job to find.
                        self.store.drop_intent(intent.id)
                    raise self._stopped(error, "creating a Message Batches job", model) from None
                wait = retry_after(error)
                # A lost connection or timeout: the request may still reach the service, so its
                # job is looked for until the create could no longer land. A 5xx was the
                # service's answer: nothing is on its way any more, only the listing may lag.
                answered = isinstance(getattr(error, "status_code", None), int)
            settled = time.time() + self.list_delay if answered else None
            note = (
                "the service failed the create call and may have made its job anyway"
                if answered
                else "the create call's response was lost and its job may be on the service"
            )
            found = await self.find_landed(intent, ours, settled=settled, note=note) if landed else None
            if found is not None:
                return found
            await asyncio.sleep(wait if wait is not None else _CREATE_BACKOFF * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- intents left by a killed process ---------------------------------------------------

    async def _settle_intents(self, active: list[_Item]) -> None:
        """Turn each intent whose create may have landed into a job to collect, or drop it."""
        ours = _our_requests(active)
        # The process that journaled these intents is gone (its connections died with it):
        # a create it sent has reached the service or never will, so only the listing lags.
        settled = time.time() + self.list_delay
        note = "a killed run may have created a Message Batches job for this round"
        for intent in self.store.intents(self.batch_id):
            found = await self.find_landed(intent, ours, settled=settled, note=note)
            if found is None:
                self.store.drop_intent(intent.id)
            else:
                self.store.intent_landed(self.batch_id, intent.id, found)

    async def find_landed(
        self, intent: JobIntent, ours: dict[str, Any], *, settled: float | None = None, note: str = ""
    ) -> str | None:
        """The service job an intent's create made, or None if it never reached the service.

        ``ours`` holds the batch request parameters of this round by custom id. Candidates: the
        service's batches (newest first, every page) created since the intent, less the clock
        skew, and no later than its last create call could have reached the service (its send
        time plus the create timeout and the skew), that no batch of this journal knows, with
        as many requests as the intent. The intent stays undecided until that last moment has
        passed on this machine: a job the service made late (a create that timed out, a resume
        right after a kill while the service does not list the job yet) is still found. The
        list is polled for new candidates and every candidate at once, each every
        ``poll_interval`` (their requests are not visible while they run) until one of them
        has ended and is confirmed, nearest the intent first; one that has not ended is not
        waited for once another is confirmed. ``settled`` (epoch seconds) ends that wait
        sooner when no create can still be on its way: a resume (the process that sent it is
        dead) or a create the service answered with a 5xx wait only ``list_delay`` for the
        listing to show a job. The user is told (``on_note``) once when the search has to wait,
        with ``note`` (why a job may be there) and how long it may take, and once more if a
        candidate still running holds it past that time.

        Confirmed means that the results hold exactly the intent's custom ids
        (``<item>-r<round>``) AND that their requests are ours: custom ids repeat across jobs
        (plain-text inputs are 1, 2, 3...; two runs of one file; a colleague in the same
        workspace), so every answered result must name our request's model and have read as
        many input tokens (input, cache reads and writes) as ``count_tokens`` says our request
        has, within a few tokens (the count is an estimate). A job of someone else whose
        requests are token for token as long as ours, on the same model, is almost surely the
        same prompt, and its answers are then as good as ours. Evidence missing (no answered
        result, a token count that failed) or not matching: the job is not taken and a warning
        says so; the round is then sent again, since paying twice is better than giving
        another prompt's answer. The chosen job's results, downloaded to confirm it, are kept
        for its collection (``_collect``), not downloaded again.

        More than one confirmed (the SDK resent a create whose response it lost, or another
        process sent the same requests at the same moment): every one of them is already
        billed and nothing spent can be saved, so refusing to go on would only lose the
        answers, and sending the round once more would pay a third time. The one created
        nearest the intent is used (a killed process's create lands right after its intent; a
        resend comes later), the others are journaled as ``ignored`` so no resume counts them
        again, and a warning names them: if one of them belongs to another job, that job still
        has it, and if autocontinue picked the wrong one the user can see which.
        """
        known = self.store.known_service_ids()
        since = intent.created - self.clock_skew
        until = intent.last_sent + self.create_timeout + self.clock_skew
        give_up = until if settled is None else min(until, settled)
        wanted = set(intent.custom_ids)
        candidates: dict[str, float] = {}  # service id: created, epoch seconds
        decided: set[str] = set()
        counts: dict[str, int] = {}
        told: set[str] = set()
        while True:
            for job in await self._call("listing the service's Message Batches", lambda: self._listed(since)):
                created = _seconds(job.created_at)
                if created <= until and job.id not in known and _requests_in(job) == len(wanted):
                    candidates.setdefault(str(job.id), created)
            confirmed: list[tuple[str, dict[str, Any]]] = []
            running: dict[str, str] = {}  # service id: processing status
            for service_id in sorted(candidates, key=lambda sid: abs(candidates[sid] - intent.created)):
                if service_id in decided:
                    continue
                try:
                    job = await self._retrieve(service_id)
                    if job.processing_status != "ended":
                        running[service_id] = str(job.processing_status)
                        continue
                    decided.add(service_id)
                    results = await self._results(service_id)
                except _Vanished:
                    decided.add(service_id)
                    self._warn(
                        f"service job {service_id} may have been this round's but was deleted before "
                        "it could be checked: the round is sent again (if it was this batch's job, "
                        "the round is billed twice)"
                    )
                    continue
                refusal = await self._refusal(results, wanted, ours, counts)
                if refusal is None:
                    confirmed.append((service_id, results))
                elif refusal:
                    self._warn(
                        f"service job {service_id} has this round's custom ids but {refusal}: "
                        "not taken for this batch's; the round is sent again (if it was this "
                        "batch's job after all, the round is billed twice)"
                    )
            if confirmed:
                break
            now = time.time()
            if now > give_up and decided >= set(candidates):
                return None
            self._tell_wait(note, now, give_up, running, told)
            await asyncio.sleep(self.poll_interval)
        (chosen, results), *others = confirmed
        self._kept[chosen] = results
        if others:
            ids = [chosen, *(sid for sid, _ in others)]
            self.store.ignore_jobs(self.batch_id, ids[1:], intent.custom_ids)
            self._warn(
                f"the service holds {len(ids)} jobs for the same round ({', '.join(ids)}), "
                f"all billed; used {chosen}, the one created nearest the round's intent"
            )
        return chosen

    def _tell_wait(
        self, note: str, now: float, give_up: float, running: dict[str, str], told: set[str]
    ) -> None:
        """Say once why ``find_landed`` waits, and once which running candidate holds it."""
        if "looking" not in told and now <= give_up:
            told.add("looking")
            self._note(
                f"{note}: looking for it on the service before sending the round again "
                f"(up to {max(1, round(give_up - now))} s)"
            )
        if "running" not in told and now > give_up and running:
            told.add("running")
            ids = ", ".join(f"{sid} ({status})" for sid, status in running.items())
            one = len(running) == 1
            self._note(
                f"service job{'' if one else 's'} {ids} may be this round's and "
                f"{'has' if one else 'have'} not ended: waiting for {'it' if one else 'them'} to end "
                "(or for this round's job to be confirmed) before sending the round again"
            )

    async def _refusal(
        self, results: dict[str, Any], wanted: set[str], ours: dict[str, Any], counts: dict[str, int]
    ) -> str | None:
        """None if an ended job's results answer our requests; else why not ("" if its custom ids differ)."""
        if set(results) != wanted or not wanted <= set(ours):
            return ""
        answered = {cid: r.message for cid, r in results.items() if getattr(r, "type", None) == "succeeded"}
        if not answered:
            return "no answered request to check that its requests are this batch's"
        for cid, message in answered.items():
            if not _same_model(str(message.model), str(ours[cid]["model"])):
                return f"{cid} was answered by {message.model}, not {ours[cid]['model']}"
        missing = [cid for cid in answered if cid not in counts]
        gate = asyncio.Semaphore(_COUNT_CONCURRENCY)

        async def count(cid: str) -> int:
            async with gate:
                params = {k: v for k, v in ours[cid].items() if k in _COUNTED}
                counted = await self._call(
                    "counting tokens", lambda: self.client.messages.count_tokens(**params), params["model"]
                )
                return int(counted.input_tokens)

        got = await asyncio.gather(*(count(cid) for cid in missing), return_exceptions=True)
        for cid, value in zip(missing, got):
            if isinstance(value, BaseException):
                return f"the input tokens of {cid} could not be counted ({_one_line(value)})"
            counts[cid] = value
        for cid, message in answered.items():
            read = usage_of(message.usage).total_input_tokens
            if abs(read - counts[cid]) > max(_TOKEN_SLACK, _TOKEN_SLACK_SHARE * counts[cid]):
                return f"{cid} read {read} input tokens where this batch's request has {counts[cid]}"
        return None

    def _note(self, line: str) -> None:
        if self.on_note is not None:
            self.on_note(line)

    def _warn(self, line: str) -> None:
        """A line about money the user must see: kept here, journaled with the batch, told now."""
        self.warnings.append(line)
        self.store.add_warning(self.batch_id, line)
        if self.on_warning is not None:
            self.on_warning(line)

    def _groups(self, active: list[_Item]) -> list[tuple[list[_Item], bool]]:
        """The round's calls as jobs, each with whether it goes under the 300k beta: those of
        models with the beta in one job (sent with its header), the others in another, so no
        request goes out under a beta its model does not have (the header is per create call,
        not per request)."""
        calls = [a for a in active if a.request is not None and a.sent_id is not None]
        beta = [a for a in calls if self.beta_300k and allows_300k(a.engine.state.spec)]
        plain = [a for a in calls if a not in beta]
        return [(group, under) for group, under in ((beta, True), (plain, False)) if group]

    async def _wait_ended(self, service_id: str) -> None:
        """Poll until the job has ended; a job canceled on the service (a colleague in the
        console) is ``canceling`` while its in-flight requests end, and is waited through."""
        canceling = False
        while True:
            try:
                job = await self._retrieve(service_id)
            except _Vanished as gone:
                raise _vanished_error(service_id, gone.error) from None
            if job.processing_status == "ended":
                return
            if job.processing_status == "canceling" and not canceling:
                canceling = True
                self._note(
                    f"service job {service_id} was canceled on the service: waiting for its "
                    "in-flight requests to end; its canceled requests are retried in the next job"
                )
            await asyncio.sleep(self.poll_interval)

    async def _collect(self, service_id: str) -> dict[str, Any]:
        kept = self._kept.pop(service_id, None)
        if kept is not None:  # confirmed by find_landed: it has ended, and these are its results
            return kept
        await self._wait_ended(service_id)
        try:
            return await self._results(service_id)
        except _Vanished as gone:
            raise _vanished_error(service_id, gone.error) from None

    async def _results(self, service_id: str) -> dict[str, Any]:
        """An ended job's results by custom id (one download, again whole if it broke off)."""

        async def download() -> dict[str, Any]:
            results = await self.client.messages.batches.results(service_id)
            return {line.custom_id: line.result async for line in results}

        return await self._call(f"downloading the results of service job {service_id}", download, job=True)

    async def _retrieve(self, service_id: str) -> Any:
        return await self._call(
            f"polling service job {service_id}",
            lambda: self.client.messages.batches.retrieve(service_id),
            job=True,
        )

    async def _listed(self, since: float) -> list[Any]:
        """The service's batches created since ``since`` (epoch seconds), newest first, every page."""
        jobs = []
        async for job in self.client.messages.batches.list(limit=100):
            if _seconds(job.created_at) < since:
                break  # newest first: the rest are older still
            jobs.append(job)
        return jobs

    async def _call(
        self, what: str, call: Callable[[], Awaitable[Any]], model: str = "", *, job: bool = False
    ) -> Any:
        """``call()``, tried again with a doubling backoff (or what ``retry-after`` asks) while it
        fails as the service may recover from, at most ``call_attempts`` times; then, or on any
        other failure, the batch stops with the error a live call would have raised (``_stopped``).
        ``job``: the call is about one service job, and its 404 means the job is gone
        (``_Vanished``), not a wrong base URL."""
        for attempt in range(self.call_attempts):
            try:
                return await call()
            except Exception as error:
                mapped = _mapped(error, model)
                if not isinstance(mapped, AutocontinueError):
                    raise  # not the service's answer (a bug, or a test's stand-in for a kill)
                if job and getattr(error, "status_code", None) == 404:
                    raise _Vanished(mapped) from None
                if not isinstance(mapped, TransientBackendError) or attempt == self.call_attempts - 1:
                    raise self._stopped(error, what, model) from None
                wait = retry_after(error)
                await asyncio.sleep(
                    wait if wait is not None else min(_CALL_BACKOFF_MAX, self.call_backoff * 2**attempt)
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _stopped(self, error: Exception, what: str, model: str) -> Exception:
        """The error that stops the batch, in one line with a hint: the service's answer as a
        live call would have raised it, saying what the batch was doing; a failure the service
        may recover from says that running the command again continues."""
        mapped = _mapped(error, model)
        if not isinstance(mapped, AutocontinueError):
            return mapped
        mapped.message = f"{what} failed: {mapped.message}"
        mapped.args = (mapped.message,)
        if isinstance(mapped, TransientBackendError) or (
            type(mapped) is BackendError and getattr(mapped, "status_code", None) is None
        ):
            where = str(getattr(self.client, "base_url", "") or "")
            check = (
                f"check the network and the base URL ({redact_url(where)})" if where else "check the network"
            )
            again = f"; {_AGAIN}" if self.resumable else ""
            mapped.hint = f"{mapped.hint + '; ' if mapped.hint else ''}{check}{again}"
        return mapped

    def _apply(self, active: list[_Item], results: dict[str, Any], sent: set[str] | None) -> None:
        for a in active:
            if a.done or (sent is not None and a.sent_id not in sent):
                continue  # planned after the resumed job was sent: it goes into the next one
            result = results.get(a.sent_id or "")
            model = a.request.model if a.request is not None else ""
            a.action, a.sent_id = None, None
            self._advance(a, *a.engine.step(_happened(result, model)))

    # -- ends -------------------------------------------------------------------------------

    def _finish(self, a: _Item, result: Result) -> None:
        result.run_id = a.run_id
        self.journal.finish_run(a.run_id, result)
        a.done, a.action = True, None
        self.on_done(result_of(a.item, result, a.run_id), "finished")

    def _fail(self, a: _Item, error: AutocontinueError) -> None:
        self.journal.set_state(a.run_id, "failed", error=error.one_line())
        a.done, a.action = True, None
        self.on_done(failed_result(a.item, error, None, a.run_id), "failed")

    def _emit(self, a: _Item, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, RoundFinished):
                self.journal.record_round(a.run_id, event.report, a.engine.state.text, a.engine.state.held)
            self.on_event(a.item.id, event)


def _our_requests(active: list[_Item]) -> dict[str, Any]:
    """Each active item's next batch request parameters, by custom id."""
    return {str(a.sent_id): batch_params(a.request) for a in active if a.request is not None and a.sent_id}


def _same_model(answered: str, asked: str) -> bool:
    """Whether a result's model is the one asked (the API may name the dated snapshot)."""
    if answered == asked:
        return True
    a, b = find_model(answered), find_model(asked)
    return a is not None and b is not None and a.id == b.id


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:200] or type(error).__name__


def _mapped(error: Exception, model: str) -> Exception:
    """A failed create as the autocontinue error a live call would have raised."""
    sdk = any(kind.__module__.split(".")[0] in ("anthropic", "httpx") for kind in type(error).__mro__)
    if isinstance(error, AutocontinueError) or not (sdk or isinstance(error, OSError)):
        return error  # not the service's answer (a bug, or a test's stand-in for a kill)
    try:
        return map_error(error, model=model, in_stream=False)
    except Exception:  # no SDK to map with (a test double): keep the error as it is
        return error


def _create_failure(error: Exception) -> tuple[bool, bool]:
    """(whether the service may have made the job anyway, whether to try the create again)."""
    lost = any(kind.__name__ == "APIConnectionError" for kind in type(error).__mro__)  # and timeouts
    if lost and _never_sent(error):
        return False, True
    status = getattr(error, "status_code", None)
    if lost or (isinstance(status, int) and status >= 500):
        return True, True
    return False, status in (408, 409, 429)


def _never_sent(error: BaseException) -> bool:
    """Whether a failed call never reached the service: its connection could not be opened
    (refused, no such host, a connect timeout), so nothing of it was sent."""
    cause: BaseException | None = error
    while cause is not None:
        if any(kind.__name__ in ("ConnectError", "ConnectTimeout") for kind in type(cause).__mro__):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _seconds(moment: Any) -> float:
    """A batch's ``created_at`` (a datetime from the SDK, or its RFC 3339 text) as epoch seconds."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return float(moment.timestamp())


def _requests_in(job: Any) -> int:
    counts = job.request_counts
    return sum(
        getattr(counts, kind, 0) or 0
        for kind in ("processing", "succeeded", "errored", "canceled", "expired")
    )


def _happened(result: Any, model: str) -> Answered | AutocontinueError:
    """A job's result for one request (on ``model``), as the engine takes it."""
    if getattr(result, "type", None) != "succeeded":
        return _error_of(result, model)
    message = result.message
    text = "".join(block.text for block in message.content if getattr(block, "type", "") == "text")
    end = RoundEnd(
        stop_reason=message.stop_reason or "end_turn",
        usage=usage_of(message.usage),
        stop_sequence=message.stop_sequence,
        request_id=message.id,
    )
    return Answered(text, end)


def _error_of(result: Any, model: str) -> AutocontinueError:
    """An errored, expired or canceled result as the error a live call would have raised
    (``refusal_error`` of the Anthropic backend, with the status a live call gets for its type)."""
    kind = getattr(result, "type", None)
    if kind == "canceled":
        return TransientBackendError(
            "the batch request was canceled: its Message Batches job was canceled on the service"
        )
    if kind == "expired" or result is None:
        return TransientBackendError(f"the batch request was {kind or 'not answered'}")
    inner = result.error.error
    error_type, message = inner.type, inner.message
    if error_type in _TRANSIENT:
        return TransientBackendError(message, error_type=error_type)
    common = {"status_code": _STATUS_OF.get(error_type), "request_id": None, "error_type": error_type}
    error = refusal_error(message, common["status_code"], model, common)
    return error if isinstance(error, AutocontinueError) else BackendError(message, **common)


class _Vanished(Exception):
    """A call about one service job was answered 404: the job is not on the service."""

    def __init__(self, error: AutocontinueError) -> None:
        super().__init__(error.message)
        self.error = error


def _vanished_error(service_id: str, error: AutocontinueError) -> BackendError:
    """A job this batch sent is not on the service (deleted, or another workspace's key)."""
    return BackendError(
        f"service job {service_id} of this batch is not on the service (404 Not Found)",
        status_code=404,
        request_id=getattr(error, "request_id", None),
        hint="resume with the API key (workspace) and base URL the batch was started with; if the "
        "job was deleted on the service its answers are gone: start over with --fresh",
    )
