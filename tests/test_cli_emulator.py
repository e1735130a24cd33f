"""The command line against the emulator over real HTTP: output modes, journal, resume.

The in-process tests use click's CliRunner with a session emulator; the kill -9 and Ctrl-C
tests run ``python -m autocontinue`` as a real subprocess against a slowed-down emulator.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from autocontinue.cli import cli
from autocontinue.journal import Journal, default_journal_path

MODEL = "claude-haiku-4-5"
PROMPT = "Write a long story about a lighthouse."
#: Several rounds of 60 tokens each (the emulator's answers are 400 tokens long here).
SMALL = ["--model", MODEL, "--max-tokens-per-call", "60"]
KEY = "sk-ant-api03-NEVER-STORE-THIS-KEY-0123456789"


@pytest.fixture(scope="module")
def emulator(request):
    from autocontinue.emulator import run_emulator

    with run_emulator(length=400) as url:
        yield url


@pytest.fixture
def api_env(emulator, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    return emulator


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


def test_answer_streams_to_stdout_and_summary_goes_to_stderr(api_env):
    result = invoke(PROMPT, *SMALL)
    assert result.exit_code == 0, result.stderr
    record = Journal(default_journal_path()).list_runs()[0]
    assert record.state == "finished" and len(record.rounds) > 2
    assert result.stdout == Journal(default_journal_path()).get(record.id).text
    summary = result.stderr.strip().splitlines()[-1]
    assert "end_turn" in summary and record.id in summary and "$" in summary


def test_run_is_the_default_command_and_accepts_stdin(api_env):
    explicit = invoke("run", PROMPT, *SMALL)
    piped = invoke("-", *SMALL, input=PROMPT)
    assert explicit.exit_code == piped.exit_code == 0
    assert explicit.stdout == piped.stdout != ""


def test_quiet_prints_nothing_on_stderr(api_env):
    result = invoke(PROMPT, *SMALL, "--quiet")
    assert result.exit_code == 0
    assert result.stderr == "" and result.stdout


def test_json_output_is_one_object_with_rounds_usage_and_seams(api_env):
    result = invoke(PROMPT, *SMALL, "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert {"text", "stop_reason", "run_id", "rounds", "usage", "cost_usd"} <= set(data)
    assert data["stop_reason"] == "end_turn" and data["run_id"]
    assert len(data["rounds"]) > 2
    for report in data["rounds"]:
        assert {"stop_reason", "strategy", "usage", "seam"} <= set(report)
    assert data["usage"]["output_tokens"] == sum(r["usage"]["output_tokens"] for r in data["rounds"])
    assert data["text"] == invoke(PROMPT, *SMALL, "-q").stdout


def test_output_file_gets_the_answer_and_stdout_stays_empty(api_env, tmp_path):
    target = tmp_path / "answer.txt"
    result = invoke(PROMPT, *SMALL, "-o", str(target))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert target.read_text(encoding="utf-8") == invoke(PROMPT, *SMALL, "-q").stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".answer")]


def test_budget_stop_exits_1_and_says_the_answer_may_be_incomplete(api_env):
    result = invoke(PROMPT, *SMALL, "--max-rounds", "2")
    assert result.exit_code == 1
    assert "max_rounds" in result.stderr and "--max-rounds" in result.stderr
    assert result.stdout


def test_prefill_with_trailing_space_is_stripped_with_a_warning(api_env):
    result = invoke(PROMPT, *SMALL, "--prefill", "<story_1> ")
    assert result.exit_code == 0, result.stderr
    assert "warning" in result.stderr and "stripped" in result.stderr
    assert result.stdout.startswith("<story_1>")
    record = Journal(default_journal_path()).list_runs()[0]
    assert Journal(default_journal_path()).get(record.id).request["prefill"] == "<story_1>"


def test_runs_lists_and_show_prints_text_and_seams(api_env):
    first = invoke(PROMPT, *SMALL, "--json")
    run_id = json.loads(first.stdout)["run_id"]
    listing = invoke("runs")
    assert listing.exit_code == 0
    header, row = listing.stdout.splitlines()[:2]
    assert header.split()[:3] == ["ID", "WHEN", "MODEL"]
    assert row.startswith(run_id) and MODEL in row and "finished" in row
    shown = invoke("show", run_id)
    assert shown.stdout == json.loads(first.stdout)["text"]
    seams = invoke("show", run_id[:-1], "--seams")
    assert seams.stdout.startswith(shown.stdout)
    assert "round 2:" in seams.stdout and "seam:" in seams.stdout


def test_no_journal_records_nothing(api_env):
    result = invoke(PROMPT, *SMALL, "--no-journal", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["run_id"] is None
    assert not default_journal_path().exists()


def test_resuming_a_finished_run_says_so_and_prints_its_text(api_env):
    done = invoke(PROMPT, *SMALL)
    run_id = Journal(default_journal_path()).list_runs()[0].id
    again = invoke("resume", run_id)
    assert again.exit_code == 0
    assert f"run {run_id} already finished" in again.stderr
    assert again.stdout == done.stdout


def test_journal_is_private_and_holds_no_secret(api_env):
    assert invoke(PROMPT, *SMALL).exit_code == 0
    path = default_journal_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for file in path.parent.iterdir():
        assert KEY.encode() not in file.read_bytes(), file


def test_refused_key_exits_2_not_offered_as_resumable_but_resumes_by_id_once_fixed(
    monkeypatch, start_emulator, reference_text
):
    url = start_emulator(length=400, api_key="the-right-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    result = invoke(PROMPT, *SMALL)
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert "resume with" not in last and "hint: check ANTHROPIC_API_KEY" in last
    journal = Journal(default_journal_path())
    assert journal.latest_unfinished() is None  # a permanent failure is not picked up by a bare resume
    record = journal.list_runs()[0]
    assert record.state == "failed"
    shown = invoke("show", record.id)
    assert shown.exit_code == 0 and "is failed" in shown.stderr and "invalid x-api-key" in shown.stderr

    monkeypatch.setenv("ANTHROPIC_API_KEY", "the-right-key")
    resumed = invoke("resume", record.id)
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.stdout.encode() == reference_text


# -- the real thing: subprocesses, kill -9 and Ctrl-C -------------------------------------


def _env(url: str) -> dict[str, str]:
    env = dict(os.environ, ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY=KEY, PYTHONUNBUFFERED="1")
    env.pop("AUTOCONTINUE_DEBUG", None)
    return env


def _cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autocontinue", *args], env=env, capture_output=True, timeout=timeout
    )


def _ctrl_c_reaches_it() -> None:
    """The child starts with SIGINT at its default, as under a terminal: a test runner started in
    the background by a shell without job control inherits SIGINT ignored, and Python keeps it so."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_and_wait_for_text(
    args: list[str], env: dict[str, str], min_bytes: int
) -> tuple[subprocess.Popen, bytes]:
    """Start the CLI and return once ``min_bytes`` of answer arrived on its stdout."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "autocontinue", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_ctrl_c_reaches_it,
    )
    received = b""
    deadline = time.monotonic() + 60
    while len(received) < min_bytes and time.monotonic() < deadline:
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            break
        received += chunk
    return proc, received


@pytest.fixture(scope="module")
def slow_emulator():
    """Writes 150 tokens a second, so a 400-token answer takes a few seconds to stream."""
    from autocontinue.emulator import run_emulator

    with run_emulator(length=400, decode_rate=150) as url:
        yield url


@pytest.fixture(scope="module")
def reference_text(emulator):
    """The answer of an uninterrupted run (the emulator is deterministic)."""
    done = _cli(PROMPT, *SMALL, "--no-journal", env=_env(emulator))
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_gives_the_uninterrupted_text(slow_emulator, reference_text):
    env = _env(slow_emulator)
    proc, received = _start_and_wait_for_text([PROMPT, *SMALL], env, min_bytes=300)
    time.sleep(0.7)  # let at least one checkpoint land after the text we saw
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    record = Journal(default_journal_path()).latest_unfinished()
    assert record is not None and record.state == "running"
    assert "interrupted (process gone)" in _cli("runs", env=env).stdout.decode()
    assert 0 < len(record.text) < len(reference_text.decode())
    assert reference_text.decode().startswith(record.text)

    resumed = _cli("resume", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == reference_text
    finished = Journal(default_journal_path()).get(record.id)
    assert finished.state == "finished"
    assert [r.index for r in finished.rounds] == list(range(len(finished.rounds)))
    assert len(finished.rounds) > len(record.rounds)


@pytest.mark.slow
def test_ctrl_c_exits_130_and_the_run_resumes_to_the_same_text(slow_emulator, reference_text, tmp_path):
    env = _env(slow_emulator)
    proc, _ = _start_and_wait_for_text([PROMPT, *SMALL], env, min_bytes=200)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    lines = err.decode().strip().splitlines()
    assert "Traceback" not in err.decode()
    record = Journal(default_journal_path()).latest_unfinished()
    assert lines[-1] == f"autocontinue: interrupted; resume with: autocontinue resume {record.id}"
    assert record.state == "interrupted" and record.text

    target = tmp_path / "whole.txt"
    resumed = _cli("resume", record.id, "-o", str(target), "--quiet", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == b"" and resumed.stderr == b""
    assert target.read_bytes() == reference_text
