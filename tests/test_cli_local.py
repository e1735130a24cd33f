"""The command line on the embedded local model (llama.cpp), as a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from autocontinue.journal import Journal, default_journal_path

pytest.importorskip("llama_cpp")
pytestmark = [pytest.mark.local_model, pytest.mark.slow]

PROMPT = "Write a short poem about the sea."
SEEDED = [
    "--backend",
    "local",
    "--max-tokens-per-call",
    "30",
    "--max-rounds",
    "4",
    "--seed",
    "5",
    "--temperature",
    "0",
]


def _cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autocontinue", *args],
        capture_output=True,
        timeout=timeout,
        env=dict(os.environ),
    )


def test_local_run_streams_text_and_reports_json():
    done = _cli(
        PROMPT,
        "--backend",
        "local",
        "--max-tokens-per-call",
        "24",
        "--max-rounds",
        "2",
        "--seed",
        "1",
        "--json",
    )
    assert done.returncode in (0, 1), done.stderr
    data = json.loads(done.stdout)
    assert data["backend"] == "local" and data["text"].strip()
    assert 1 <= len(data["rounds"]) <= 2
    assert data["cost_usd"] == 0
    assert Journal(default_journal_path()).get(data["run_id"]).text == data["text"]


def test_demo_finishes_on_the_local_model_with_exit_0():
    done = _cli("demo", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    # The product's point: a long answer in several rounds, each continued by true prefill...
    assert len(data["rounds"]) >= 4
    assert [r["strategy"] for r in data["rounds"][1:]] == ["prefill"] * (len(data["rounds"]) - 1)
    assert all(r["stop_reason"] == "max_tokens" for r in data["rounds"][:-1])
    # ...joined into one text (no round restarts the story), and a summary that says so.
    assert data["text"].count("Once upon a time") <= 1
    err = done.stderr.decode()
    assert f"demo: {len(data['rounds'])} rounds on local (smollm2-135m-instruct), continued by prefill" in err
    assert "demo: seams at characters " in err and err.count(";") >= len(data["rounds"]) - 2
    assert "repairs: " in err and "tokens out" in err and "$0 (local)" in err
    assert "run " in err.strip().splitlines()[-1]


def test_seeded_local_run_killed_after_a_round_resumes_to_the_same_text():
    reference = _cli(PROMPT, *SEEDED, "--no-journal", "-q")
    assert reference.returncode in (0, 1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "autocontinue", PROMPT, *SEEDED],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ),
    )
    deadline = time.monotonic() + 120
    record = None
    while time.monotonic() < deadline and proc.poll() is None:
        if default_journal_path().exists():
            runs = Journal(default_journal_path()).list_runs(1)
            if runs and runs[0].rounds:
                record = runs[0]
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert record is not None, "the run finished before a round was journaled"
    assert Journal(default_journal_path()).get(record.id).state == "running"
    resumed = _cli("resume", record.id)
    assert resumed.returncode == reference.returncode, resumed.stderr
    assert resumed.stdout == reference.stdout
