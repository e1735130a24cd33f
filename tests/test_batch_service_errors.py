"""``via="batches"`` when the service fails or the batch is wrong: one line with a hint, never
an internal error, nothing journaled lost (official SDK over real HTTP against the emulator,
and the real CLI in a subprocess)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import anthropic
import pytest
from conftest import configure_batches, reset_emulator

import autocontinue
from autocontinue.batch.store import BatchStore
from autocontinue.cli.errors import error_line, exit_code_for
from autocontinue.emulator import ManualClock
from autocontinue.errors import AutocontinueError, TransientBackendError

MODEL = "claude-haiku-4-5"
#: Fast tries for the library tests (the CLI keeps the real backoff).
FAST = {"call_backoff": 0.0, "call_attempts": 3, "list_delay": 0.2, "create_timeout": 2.0, "clock_skew": 0.5}


def _items(n: int = 2) -> list[dict[str, str]]:
    return [{"id": f"doc{i}", "prompt": f"Write document {i} in full"} for i in range(n)]


def _service(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/emulator/batches") as response:
        return dict(json.load(response))


def _client(url: str, key: str = "k") -> anthropic.AsyncAnthropic:
    # The SDK's own retries off: every failure the emulator scripts reaches the driver.
    return anthropic.AsyncAnthropic(base_url=url, api_key=key, max_retries=0)


def _batch(url: str, tmp_path: Path, **options: Any) -> Any:
    args: dict[str, Any] = dict(
        journal=str(tmp_path / "j.sqlite3"),
        via="batches",
        model=MODEL,
        poll_interval=0.01,
        driver_options=FAST,
    )
    return autocontinue.batch(_items(), client=_client(url), **{**args, **options})


def _cli(
    tmp_path: Path, *args: str, url: str | None = None, key: str = "k"
) -> subprocess.CompletedProcess[str]:
    source = tmp_path / "in.jsonl"
    if not source.exists():
        source.write_text("".join(json.dumps(item) + "\n" for item in _items()))
    command = [sys.executable, "-m", "autocontinue", "batch", str(source), "--via", "batches"]
    command += ["--journal", str(tmp_path / "j.sqlite3"), "--poll-interval", "0.01", *args]
    child = {**os.environ, "ANTHROPIC_API_KEY": key}
    child.pop("ANTHROPIC_BASE_URL", None)
    if url is not None:
        child["ANTHROPIC_BASE_URL"] = url
    child["PYTHONPATH"] = os.pathsep.join([str(Path(autocontinue.__file__).parents[1]), *sys.path])
    return subprocess.run(
        command, env=child, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL
    )


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: nobody listens there


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "internal error" not in lines[0] and "Traceback" not in stderr
    assert "(hint: " in lines[0], lines[0]
    return lines[0]


def test_a_base_url_nobody_listens_on_is_one_line_with_a_hint(tmp_path):
    port = _dead_port()
    done = _cli(tmp_path, "--base-url", f"http://127.0.0.1:{port}")
    line = _one_line(done.stderr)
    assert done.returncode == 3, done.stderr  # a lost connection, as for run: resumable
    assert "creating a Message Batches job failed: Connection error" in line
    assert f"127.0.0.1:{port}" in line and "run the same command again" in line
    store = BatchStore(tmp_path / "j.sqlite3")
    try:  # the create never left this machine: no intent is left to look for
        (row,) = store._rows("SELECT id FROM batches")
        assert store.intents(str(row["id"])) == []
    finally:
        store.close()


def test_a_listing_that_keeps_failing_stops_the_batch_and_a_rerun_continues(start_emulator, tmp_path):
    # The create is answered with a 500 (the job may exist), and listing to look for it keeps
    # failing: the batch stops with one line, its intent still journaled; the rerun looks for
    # the job again, finds none was made, and sends the round once.
    url = start_emulator(length=200)
    configure_batches(url, create_errors=["500"], poll_errors=["500"] * 3)
    with pytest.raises(TransientBackendError) as stopped:
        _batch(url, tmp_path)
    assert exit_code_for(stopped.value) == 3
    line = error_line(stopped.value)
    assert line.startswith("listing the service's Message Batches failed: Internal server error")
    assert "run the same command again" in line
    store = BatchStore(tmp_path / "j.sqlite3")
    try:
        (row,) = store._rows("SELECT id FROM batches")
        assert len(store.intents(str(row["id"]))) == 1
    finally:
        store.close()
    done = _batch(url, tmp_path)
    assert all(r.error is None and r.stop_reason == "end_turn" for r in done.results)
    assert _service(url)["billed"] == {"doc0-r0": 1, "doc1-r0": 1} and _service(url)["batches"] == 1


def test_polls_that_fail_for_a_while_are_tried_again(start_emulator, tmp_path):
    url = start_emulator(length=200)
    configure_batches(url, poll_errors=["529", "500"])  # fewer than call_attempts in a row
    done = _batch(url, tmp_path)
    assert all(r.error is None and r.stop_reason == "end_turn" for r in done.results)
    assert _service(url)["billed"] == {"doc0-r0": 1, "doc1-r0": 1}


def test_polls_that_keep_failing_stop_the_batch_and_a_rerun_collects_the_same_job(start_emulator, tmp_path):
    url = start_emulator(length=200, clock=ManualClock())
    configure_batches(url, poll_errors=["529"] * 3)
    with pytest.raises(TransientBackendError) as stopped:
        _batch(url, tmp_path)
    assert exit_code_for(stopped.value) == 3
    assert error_line(stopped.value).startswith("polling service job msgbatch_")
    done = _batch(url, tmp_path)  # the scripted failures are spent: the job is collected
    assert all(r.error is None and r.stop_reason == "end_turn" for r in done.results)
    service = _service(url)
    assert service["batches"] == 1 and service["billed"] == {"doc0-r0": 1, "doc1-r0": 1}


def test_a_job_gone_from_the_service_stops_the_batch_with_exit_2(start_emulator, tmp_path):
    # POST /emulator/reset forgets every batch: the job the driver polls answers 404, as one
    # deleted on the service (or polled with another workspace's key) would.
    clock = ManualClock()
    url = start_emulator(length=200, clock=clock)
    configure_batches(url, processing_delay=600)
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            _batch(url, tmp_path)
        except BaseException as error:  # noqa: BLE001 - handed to the test's thread
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    while _service(url)["batches"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    reset_emulator(url)
    thread.join(timeout=60)
    (error,) = outcome
    assert isinstance(error, AutocontinueError) and exit_code_for(error) == 2
    line = error_line(error)
    assert "of this batch is not on the service (404 Not Found)" in line and "--fresh" in line


def test_reset_forgets_the_batches_and_what_they_billed(start_emulator):
    url = start_emulator(length=100)
    client = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
    configure_batches(url, cancel_delay=7)
    params = {"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    job = client.messages.batches.create(requests=[{"custom_id": "a", "params": params}])
    assert [r.result.type for r in client.messages.batches.results(job.id)] == ["succeeded"]
    assert _service(url) == {"batches": 1, "billed": {"a": 1}, "downloads": {job.id: 1}}
    reset_emulator(url)
    assert _service(url) == {"batches": 0, "billed": {}, "downloads": {}}
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(job.id)
    assert list(client.messages.batches.list()) == []
    request = urllib.request.Request(f"{url}/emulator/batches", data=b"{}", method="POST")
    with urllib.request.urlopen(request) as response:
        assert json.load(response)["cancel_delay"] == 7  # the settings stay


def test_an_items_unknown_model_fails_it_as_a_live_call_does_and_is_not_sent(start_emulator, env, tmp_path):
    url = start_emulator(length=200)
    env(url)
    items = [{"id": "a", "prompt": "x", "model": "claude-nope-1"}, {"id": "b", "prompt": "y"}]
    args = dict(model=MODEL, poll_interval=0.01)
    live = autocontinue.batch(items, journal=str(tmp_path / "live.sqlite3"), **args)
    via = autocontinue.batch(items, journal=str(tmp_path / "b.sqlite3"), via="batches", **args)
    assert via.results[0].error == live.results[0].error
    assert "the API does not know model 'claude-nope-1'" in str(via.results[0].error)
    assert "(hint: see `autocontinue models`" in str(via.results[0].error)
    assert via.results[1].error is None and via.results[1].stop_reason == "end_turn"
    client = anthropic.Anthropic(base_url=url, api_key="k")
    (job,) = client.messages.batches.list()
    assert job.request_counts.succeeded == 1 and job.request_counts.errored == 0  # a's never went


@pytest.mark.parametrize(
    ("args", "key", "says"),
    [
        (["--model", "claude-nope-1"], "k", "the API does not know model 'claude-nope-1'"),
        ([], "wrong", "invalid x-api-key"),
        (["--temperature", "0.5"], "k", "temperature cannot be sent"),
        (["--max-tokens-per-call", "900000"], "k", "max_tokens_per_call 900000 is above the maximum output"),
    ],
)
def test_a_mistake_of_the_whole_batch_stops_it_at_once_with_one_line(
    start_emulator, tmp_path, args, key, says
):
    url = start_emulator(length=200, api_key="k")
    done = _cli(tmp_path, "--model", MODEL, *args, url=url, key=key)
    line = _one_line(done.stderr)
    assert done.returncode == 2, done.stderr
    assert says in line and "item" not in line.split("(hint")[0]
    listed = anthropic.Anthropic(base_url=url, api_key="k").messages.batches.list()
    assert list(listed) == []  # nothing was sent
