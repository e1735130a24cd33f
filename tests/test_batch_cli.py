"""``autocontinue batch`` as a user runs it: the real CLI in a subprocess against the emulator.

Includes the crash test of issue 12: ``kill -9`` the batch at random moments, rerun the same
command, and the output equals an uninterrupted batch while the emulator billed no round twice.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import cli_on_terminal, emulator_stats

from autocontinue.batch.output import ItemResult
from autocontinue.batch.progress import BatchProgress

MODEL = "claude-haiku-4-5"


def _cli(*args: str, url: str, home: Path) -> list[str]:
    return [sys.executable, "-m", "autocontinue", "batch", *args]


def _env(url: str, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": "test-key",
        "AUTOCONTINUE_HOME": str(home),
    }


def _run(args: list[str], url: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _cli(*args, url=url, home=home), env=_env(url, home), capture_output=True, text=True, timeout=300
    )


def _write_input(path: Path, n: int, bad: bool = False) -> Path:
    lines = [json.dumps({"id": f"r{i}", "prompt": f"Write report {i}"}) for i in range(n)]
    if bad:
        lines.insert(1, "{this is not json")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _lines(path: Path) -> list[dict]:
    return sorted(
        (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()), key=lambda d: d["id"]
    )


def test_bad_lines_are_reported_and_skipped_and_strict_refuses_them(start_emulator, tmp_path):
    url = start_emulator(length=200)
    source = _write_input(tmp_path / "in.jsonl", 3, bad=True)
    done = _run([str(source), "-o", str(tmp_path / "out.jsonl"), "--model", MODEL], url, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "input line 2: not valid JSON" in done.stderr and "(skipped)" in done.stderr
    assert [d["id"] for d in _lines(tmp_path / "out.jsonl")] == ["r0", "r1", "r2"]
    assert "Traceback" not in done.stderr and "end_turn" in done.stderr  # the summary table
    strict = _run(
        [str(source), "-o", str(tmp_path / "strict.jsonl"), "--strict", "--model", MODEL], url, tmp_path
    )
    assert strict.returncode == 2
    assert strict.stderr.strip().count("\n") == 0 and "line 2" in strict.stderr and "hint" in strict.stderr


def test_a_plain_text_input_writes_one_file_per_item(start_emulator, tmp_path):
    url = start_emulator(length=150)
    source = tmp_path / "prompts.txt"
    source.write_text("Write about rivers\nWrite about hills\n", encoding="utf-8")
    done = _run(
        [str(source), "--output-dir", str(tmp_path / "answers"), "--model", MODEL, "-q"], url, tmp_path
    )
    assert done.returncode == 0 and done.stderr == ""
    files = sorted(p.name for p in (tmp_path / "answers").iterdir())
    assert files == ["1.json", "2.json"]
    assert json.loads((tmp_path / "answers" / "1.json").read_text())["stop_reason"] == "end_turn"


@pytest.mark.parametrize("backend", [["--backend", "local"], ["--backend", "openai"]])
def test_via_batches_on_another_backend_is_refused_before_anything_is_billed(
    start_emulator, tmp_path, backend
):
    # Message Batches are Anthropic's: the run must not quietly go to the Anthropic service.
    url = start_emulator(length=150)
    source = _write_input(tmp_path / "in.jsonl", 2)
    done = _run([str(source), "--via", "batches", *backend, "--poll-interval", "0.05"], url, tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Message Batches" in done.stderr and "hint" in done.stderr
    assert done.stdout == "" and emulator_stats(url)["requests"] == 0
    with urllib.request.urlopen(f"{url}/emulator/batches") as response:
        assert json.load(response)["batches"] == 0


def test_the_same_input_on_another_backend_is_another_batch(start_emulator, tmp_path):
    # A rerun with --backend openai must not hand back the Anthropic batch's answers unasked.
    pytest.importorskip("openai")
    url = start_emulator(length=150, openai_models=(MODEL,))  # one model id on both backends
    source = _write_input(tmp_path / "in.jsonl", 2)
    env = {**_env(url, tmp_path), "OPENAI_BASE_URL": f"{url}/vllm/v1", "OPENAI_API_KEY": "k"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = _cli(str(source), "--model", MODEL, *args, url=url, home=tmp_path)
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    first = run("-o", str(tmp_path / "a.jsonl"))
    other = run("-o", str(tmp_path / "o.jsonl"), "--backend", "openai")
    assert first.returncode == other.returncode == 0, other.stderr
    batch_ids = [re.search(r"batch (b[\w-]+): ", done.stderr).group(1) for done in (first, other)]
    assert batch_ids[0] != batch_ids[1]
    assert _backends(tmp_path / "journal.sqlite3", batch_ids[1]) == ["openai", "openai"]


def test_a_resumed_batch_runs_on_the_backend_it_was_started_with(start_emulator, tmp_path, monkeypatch):
    pytest.importorskip("openai")
    import autocontinue

    url = start_emulator(length=150, openai_models=(MODEL,))
    for name, value in [
        ("ANTHROPIC_BASE_URL", url),
        ("ANTHROPIC_API_KEY", "k"),
        ("OPENAI_BASE_URL", f"{url}/vllm/v1"),
        ("OPENAI_API_KEY", "k"),
    ]:
        monkeypatch.setenv(name, value)
    journal = str(tmp_path / "j.sqlite3")
    items = [{"id": f"r{i}", "prompt": f"Write report {i}"} for i in range(3)]
    started: list[str] = []

    def stop(result, progress):  # the process "dies" once the first item has ended
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        autocontinue.batch(
            items,
            backend="openai",
            model=MODEL,
            concurrency=1,
            journal=journal,
            output=str(tmp_path / "a.jsonl"),
            on_batch=lambda batch_id, _: started.append(batch_id),
            on_item=stop,
        )
    # --resume names no backend (and ANTHROPIC_API_KEY is set): the rest still runs on openai.
    done = autocontinue.batch(resume=started[0], journal=journal, output=str(tmp_path / "b.jsonl"))
    assert [r.error for r in done.results] == [None] * 3
    assert _backends(Path(journal), started[0]) == ["openai"] * 3
    assert emulator_stats(url)["requests"] == 0  # not one call went to the Messages API


def _backends(journal: Path, batch_id: str) -> list[str]:
    import sqlite3

    with sqlite3.connect(journal) as conn:
        rows = conn.execute(
            "SELECT r.backend FROM batch_items bi JOIN runs r ON r.id = bi.run_id WHERE bi.batch_id = ?",
            (batch_id,),
        ).fetchall()
    return [backend for (backend,) in rows]


def test_an_output_dir_that_cannot_be_made_is_refused_in_one_line(start_emulator, tmp_path):
    url = start_emulator(length=150)
    source = _write_input(tmp_path / "in.jsonl", 2)
    (tmp_path / "file").write_text("not a directory", encoding="utf-8")
    done = _run([str(source), "--output-dir", str(tmp_path / "file" / "answers")], url, tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "output directory" in done.stderr and "hint" in done.stderr
    assert "Traceback" not in done.stderr and emulator_stats(url)["requests"] == 0


def test_an_item_stopped_by_a_budget_exits_1_and_a_failed_item_exits_3(start_emulator, tmp_path):
    url = start_emulator(length=400)
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "short", "prompt": "p", "max_rounds": 1}) + "\n", encoding="utf-8")
    budget = _run(
        [str(source), "-o", str(tmp_path / "o.jsonl"), "--model", MODEL, "--max-tokens-per-call", "100"],
        url,
        tmp_path,
    )
    assert budget.returncode == 1 and _lines(tmp_path / "o.jsonl")[0]["stop_reason"] == "max_rounds"
    # One item's own unknown model fails that item alone (every item naming it would be the
    # whole batch's mistake: refused once, exit 2, in test_batch_preflight.py).
    source.write_text(
        json.dumps({"id": "bad", "prompt": "p", "model": "gpt-nothing"})
        + "\n"
        + json.dumps({"id": "good", "prompt": "p", "max_rounds": 1})
        + "\n",
        encoding="utf-8",
    )
    failed = _run(
        [str(source), "-o", str(tmp_path / "f.jsonl"), "--model", MODEL, "--max-tokens-per-call", "100"],
        url,
        tmp_path,
    )
    assert failed.returncode == 3
    assert "item bad failed" in failed.stderr and "--resume" in failed.stderr
    rows = {row["id"]: row for row in _lines(tmp_path / "f.jsonl")}
    assert rows["bad"]["error"] and not rows["good"]["error"]


def test_the_progress_line_counts_items_tokens_dollars_and_time_left():
    now = [100.0]
    progress = BatchProgress(total=4, clock=lambda: now[0])
    progress.on_item(ItemResult(id="a", stop_reason="end_turn", cost_usd=0.5), "finished", counted=False)
    now[0] += 10
    progress.on_item(ItemResult(id="b", stop_reason="end_turn", cost_usd=0.25), "finished")
    line = progress.line()
    assert line.startswith("2/4 done · 0 running · 0 failed")
    assert "$0.5000" in line  # the earlier process's item is counted; events carry the rest
    assert "ETA 20s" in line


def _landed(journal: Path) -> dict[tuple[str, int], str]:
    """(item, round) -> request id of every round the journal holds as landed."""
    import sqlite3

    with sqlite3.connect(journal) as conn:
        rows = conn.execute(
            "SELECT bi.item_id, r.idx, r.report FROM batch_items bi JOIN rounds r ON r.run_id = bi.run_id"
        ).fetchall()
    return {(item, idx): json.loads(report)["request_id"] for item, idx, report in rows}


@pytest.mark.slow
def test_kill_9_at_random_moments_then_rerun_gives_the_uninterrupted_output_billed_once(
    start_emulator, tmp_path
):
    """A landed round (journaled) is never sent again, and the output is the uninterrupted one.

    One thing no client can prevent: a kill in the instant after the service finished a call
    and before the client wrote it down (the service bills it, the client never saw it land).
    Such a round is sent again; the test allows for it (at most one per call in flight at each
    kill) and checks that every round that did land kept its request id to the end.
    """
    # 8 items of 3 rounds, each round streamed at 400 tokens/s: a batch takes a few seconds,
    # long enough to be killed while rounds are in flight.
    options = dict(length=600, decode_rate=400)
    source = _write_input(tmp_path / "in.jsonl", 8)
    args = [str(source), "--model", MODEL, "--max-tokens-per-call", "200", "--concurrency", "4"]
    clean_url = start_emulator(**options)
    clean = _run(
        [*args, "-o", str(tmp_path / "clean.jsonl"), "--journal", str(tmp_path / "clean.sqlite3")],
        clean_url,
        tmp_path,
    )
    assert clean.returncode == 0, clean.stderr

    url = start_emulator(**options)
    out, journal = tmp_path / "out.jsonl", tmp_path / "j.sqlite3"
    command = [*args, "-o", str(out), "--journal", str(journal)]
    rng = random.Random(12)
    kills, landed = 0, {}
    for _ in range(4):
        process = subprocess.Popen(
            _cli(*command, url=url, home=tmp_path),
            env=_env(url, tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        before = emulator_stats(url)["requests"]
        deadline = time.monotonic() + 120
        while emulator_stats(url)["requests"] == before and time.monotonic() < deadline:
            time.sleep(0.05)  # wait until this process is sending (its start-up is slow here)
        time.sleep(rng.uniform(0.1, 1.5))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        landed.update(_landed(journal))
    assert kills >= 2 and landed
    final = _run(command, url, tmp_path)
    assert final.returncode == 0, final.stderr

    keys = ("id", "text", "stop_reason", "rounds", "error")
    got, want = _lines(out), _lines(tmp_path / "clean.jsonl")
    assert [{k: d[k] for k in keys} for d in got] == [{k: d[k] for k in keys} for d in want]
    end = _landed(journal)
    assert len(end) == 24 and all(end[key] == request_id for key, request_id in landed.items())
    billed = emulator_stats(url)
    reported = sum(d["usage"]["output_tokens"] for d in got)
    assert reported == emulator_stats(clean_url)["output_tokens"] == 4800
    lost = billed["requests"] - billed["errors"] - 24  # billed calls that never landed
    assert 0 <= lost <= 4 * kills and billed["output_tokens"] == reported + 200 * lost


def _on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    """Run the CLI with stderr on a real pseudo-terminal (stdout goes to -o); what stderr showed."""
    env = {**env, "TERM": "xterm", "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"}
    return cli_on_terminal(["batch", *args], env, stdout_too=False)


_LIVE = re.compile(r"(\d+)/(\d+) done · (\d+) running · (\d+) failed · [\d,]+ tok/s · (\S+(?: \S+)*?) · ETA")


def test_on_a_terminal_the_batch_shows_a_live_line_then_the_summary_table(start_emulator, tmp_path):
    # Rounds of half a second (100 tokens at 200 a second): the line is drawn while items run.
    url = start_emulator(length=300, decode_rate=200)
    source = _write_input(tmp_path / "in.jsonl", 6)
    args = [str(source), "-o", str(tmp_path / "out.jsonl"), "--model", MODEL]
    args += ["--max-tokens-per-call", "100", "--concurrency", "3"]
    code, shown = _on_a_terminal(args, _env(url, tmp_path / "home"))
    text = shown.decode("utf-8", "replace")
    assert code == 0, text
    lines = _LIVE.findall(text)
    assert lines, text
    assert all(total == "6" and failed == "0" for _, total, _, failed, _ in lines)
    assert any(0 < int(done) < 6 and int(running) > 0 for done, _, running, _, _ in lines), lines
    assert any(re.fullmatch(r"\$0\.\d{3}[1-9]", cost) or cost.startswith("$0.0") for *_, cost in lines)
    assert "outcome" in text and "tokens out" in text and "total" in text
    assert re.search(r"total\s+│?\s*6\s+│?\s*[\d,]+\s+│?\s*\$\d+\.\d{4}", text), text
    assert "items in" in text and len(_lines(tmp_path / "out.jsonl")) == 6


def test_on_a_terminal_a_model_without_prices_shows_cost_unknown_never_0_dollars(tmp_path):
    pytest.importorskip("openai")
    from autocontinue.emulator import run_emulator

    source = _write_input(tmp_path / "in.jsonl", 8)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_"))}
    env["AUTOCONTINUE_HOME"] = str(tmp_path / "home")
    with run_emulator(length=400) as url:
        env["OPENAI_BASE_URL"] = f"{url}/vllm/v1"
        args = [str(source), "-o", str(tmp_path / "out.jsonl"), "--backend", "openai", "--model", "emulated"]
        code, shown = _on_a_terminal([*args, "--max-tokens-per-call", "20", "--concurrency", "2"], env)
    text = shown.decode("utf-8", "replace")
    assert code == 0, text
    costs = [cost for *_, cost in _LIVE.findall(text)]
    assert "cost unknown" in costs, text
    assert "$0.0000" not in text and "$0.00" not in text
    assert re.search(r"total\s+│?\s*8\s+│?\s*[\d,]+\s+│?\s*unknown", text), text
    assert all(line["cost_usd"] is None for line in _lines(tmp_path / "out.jsonl"))


def test_the_first_calls_reserve_all_they_may_write_so_the_next_ones_draw_no_429s(start_emulator, tmp_path):
    # 30 items of 2 rounds of 200 tokens at 6,000 output tokens a minute: the first round is the
    # minute's whole allowance. Calls sent before any usage came back reserved half of
    # max_tokens (continuation rounds mostly use all of it), the local level stood 2,900 tokens
    # above the service's, and the second rounds went into 429s: 5 within 4 s, 9 of 69 calls
    # in the whole batch (1m30s against 1m02s). The batch is stopped once the second rounds
    # have begun; the whole of it takes a minute.
    url = start_emulator(length=400, otpm=6000)
    source = _write_input(tmp_path / "in.jsonl", 30)
    args = [str(source), "-o", str(tmp_path / "o.jsonl"), "--model", MODEL, "--max-tokens-per-call", "200"]
    process = subprocess.Popen(
        _cli(*args, url=url, home=tmp_path),
        env=_env(url, tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while emulator_stats(url)["requests"] < 30 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(4.0)  # the second rounds start as the first ones end and the allowance refills
        stats = emulator_stats(url)
    finally:
        process.kill()
        process.wait()
    assert stats["requests"] >= 30 and stats["errors"] == 0, stats


def test_emulate_help_names_the_batches_endpoints_and_their_settings():
    shown = subprocess.run(
        [sys.executable, "-m", "autocontinue", "emulate", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "/v1/messages/batches" in shown and "/emulator/batches" in shown and "processing_delay" in shown
