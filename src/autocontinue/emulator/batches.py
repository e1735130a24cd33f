"""The emulator's Message Batches endpoints: create, retrieve, list, cancel, delete, results.

``POST /v1/messages/batches`` takes ``{"requests": [{"custom_id", "params"}]}`` and checks
its shape as the API does (at least one and at most 100,000 requests, 256 MB, custom ids
matching ``^[a-zA-Z0-9_-]{1,64}$`` and unique, params present and not streaming; 400
``invalid_request_error`` naming the field, 413 ``request_too_large``). A batch stays
``in_progress`` for the processing delay (0 s unless set with ``POST /emulator/batches``
``{"processing_delay": seconds}``, on the emulator clock; each batch keeps the delay set when
it was made), then every request is answered at
once exactly as ``POST /v1/messages`` would answer it (same answers, prompt cache and
checks, but no rate limits) and billed at half price; a request the API would refuse is an
``errored`` result with that error. ``outcomes`` (``["expired", "errored", ...]``, set the
same way) scripts the next requests' results, to exercise a client's retries;
``create_delay`` (seconds, real time) holds the response to a create after the batch is made,
as a slow network would: a client killed in that hold has a batch on the service whose id it
never learnt (setting it back to 0 releases the held responses); ``create_errors``
(``["429/3", "500"]``) answers the next creates with those errors and makes no batch
(``429/N``: ``rate_limit_error`` with ``retry-after: N``; ``529``: ``overloaded_error``;
anything else: 500 ``api_error``; the bodies ``POST /v1/messages`` fails with);
``poll_errors`` (same kinds) answers the next retrieve, list and results calls so, as a service
having a bad minute would, while the batches go on as they were. Each
succeeded result's message carries the ``model`` and ``usage`` a ``POST /v1/messages`` would:
its input tokens (with cache reads and writes) add up to what ``count_tokens`` says. A batch not
processed within 24 hours expires. A canceled one is ``canceling`` (its ``cancel_initiated_at``
set) for the cancel delay (``cancel_delay``, 1 s on the emulator clock unless set), while its
in-flight requests end, then ``ended``: its first ``cancel_in_flight`` requests (0 unless set)
were in flight and are answered (and billed) as if it had run, the others are ``canceled``,
as ``request_counts.canceled`` says (the API: "the system may complete any in-progress,
non-interruptible requests before finalizing cancellation"). The
header ``anthropic-beta: output-300k-2026-03-24`` allows ``max_tokens`` up to 300,000 on the
models that have that beta. ``GET /v1/messages/batches/{id}/results`` is JSONL, one line per
request (``custom_id``, ``result``). ``GET /v1/messages/batches`` lists them newest first,
``limit`` (1 to 1000, default 20) a page, ``after_id`` the page after (older than) that batch,
``before_id`` the page before (newer than) it, with ``has_more`` in that direction and
``first_id`` / ``last_id`` of the page; times are RFC 3339 with microseconds, as the API gives
them. ``GET /emulator/batches`` tells how many batches were made, how often each
``custom_id`` was billed and how often each batch's results were downloaded.
``POST /emulator/reset`` starts the service over as it does the Messages API's totals: the
batches themselves (their ids then answer 404) and those counts are cleared; what was set with
``POST /emulator/batches`` (delays, scripted outcomes and errors) is kept, as the emulator's
faults are.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..batch.models import BETA_300K, batch_spec
from ..catalogue import ModelSpec
from ..usage import Usage
from .ratelimit import rfc3339
from .request import ApiError, check_context, invalid, parse_request

__all__ = ["BatchService", "batch_routes"]

MAX_REQUESTS = 100_000
MAX_BYTES = 256 * 1024 * 1024
DAY = 24 * 3600.0
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_RESULT_TYPES = ("succeeded", "errored", "canceled", "expired")


@dataclass
class Job:
    """One Message Batch as the emulator holds it."""

    id: str
    created: float
    requests: list[tuple[str, dict[str, Any]]]
    beta_300k: bool
    #: Seconds (emulator clock) it stays in progress: the service's processing delay when made.
    delay: float = 0.0
    status: str = "in_progress"
    results: list[dict[str, Any]] = field(default_factory=list)
    ended: float | None = None
    cancel_initiated: float | None = None
    #: Set at the cancel: seconds (emulator clock) it stays canceling, and how many of its
    #: requests (the first ones) were in flight and are answered rather than canceled.
    cancel_delay: float = 0.0
    in_flight: int = 0

    def counts(self) -> dict[str, int]:
        if self.status != "ended":
            return {"processing": len(self.requests), **dict.fromkeys(_RESULT_TYPES, 0)}
        tally = Counter(result["result"]["type"] for result in self.results)
        return {"processing": 0, **{kind: tally.get(kind, 0) for kind in _RESULT_TYPES}}


class BatchService:
    """The batches of one emulator, and how they are processed."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.jobs: dict[str, Job] = {}
        self.processing_delay = 0.0
        self.create_delay = 0.0
        self.create_errors: list[str] = []
        self.poll_errors: list[str] = []
        self.outcomes: list[str] = []
        self.cancel_delay = 1.0
        self.cancel_in_flight = 0
        self.billed: Counter[str] = Counter()
        self.downloads: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def clock(self) -> Any:
        return self.emulator.config.clock

    def reset(self) -> None:
        """Forget every batch and what was billed and downloaded (the settings stay)."""
        with self._lock:
            self.jobs.clear()
            self.billed.clear()
            self.downloads.clear()

    # -- handlers ---------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        if self.create_errors:
            fault = self.create_errors.pop(0)
            return await self._handle(request, lambda r, _: _raise_create_error(fault))
        response = await self._handle(request, self._create, read_body=True)
        held = time.monotonic()
        # create_delay is read again each time: setting it to 0 releases a held response.
        while response.status_code == 200 and time.monotonic() - held < self.create_delay:
            await asyncio.sleep(0.01)
        return response

    async def retrieve(self, request: Request) -> Response:
        return await self._handle(request, self._polled(lambda r, _: self._view(r, self._job(r))))

    async def list(self, request: Request) -> Response:
        return await self._handle(request, self._polled(self._list))

    async def cancel(self, request: Request) -> Response:
        return await self._handle(request, self._cancel)

    async def delete(self, request: Request) -> Response:
        return await self._handle(request, self._delete)

    async def results(self, request: Request) -> Response:
        return await self._handle(request, self._polled(self._results))

    def _polled(self, action: Any) -> Any:
        """``action``, unless a scripted ``poll_errors`` failure answers this call instead."""
        if not self.poll_errors:
            return action
        fault = self.poll_errors.pop(0)
        return lambda r, _: _raise_create_error(fault)

    async def configure(self, request: Request) -> Response:
        body = await request.json()
        if "processing_delay" in body:
            self.processing_delay = float(body["processing_delay"])
        if "create_delay" in body:
            self.create_delay = float(body["create_delay"])
        if "outcomes" in body:
            self.outcomes = [str(kind) for kind in body["outcomes"]]
        if "create_errors" in body:
            self.create_errors = [str(kind) for kind in body["create_errors"]]
        if "poll_errors" in body:
            self.poll_errors = [str(kind) for kind in body["poll_errors"]]
        if "cancel_delay" in body:
            self.cancel_delay = float(body["cancel_delay"])
        if "cancel_in_flight" in body:
            self.cancel_in_flight = int(body["cancel_in_flight"])
        return JSONResponse(
            {
                "processing_delay": self.processing_delay,
                "create_delay": self.create_delay,
                "create_errors": self.create_errors,
                "poll_errors": self.poll_errors,
                "outcomes": self.outcomes,
                "cancel_delay": self.cancel_delay,
                "cancel_in_flight": self.cancel_in_flight,
            }
        )

    async def stats(self, request: Request) -> Response:
        return JSONResponse(
            {"batches": len(self.jobs), "billed": dict(self.billed), "downloads": dict(self.downloads)}
        )

    async def _handle(self, request: Request, action: Any, *, read_body: bool = False) -> Response:
        from .app import _random_id

        request_id = _random_id("req_011C", 20)
        try:
            self.emulator.authenticate(request)
            body = await self.emulator.read_json(request) if read_body else None
            await asyncio.to_thread(self._advance_all)
            response = action(request, body)
        except ApiError as error:
            return self.emulator.error_response(error, request_id)
        if isinstance(response, Response):
            response.headers["request-id"] = request_id
            return response
        return JSONResponse(response, headers={"request-id": request_id})

    # -- actions ----------------------------------------------------------------------------

    def _create(self, request: Request, body: Any) -> dict[str, Any]:
        from .app import _random_id

        requests = _checked_requests(body, int(request.headers.get("content-length") or 0))
        beta = BETA_300K in request.headers.get("anthropic-beta", "")
        job = Job(_random_id("msgbatch_01", 24), self.clock.now(), requests, beta, self.processing_delay)
        with self._lock:
            self.jobs[job.id] = job
        return self._view(request, job)

    def _job(self, request: Request) -> Job:
        batch_id = request.path_params["batch_id"]
        job = self.jobs.get(batch_id)
        if job is None:
            raise ApiError(404, "not_found_error", f"No batch found with id {batch_id!r}")
        return job

    def _list(self, request: Request, body: Any) -> dict[str, Any]:
        query = request.query_params
        try:
            limit = int(query.get("limit", 20))
        except ValueError:
            raise invalid("limit: Input should be a valid integer") from None
        if not 1 <= limit <= 1000:
            raise invalid("limit: Input should be between 1 and 1000")
        jobs = list(self.jobs.values())[::-1]  # newest first (in the order they were made)
        ids = [job.id for job in jobs]
        if query.get("after_id") in ids:
            older = jobs[ids.index(query["after_id"]) + 1 :]
            page, has_more = older[:limit], len(older) > limit
        elif query.get("before_id") in ids:
            newer = jobs[: ids.index(query["before_id"])]
            page, has_more = newer[-limit:], len(newer) > limit
        else:
            page, has_more = jobs[:limit], len(jobs) > limit
        return {
            "data": [self._view(request, job) for job in page],
            "has_more": has_more,
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
        }

    def _cancel(self, request: Request, body: Any) -> dict[str, Any]:
        job = self._job(request)
        if job.status == "in_progress":
            job.status = "canceling"
            job.cancel_initiated = self.clock.now()
            job.cancel_delay, job.in_flight = self.cancel_delay, self.cancel_in_flight
            self._advance(job)
        return self._view(request, job)

    def _delete(self, request: Request, body: Any) -> dict[str, Any]:
        job = self._job(request)
        if job.status != "ended":
            raise invalid(f"Batch {job.id} cannot be deleted while it is {job.status}; cancel it first.")
        with self._lock:
            del self.jobs[job.id]
        return {"id": job.id, "type": "message_batch_deleted"}

    def _results(self, request: Request, body: Any) -> Response:
        job = self._job(request)
        if job.status != "ended":
            raise invalid(f"Batch {job.id} has not ended yet (processing_status: {job.status}).")
        self.downloads[job.id] += 1
        lines = "".join(json.dumps(result, ensure_ascii=False) + "\n" for result in job.results)
        return Response(lines.encode(), media_type="application/x-jsonl")

    def _view(self, request: Request, job: Job) -> dict[str, Any]:
        base = str(request.base_url).rstrip("/")
        return {
            "id": job.id,
            "type": "message_batch",
            "processing_status": job.status,
            "request_counts": job.counts(),
            "created_at": rfc3339(job.created, micro=True),
            "expires_at": rfc3339(job.created + DAY, micro=True),
            "ended_at": rfc3339(job.ended, micro=True) if job.ended is not None else None,
            "cancel_initiated_at": rfc3339(job.cancel_initiated, micro=True)
            if job.cancel_initiated is not None
            else None,
            "archived_at": None,
            "results_url": f"{base}/v1/messages/batches/{job.id}/results" if job.status == "ended" else None,
        }

    # -- processing -------------------------------------------------------------------------

    def _advance_all(self) -> None:
        for job in list(self.jobs.values()):
            self._advance(job)

    def _advance(self, job: Job) -> None:
        """Process ``job`` once its delay has passed (or end it once canceled, or expired)."""
        with self._lock:
            if job.status == "ended":
                return
            now = self.clock.now()
            if job.status == "canceling":
                assert job.cancel_initiated is not None
                if now < job.cancel_initiated + job.cancel_delay:
                    return  # its in-flight requests have not ended yet
                kinds = ["process"] * job.in_flight + ["canceled"] * len(job.requests)
            elif now >= job.created + DAY:
                kinds = ["expired"] * len(job.requests)
            elif now >= job.created + job.delay:
                kinds = ["process"] * len(job.requests)
            else:
                return
            job.results = [
                self._result(custom_id, params, job.beta_300k, kind)
                for (custom_id, params), kind in zip(job.requests, kinds)
            ]
            job.status, job.ended = "ended", now

    def _result(self, custom_id: str, params: dict[str, Any], beta: bool, kind: str) -> dict[str, Any]:
        if kind == "process" and self.outcomes:
            kind = self.outcomes.pop(0)
        if kind in ("canceled", "expired"):
            return {"custom_id": custom_id, "result": {"type": kind}}
        if kind == "errored":
            error = ApiError(500, "api_error", "Internal server error")
            return {"custom_id": custom_id, "result": _errored(error)}
        try:
            message = self._answer(params, beta)
        except ApiError as error:
            return {"custom_id": custom_id, "result": _errored(error)}
        self.billed[custom_id] += 1
        return {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}

    def _answer(self, params: dict[str, Any], beta: bool) -> dict[str, Any]:
        from .app import Outcome, message_json

        emulator = self.emulator

        def resolve(name: str) -> ModelSpec | None:
            spec = emulator.resolve(name)
            return batch_spec(spec, beta_300k=beta) if spec is not None else None

        parsed = parse_request(params, resolve)
        check_context(parsed)
        plan = emulator.plan(parsed)
        cache = emulator.cache.plan(parsed.spec.id, parsed.blocks, parsed.spec.min_cacheable)
        usage = Usage(
            input_tokens=parsed.input_tokens - cache.read_tokens - cache.creation_tokens,
            output_tokens=plan.output_tokens,
            cache_creation_input_tokens=cache.creation_tokens,
            cache_creation_1h_input_tokens=cache.write_1h,
            cache_read_input_tokens=cache.read_tokens,
        )
        emulator.stats.bill(parsed.spec, usage)  # parsed.spec is the half-price batch spec
        emulator.cache.commit(cache)
        return message_json(Outcome(parsed, plan, cache, usage, None, 0))


def _raise_create_error(fault: str) -> None:
    """A scripted failure (``create_errors``, ``poll_errors``): the API's error (and no batch made).

    ``429/N`` and ``529`` as ``POST /v1/messages`` fails with them (the same bodies), anything
    else as a 500."""
    from .app import _raise_status_fault

    status, _, wait = fault.partition("/")
    _raise_status_fault(status if status in ("429", "529") else "500", int(wait or 1))


def _errored(error: ApiError) -> dict[str, Any]:
    return {
        "type": "errored",
        "error": {
            "type": "error",
            "error": {"type": error.error_type, "message": error.message},
            "request_id": None,
        },
    }


def _checked_requests(body: Any, size: int) -> list[tuple[str, dict[str, Any]]]:
    """The (custom_id, params) pairs of a create body, or the API's 400/413."""
    if size > MAX_BYTES:
        raise ApiError(
            413, "request_too_large", f"Request exceeds the maximum allowed number of bytes ({MAX_BYTES})."
        )
    if not isinstance(body, dict) or "requests" not in body:
        raise invalid("requests: Field required")
    requests = body["requests"]
    if not isinstance(requests, list):
        raise invalid("requests: Input should be a valid list")
    if not requests:
        raise invalid("requests: List should have at least 1 item after validation, not 0")
    if len(requests) > MAX_REQUESTS:
        raise invalid(
            f"requests: List should have at most {MAX_REQUESTS} items after validation, not {len(requests)}"
        )
    seen: set[str] = set()
    out = []
    for i, entry in enumerate(requests):
        where = f"requests.{i}"
        if not isinstance(entry, dict):
            raise invalid(f"{where}: Input should be a valid dictionary or object to extract fields from")
        custom_id, params = entry.get("custom_id"), entry.get("params")
        if custom_id is None:
            raise invalid(f"{where}.custom_id: Field required")
        if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
            raise invalid(f"{where}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
        if custom_id in seen:
            raise invalid(
                f"{where}.custom_id: Duplicate custom_id {custom_id!r}: each custom_id must be unique in a batch"
            )
        seen.add(custom_id)
        if not isinstance(params, dict):
            raise invalid(f"{where}.params: Field required")
        if params.get("stream"):
            raise invalid(f"{where}.params.stream: Streaming is not supported in Message Batches")
        out.append((custom_id, params))
    return out


def batch_routes(emulator: Any) -> list[Route]:
    """The routes to mount in ``build_app``; the service hangs off ``emulator.batches``."""
    service = BatchService(emulator)
    emulator.batches = service
    return [
        Route("/v1/messages/batches", service.create, methods=["POST"]),
        Route("/v1/messages/batches", service.list, methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}", service.retrieve, methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}", service.delete, methods=["DELETE"]),
        Route("/v1/messages/batches/{batch_id}/cancel", service.cancel, methods=["POST"]),
        Route("/v1/messages/batches/{batch_id}/results", service.results, methods=["GET"]),
        Route("/emulator/batches", service.configure, methods=["POST"]),
        Route("/emulator/batches", service.stats, methods=["GET"]),
    ]
