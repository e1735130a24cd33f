"""A malformed stream is named for what was wrong with it, in one safe line, and retried.

Through real parts: the official SDK against the emulator's ``malformed`` fault (an event whose
data is not JSON and carries an escape sequence) and against a tiny loopback server whose 200
stream holds no events at all; the real CLI in a subprocess for the line a user sees.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import re
import subprocess
import sys
import threading

import anthropic
import httpx2
import pytest
from conftest import emulator_stats

import autocontinue
from autocontinue.emulator import run_emulator
from autocontinue.events import Retrying, TextDelta

PROMPT = "Write a long story about a lighthouse keeper, in many short paragraphs."
MODEL = "claude-sonnet-4-6"


def _stream(url: str, policy: autocontinue.RetryPolicy) -> list:
    client = anthropic.Anthropic(base_url=url, api_key="test-key", max_retries=0)
    try:
        return list(
            autocontinue.stream(PROMPT, client=client, model=MODEL, max_tokens_per_call=300, retry=policy)
        )
    finally:
        client.close()


def test_a_malformed_event_is_named_retried_and_the_text_is_the_fault_free_one():
    with run_emulator(seed=3, length=1200) as url:
        reference = _stream(url, autocontinue.RetryPolicy())[-1].result.text
    sleeps: list[float] = []
    with run_emulator(seed=3, length=1200, faults="malformed@2") as url:
        events = _stream(url, autocontinue.RetryPolicy(sleep=sleeps.append))
    assert events[-1].result.text == reference
    (retry,) = [e for e in events if isinstance(e, Retrying)]
    assert retry.error.startswith("the server sent a malformed event (invalid JSON: '{garbage ")
    assert " after " in retry.error and retry.error.endswith(" characters")
    assert "\x1b" not in retry.error and "\x07" not in retry.error and "\\x1b" in retry.error
    assert "\n" not in retry.error and len(retry.error) < 160


def test_the_cli_shows_one_safe_line_for_a_malformed_event_and_finishes(tmp_path):
    with run_emulator(seed=3, length=1200) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
        env.update(ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY="k", AUTOCONTINUE_HOME=str(tmp_path / "a"))
        args = [
            sys.executable,
            "-m",
            "autocontinue",
            PROMPT,
            "--model",
            MODEL,
            "--max-tokens-per-call",
            "300",
        ]
        clean = subprocess.run(args, env=env, capture_output=True, timeout=120)
    with run_emulator(seed=3, length=1200, faults="malformed@2") as url:
        env.update(ANTHROPIC_BASE_URL=url, AUTOCONTINUE_HOME=str(tmp_path / "b"))
        done = subprocess.run(args, env=env, capture_output=True, timeout=120)
    assert done.returncode == 0 and clean.returncode == 0
    assert done.stdout == clean.stdout  # the answer, byte for byte
    assert b"\x1b" not in done.stderr and b"\x07" not in done.stderr  # server bytes never reach it raw
    notes = [line for line in done.stderr.decode().splitlines() if "malformed" in line]
    assert len(notes) == 1, done.stderr
    assert re.fullmatch(
        r"autocontinue: round \d+ failed \(the server sent a malformed event \(invalid JSON: '\{garbage "
        r"\\x1b\]0;owned\\x07 .*'\) after [\d,]+ characters\); retry 1 in 0\.0 s",
        notes[0],
    ), notes[0]


HTML = b"<html><body>\x1b]0;owned\x07 Welcome to nginx!</body></html>\n"


@pytest.fixture
def no_events_server():
    """A server whose 200 'event stream' is an HTML page: not one server-sent event in it."""
    body = HTML

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_stream_with_no_events_says_so_with_a_hint_not_a_missing_stop_reason(no_events_server):
    policy = autocontinue.RetryPolicy(max_attempts=2, sleep=lambda _s: None)
    with pytest.raises(autocontinue.TransientBackendError) as caught:
        _stream(no_events_server, policy)
    error = caught.value
    assert error.message == f"the server's stream had no Messages API events ({len(HTML)} bytes)"
    assert "base URL" in error.hint
    assert error.partial is not None and error.partial.text == ""


def test_a_stream_cut_before_message_stop_says_how_far_it_got():
    from autocontinue.backends.anthropic import incomplete_stream

    assert incomplete_stream(7, "x" * 1234, 999).message == (
        "the stream ended without message_stop after 1,234 characters"
    )
    assert isinstance(incomplete_stream(7, "x", None), autocontinue.errors.StreamInterruptedError)
    assert (
        incomplete_stream(3, "", None).message
        == "the stream ended without message_stop after 3 events and no text"
    )


def test_the_emulator_malformed_fault_breaks_a_non_streaming_body_too(emulator_url):
    with run_emulator(seed=1, length=200, faults="malformed@1") as url:
        body = {"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
        response = httpx2.post(f"{url}/v1/messages", json=body, headers={"x-api-key": "k"}, timeout=30)
    assert response.status_code == 200 and response.text.startswith("{garbage ")


#: What the engine is told when each cut-stream fault breaks a round after some text.
CUT_CAUSES = {
    "drop": r"the stream broke after \d+ characters: peer closed connection without sending complete "
    r"message body \(incomplete chunked read\)",
    "no-stop": r"the stream ended without message_stop after [\d,]+ characters",
}


async def _astream(url: str, policy: autocontinue.RetryPolicy) -> list:
    client = anthropic.AsyncAnthropic(base_url=url, api_key="test-key", max_retries=0)
    try:
        events = autocontinue.astream(
            PROMPT, client=client, model=MODEL, max_tokens_per_call=300, retry=policy
        )
        return [event async for event in events]
    finally:
        await client.close()


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("fault", sorted(CUT_CAUSES))
def test_a_stream_cut_mid_round_is_retried_once_with_no_text_lost_or_repeated(fault, asynchronous):
    """``drop`` raises from the HTTP library mid-iteration, ``no-stop`` ends cleanly: both resume."""
    with run_emulator(seed=3, length=1200) as url:
        reference = _stream(url, autocontinue.RetryPolicy())[-1].result
    policy = autocontinue.RetryPolicy(sleep=lambda _s: None)
    with run_emulator(seed=3, length=1200, faults=f"{fault}@2") as url:
        events = asyncio.run(_astream(url, policy)) if asynchronous else _stream(url, policy)
        stats = emulator_stats(url)
    result = events[-1].result
    assert result.text == reference.text == "".join(e.text for e in events if isinstance(e, TextDelta))
    (retry,) = [e for e in events if isinstance(e, Retrying)]
    assert re.fullmatch(CUT_CAUSES[fault], retry.error), retry.error
    cut = [r for r in result.rounds if r.stop_reason == "interrupted"]
    assert len(cut) == 1 and cut[0].chars > 0 and cut[0].request_id
    # A cut call is billed at least its prompt (message_start's count) and the text received
    # (about 4 characters a token); the emulator bills a call only when its stream completes.
    assert cut[0].usage.input_tokens > 0 and cut[0].usage.output_tokens >= cut[0].chars // 4
    assert (stats["requests"], stats["errors"]) == (len(result.rounds), 1)
    assert result.usage.output_tokens - cut[0].usage.output_tokens == stats["output_tokens"]


@pytest.mark.parametrize("fault", sorted(CUT_CAUSES))
def test_the_cli_journals_a_cut_round_and_finishes_with_the_fault_free_answer(tmp_path, fault):
    from autocontinue.journal import Journal

    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    args = [sys.executable, "-m", "autocontinue", PROMPT, "--model", MODEL, "--max-tokens-per-call", "300"]
    runs = {}
    for name, faults in (("clean", ""), ("cut", f"{fault}@2")):
        with run_emulator(seed=3, length=1200, faults=faults) as url:
            env.update(ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY="k", AUTOCONTINUE_HOME=str(tmp_path / name))
            runs[name] = subprocess.run(args, env=env, capture_output=True, timeout=120)
    clean, cut = runs["clean"], runs["cut"]
    assert clean.returncode == 0 and cut.returncode == 0, cut.stderr
    assert cut.stdout == clean.stdout
    notes = [line for line in cut.stderr.decode().splitlines() if "failed" in line]
    assert len(notes) == 1 and re.search(CUT_CAUSES[fault], notes[0]), cut.stderr
    journal = Journal(tmp_path / "cut" / "journal.sqlite3")
    try:
        (record,) = journal.list_runs()
        run = journal.get(record.id)
    finally:
        journal.close()
    assert record.state == "finished" and run.text.encode() == cut.stdout
    assert [r.stop_reason for r in run.rounds].count("interrupted") == 1
