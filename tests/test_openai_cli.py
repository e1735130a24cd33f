"""The real CLI in a subprocess with ``--backend openai --base-url URL --server KIND``.

The emulator's chat endpoint stands in for the servers (see test_openai_emulator.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest

openai = pytest.importorskip("openai")

PROMPT = "Write a long story."


@pytest.fixture(scope="module")
def chat_url():
    from autocontinue.emulator import run_emulator

    with run_emulator(length=200) as url:
        yield url


def _env(tmp_path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_"))}
    env["AUTOCONTINUE_HOME"] = str(tmp_path / "home")
    env.update(extra)
    return env


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autocontinue", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _uncapped(base: str) -> str:
    client = openai.OpenAI(base_url=base, api_key="test")
    messages = [{"role": "user", "content": PROMPT}]
    return (
        client.chat.completions.create(model="emulated", messages=messages, max_tokens=5000)
        .choices[0]
        .message.content
    )


def test_run_against_a_vllm_endpoint(chat_url, tmp_path):
    base = f"{chat_url}/vllm/v1"
    args = ["run", "--backend", "openai", "--base-url", base, "--model", "emulated"]
    done = _cli(*args, "--max-tokens-per-call", "40", "--json", PROMPT, env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["text"] == _uncapped(base)
    assert result["backend"] == "openai" and result["cost_usd"] is None  # no price known
    assert {r["strategy"] for r in result["rounds"][1:]} == {"prefill"}


def test_openai_base_url_in_the_environment_selects_the_backend(chat_url, tmp_path):
    base = f"{chat_url}/llama-server/v1"
    env = _env(tmp_path, OPENAI_BASE_URL=base)
    done = _cli("run", "--server", "llama-server", "--max-tokens-per-call", "40", PROMPT, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip("\n") == _uncapped(base).rstrip("\n")
    assert "cost unknown" in done.stderr


def test_a_base_url_alone_selects_the_openai_backend(chat_url, tmp_path):
    base = f"{chat_url}/vllm/v1"
    done = _cli("run", "--base-url", base, "--model", "emulated", "--json", PROMPT, env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["backend"] == "openai"


def test_a_bad_server_kind_is_exit_2_with_the_choices(chat_url, tmp_path):
    done = _cli(
        "run",
        "--backend",
        "openai",
        "--base-url",
        f"{chat_url}/v1",
        "--server",
        "vlm",
        PROMPT,
        env=_env(tmp_path),
    )
    assert done.returncode == 2
    assert "vllm" in done.stderr and "Traceback" not in done.stderr


def _requests(chat_url: str) -> list[str]:
    with urllib.request.urlopen(f"{chat_url}/emulator/openai/requests") as response:
        return json.loads(response.read())["requests"]


def _strategies(done: subprocess.CompletedProcess) -> set[str]:
    assert done.returncode == 0, done.stderr
    return {r["strategy"] for r in json.loads(done.stdout)["rounds"][1:]}


def test_what_the_server_said_is_remembered_across_processes(chat_url, tmp_path):
    """Process 1 probes the endpoint (kind, limits) and finds, with three one-token calls, that
    it closes a trailing assistant turn (told it is llama-server); process 2, a new CLI
    process, asks nothing again and starts in user-turn. A --server of another trailing kind
    always wins: its verdict is checked afresh."""
    base = f"{chat_url}/v1"  # the openai persona: a trailing assistant message is a past turn
    env = _env(tmp_path)
    args = ["run", "--base-url", f"http://user:secret@{base[len('http://') :]}?key=hidden", "--model"]
    args += ["emulated", "--max-tokens-per-call", "60", "--json", "--server"]

    before = len(_requests(chat_url))
    assert _strategies(_cli(*args, "llama-server", PROMPT, env=env)) == {"user-turn"}
    first = _requests(chat_url)[before:]
    assert "GET /v1/models" in first  # the probe
    assert first.count("POST /v1/chat/completions 1") == 3  # the trailing-turn check

    memory = (tmp_path / "home" / "openai-servers.json").read_text()
    assert "secret" not in memory and "hidden" not in memory and "user" not in memory
    assert f'"openai:{base}"' in memory

    before = len(_requests(chat_url))
    assert _strategies(_cli(*args, "llama-server", PROMPT, env=env)) == {"user-turn"}
    second = _requests(chat_url)[before:]
    assert second and all(r == "POST /v1/chat/completions 60" for r in second)  # no probe, no check

    before = len(_requests(chat_url))
    assert _strategies(_cli(*args, "ollama", PROMPT, env=env)) == {"user-turn"}
    third = _requests(chat_url)[before:]
    assert "GET /v1/models" not in third  # the kind and limits are still known
    assert third.count("POST /v1/chat/completions 1") == 3  # another kind: checked again
