"""Message Batches: the emulator's endpoints through the official SDK, and ``via="batches"``."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from typing import Any

import anthropic
import pytest
from conftest import configure_batches, emulator_stats

import autocontinue
from autocontinue.batch.store import BatchStore
from autocontinue.emulator import ManualClock

MODEL = "claude-haiku-4-5"


def _billed(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/emulator/batches") as response:
        return json.load(response)["billed"]


def _advance(url: str, seconds: float) -> None:
    """Move the emulator's ManualClock on."""
    body = json.dumps({"advance": seconds}).encode()
    request = urllib.request.Request(f"{url}/emulator/clock", data=body, method="POST")
    urllib.request.urlopen(request).read()


def _params(text: str = "Write a story", max_tokens: int = 100, model: str = MODEL) -> dict:
    return {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": text}]}


@pytest.fixture
def client(start_emulator):
    url = start_emulator(length=300, clock=ManualClock())
    return anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)


def test_a_batch_is_processed_after_its_delay_and_its_results_are_jsonl(client):
    url = str(client.base_url).rstrip("/")
    configure_batches(url, processing_delay=60)
    batch = client.messages.batches.create(
        requests=[
            {"custom_id": "a-r0", "params": _params("one")},
            {"custom_id": "b-r0", "params": _params("two", model="no-such-model")},
        ]
    )
    assert batch.id.startswith("msgbatch_") and batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 2 and batch.results_url is None
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    urllib.request.urlopen(
        urllib.request.Request(f"{url}/emulator/clock", data=b'{"advance": 61}', method="POST")
    ).read()
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.ended_at is not None
    assert ended.request_counts.succeeded == 1 and ended.request_counts.errored == 1
    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert results["a-r0"].type == "succeeded" and results["a-r0"].message.stop_reason == "max_tokens"
    assert results["b-r0"].type == "errored" and results["b-r0"].error.error.type == "not_found_error"


def test_batches_bill_half_the_live_price(client):
    url = str(client.base_url).rstrip("/")
    client.messages.create(**_params("same prompt"))
    live = emulator_stats(url)["cost_usd"]
    batch = client.messages.batches.create(requests=[{"custom_id": "x", "params": _params("same prompt")}])
    client.messages.batches.retrieve(batch.id)
    assert emulator_stats(url)["cost_usd"] == pytest.approx(live * 1.5)
    assert _billed(url) == {"x": 1}


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        ([], "at least 1 item"),
        (
            [{"custom_id": "a", "params": _params()}, {"custom_id": "a", "params": _params()}],
            "Duplicate custom_id",
        ),
        ([{"custom_id": "has space", "params": _params()}], "String should match pattern"),
        ([{"custom_id": "a"}], "requests.0.params: Field required"),
        ([{"custom_id": "a", "params": {**_params(), "stream": True}}], "Streaming is not supported"),
    ],
)
def test_create_refuses_what_the_api_refuses(client, requests, message):
    with pytest.raises(anthropic.BadRequestError, match=message):
        client.messages.batches.create(requests=requests)


def test_retrieve_list_cancel_and_delete(client):
    url = str(client.base_url).rstrip("/")
    configure_batches(url, processing_delay=3600)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve("msgbatch_nope")
    ids = [
        client.messages.batches.create(requests=[{"custom_id": f"c{i}", "params": _params()}]).id
        for i in range(3)
    ]
    listed = [b.id for b in client.messages.batches.list(limit=2)]
    assert listed == ids[::-1]  # newest first, across pages
    with pytest.raises(anthropic.BadRequestError, match="cannot be deleted"):
        client.messages.batches.delete(ids[0])
    canceling = client.messages.batches.cancel(ids[0])
    # Canceling while its in-flight requests end (the emulator's cancel_delay, 1 s by default).
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    assert canceling.results_url is None and canceling.ended_at is None
    with pytest.raises(anthropic.BadRequestError, match="cannot be deleted while it is canceling"):
        client.messages.batches.delete(ids[0])
    _advance(url, 1)
    canceled = client.messages.batches.retrieve(ids[0])
    assert canceled.processing_status == "ended" and canceled.request_counts.canceled == 1
    assert [r.result.type for r in client.messages.batches.results(ids[0])] == ["canceled"]
    assert client.messages.batches.delete(ids[0]).type == "message_batch_deleted"
    assert _billed(url) == {}


def test_a_canceled_batch_answers_its_in_flight_requests_and_cancels_the_rest(client):
    url = str(client.base_url).rstrip("/")
    configure_batches(url, processing_delay=3600, cancel_delay=30, cancel_in_flight=1)
    job = client.messages.batches.create(
        requests=[{"custom_id": f"c{i}", "params": _params(f"prompt {i}")} for i in range(3)]
    )
    assert client.messages.batches.cancel(job.id).processing_status == "canceling"
    _advance(url, 29)
    assert client.messages.batches.retrieve(job.id).processing_status == "canceling"
    _advance(url, 1)
    ended = client.messages.batches.retrieve(job.id)
    assert ended.processing_status == "ended"
    assert (ended.request_counts.succeeded, ended.request_counts.canceled) == (1, 2)
    kinds = {r.custom_id: r.result.type for r in client.messages.batches.results(job.id)}
    assert kinds == {"c0": "succeeded", "c1": "canceled", "c2": "canceled"}
    assert _billed(url) == {"c0": 1}


def test_list_pages_both_ways_with_the_cursors_the_sdk_follows(client):
    ids = [
        client.messages.batches.create(requests=[{"custom_id": f"c{i}", "params": _params()}]).id
        for i in range(5)
    ]
    newest_first = ids[::-1]
    page = client.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == newest_first[:2] and page.has_more
    assert (page.first_id, page.last_id) == (newest_first[0], newest_first[1])
    older = client.messages.batches.list(after_id=ids[1], limit=2)
    assert [b.id for b in older.data] == [ids[0]] and not older.has_more
    newer = client.messages.batches.list(before_id=ids[0], limit=2)  # the two just newer than ids[0]
    assert [b.id for b in newer.data] == [ids[2], ids[1]] and newer.has_more
    assert [b.id for b in client.messages.batches.list(before_id=ids[0], limit=2)] == [
        ids[2],
        ids[1],
        ids[4],
        ids[3],
    ]  # the SDK pages on towards the newest through first_id
    assert all(b.request_counts.succeeded == 1 for b in page.data)
    created = [b.created_at for b in client.messages.batches.list(limit=1000)]
    assert created == sorted(created, reverse=True)
    assert any(moment.microsecond for moment in created)  # the API's microseconds, not whole seconds


def test_the_300k_beta_allows_longer_calls_on_models_that_have_it(client):
    long = _params(max_tokens=300_000, model="claude-sonnet-4-6")
    headers = {"anthropic-beta": "output-300k-2026-03-24"}
    plain = client.messages.batches.create(requests=[{"custom_id": "p", "params": long}])
    beta = client.messages.batches.create(
        requests=[{"custom_id": "b", "params": long}], extra_headers=headers
    )
    old = client.messages.batches.create(
        requests=[{"custom_id": "o", "params": {**long, "model": MODEL}}], extra_headers=headers
    )
    outcome = {}
    for job in (plain, beta, old):
        client.messages.batches.retrieve(job.id)
        for line in client.messages.batches.results(job.id):
            outcome[line.custom_id] = line.result.type
    assert outcome == {"p": "errored", "b": "succeeded", "o": "errored"}


# -- via="batches" ---------------------------------------------------------------------------


def _items(n: int):
    return [{"id": f"doc{i}", "prompt": f"Write document {i} in full"} for i in range(n)]


def test_via_batches_gives_the_live_answers_at_half_the_cost_or_less(start_emulator, env, tmp_path):
    args = dict(model=MODEL, max_tokens_per_call=250, poll_interval=0.01)
    live_url = start_emulator(length=700)
    env(live_url)
    live = autocontinue.batch(
        _items(4), journal=str(tmp_path / "live.sqlite3"), output=str(tmp_path / "l.jsonl"), **args
    )
    url = start_emulator(length=700)
    env(url)
    via = autocontinue.batch(
        _items(4),
        journal=str(tmp_path / "b.sqlite3"),
        output=str(tmp_path / "b.jsonl"),
        via="batches",
        **args,
    )
    assert [(r.id, r.text, r.stop_reason, r.rounds) for r in via.results] == [
        (r.id, r.text, r.stop_reason, r.rounds) for r in live.results
    ]
    assert via.results[0].rounds == 3 and len(via.service_jobs) == 3  # one job per round
    assert emulator_stats(url)["cost_usd"] <= 0.5 * emulator_stats(live_url)["cost_usd"] + 1e-9
    assert via.cost_usd == pytest.approx(emulator_stats(url)["cost_usd"])
    billed = _billed(url)
    assert sorted(billed) == sorted(f"doc{i}-r{r}" for i in range(4) for r in range(3))
    assert set(billed.values()) == {1}
    store = BatchStore(tmp_path / "b.sqlite3")
    try:
        assert [job.service_id for job in store.jobs(via.batch_id)] == via.service_jobs
        assert all(job.state == "collected" for job in store.jobs(via.batch_id))
    finally:
        store.close()


def test_an_answer_that_reaches_until_in_a_batch_keeps_its_billed_usage(start_emulator, env, tmp_path):
    # A live stream cut at ``until`` never learns its usage; a batch result is whole, so the
    # round ends as ``until`` and keeps what the service billed for it.
    url = start_emulator(length=600)
    env(url)
    result = autocontinue.batch(
        _items(2),
        journal=str(tmp_path / "j.sqlite3"),
        output=str(tmp_path / "o.jsonl"),
        via="batches",
        model=MODEL,
        until="·100",
        max_tokens_per_call=120,
        poll_interval=0.01,
    )
    assert [r.stop_reason for r in result.results] == ["until", "until"]
    assert all(r.text.endswith("·100") and r.rounds >= 2 for r in result.results)
    billed = emulator_stats(url)
    assert sum(r.usage.output_tokens for r in result.results) == billed["output_tokens"]
    assert result.cost_usd == pytest.approx(billed["cost_usd"])


def test_errored_and_expired_results_are_retried_in_the_next_job(start_emulator, env, tmp_path):
    url = start_emulator(length=200)
    env(url)
    configure_batches(url, outcomes=["expired", "errored"])
    result = autocontinue.batch(
        _items(3),
        journal=str(tmp_path / "j.sqlite3"),
        via="batches",
        model=MODEL,
        poll_interval=0.01,
        output=str(tmp_path / "o.jsonl"),
    )
    assert all(r.error is None and r.stop_reason == "end_turn" for r in result.results)
    assert len(result.service_jobs) == 2
    assert set(_billed(url).values()) == {1}


def test_a_resumed_batch_collects_the_job_still_running_instead_of_paying_again(
    start_emulator, env, tmp_path
):
    clock = ManualClock()
    url = start_emulator(length=200, clock=clock)
    env(url)
    configure_batches(url, processing_delay=600)
    journal = str(tmp_path / "j.sqlite3")
    args = dict(journal=journal, via="batches", model=MODEL, poll_interval=0.01)

    async def interrupted() -> str:
        task = asyncio.ensure_future(autocontinue.abatch(_items(3), output=str(tmp_path / "a.jsonl"), **args))
        for _ in range(2000):
            await asyncio.sleep(0.01)
            store = BatchStore(tmp_path / "j.sqlite3")
            try:
                with store._conn:
                    rows = store._rows("SELECT batch_id FROM batch_rounds")
            finally:
                store.close()
            if rows:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return rows[0]["batch_id"]

    batch_id = asyncio.run(interrupted())
    clock.advance(601)
    done = autocontinue.batch(resume=batch_id, output=str(tmp_path / "b.jsonl"), **args)
    assert done.batch_id == batch_id and all(r.stop_reason == "end_turn" for r in done.results)
    billed = _billed(url)
    assert sorted(billed) == ["doc0-r0", "doc1-r0", "doc2-r0"] and set(billed.values()) == {1}
    with urllib.request.urlopen(f"{url}/emulator/batches") as response:
        assert json.load(response)["batches"] == 1


@pytest.mark.parametrize(
    "model", ["claude-sonnet-4-6", "claude-haiku-5-5", "claude-opus-5-5", "claude-haiku-4-5"]
)
@pytest.mark.parametrize("prompt_tokens", [1_000, 150_000])
def test_every_price_of_a_model_is_halved_in_batches(model, prompt_tokens):
    from autocontinue.batch.models import batch_spec
    from autocontinue.catalogue import lookup_model
    from autocontinue.usage import Usage

    spec = lookup_model(model)
    usage = Usage(
        input_tokens=prompt_tokens,
        output_tokens=5_000,
        cache_creation_input_tokens=3_000,
        cache_creation_1h_input_tokens=1_000,
        cache_read_input_tokens=7_000,
    )
    assert batch_spec(spec, beta_300k=True).cost(usage) == pytest.approx(spec.cost(usage) / 2)
    assert batch_spec(spec, beta_300k=True).max_output == (300_000 if spec.batch_300k else spec.max_output)


def test_the_300k_beta_header_goes_only_on_jobs_whose_models_all_have_it(start_emulator, tmp_path):
    # The header is per create call: a round mixing models is sent as one job with the beta
    # (its models have it) and one without, never a Fable or 4.5 request under the beta.
    url = start_emulator(length=300)
    creates: list[tuple[str | None, list[str]]] = []

    async def record(request) -> None:
        if request.method == "POST" and request.url.path.endswith("/messages/batches"):
            models = [r["params"]["model"] for r in json.loads(request.content)["requests"]]
            creates.append((request.headers.get("anthropic-beta"), models))

    http = anthropic.DefaultAsyncHttpxClient(event_hooks={"request": [record]})
    client = anthropic.AsyncAnthropic(base_url=url, api_key="k", http_client=http)
    items = [
        {"id": "s", "prompt": "Write a long story", "model": "claude-sonnet-4-6"},
        {"id": "f", "prompt": "Write a long poem", "model": "claude-fable-5-1"},
        {"id": "h", "prompt": "Write a long tale", "model": MODEL, "max_tokens_per_call": 120},
    ]
    result = asyncio.run(
        autocontinue.abatch(
            items,
            via="batches",
            client=client,
            poll_interval=0.01,
            journal=str(tmp_path / "j.sqlite3"),
            output=str(tmp_path / "o.jsonl"),
        )
    )
    assert all(r.error is None and r.stop_reason == "end_turn" for r in result.results)
    assert [r.rounds for r in result.results] == [1, 1, 3]
    with_beta = [models for beta, models in creates if beta == "output-300k-2026-03-24"]
    assert with_beta == [["claude-sonnet-4-6"]]
    assert all(beta is None for beta, models in creates if models != ["claude-sonnet-4-6"])
    assert sorted(m for _, models in creates for m in models) == sorted(
        ["claude-sonnet-4-6", "claude-fable-5-1", MODEL, MODEL, MODEL]
    )
    assert set(_billed(url).values()) == {1}


def test_a_job_canceled_on_the_service_is_waited_through_and_its_canceled_requests_retried(
    start_emulator, env, tmp_path
):
    # A colleague cancels the batch's job in the console while it runs: it is canceling while
    # its in-flight request (doc0's) ends, then ended with the others canceled. The driver polls
    # through canceling, keeps doc0's answer and sends the canceled requests in the next job.
    args = dict(model=MODEL, max_tokens_per_call=250, poll_interval=0.01, via="batches")
    env(start_emulator(length=700))
    clean = autocontinue.batch(_items(3), journal=str(tmp_path / "clean.sqlite3"), **args)
    url = start_emulator(length=700, clock=ManualClock())
    env(url)
    configure_batches(url, processing_delay=600, cancel_delay=30, cancel_in_flight=1)
    notes: list[str] = []
    outcome: list[Any] = []
    run = threading.Thread(
        target=lambda: outcome.append(
            autocontinue.batch(_items(3), journal=str(tmp_path / "j.sqlite3"), on_note=notes.append, **args)
        )
    )
    run.start()
    colleague = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
    try:
        first = _wait_for(lambda: next(iter(colleague.messages.batches.list()), None))
        configure_batches(url, processing_delay=0)  # the jobs sent after it run at once
        assert colleague.messages.batches.cancel(first.id).processing_status == "canceling"
        assert _wait_for(lambda: [n for n in notes if first.id in n])  # the driver saw canceling
        assert colleague.messages.batches.retrieve(first.id).processing_status == "canceling"
        _advance(url, 30)
    finally:
        run.join(timeout=60)
    (done,) = outcome
    assert [(r.id, r.text, r.stop_reason, r.rounds) for r in done.results] == [
        (r.id, r.text, r.stop_reason, r.rounds) for r in clean.results
    ]
    kinds = {r.custom_id: r.result.type for r in colleague.messages.batches.results(first.id)}
    assert kinds == {"doc0-r0": "succeeded", "doc1-r0": "canceled", "doc2-r0": "canceled"}
    billed = _billed(url)  # every round once: doc0's round 0 was not sent again
    assert billed == {f"doc{i}-r{r}": 1 for i in range(3) for r in range(3)}
    assert len(notes) == 1 and "was canceled on the service" in notes[0]
    assert done.warnings == []


def test_requests_canceled_every_time_are_reported_on_their_item(start_emulator, env, tmp_path):
    url = start_emulator(length=200)
    env(url)
    # doc0 canceled in each of 7 jobs (the retry policy's last attempt), doc1 answered at once.
    configure_batches(url, outcomes=["canceled", "succeeded"] + ["canceled"] * 6)
    result = autocontinue.batch(
        _items(2), journal=str(tmp_path / "j.sqlite3"), via="batches", model=MODEL, poll_interval=0.01
    )
    failed, answered = result.results
    assert failed.error is not None and "canceled on the service" in failed.error
    assert answered.error is None and answered.stop_reason == "end_turn"
    assert len(result.service_jobs) == 7 and _billed(url) == {"doc1-r0": 1}


def test_a_create_refused_with_429_says_what_messages_say(start_emulator):
    # The batch create's scripted 429 is the same error POST /v1/messages gives for one.
    url = start_emulator(length=100, faults="429/3@1")
    client = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as live:
        client.messages.create(**_params())
    configure_batches(url, create_errors=["429/3"])
    with pytest.raises(anthropic.RateLimitError) as batch:
        client.messages.batches.create(requests=[{"custom_id": "a", "params": _params()}])
    assert batch.value.body["error"] == live.value.body["error"]
    assert "per-minute rate limit (https://docs.claude.com/en/api/rate-limits)" in str(batch.value)
    assert batch.value.response.headers["retry-after"] == "3"


def _wait_for(probe: Any, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(0.01)
    raise AssertionError("never happened")
