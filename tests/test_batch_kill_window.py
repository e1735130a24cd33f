"""``--via batches`` killed between the service accepting a job and the journal learning its id.

The driver journals each job as an intent before its create call; a resume looks for the
intent's job on the service (``batches.list``, confirmed by the custom ids of its results and
by evidence that their requests are ours: each answer's model and input tokens against
``count_tokens``) and collects it instead of paying for the round again; another job with the
same custom ids is not taken. Everything runs through the official
SDK against the emulator over real HTTP. Where a test stands in for ``kill -9`` in-process,
the only part not real is the death itself: a thin wrapper around the real client's
``messages.batches`` raises right after (or right before) the real create call, where the
killed process stopped; the last test kills a real CLI process with SIGKILL inside the window.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import anthropic
import pytest
from conftest import configure_batches

import autocontinue
from autocontinue.batch.store import BatchStore
from autocontinue.emulator import ManualClock

MODEL = "claude-haiku-4-5"
#: Small create timeout and clock skew: an intent is undecided until its last create was sent
#: plus both, so a resume after a create that never left waits that long before sending again.
TIMEOUTS = {"create_timeout": 2.0, "clock_skew": 0.5, "call_backoff": 0.0}
ARGS: dict[str, Any] = dict(
    model=MODEL, max_tokens_per_call=250, poll_interval=0.01, via="batches", driver_options=TIMEOUTS
)
ROUNDS = 3  # an answer of 700 tokens in calls of 250


class _Killed(Exception):
    """Where the process would have died."""


class _Batches:
    """The real client's ``messages.batches``, except that the process 'dies' at ``die``."""

    #: The requests of the last create call (sent or not), to send them again as another would.
    sent: list[Any] = []

    def __init__(self, real: Any, die: str) -> None:
        self._real, self._die = real, die

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def create(self, **kwargs: Any) -> Any:
        _Batches.sent = kwargs["requests"]
        if self._die == "before create":
            raise _Killed
        job = await self._real.create(**kwargs)
        if self._die == "after create":
            raise _Killed(job.id)
        return job

    async def retrieve(self, *args: Any, **kwargs: Any) -> Any:
        if self._die == "first poll":
            raise _Killed
        return await self._real.retrieve(*args, **kwargs)


class _Client:
    def __init__(self, real: anthropic.AsyncAnthropic, die: str) -> None:
        self.base_url = real.base_url
        self.messages = type("Messages", (), {})()
        self.messages.batches = _Batches(real.messages.batches, die)
        self.messages.count_tokens = real.messages.count_tokens


def _items(n: int = 3) -> list[dict[str, str]]:
    return [{"id": f"doc{i}", "prompt": f"Write document {i} in full"} for i in range(n)]


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/emulator/batches") as response:
        return dict(json.load(response))


@pytest.fixture
def clean(start_emulator, env, tmp_path):
    """The uninterrupted batch's (id, text, stop_reason, rounds), on an emulator of its own."""
    env(start_emulator(length=700))
    done = autocontinue.batch(_items(), journal=str(tmp_path / "clean.sqlite3"), **ARGS)
    return [(r.id, r.text, r.stop_reason, r.rounds) for r in done.results]


def _die(url: str, journal: Path, die: str) -> str:
    """Run the batch until the process 'dies' at ``die``; its batch id."""
    real = anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0)
    with pytest.raises(_Killed):
        autocontinue.batch(_items(), journal=str(journal), client=_Client(real, die), **ARGS)
    store = BatchStore(journal)
    try:
        (row,) = store._rows("SELECT id FROM batches")
        return str(row["id"])
    finally:
        store.close()


def _post(url: str, path: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request) as response:
        response.read()


def _table(journal: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(journal) as conn:
        return conn.execute(sql).fetchall()


def _every_round_billed_once(url: str) -> None:
    billed = _get(url)["billed"]
    assert sorted(billed) == sorted(f"doc{i}-r{r}" for i in range(3) for r in range(ROUNDS))
    assert set(billed.values()) == {1}


def test_a_job_the_service_took_before_the_kill_is_collected_not_sent_again(
    start_emulator, env, tmp_path, clean
):
    url = start_emulator(length=700)
    env(url)
    journal = tmp_path / "j.sqlite3"
    batch_id = _die(url, journal, "after create")
    assert _table(journal, "SELECT state, service_id FROM batch_intents") == [("creating", None)]
    assert _get(url)["batches"] == 1  # the service has round 0's job; the journal has no id for it

    done = autocontinue.batch(resume=batch_id, journal=str(journal), **ARGS)
    assert [(r.id, r.text, r.stop_reason, r.rounds) for r in done.results] == clean
    _every_round_billed_once(url)
    assert _get(url)["batches"] == ROUNDS  # no second service job for round 0
    assert done.warnings == []
    # The adopted job's results, downloaded to confirm it is ours, are the ones collected.
    downloads = _get(url)["downloads"]
    assert len(downloads) == ROUNDS and set(downloads.values()) == {1}


def test_an_intent_whose_create_never_left_is_sent_once(start_emulator, env, tmp_path, clean):
    url = start_emulator(length=700)
    env(url)
    journal = tmp_path / "j.sqlite3"
    batch_id = _die(url, journal, "before create")
    # Another job on the same account, with as many requests, made after the intent: not ours.
    other = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
    params = {"model": MODEL, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    other.messages.batches.create(requests=[{"custom_id": f"x{i}", "params": params} for i in range(3)])

    done = autocontinue.batch(resume=batch_id, journal=str(journal), **ARGS)
    assert [(r.id, r.text, r.stop_reason, r.rounds) for r in done.results] == clean
    billed = _get(url)["billed"]
    assert {k: v for k, v in billed.items() if k.startswith("doc")} == {
        f"doc{i}-r{r}": 1 for i in range(3) for r in range(ROUNDS)
    }
    states = [state for (state,) in _table(journal, "SELECT state FROM batch_intents ORDER BY id")]
    assert states == ["dropped"] + ["submitted"] * ROUNDS


def test_two_service_jobs_for_one_intent_use_the_nearest_and_say_so(start_emulator, env, tmp_path, clean):
    url = start_emulator(length=700)
    env(url)
    journal = tmp_path / "j.sqlite3"
    batch_id = _die(url, journal, "after create")
    # The same requests sent again (as an SDK retry of a create whose response was lost does).
    sync = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
    (first,) = sync.messages.batches.list()
    time.sleep(0.05)
    again = sync.messages.batches.create(requests=_Batches.sent)

    done = autocontinue.batch(resume=batch_id, journal=str(journal), **ARGS)
    assert [(r.id, r.text, r.stop_reason, r.rounds) for r in done.results] == clean
    billed = _get(url)["billed"]
    twice = {f"doc{i}-r0": 2 for i in range(3)}  # the killed process's job and the resend
    assert billed == {**{f"doc{i}-r{r}": 1 for i in range(3) for r in range(1, ROUNDS)}, **twice}
    assert _get(url)["batches"] == ROUNDS + 1  # nothing sent a third time
    assert len(done.warnings) == 1 and f"used {first.id}" in done.warnings[0] and again.id in done.warnings[0]
    assert (again.id, "ignored") in _table(journal, "SELECT service_id, state FROM batch_rounds")


def test_a_create_whose_response_times_out_is_found_not_sent_again(start_emulator, env, tmp_path, clean):
    # The SDK resends a POST that timed out (no idempotency key): the service would make and
    # bill a second job for the round. The driver turns those resends off for the create and
    # looks for the job instead.
    url = start_emulator(length=700)
    env(url)
    configure_batches(url, create_delay=3.0)  # every create's response arrives after the client gave up
    client = anthropic.AsyncAnthropic(base_url=url, api_key="k", timeout=1.0)  # default retries
    done = autocontinue.batch(_items(), journal=str(tmp_path / "j.sqlite3"), client=client, **ARGS)
    assert [(r.id, r.text, r.stop_reason, r.rounds) for r in done.results] == clean
    _every_round_billed_once(url)
    assert _get(url)["batches"] == ROUNDS


def test_a_journal_from_before_intents_resumes_and_gains_the_table(start_emulator, env, tmp_path, clean):
    url = start_emulator(length=700)
    env(url)
    journal = tmp_path / "j.sqlite3"
    batch_id = _die(url, journal, "first poll")  # round 0's job journaled as submitted
    with sqlite3.connect(journal) as conn:
        conn.execute("DROP TABLE batch_intents")  # the file as the code before intents left it

    done = autocontinue.batch(resume=batch_id, journal=str(journal), **ARGS)
    assert [(r.id, r.text, r.stop_reason, r.rounds) for r in done.results] == clean
    _every_round_billed_once(url)
    assert len(_table(journal, "SELECT * FROM batch_intents")) == ROUNDS - 1


def test_kill_9_of_the_cli_while_the_create_response_is_on_its_way(start_emulator, tmp_path, clean):
    # Deterministic: the emulator makes the job, then holds the response 60 s; the process is
    # killed once the job exists, so it dies after the service took the job and before it
    # could journal the id (the intent was committed before the request went out).
    url = start_emulator(length=700)
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(item) + "\n" for item in _items()))
    command = [sys.executable, "-m", "autocontinue", "batch", str(source), "-o", str(tmp_path / "out.jsonl")]
    command += ["--via", "batches", "--model", MODEL, "--max-tokens-per-call", "250"]
    command += ["--poll-interval", "0.01", "--journal", str(tmp_path / "j.sqlite3"), "-q"]
    child_env = {**os.environ, "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "k"}
    child_env["PYTHONPATH"] = os.pathsep.join([str(Path(autocontinue.__file__).parents[1]), *sys.path])
    configure_batches(url, create_delay=60)
    process = subprocess.Popen(command, env=child_env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while _get(url)["batches"] == 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, process.stderr.read() if process.stderr else ""
    process.send_signal(signal.SIGKILL)
    process.wait()
    configure_batches(url, create_delay=0)

    rerun = subprocess.run(command, env=child_env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    got = sorted((r["id"], r["text"], r["stop_reason"], r["rounds"]) for r in lines)
    assert got == sorted(clean)
    _every_round_billed_once(url)
    assert _get(url)["batches"] == ROUNDS


def _foreign(url: str, prompt: str = "hi") -> str:
    """Another job on the account with round 0's custom ids and count, for other prompts (a
    colleague's batch in the same workspace, or another run of a file whose items are 1, 2, 3)."""
    other = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
    params = {"model": MODEL, "max_tokens": 250, "messages": [{"role": "user", "content": prompt}]}
    job = other.messages.batches.create(
        requests=[{"custom_id": f"doc{i}-r0", "params": params} for i in range(3)]
    )
    return str(job.id)


def test_another_jobs_batch_with_the_same_custom_ids_is_not_taken(start_emulator, env, tmp_path, clean):
    url = start_emulator(length=700)
    env(url)
    journal = tmp_path / "j.sqlite3"
    batch_id = _die(url, journal, "before create")
    foreign = _foreign(url)  # same ids, same count, made right after the intent: only its tokens differ

    done = autocontinue.batch(resume=batch_id, journal=str(journal), **ARGS)
    assert [(r.id, r.text, r.stop_reason, r.rounds) for r in done.results] == clean  # not its answers
    billed = _get(url)["billed"]
    assert billed == {
        **{f"doc{i}-r{r}": 1 for i in range(3) for r in range(1, ROUNDS)},
        **{f"doc{i}-r0": 2 for i in range(3)},
    }
    assert len(done.warnings) == 1 and foreign in done.warnings[0] and "not taken" in done.warnings[0]
    states = [state for (state,) in _table(journal, "SELECT state FROM batch_intents ORDER BY id")]
    assert states == ["dropped"] + ["submitted"] * ROUNDS


def test_a_job_the_service_lists_late_is_still_found(start_emulator, env, tmp_path, clean):
    # The killed process's create reaches the service only after the resume has started (a
    # slow create, or a resume right after the kill): the intent stays undecided until its
    # send time plus the create timeout and the skew, so the job is found, not paid again.
    url = start_emulator(length=700)
    env(url)
    journal = tmp_path / "j.sqlite3"
    batch_id = _die(url, journal, "before create")
    sync = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
    late = threading.Timer(0.8, lambda: sync.messages.batches.create(requests=_Batches.sent))
    late.start()
    try:
        done = autocontinue.batch(resume=batch_id, journal=str(journal), **ARGS)
    finally:
        late.join()
    assert [(r.id, r.text, r.stop_reason, r.rounds) for r in done.results] == clean
    _every_round_billed_once(url)
    assert _get(url)["batches"] == ROUNDS
    assert done.warnings == []


def test_a_resume_after_a_kill_waits_only_for_the_listing_not_a_whole_create_timeout(
    start_emulator, env, tmp_path, clean
):
    # The real create timeout (600 s): the killed process cannot still be sending, so a resume
    # waits only list_delay for the service to list a job, then sends the round once.
    url = start_emulator(length=700)
    env(url)
    journal = tmp_path / "j.sqlite3"
    batch_id = _die(url, journal, "before create")
    options = {**ARGS, "driver_options": {"create_timeout": 600.0, "clock_skew": 0.5, "list_delay": 2.0}}
    notes: list[str] = []
    started = time.monotonic()
    done = autocontinue.batch(resume=batch_id, journal=str(journal), on_note=notes.append, **options)
    assert time.monotonic() - started < 120  # not the 600 s a create on its way could take
    # The wait is told, once, with how long it may last (the listing's delay, not 600 s).
    assert len(notes) == 1 and "killed run" in notes[0] and notes[0].endswith("(up to 2 s)"), notes
    assert [(r.id, r.text, r.stop_reason, r.rounds) for r in done.results] == clean
    _every_round_billed_once(url)
    states = [state for (state,) in _table(journal, "SELECT state FROM batch_intents ORDER BY id")]
    assert states == ["dropped"] + ["submitted"] * ROUNDS


def test_a_retry_after_a_429_waits_its_retry_after_and_its_job_is_found(start_emulator, env, tmp_path, clean):
    # The first create gets 429 with retry-after 3 (longer than the create timeout plus the
    # skew); the retry lands and the process dies before it learns the id. The retry's send
    # time was journaled, so the resume looks for a job created up to then plus the timeout.
    url = start_emulator(length=700)
    env(url)
    journal = tmp_path / "j.sqlite3"
    configure_batches(url, create_errors=["429/3"])
    batch_id = _die(url, journal, "after create")
    ((created, last_sent),) = _table(journal, "SELECT created, last_sent FROM batch_intents")
    (job,) = anthropic.Anthropic(base_url=url, api_key="k").messages.batches.list()
    assert job.created_at.timestamp() - created >= 3.0  # the retry waited what the service asked
    assert last_sent - created >= 3.0

    done = autocontinue.batch(resume=batch_id, journal=str(journal), **ARGS)
    assert [(r.id, r.text, r.stop_reason, r.rounds) for r in done.results] == clean
    _every_round_billed_once(url)
    assert _get(url)["batches"] == ROUNDS


def test_a_confirmed_job_is_taken_without_waiting_for_a_running_candidate(
    start_emulator, env, tmp_path, clean
):
    url = start_emulator(length=700)
    env(url)
    journal = tmp_path / "j.sqlite3"
    batch_id = _die(url, journal, "after create")  # our job, ended at once
    configure_batches(url, processing_delay=30)
    _foreign(url)  # another candidate, still running for 30 s
    configure_batches(url, processing_delay=0)

    started = time.monotonic()
    done = autocontinue.batch(resume=batch_id, journal=str(journal), **ARGS)
    assert time.monotonic() - started < 15  # not held by the running candidate
    assert [(r.id, r.text, r.stop_reason, r.rounds) for r in done.results] == clean
    assert _get(url)["batches"] == ROUNDS + 1


def test_a_running_candidate_that_holds_the_resume_is_told_once(start_emulator, env, tmp_path, clean):
    # Nothing of ours landed; another job with round 0's custom ids runs for 2 s: the resume
    # waits for it past the listing's delay (it might be ours) and says so, once, then refuses it.
    url = start_emulator(length=700)
    env(url)
    journal = tmp_path / "j.sqlite3"
    batch_id = _die(url, journal, "before create")
    configure_batches(url, processing_delay=2)
    foreign = _foreign(url)
    configure_batches(url, processing_delay=0)
    options = {**ARGS, "driver_options": {**TIMEOUTS, "create_timeout": 600.0, "list_delay": 0.2}}
    notes: list[str] = []
    done = autocontinue.batch(resume=batch_id, journal=str(journal), on_note=notes.append, **options)
    assert [(r.id, r.text, r.stop_reason, r.rounds) for r in done.results] == clean
    assert len(notes) == 2, notes
    assert "looking for it on the service" in notes[0]
    assert f"{foreign} (in_progress)" in notes[1] and "waiting for it to end" in notes[1]
    assert len(done.warnings) == 1 and foreign in done.warnings[0]


def test_a_job_whose_requests_cannot_be_checked_is_not_taken(start_emulator, env, tmp_path, clean):
    # The one part not real: count_tokens failing (the emulator always counts), so a thin
    # wrapper over the real client makes it raise as a lost connection would.
    url = start_emulator(length=700)
    env(url)
    journal = tmp_path / "j.sqlite3"
    batch_id = _die(url, journal, "after create")  # the job is ours, but nothing can show it
    client = _Client(anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0), "never")

    async def unreachable(**kwargs: Any) -> Any:
        raise ConnectionError("connection reset by peer")

    client.messages.count_tokens = unreachable
    done = autocontinue.batch(resume=batch_id, journal=str(journal), client=client, **ARGS)
    assert [(r.id, r.text, r.stop_reason, r.rounds) for r in done.results] == clean
    billed = _get(url)["billed"]  # round 0 paid again rather than taken on no evidence
    assert billed == {
        **{f"doc{i}-r{r}": 1 for i in range(3) for r in range(1, ROUNDS)},
        **{f"doc{i}-r0": 2 for i in range(3)},
    }
    assert len(done.warnings) == 1 and "could not be counted" in done.warnings[0]


def _cli(url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "autocontinue", "batch", *args, "--journal", str(tmp_path / "j.sqlite3")]
    child_env = {**os.environ, "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "k"}
    child_env["PYTHONPATH"] = os.pathsep.join([str(Path(autocontinue.__file__).parents[1]), *sys.path])
    return subprocess.run(command, env=child_env, capture_output=True, text=True, timeout=120)


def test_the_cli_tells_a_resume_that_looks_for_a_killed_runs_job(start_emulator, tmp_path, clean):
    # The killed CLI's job is still running when the rerun starts: the rerun waits for it and
    # says why on stderr (without -q) while it waits; the job ends (the emulator's clock moved
    # on once the line is seen) and is collected, its results downloaded once.
    url = start_emulator(length=700, clock=ManualClock())
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(item) + "\n" for item in _items()))
    command = [sys.executable, "-m", "autocontinue", "batch", str(source), "-o", str(tmp_path / "out.jsonl")]
    command += ["--via", "batches", "--model", MODEL, "--max-tokens-per-call", "250"]
    command += ["--poll-interval", "0.01", "--journal", str(tmp_path / "j.sqlite3")]
    child_env = {**os.environ, "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "k"}
    child_env["PYTHONPATH"] = os.pathsep.join([str(Path(autocontinue.__file__).parents[1]), *sys.path])
    configure_batches(url, create_delay=60, processing_delay=600)
    process = subprocess.Popen(command, env=child_env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while _get(url)["batches"] == 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    configure_batches(url, create_delay=0, processing_delay=0)

    rerun = subprocess.Popen(command, env=child_env, stderr=subprocess.PIPE, text=True)
    guard = threading.Timer(60, rerun.kill)  # without the line the rerun would wait for ever
    guard.start()
    try:
        assert rerun.stderr is not None
        first = rerun.stderr.readline()
        _post(url, "/emulator/clock", {"advance": 601})  # the killed run's job ends
        rest = rerun.stderr.read()
        assert rerun.wait() == 0, first + rest
    finally:
        guard.cancel()
    assert first.startswith("autocontinue: a killed run may have created a Message Batches job")
    assert "looking for it on the service" in first and first.endswith("(up to 30 s)\n")
    assert "looking for it" not in rest  # once
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted((r["id"], r["text"], r["stop_reason"], r["rounds"]) for r in lines) == sorted(clean)
    _every_round_billed_once(url)
    assert set(_get(url)["downloads"].values()) == {1}


def test_a_create_the_service_keeps_refusing_is_one_line_with_a_hint(start_emulator, tmp_path):
    url = start_emulator(length=700)
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(item) + "\n" for item in _items()))
    configure_batches(url, create_errors=["429/0"] * 3)
    run = _cli(url, tmp_path, str(source), "--via", "batches", "--model", MODEL, "--poll-interval", "0.01")
    assert run.returncode == 3, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "rate limit" in lines[0].lower(), run.stderr
    assert "bug" not in run.stderr and "Traceback" not in run.stderr
    assert _get(url)["batches"] == 0


def test_a_round_billed_twice_is_told_under_q_even_when_the_run_fails_later(start_emulator, env, tmp_path):
    url = start_emulator(length=700)
    env(url)
    journal = tmp_path / "j.sqlite3"
    batch_id = _die(url, journal, "after create")
    anthropic.Anthropic(base_url=url, api_key="k").messages.batches.create(requests=_Batches.sent)
    configure_batches(url, create_errors=["429/0"] * 3)  # round 1's create then fails for good

    args = ["--resume", batch_id, "-q", "--poll-interval", "0.01"]
    failed = _cli(url, tmp_path, *args)
    assert failed.returncode == 3, failed.stderr
    assert "warning: the service holds 2 jobs for the same round" in failed.stderr
    assert [line for (line,) in _table(journal, "SELECT line FROM batch_warnings")] == [
        line.split("warning: ", 1)[1] for line in failed.stderr.splitlines() if "warning: " in line
    ]

    again = _cli(url, tmp_path, *args)  # the resume's summary tells it again, from the journal
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("warning: the service holds 2 jobs for the same round") == 1
