"""Every command and code block in the README works as written.

The shell blocks run in bash in a scratch directory, the Python blocks in a fresh
interpreter, with the environment pointing at an emulator (so no key is needed); the set-up
block is what .ci/run itself runs, and the demo has its own CLI test. ``autocontinue`` and
``python3`` in the blocks are this interpreter's (found without PATH), and the emulator block's
fixed port is replaced by a free one.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"```(sh|python)\n(.*?)```", re.S)


def _blocks(kind: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(README.read_text("utf-8")) if lang == kind]


def _env(tmp_path: Path, base_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env["AUTOCONTINUE_HOME"] = str(tmp_path / "home")
    if base_url:
        env.update(ANTHROPIC_BASE_URL=base_url, ANTHROPIC_API_KEY="test-key")
    return _this_interpreter(tmp_path, env)


def _this_interpreter(tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    """``env`` with ``autocontinue`` and ``python3`` run by this interpreter, whatever PATH says.

    Shims, not shell functions: ``exec`` keeps one process, so ``kill %1`` stops the emulator.
    """
    shims = tmp_path / "shims"
    shims.mkdir(exist_ok=True)
    python = shlex.quote(sys.executable)
    for name, command in (("autocontinue", f"{python} -m autocontinue"), ("python3", python)):
        (shims / name).write_text(f'#!/bin/sh\nexec {command} "$@"\n', "utf-8")
        (shims / name).chmod(0o755)
    return {**env, "PATH": f"{shims}{os.pathsep}{env.get('PATH', '')}"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_readme_has_the_two_setup_commands_that_ci_runs():
    setup = _blocks("sh")[:2]
    assert setup[0].strip() == "python3 -m pip install -e '.[local]' && python3 -m autocontinue demo"
    ci = (README.parent / ".ci" / "run").read_text("utf-8")
    assert setup[1].strip() in ci


def test_cli_block_runs_as_written(tmp_path, emulator_url):
    cli_block = next(b for b in _blocks("sh") if b.startswith("autocontinue "))
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", cli_block],
        cwd=tmp_path,
        env=_env(tmp_path, emulator_url),
        capture_output=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert (tmp_path / "answer.md").read_text("utf-8").strip()
    assert b"claude-sonnet-4-6" in done.stdout  # the models table came last


def test_emulator_block_runs_as_written(tmp_path):
    block = next(b for b in _blocks("sh") if "autocontinue emulate" in b)
    port = re.search(r"--port (\d+)", block).group(1)
    assert block.count(port) == 3  # served on, used by the CLI, asked for its stats
    block = block.replace(port, str(_free_port()))
    done = subprocess.run(
        ["bash", "-eu", "-c", block],
        cwd=tmp_path,
        env=_env(tmp_path, None),
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert b'"cost_usd"' in done.stdout


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_python_blocks_run_as_written(tmp_path, emulator_url, index):
    code = _blocks("python")[index]
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=_env(tmp_path, emulator_url),
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.strip()
