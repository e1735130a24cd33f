"""What the OpenAI-compatible backend remembers about a URL heals when another server takes it.

Two emulators in turn on the same port, over real HTTP through the official ``openai`` SDK and
the real CLI in a subprocess: one serving ``old-model`` then one serving ``new-model`` (vLLM
refuses a model it does not serve with a 404), and a vLLM then an OpenAI-like server at the
same ``/v1`` (OpenAI refuses vLLM's ``continue_final_message`` with a 400). The remembered facts
are used without a probe until a call contradicts them; then the server is asked once, the
memory replaced, and nothing loops.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import urllib.request

import pytest

pytest.importorskip("openai")

import autocontinue  # noqa: E402
from autocontinue.backends.openai.known import ServerMemory  # noqa: E402
from autocontinue.emulator import run_emulator  # noqa: E402
from autocontinue.errors import UnknownModelError  # noqa: E402
from autocontinue.events import RoundFinished, StrategyChanged  # noqa: E402

PROMPT = "Write a long story."


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _requests(url: str) -> list[str]:
    with urllib.request.urlopen(f"{url}/emulator/openai/requests") as response:
        return json.loads(response.read())["requests"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_"))}
    env.pop("AUTOCONTINUE_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "autocontinue", *args], env=env, capture_output=True, text=True, timeout=300
    )


def _run(base: str, **options) -> autocontinue.Result:
    options = {"max_tokens_per_call": 40, "max_rounds": 2, **options}
    return autocontinue.generate(PROMPT, backend="openai", base_url=base, **options)


def test_a_model_the_new_server_does_not_serve_is_rechecked_once_then_named(tmp_path):
    port = _port()
    with run_emulator(length=200, port=port, openai_models=("old-model",)) as url:
        base = f"{url}/vllm/v1"
        assert _run(base).model == "old-model"  # probed and remembered
    memory = ServerMemory()
    key = f"openai:{url}/vllm/v1"
    assert memory.info(key).models == {"old-model": 32768}

    with run_emulator(length=200, port=port, openai_models=("new-model",)) as again:
        assert again == url
        done = _cli("--backend", "openai", "--base-url", base, "--max-tokens-per-call", "40", PROMPT)
        assert done.returncode == 2, done.stderr
        (line, *rest) = done.stderr.strip().splitlines()
        assert "does not serve model 'old-model'; it serves 'new-model'" in line, done.stderr
        assert "Traceback" not in done.stderr and "--model new-model" in done.stderr
        calls = _requests(url)
        # One chat call (refused), then one look at the server: no probe at start, no loop.
        assert [c.split(" ")[:2] for c in calls][:2] == [
            ["POST", "/vllm/v1/chat/completions"],
            ["GET", "/vllm/v1/models"],
        ]
        assert sum("chat/completions" in c for c in calls) == 1
        assert memory.info(key).models == {"new-model": 32768}

        before = len(_requests(url))
        result = _run(base)  # the next run uses what the server said, probing nothing
        assert result.model == "new-model" and result.text
        assert not any("models" in c for c in _requests(url)[before:])


def test_a_refusal_the_memory_explains_is_final_after_one_look(tmp_path):
    with run_emulator(length=200, openai_models=("emulated",)) as url:
        base = f"{url}/vllm/v1"
        _run(base)  # remembered
        before = len(_requests(url))
        with pytest.raises(UnknownModelError) as caught:
            _run(base, model="no-such-model")
        calls = _requests(url)[before:]
        assert sum("chat/completions" in c for c in calls) == 1
        assert sum(c.startswith("GET /vllm/v1/models") for c in calls) == 1
        assert "no-such-model" in caught.value.message and "another server" not in caught.value.message
        assert ServerMemory().info(f"openai:{base}").models == {"emulated": 32768}


def test_a_request_shape_the_new_servers_kind_refuses_is_redone_under_the_kind_it_has():
    port = _port()
    with run_emulator(length=300, port=port, openai_persona="vllm") as url:
        base = f"{url}/v1"
        first = _run(base, max_rounds=3)
        assert {r.strategy for r in first.rounds[1:]} == {"prefill"}
    key = f"openai:{base}"
    assert ServerMemory().info(key).kind == "vllm"

    with run_emulator(length=300, port=port, openai_persona="openai") as again:
        assert again == url
        events = list(
            autocontinue.stream(PROMPT, backend="openai", base_url=base, max_tokens_per_call=40, max_rounds=3)
        )
        calls = _requests(url)
    changed = [e for e in events if isinstance(e, StrategyChanged)]
    assert len(changed) == 1 and changed[0].new == "user-turn"
    rounds = [e.report for e in events if isinstance(e, RoundFinished)]
    assert [r.strategy for r in rounds] == ["initial", "user-turn", "user-turn"]
    chats = [c for c in calls if "chat/completions" in c]
    assert len(chats) == 4  # round 0, the refused prefill (its 400), then 2 user-turn rounds
    assert calls.count("GET /v1/models") == 1  # one look, after the refusal; none at the start
    assert calls.index("GET /v1/models") == 2
    assert ServerMemory().info(key).kind == "generic"
    assert events[-1].result.text


def test_the_async_client_heals_the_same_way():
    import openai

    port = _port()
    with run_emulator(length=300, port=port, openai_persona="vllm") as url:
        _run(f"{url}/v1", max_rounds=3)  # remembered as vLLM
    with run_emulator(length=300, port=port, openai_persona="openai"):
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
        result = asyncio.run(
            autocontinue.agenerate(PROMPT, client=client, max_tokens_per_call=40, max_rounds=3)
        )
        calls = _requests(url)
    assert [r.strategy for r in result.rounds] == ["initial", "user-turn", "user-turn"]
    assert calls.count("GET /v1/models") == 1 and sum("chat/completions" in c for c in calls) == 4


def test_a_server_that_cannot_say_what_it_is_leaves_the_memory_alone():
    """A refusal, then /v1/models failing too (down, overloaded): the memory stays as it was.

    The second server is a few lines of stdlib HTTP (a 400 for every chat call, a 503 for the
    model list): a failed probe must not be read as "a generic server" and overwrite what a
    real vLLM said about this URL.
    """
    import http.server
    import threading

    port = _port()
    with run_emulator(length=300, port=port, openai_persona="vllm") as url:
        base = f"{url}/v1"
        _run(base, max_rounds=3)
    key = f"openai:{base}"
    assert ServerMemory().info(key).kind == "vllm"

    seen: list[str] = []

    class Refusing(http.server.BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict) -> None:
            seen.append(f"{self.command} {self.path}")
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's names)
            self._answer(503, {"error": {"message": "busy", "type": "server_error"}})

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self._answer(400, {"error": {"message": "bad request shape", "type": "invalid_request_error"}})

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(autocontinue.AutocontinueError):
            _run(base, max_rounds=3)
    finally:
        server.shutdown()
        server.server_close()
    assert any(s.startswith("GET /v1/models") for s in seen)  # it did ask, once the call was refused
    assert ServerMemory().info(key).kind == "vllm"


def test_an_error_naming_the_server_shows_its_url_without_credentials():
    port = _port()
    with run_emulator(length=200, port=port, openai_models=("old-model",)) as url:
        host = url.removeprefix("http://")
        base = f"http://user:s3cret@{host}/vllm/v1"
        _run(base)  # remembered: serves old-model
    with (
        run_emulator(length=200, port=port, openai_models=("new-model",)),
        pytest.raises(UnknownModelError) as caught,
    ):
        _run(base)
    message = caught.value.one_line()
    assert "'old-model'" in message and f"{host}/vllm/v1" in message
    assert "s3cret" not in message
