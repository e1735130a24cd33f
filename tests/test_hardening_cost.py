"""A model with no known prices shows its cost as unknown, never ``$0``; the local model says ``$0 (local)``.

Through real parts: the real CLI in a subprocess with the OpenAI-compatible backend against the
emulator's chat endpoint (it has no price table) and with the local model; the journal those
runs wrote, read back by ``runs`` and ``show``; the progress line fed the events of a real run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import autocontinue
from autocontinue.cli.progress import Progress, summary_line
from autocontinue.events import RoundStarted, TextDelta
from autocontinue.journal import Journal, RunRecorder

pytest.importorskip("openai")

PROMPT = "Write a long story."


@pytest.fixture(scope="module")
def chat_url():
    from autocontinue.emulator import run_emulator

    with run_emulator(length=200) as url:
        yield f"{url}/vllm/v1"


def _cli(*args: str, home) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_"))}
    env["AUTOCONTINUE_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "autocontinue", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_an_unpriced_model_is_cost_unknown_in_the_summary_runs_show_and_json(chat_url, tmp_path):
    run = [
        "--backend",
        "openai",
        "--base-url",
        chat_url,
        "--model",
        "emulated",
        "--max-tokens-per-call",
        "40",
    ]
    done = _cli(*run, PROMPT, home=tmp_path)
    assert done.returncode == 0, done.stderr
    (summary,) = [line for line in done.stderr.splitlines() if line.startswith("autocontinue: done")]
    assert "cost unknown" in summary and "$" not in summary
    table = _cli("runs", home=tmp_path)
    assert table.returncode == 0, table.stderr
    row = table.stdout.splitlines()[1]
    assert "cost unknown" in row and "$" not in row
    (listed,) = json.loads(_cli("runs", "--json", home=tmp_path).stdout)
    assert listed["cost_usd"] is None and listed["cost_known"] is False
    shown = json.loads(_cli("show", listed["id"], "--json", home=tmp_path).stdout)
    assert shown["cost_usd"] is None and shown["cost_known"] is False
    assert all(r["cost_known"] is False for r in shown["rounds"])
    as_json = json.loads(_cli(*run, "--json", PROMPT, home=tmp_path).stdout)
    assert as_json["cost_usd"] is None and as_json["cost_known"] is False


def test_each_round_of_an_unpriced_model_has_a_null_cost_in_run_json_and_show_json(chat_url, tmp_path):
    run = ["--backend", "openai", "--base-url", chat_url, "--model", "emulated"]
    done = _cli(*run, "--max-tokens-per-call", "40", "--max-rounds", "3", "--json", PROMPT, home=tmp_path)
    assert done.returncode in (0, 1), done.stderr
    as_json = json.loads(done.stdout)
    assert len(as_json["rounds"]) >= 2
    assert [(r["cost_usd"], r["cost_known"]) for r in as_json["rounds"]] == [(None, False)] * len(
        as_json["rounds"]
    )
    shown = json.loads(_cli("show", as_json["run_id"], "--json", home=tmp_path).stdout)
    assert [(r["cost_usd"], r["cost_known"]) for r in shown["rounds"]] == [(None, False)] * len(
        as_json["rounds"]
    )


def test_the_live_line_says_cost_unknown_and_shows_no_cost_before_a_round_reported_one(chat_url):
    events = list(
        autocontinue.stream(
            PROMPT,
            backend="openai",
            base_url=chat_url,
            model="emulated",
            max_tokens_per_call=40,
            max_rounds=2,
        )
    )
    progress = Progress(live=False, quiet=True)
    assert "$" not in str(progress._render()) and "cost" not in str(progress._render())
    for event in events:
        progress.on_event(event)
    line = str(progress._render())
    assert line.endswith("· cost unknown") and "$" not in line
    result = events[-1].result
    assert result.to_dict()["cost_known"] is False and "cost unknown" in summary_line(result)


def test_a_priced_model_keeps_its_dollars_on_the_live_line(emulator_url):
    import anthropic

    client = anthropic.Anthropic(base_url=emulator_url, api_key="k", max_retries=0)
    events = list(
        autocontinue.stream(
            PROMPT, client=client, model="claude-sonnet-4-6", max_tokens_per_call=100, max_rounds=2
        )
    )
    progress = Progress(live=False, quiet=True)
    for event in events:
        progress.on_event(event)
    cost = events[-1].result.cost_usd
    assert cost > 0 and str(progress._render()).endswith(f"· ${cost:.4f}")


def test_a_round_cut_by_an_interruption_on_an_unpriced_model_is_journaled_as_cost_unknown(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    recorder = RunRecorder(journal, backend="openai", model="emulated", request={"prompt": "x"})
    run_id = recorder.start()
    recorder.on_event(RoundStarted(0, "initial", 40))
    recorder.on_event(TextDelta("Once upon a time there was a keeper ", ""))
    recorder.stop("interrupted")
    record = journal.get(run_id)
    assert [r.stop_reason for r in record.rounds] == ["interrupted"]
    assert record.cost_known is False and record.result().cost_known is False


def test_the_local_model_says_its_cost_is_zero_because_it_is_local(tmp_path):
    run = ["--backend", "local", "--max-tokens-per-call", "16", "--max-rounds", "1", "--seed", "1"]
    done = _cli(*run, PROMPT, home=tmp_path)
    assert done.returncode in (0, 1), done.stderr
    summary = [line for line in done.stderr.splitlines() if "tokens out" in line]
    assert summary and "$0 (local)" in summary[-1]
    row = _cli("runs", home=tmp_path).stdout.splitlines()[1]
    assert "$0 (local)" in row
    (listed,) = json.loads(_cli("runs", "--json", home=tmp_path).stdout)
    assert listed["cost_usd"] == 0 and listed["cost_known"] is True
    shown = json.loads(_cli("show", listed["id"], "--json", home=tmp_path).stdout)
    assert [(r["cost_usd"], r["cost_known"]) for r in shown["rounds"]] == [(0.0, True)]
