"""The emulator's door (emulator/guard.py) over real HTTP: body size limits and the API key.

Bodies over the Messages API's 32 MB get 413 ``request_too_large`` without being parsed (the
memory of the emulator process does not grow by the body's size); with ``api_key`` set, every
endpoint, the control ones included, wants the key.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import urllib.parse

import anthropic
import pytest

from autocontinue.emulator.guard import MESSAGES_LIMIT

USER = [{"role": "user", "content": "hi"}]
MB = 1024 * 1024


def send(
    url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None, chunked=False
):
    """(status, parsed JSON body) of one request on its own connection."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        if chunked:
            pieces = (body[i : i + MB] for i in range(0, len(body), MB))
            connection.request(method, path, body=pieces, headers=headers or {}, encode_chunked=True)
        else:
            connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null"), dict(response.getheaders())
    finally:
        connection.close()


def oversized_json(size: int) -> bytes:
    """A valid Messages request of about ``size`` bytes (so only its size is wrong)."""
    head = b'{"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "'
    tail = b'"}]}'
    return head + b"a" * (size - len(head) - len(tail)) + tail


# ----------------------------------------------------------------------------- size


def test_a_request_over_32_mb_is_a_413_through_the_sdk(emulator_url):
    client = anthropic.Anthropic(base_url=emulator_url, api_key="test", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "a" * (33 * MB)}]
        )
    assert caught.value.status_code == 413
    assert caught.value.body["error"] == {
        "type": "request_too_large",
        "message": "Request exceeds the maximum size",
    }
    assert caught.value.response.headers["request-id"].startswith("req_")
    # the emulator still serves the next request
    assert (
        client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=USER).stop_reason
        == "max_tokens"
    )


def test_count_tokens_has_the_same_limit(emulator_url):
    status, body, _ = send(
        emulator_url,
        "POST",
        "/v1/messages/count_tokens",
        oversized_json(MESSAGES_LIMIT + 1),
        {"content-type": "application/json"},
    )
    assert status == 413 and body["error"]["type"] == "request_too_large"


def test_a_chunked_body_over_the_limit_is_refused_too(emulator_url):
    status, body, _ = send(
        emulator_url,
        "POST",
        "/v1/messages",
        oversized_json(MESSAGES_LIMIT + MB),
        {"content-type": "application/json"},
        chunked=True,
    )
    assert status == 413 and body["error"]["type"] == "request_too_large"


def test_a_chunked_body_under_the_limit_reaches_the_api(emulator_url):
    body = json.dumps({"model": "claude-haiku-4-5", "max_tokens": 5, "messages": USER}).encode()
    status, answer, _ = send(
        emulator_url,
        "POST",
        "/v1/messages",
        body,
        {"content-type": "application/json", "x-api-key": "t"},
        chunked=True,
    )
    assert status == 200 and answer["stop_reason"] == "max_tokens"


def _peak_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        return int(re.search(r"VmHWM:\s+(\d+) kB", handle.read()).group(1))


@pytest.mark.skipif(
    not os.path.exists("/proc/self/status"), reason="reads the process's peak memory from /proc"
)
def test_a_64_mb_body_is_refused_without_being_read_into_memory():
    process = subprocess.Popen(
        [sys.executable, "-m", "autocontinue.emulator", "--port", "0"], stderr=subprocess.PIPE, text=True
    )
    try:
        url = re.fullmatch(r"listening on (\S+)\n", process.stderr.readline()).group(1)
        before = _peak_rss_kb(process.pid)
        status, body, _ = send(
            url, "POST", "/v1/messages", oversized_json(64 * MB), {"content-type": "application/json"}
        )
        grown_mb = (_peak_rss_kb(process.pid) - before) / 1024
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    assert status == 413 and body["error"]["type"] == "request_too_large"
    assert grown_mb < 16, f"the emulator's peak memory grew by {grown_mb:.0f} MB for a refused body"


# ----------------------------------------------------------------------------- the key


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", "/emulator/stats", None),
        ("POST", "/emulator/reset", b""),
        ("POST", "/emulator/clock", b'{"advance": 10}'),
        (
            "POST",
            "/v1/messages/count_tokens",
            json.dumps({"model": "claude-haiku-4-5", "messages": USER}).encode(),
        ),
        ("GET", "/no/such/path", None),
    ],
)
def test_with_a_key_set_every_endpoint_wants_it(start_emulator, method, path, body):
    url = start_emulator(api_key="sekret")
    json_type = {"content-type": "application/json"}
    status, answer, headers = send(url, method, path, body, json_type)
    assert status == 401
    assert answer["error"] == {"type": "authentication_error", "message": "x-api-key header is required"}
    assert headers["x-should-retry"] == "false" and answer["request_id"] == headers["request-id"]
    status, answer, _ = send(url, method, path, body, {**json_type, "x-api-key": "wrong"})
    assert (status, answer["error"]["message"]) == (401, "invalid x-api-key")
    for good in ({"x-api-key": "sekret"}, {"authorization": "Bearer sekret"}):
        status, _, _ = send(url, method, path, body, {**json_type, **good})
        assert status == (404 if path == "/no/such/path" else 200)


def test_without_a_key_set_the_control_endpoints_answer_anyone(start_emulator):
    url = start_emulator()
    assert send(url, "GET", "/emulator/stats")[0] == 200
    assert send(url, "POST", "/emulator/reset", b"")[0] == 200
