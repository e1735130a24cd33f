"""``autocontinue batch`` failing safely: a closed stdout, a resume given another input, escape
sequences from the input and the service, secrets in the base URL, and the small print.

The real CLI in a subprocess against the emulator over real HTTP (a pseudo-terminal where the
test is about what a terminal is shown); nothing is mocked.
"""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import batch_cli, batch_env, cli_on_terminal, emulator_stats

from autocontinue.batch import runner
from autocontinue.cli.batch import batch as batch_command

MODEL = "claude-haiku-4-5"


def _input(path: Path, ids: list[str], **options: object) -> Path:
    lines = [json.dumps({"id": i, "prompt": f"Write report {i}", **options}) for i in ids]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _lines(text: str) -> list[dict]:
    return sorted((json.loads(line) for line in text.splitlines()), key=lambda d: d["id"])


def _batch_id(stderr: str) -> str:
    found = re.search(r"\b(b\d{8}-\d{6}-[0-9a-f]+)", stderr)
    assert found, stderr
    return found.group(1)


def _one_line_refusal(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "hint" in done.stderr and "Traceback" not in done.stderr
    assert all(word in done.stderr for word in words), done.stderr


# -- 1. stdout closed early ------------------------------------------------------------------


def test_a_closed_stdout_stops_the_batch_in_one_line_and_a_resume_finishes_it(start_emulator, tmp_path):
    # One quick item is written first; the reader then closes stdout while the slow ones run.
    # Before: the journal closed under the running items (hundreds of traceback lines).
    url = start_emulator(length=1200, decode_rate=400)
    source = tmp_path / "in.jsonl"
    quick = json.dumps({"id": "a-quick", "prompt": "Write report q", "max_rounds": 1})
    slow = [json.dumps({"id": f"s{i}", "prompt": f"Write report {i}"}) for i in range(4)]
    source.write_text("\n".join([quick, *slow]) + "\n", encoding="utf-8")
    args = [str(source), "--model", MODEL, "--max-tokens-per-call", "100"]
    env = batch_env(tmp_path, ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY="k")
    proc = subprocess.Popen(
        [sys.executable, "-m", "autocontinue", "batch", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert b"a-quick" in proc.stdout.read(100)
    proc.stdout.close()  # like `| head -c 100`
    code = proc.wait(timeout=120)
    stderr = proc.stderr.read().decode()
    assert code == 141, stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert stderr.startswith("autocontinue: stdout was closed; resume with: autocontinue batch --resume b")
    batch_id = _batch_id(stderr)
    with sqlite3.connect(tmp_path / "journal.sqlite3") as conn:
        states = conn.execute(
            "SELECT bi.item_id, r.state FROM batch_items bi LEFT JOIN runs r ON r.id = bi.run_id "
            "WHERE bi.batch_id = ?",
            (batch_id,),
        ).fetchall()
        kept = conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0]
    assert "running" not in {state for _, state in states}, states  # every item stopped cleanly
    assert any(state == "interrupted" for _, state in states), states
    assert kept > 0  # the landed rounds of the stopped items are journaled
    resumed = batch_cli("--resume", batch_id, "-o", str(tmp_path / "out.jsonl"), "-q", env=env)
    assert resumed.returncode == 1, resumed.stderr  # the quick item stopped at max_rounds
    reference = batch_cli(*args, "--fresh", "-q", env={**env, "AUTOCONTINUE_HOME": str(tmp_path / "ref")})
    got = _lines((tmp_path / "out.jsonl").read_text())
    assert [d["id"] for d in got] == ["a-quick", "s0", "s1", "s2", "s3"]
    assert [d["text"] for d in got] == [d["text"] for d in _lines(reference.stdout)]


# -- 2. --resume with another input ----------------------------------------------------------


def test_resume_with_another_input_is_refused_and_with_its_own_input_it_is_not(start_emulator, tmp_path):
    url = start_emulator(length=150)
    env = batch_env(tmp_path, ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY="k")
    first = _input(tmp_path / "r1.jsonl", ["a", "b"])
    other = _input(tmp_path / "r2.jsonl", ["c", "d"])
    done = batch_cli(str(first), "-o", str(tmp_path / "r1.out"), "--model", MODEL, env=env)
    assert done.returncode == 0, done.stderr
    batch_id = _batch_id(done.stderr)
    wrong = batch_cli(str(other), "--resume", batch_id, "-o", str(tmp_path / "r2.out"), env=env)
    _one_line_refusal(wrong, "is not the input of batch", batch_id)
    assert not (tmp_path / "r2.out").exists()
    again = batch_cli(str(first), "--resume", batch_id, "-o", str(tmp_path / "again.out"), "-q", env=env)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again.out").read_text() == (tmp_path / "r1.out").read_text()


# -- 3. escape sequences ---------------------------------------------------------------------

EVIL_ID = "evil\x1b]0;PWNED\x07\x1b[2J"
EVIL_MODEL = "claude-\x1b]52;c;ZXZpbA==\x07"


@pytest.mark.parametrize("on_terminal", [True, False], ids=["terminal", "pipe"])
def test_escape_sequences_in_ids_and_errors_never_reach_stderr(start_emulator, tmp_path, on_terminal):
    # A failing item (an unknown model) whose id and error text hold escape sequences: its
    # line, the live line and the summary show them as visible escapes, never raw.
    url = start_emulator(length=150)
    env = batch_env(tmp_path, ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY="k")
    source = tmp_path / "in.jsonl"
    lines = [{"id": EVIL_ID, "prompt": "Write", "model": EVIL_MODEL}, {"id": "ok", "prompt": "Write"}]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    args = [str(source), "-o", str(tmp_path / "out.jsonl"), "--model", MODEL]
    if on_terminal:
        code, shown = cli_on_terminal(["batch", *args], env, stdout_too=False)
    else:
        done = subprocess.run(
            [sys.executable, "-m", "autocontinue", "batch", *args], env=env, capture_output=True, timeout=300
        )
        code, shown = done.returncode, done.stderr
    assert code == 3, shown
    assert b"\x07" not in shown and b"\x1b]" not in shown and b"\x1b[2J" not in shown, shown
    assert b"item evil\\x1b]0;PWNED\\x07\\x1b[2J failed" in shown, shown
    assert b"\\x1b]52;c;ZXZpbA==\\x07" in shown  # the error text names the model, made visible
    assert json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])["id"] == EVIL_ID  # output exact


# -- 4. secrets in the base URL --------------------------------------------------------------


def _holds(home: Path, secret: bytes) -> list[str]:
    return [p.name for p in home.rglob("*") if p.is_file() and secret in p.read_bytes()]


def test_a_secret_in_the_base_url_never_reaches_the_journal_and_a_resume_asks_for_it(
    start_emulator, tmp_path
):
    url = start_emulator(length=150)
    secret_url = url.replace("http://", "http://user:S3CRET-pw@")
    source = _input(tmp_path / "in.jsonl", ["a", "b"])
    out = str(tmp_path / "out.jsonl")
    # No API key yet: the batch is journaled, then refused before any call; it waits for a resume.
    args = ["-o", out, "--model", MODEL, "--backend", "anthropic", "--base-url", secret_url]
    first = batch_cli(str(source), *args, env=batch_env(tmp_path))
    _one_line_refusal(first, "no Anthropic API key")
    assert _holds(tmp_path, b"S3CRET") == []
    with sqlite3.connect(tmp_path / "journal.sqlite3") as conn:
        ((batch_id, settings),) = conn.execute("SELECT id, settings FROM batches").fetchall()
    assert json.loads(settings)["options"]["base_url"] == url  # redacted, the endpoint kept
    env = batch_env(tmp_path, ANTHROPIC_API_KEY="k")
    # No URL holding the secret: refused in one line, nothing sent.
    refused = batch_cli("--resume", batch_id, "-o", out, env=env)
    _one_line_refusal(refused, "secret", "--base-url")
    assert emulator_stats(url)["requests"] == 0
    # Another URL (its redacted form differs) is refused, without showing its secret.
    elsewhere = batch_cli(
        "--resume", batch_id, "-o", out, "--base-url", "http://u:OTHER@127.0.0.1:9", env=env
    )
    _one_line_refusal(elsewhere, "base_url")
    assert "OTHER" not in elsewhere.stderr
    # The same URL given again is accepted (here it goes on to need the key), and so is
    # ANTHROPIC_BASE_URL holding it.
    again = batch_cli("--resume", batch_id, "-o", out, "--base-url", secret_url, env=batch_env(tmp_path))
    _one_line_refusal(again, "no Anthropic API key")
    resumed = batch_cli("--resume", batch_id, "-o", out, "-q", env={**env, "ANTHROPIC_BASE_URL": secret_url})
    assert resumed.returncode == 0, resumed.stderr
    assert [d["error"] for d in _lines(Path(out).read_text())] == [None, None]
    assert emulator_stats(url)["requests"] >= 2
    assert _holds(tmp_path, b"S3CRET") == []  # nor in the items' runs
    for done in (first, refused, elsewhere, again, resumed):
        assert "S3CRET" not in done.stderr, done.stderr  # nor on stderr


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("journaled", [True, False])
def test_a_failed_message_batches_call_names_the_base_url_without_its_secret(tmp_path, journaled):
    # Before: the hint printed the base URL as given, user, password and token included; and
    # under --no-journal it promised that running the command again continues the batch.
    secret_url = f"http://user:S3CRET-pw@127.0.0.1:{_closed_port()}/v1?token=S3CRET-tok"
    source = _input(tmp_path / "in.jsonl", ["a"])
    args = ["-o", str(tmp_path / "out.jsonl"), "--via", "batches", "--model", MODEL]
    args += ["--backend", "anthropic", "--base-url", secret_url, *([] if journaled else ["--no-journal"])]
    done = batch_cli(str(source), *args, env=batch_env(tmp_path, ANTHROPIC_API_KEY="k"))
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert "S3CRET" not in done.stderr and "user:" not in done.stderr, done.stderr
    assert "base URL (http://127.0.0.1:" in done.stderr, done.stderr
    assert ("run the same command again later to continue" in done.stderr) is journaled, done.stderr


@pytest.mark.parametrize("journaled", [True, False])
def test_a_live_batch_stopped_by_the_key_promises_a_resume_only_when_journaled(
    start_emulator, tmp_path, journaled
):
    # Before: --no-journal said "resume with: autocontinue batch --resume b..." for a journal
    # that was in a deleted temporary directory.
    url = start_emulator(length=150, api_key="right-key")
    source = _input(tmp_path / "in.jsonl", ["a", "b"])
    args = ["-o", str(tmp_path / "out.jsonl"), "--model", MODEL, "--backend", "anthropic", "--base-url", url]
    done = batch_cli(
        str(source),
        *args,
        *([] if journaled else ["--no-journal"]),
        env=batch_env(tmp_path, ANTHROPIC_API_KEY="wrong"),
    )
    _one_line_refusal(done, "x-api-key", "check ANTHROPIC_API_KEY")
    assert ("resume with: autocontinue batch --resume b" in done.stderr) is journaled, done.stderr


# -- 5. the small print ----------------------------------------------------------------------


def test_the_strict_refusal_names_the_cli_flag(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "prompt": "x"}\n{not json\n', encoding="utf-8")
    done = batch_cli(str(source), "--strict", "--model", MODEL, env=batch_env(tmp_path))
    _one_line_refusal(done, "line 2", "--strict")
    assert "leave out strict" not in done.stderr


def test_the_cli_and_the_api_poll_at_the_same_default_interval():
    import inspect

    (option,) = [p for p in batch_command.params if p.name == "poll_interval"]
    assert option.default == inspect.signature(runner.abatch).parameters["poll_interval"].default


def test_a_batch_that_knew_no_limit_and_hit_none_does_not_talk_about_throttling(start_emulator, tmp_path):
    # An OpenAI-compatible server (the emulator's vLLM persona) tells no limits, and none was
    # given: pacing meant nothing. The Anthropic endpoint tells its limits: the count is shown.
    pytest.importorskip("openai")
    url = start_emulator(length=150, openai_models=(MODEL,))
    source = _input(tmp_path / "in.jsonl", ["a", "b"])
    env = batch_env(tmp_path, ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY="k", OPENAI_API_KEY="k")
    openai = ["--backend", "openai", "--base-url", f"{url}/vllm/v1", "--model", MODEL]
    done = batch_cli(str(source), "-o", str(tmp_path / "o.jsonl"), *openai, env=env)
    assert done.returncode == 0 and "items in" in done.stderr, done.stderr
    assert "throttled" not in done.stderr, done.stderr
    told = batch_cli(str(source), "-o", str(tmp_path / "a.jsonl"), "--model", MODEL, env=env)
    assert told.returncode == 0 and "0 of 2 calls throttled (429)" in told.stderr, told.stderr


@pytest.mark.local_model
def test_a_local_batch_summary_does_not_talk_about_throttling(tmp_path):
    source = tmp_path / "prompts.txt"
    source.write_text("Name a colour.\nName an animal.\n", encoding="utf-8")
    args = ["--backend", "local", "--max-tokens-per-call", "8", "--max-rounds", "1", "--seed", "1"]
    done = batch_cli(str(source), "-o", str(tmp_path / "o.jsonl"), *args, env=batch_env(tmp_path))
    assert done.returncode in (0, 1), done.stderr
    assert "items in" in done.stderr and "throttled" not in done.stderr, done.stderr
