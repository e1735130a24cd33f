"""Mistakes about the whole batch are found once: one line, exit 2, at most one call.

The real CLI in a subprocess (and the Python API) against the emulator over real HTTP. The
emulator refuses a wrong key in its door, before its counters, so the calls that reach the
service are counted by ``_Proxy``, a plain HTTP relay in front of it. The relay also stands in
for one thing the emulator cannot do: a key that the service stops taking in the middle of a
batch (``refuse_after``), answered with the API's own 401 body.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import emulator_stats

import autocontinue
from autocontinue.errors import AuthenticationError, ConfigurationError
from autocontinue.events import TextDelta

MODEL = "claude-haiku-4-5"
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class _Proxy:
    """Relays every request to ``upstream`` and counts the ``POST /v1/messages`` it was sent."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.calls = 0
        #: After this many message calls, answer 401 as for a revoked key (None: never).
        self.refuse_after: int | None = None
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy.relay(self)

            def do_POST(self) -> None:
                proxy.relay(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def relay(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("content-length") or 0))
        if handler.command == "POST" and handler.path.split("?")[0] == "/v1/messages":
            with self._lock:
                self.calls += 1
                refused = self.refuse_after is not None and self.calls > self.refuse_after
            if refused:
                error = {"type": "authentication_error", "message": "invalid x-api-key"}
                payload = json.dumps({"type": "error", "error": error, "request_id": "req_proxy"}).encode()
                self._answer(handler, 401, [("x-should-retry", "false")], payload)
                return
        connection = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=120)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP}
        connection.request(handler.command, handler.path, body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP]
        connection.close()
        self._answer(handler, response.status, kept, payload)

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, headers: list, payload: bytes) -> None:
        try:
            handler.send_response(status)
            for key, value in headers:
                handler.send_header(key, value)
            handler.send_header("content-length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (a stopped process): nothing to relay to

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy():
    made: list[_Proxy] = []

    def start(upstream: str) -> _Proxy:
        made.append(_Proxy(upstream))
        return made[-1]

    yield start
    for one in made:
        one.close()


def _write(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return path


def _reports(n: int) -> list[dict]:
    return [{"id": f"r{i}", "prompt": f"Write report {i}"} for i in range(n)]


def _batch(args: list[str], url: str, home: Path, key: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": key, "AUTOCONTINUE_HOME": str(home)}
    command = [sys.executable, "-m", "autocontinue", "batch", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _lines(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return {row["id"]: row for row in rows}


def _billed(url: str, key: str) -> int:
    """Calls the emulator billed (a refused one bills nothing)."""
    import urllib.request

    request = urllib.request.Request(f"{url}/emulator/stats", headers={"x-api-key": key})
    with urllib.request.urlopen(request) as response:
        models = json.load(response)["models"]
    return int(sum(row["requests"] for row in models.values()))


def _states(journal: Path) -> list[str]:
    with sqlite3.connect(journal) as db:
        return [row[0] for row in db.execute("SELECT state FROM runs")]


def test_a_wrong_key_stops_the_batch_at_its_first_call_and_a_rerun_with_the_key_finishes_it(
    start_emulator, proxy, tmp_path
):
    # --rpm: the pacer knows the limits at once and would send the first wave together.
    upstream = start_emulator(length=150, api_key="right-key")
    relay = proxy(upstream)
    source = _write(tmp_path / "in.jsonl", _reports(20))
    args = [str(source), "-o", str(tmp_path / "out.jsonl"), "--model", MODEL, "--rpm", "1000"]
    refused = _batch(args, relay.url, tmp_path, "wrong-key")
    assert refused.returncode == 2, refused.stderr
    assert relay.calls == 1
    lines = refused.stderr.splitlines()
    assert len(lines) == 1 and "invalid x-api-key" in lines[0] and "ANTHROPIC_API_KEY" in lines[0]
    assert "autocontinue batch --resume b" in lines[0]
    assert _lines(tmp_path / "out.jsonl") == {}  # no item was failed for the key
    assert "failed" not in _states(tmp_path / "journal.sqlite3")

    again = _batch(args, relay.url, tmp_path, "right-key")
    assert again.returncode == 0, again.stderr
    out = _lines(tmp_path / "out.jsonl")
    assert sorted(out) == sorted(f"r{i}" for i in range(20))
    assert all(row["error"] is None and row["stop_reason"] == "end_turn" for row in out.values())
    assert _billed(upstream, "right-key") == sum(row["rounds"] for row in out.values())


def test_a_default_model_the_service_does_not_know_is_one_call_and_one_line(start_emulator, tmp_path):
    url = start_emulator(length=150)
    source = _write(tmp_path / "in.jsonl", _reports(20))
    args = [str(source), "-o", str(tmp_path / "out.jsonl"), "--model", "claude-nope-1", "--rpm", "1000"]
    done = _batch(args, url, tmp_path, "k")
    assert done.returncode == 2, done.stderr
    assert emulator_stats(url)["requests"] == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "claude-nope-1" in lines[0] and "hint:" in lines[0]


@pytest.mark.parametrize(
    "options, said",
    [
        (["--max-words", "10", "--min-words", "100"], "min_words"),
        (["--max-tokens-per-call", "900000"], "maximum output"),  # above the model's 64,000
        (["--model", "gpt-nothing"], "gpt-nothing"),  # no such model on this backend
    ],
)
def test_a_batch_default_every_item_would_fail_on_is_refused_once_before_any_call(
    start_emulator, tmp_path, options, said
):
    url = start_emulator(length=150)
    source = _write(tmp_path / "in.jsonl", _reports(12))
    model = [] if "--model" in options else ["--model", MODEL]
    done = _batch([str(source), "-o", str(tmp_path / "out.jsonl"), *model, *options], url, tmp_path, "k")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and said in lines[0] and "hint:" in lines[0]
    assert emulator_stats(url)["requests"] == 0


def test_items_with_their_own_bad_options_fail_alone_and_their_unknown_model_is_asked_once(
    start_emulator, tmp_path
):
    url = start_emulator(length=150)
    items = _reports(3) + [
        {"id": "nope-a", "prompt": "p", "model": "claude-nope-2"},
        {"id": "nope-b", "prompt": "p", "model": "claude-nope-2"},
        {"id": "nope-c", "prompt": "p", "model": "claude-nope-2"},
        {"id": "huge", "prompt": "p", "max_tokens_per_call": 900000},
    ]
    source = _write(tmp_path / "in.jsonl", items)
    args = [str(source), "-o", str(tmp_path / "out.jsonl"), "--model", MODEL, "--rpm", "1000"]
    done = _batch(args, url, tmp_path, "k")
    assert done.returncode == 3, done.stderr
    out = _lines(tmp_path / "out.jsonl")
    failed = {name for name, row in out.items() if row["error"]}
    assert failed == {"nope-a", "nope-b", "nope-c", "huge"}
    assert all(f"item {name} failed" in done.stderr for name in failed)
    assert all(out[f"r{i}"]["stop_reason"] == "end_turn" for i in range(3))
    good_rounds = sum(out[f"r{i}"]["rounds"] for i in range(3))
    assert emulator_stats(url)["requests"] == good_rounds + 1  # claude-nope-2 asked once


def test_a_key_refused_mid_batch_stops_it_and_the_rerun_pays_for_no_round_twice(
    start_emulator, proxy, tmp_path
):
    # Items of three rounds each, three at a time; the key stops working at the 7th call.
    upstream = start_emulator(length=500, api_key="right-key", decode_rate=4000)
    relay = proxy(upstream)
    relay.refuse_after = 6
    source = _write(tmp_path / "in.jsonl", _reports(12))
    args = [str(source), "-o", str(tmp_path / "out.jsonl"), "--model", MODEL]
    args += ["--max-tokens-per-call", "200", "--concurrency", "3"]
    stopped = _batch(args, relay.url, tmp_path, "right-key")
    assert stopped.returncode == 2, stopped.stderr
    lines = stopped.stderr.splitlines()
    assert len(lines) == 1 and "invalid x-api-key" in lines[0] and "--resume" in lines[0]
    assert relay.calls == 7  # nothing was sent after the refusal
    assert "failed" not in _states(tmp_path / "journal.sqlite3")
    assert all(row["error"] is None for row in _lines(tmp_path / "out.jsonl").values())

    relay.refuse_after = None
    again = _batch(args, relay.url, tmp_path, "right-key")
    assert again.returncode == 0, again.stderr
    out = _lines(tmp_path / "out.jsonl")
    assert len(out) == 12 and all(row["stop_reason"] == "end_turn" for row in out.values())
    # Every call the service billed is a round of the output: the calls in flight when the
    # key was refused finished their round, and the rerun did not send it again.
    assert _billed(upstream, "right-key") == sum(row["rounds"] for row in out.values())


def test_the_python_api_refuses_a_bad_default_once_and_sends_nothing(start_emulator, env, tmp_path):
    url = start_emulator(length=150)
    env(url)
    with pytest.raises(ConfigurationError, match="max_rounds"):
        autocontinue.batch(
            [f"Write poem {i}" for i in range(10)], model=MODEL, max_rounds=0, journal=tmp_path / "j"
        )
    assert emulator_stats(url)["requests"] == 0


def test_the_python_api_raises_a_refused_key_once_and_keeps_the_items_to_do(start_emulator, proxy, tmp_path):
    anthropic = pytest.importorskip("anthropic")
    upstream = start_emulator(length=150, api_key="right-key")
    relay = proxy(upstream)
    prompts = [f"Write poem {i}" for i in range(10)]
    client = anthropic.AsyncAnthropic(base_url=relay.url, api_key="wrong-key", max_retries=0)
    seen: list[str] = []
    with pytest.raises(AuthenticationError) as refused:
        autocontinue.batch(
            prompts,
            model=MODEL,
            client=client,
            journal=tmp_path / "j",
            on_item=lambda r, p: seen.append(r.id),
        )
    assert refused.value.partial is None and "--resume" in (refused.value.hint or "")
    assert relay.calls == 1 and seen == []
    good = anthropic.AsyncAnthropic(base_url=relay.url, api_key="right-key", max_retries=0)
    result = autocontinue.batch(prompts, model=MODEL, client=good, journal=tmp_path / "j")
    assert len(result.results) == 10 and not result.failed


def test_an_item_counts_as_running_once_its_call_is_sent_not_while_it_waits(start_emulator, env, tmp_path):
    # A caller's client tells the pacer no limits: the first call goes alone, the others wait
    # until it has answered. Slow decoding keeps that first call streaming for a while.
    anthropic = pytest.importorskip("anthropic")
    url = start_emulator(length=2000, decode_rate=60)
    client = anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0)
    progress = {}
    samples: list[tuple[int, int]] = []

    def on_event(item_id: str, event: object) -> None:
        if isinstance(event, TextDelta) and len(samples) < 5:
            samples.append((progress["p"].running, emulator_stats(url)["requests"]))

    async def run() -> None:
        await autocontinue.abatch(
            [f"Write report {i}" for i in range(4)],
            model=MODEL,
            client=client,
            max_rounds=1,
            max_tokens_per_call=60,
            journal=tmp_path / "j",
            on_batch=lambda batch_id, p: progress.update(p=p),
            on_event=on_event,
        )

    started = time.monotonic()
    asyncio.run(run())
    assert samples and time.monotonic() - started < 60
    assert all(running == calls == 1 for running, calls in samples), samples


@pytest.mark.parametrize("via", ["live", "batches"])
def test_a_default_only_the_unused_default_model_refuses_does_not_stop_items_that_name_their_own(
    start_emulator, tmp_path, via
):
    """--effort on a default model that takes none is every item's mistake only when an item
    runs on that model: items that all name models taking it run, and a batch whose items all
    name the refusing model is refused once."""
    url = start_emulator(length=150)
    own = [{"id": f"o{i}", "prompt": f"Write report {i}", "model": "claude-sonnet-4-6"} for i in range(3)]
    source = _write(tmp_path / "own.jsonl", own)
    args = [str(source), "--model", MODEL, "--effort", "low", "--max-tokens-per-call", "200", "-q"]
    if via == "batches":
        args += ["--via", "batches", "--poll-interval", "0.05"]
    done = _batch([*args, "-o", str(tmp_path / "own.out")], url, tmp_path, "k")
    assert done.returncode == 0, done.stderr
    assert sorted(_lines(tmp_path / "own.out")) == ["o0", "o1", "o2"]

    refusing = _write(tmp_path / "haiku.jsonl", [{**item, "model": MODEL} for item in own])
    done = _batch([str(refusing), *args[1:], "-o", str(tmp_path / "haiku.out")], url, tmp_path, "k")
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1 and "effort" in done.stderr


def test_one_rule_says_which_errors_are_the_batchs_the_bare_items_and_a_real_items():
    # The live and Message Batches paths used two rules: a permission_error only stopped a
    # Message Batches batch, a live one failed each item in turn. Now one function decides.
    from autocontinue.batch.preflight import about_the_batch
    from autocontinue.errors import BackendError, InvalidRequestError, UnknownModelError

    permission = BackendError("not allowed", error_type="permission_error")
    assert about_the_batch(permission, "m", "m") and about_the_batch(permission, bare=True)
    refused = InvalidRequestError("bad option", status_code=400, error_type="invalid_request_error")
    assert about_the_batch(refused, bare=True)  # the bare request carries only the batch's options
    assert not about_the_batch(refused, "m", "m")  # a real item's may be its own (its prompt)
    assert about_the_batch(ConfigurationError("bad"), bare=True)
    assert not about_the_batch(ConfigurationError("bad"), "m", "m")
    unknown = UnknownModelError("no such model")
    assert about_the_batch(unknown, "m", "m") and not about_the_batch(unknown, "own", "m")
