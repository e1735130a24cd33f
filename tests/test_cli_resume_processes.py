"""Resume with real processes: one process per run, and the rounds of every process add up.

The CLI runs as ``python -m autocontinue`` subprocesses against an emulator over real HTTP that
writes slowly enough to interrupt a run in the middle of a round.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import emulator_stats, reset_emulator

from autocontinue.journal import Journal, default_journal_path

pytestmark = pytest.mark.slow

MODEL = "claude-haiku-4-5"
PROMPT = "Write a long story about a lighthouse."
SMALL = ["--model", MODEL, "--max-tokens-per-call", "60"]
KEY = "sk-ant-api03-test-key"


@pytest.fixture(scope="module")
def slow_emulator():
    from autocontinue.emulator import run_emulator

    with run_emulator(length=400, decode_rate=150) as url:
        yield url


@pytest.fixture(scope="module")
def slower_emulator():
    """50 tokens a second: a resumed run still streams for several seconds while a second
    process starts, however loaded the machine."""
    from autocontinue.emulator import run_emulator

    with run_emulator(length=400, decode_rate=50) as url:
        yield url


def _env(url: str) -> dict[str, str]:
    env = dict(os.environ, ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY=KEY, PYTHONUNBUFFERED="1")
    env.pop("AUTOCONTINUE_DEBUG", None)
    return env


def _ctrl_c_reaches_it() -> None:
    """The child starts with SIGINT at its default, as under a terminal: a test runner started in
    the background by a shell without job control inherits SIGINT ignored, and Python keeps it so."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _popen(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "autocontinue", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_ctrl_c_reaches_it,
    )


def _interrupt_after(proc: subprocess.Popen, min_bytes: int) -> bytes:
    """Read ``min_bytes`` of answer, then Ctrl-C the process; returns its stderr."""
    received = b""
    deadline = time.monotonic() + 60
    while len(received) < min_bytes and time.monotonic() < deadline:
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            break
        received += chunk
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err
    return err


def _latest() -> object:
    with Journal(default_journal_path()) as journal:
        return journal.latest_unfinished()


def test_a_second_resume_of_the_same_run_is_refused_while_the_first_drives_it(slower_emulator):
    slow_emulator = slower_emulator
    env = _env(slow_emulator)
    _interrupt_after(_popen(PROMPT, *SMALL, env=env), 150)
    interrupted = _latest()
    run_id, paid_before = interrupted.id, interrupted.usage.output_tokens
    reset_emulator(slow_emulator)
    first = _popen("resume", run_id, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the first one has claimed the run
        with Journal(default_journal_path()) as journal:
            if journal.get(run_id).pid == first.pid:
                break
        time.sleep(0.05)
    second = subprocess.run(
        [sys.executable, "-m", "autocontinue", "resume", run_id], env=env, capture_output=True, timeout=240
    )
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 2 and second.stdout == b""
    lines = second.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and f"run {run_id} is being driven by another process (pid {first.pid}" in lines[0]
    with Journal(default_journal_path()) as journal:
        record = journal.get(run_id)
    assert record.state == "finished"
    # Only one process paid: what the emulator billed since the reset is what the journal
    # records for the rounds made after the interruption.
    assert emulator_stats(slow_emulator)["output_tokens"] == record.usage.output_tokens - paid_before


def test_two_racing_resumes_never_both_run(slower_emulator):
    env = _env(slower_emulator)
    _interrupt_after(_popen(PROMPT, *SMALL, env=env), 150)
    run_id = _latest().id
    procs = [_popen("resume", run_id, env=env) for _ in range(3)]
    results = [(p.returncode, *p.communicate(timeout=300)) for p in procs]
    results = [(p.returncode, out, err) for p, (_, out, err) in zip(procs, results)]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2, 2], [(c, e) for c, _, e in results]
    for code, out, err in results:
        if code == 2:
            assert out == b"" and b"being driven by another process" in err


def test_a_lock_left_by_a_killed_process_is_taken_over(slow_emulator):
    env = _env(slow_emulator)
    proc = _popen(PROMPT, *SMALL, env=env)
    os.read(proc.stdout.fileno(), 100)
    time.sleep(0.7)
    proc.kill()
    proc.wait(timeout=10)
    record = _latest()
    assert record.state == "running" and record.pid == proc.pid
    resumed = subprocess.run(
        [sys.executable, "-m", "autocontinue", "resume", "-q"], env=env, capture_output=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr


def test_a_lock_whose_pid_was_reused_by_another_process_is_taken_over(tmp_path):
    with Journal(tmp_path / "j.sqlite3") as journal:
        run_id = journal.start_run(backend="local", model="m", request={"prompt": "p"})
        # The recorded owner is a live process (our parent) that started at another time:
        # the pid was reused, the owner is gone.
        journal._conn.execute(
            "UPDATE runs SET pid = ?, proc_start = '1' WHERE id = ?", (os.getppid(), run_id)
        )
        journal.claim_run(run_id)
        assert journal.get(run_id).pid == os.getpid()


def test_resume_after_resume_reports_the_rounds_and_tokens_of_every_process(slow_emulator):
    env = _env(slow_emulator)
    reference = subprocess.run(
        [sys.executable, "-m", "autocontinue", PROMPT, *SMALL, "--json"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert reference.returncode == 0, reference.stderr
    with Journal(default_journal_path()) as journal:
        whole = journal.list_runs(1)[0]
    reset_emulator(slow_emulator)

    _interrupt_after(_popen(PROMPT, *SMALL, env=env), 120)
    run_id = _latest().id
    _interrupt_after(_popen("resume", run_id, env=env), 200)
    done = subprocess.run(
        [sys.executable, "-m", "autocontinue", "resume", run_id], env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    with Journal(default_journal_path()) as journal:
        record = journal.get(run_id)
    billed = emulator_stats(slow_emulator)
    # Every round of the three processes is in the run, numbered in order: the two cut short by
    # Ctrl-C as rounds of their own, so that the resumed rounds follow them...
    assert [r.index for r in record.rounds] == list(range(len(record.rounds)))
    cut = [r for r in record.rounds if r.stop_reason == "interrupted"]
    assert len(cut) == 2 and all(r.chars > 0 and r.usage.output_tokens > 0 for r in cut)
    assert len(record.rounds) >= len(whole.rounds)
    # ...the finished ones are what the service billed (the emulator bills no broken stream),
    # and the cut ones are estimated from their text: the sum is the uninterrupted run's.
    finished = [r for r in record.rounds if r.stop_reason != "interrupted"]
    assert sum(r.usage.output_tokens for r in finished) == billed["output_tokens"]
    assert abs(record.usage.output_tokens - whole.usage.output_tokens) <= 0.25 * whole.usage.output_tokens
    assert record.text == Journal(default_journal_path()).get(whole.id).text
    summary = done.stderr.decode().strip().splitlines()[-1]
    assert (
        f"{len(record.rounds)} rounds" in summary and f"{record.usage.output_tokens:,} tokens out" in summary
    )


def _close_stdout_after(args: list[str], env: dict[str, str], min_bytes: int, wait: float = 0.0):
    proc = _popen(*args, env=env)
    received = b""
    while len(received) < min_bytes:
        chunk = os.read(proc.stdout.fileno(), 4096)
        assert chunk, proc.stderr.read()
        received += chunk
    time.sleep(wait)
    proc.stdout.close()  # like `| head -c N`: the reader goes away
    err = proc.stderr.read()
    return proc.wait(timeout=240), err.decode()


def test_a_run_whose_stdout_closed_before_its_first_round_is_not_left_as_resumable_junk(slow_emulator):
    env = _env(slow_emulator)
    code, err = _close_stdout_after([PROMPT, "--model", MODEL, "--max-tokens-per-call", "300"], env, 1)
    assert code == 141, err
    assert "stdout was closed; nothing was finished, so the run was not kept" in err and "resume" not in err
    with Journal(default_journal_path()) as journal:
        assert journal.list_runs() == []


def test_a_run_whose_stdout_closed_after_a_round_stays_resumable(slow_emulator):
    env = _env(slow_emulator)
    code, err = _close_stdout_after([PROMPT, *SMALL], env, 300, wait=0.5)
    assert code == 141, err
    record = _latest()
    assert record is not None and record.rounds and record.state == "interrupted"
    assert err.strip().endswith(f"stdout was closed; resume with: autocontinue resume {record.id}")
