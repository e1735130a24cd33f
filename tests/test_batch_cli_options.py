"""``autocontinue batch`` takes every option of ``autocontinue run`` as the default of every item.

The real CLI in a subprocess against the emulator (its Messages API, its Message Batches and its
OpenAI-compatible personas), with the Anthropic environment pointing elsewhere where the test is
about ``--base-url``.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import click
import pytest
from conftest import batch_cli, batch_env, emulator_stats

from autocontinue.batch.items import parse_lines
from autocontinue.batch.runner import batch_key
from autocontinue.cli.batch import batch as batch_command
from autocontinue.cli.options import cli_fields
from autocontinue.cli.run import run as run_command

MODEL = "claude-haiku-4-5"
#: Nothing listens here: a call that goes to the environment's endpoint fails.
NOWHERE = "http://127.0.0.1:9"


def _input(path: Path, n: int = 3) -> Path:
    lines = [json.dumps({"id": f"r{i}", "prompt": f"Write report {i}"}) for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _lines(path: Path) -> list[dict]:
    return sorted((json.loads(line) for line in path.read_text().splitlines()), key=lambda d: d["id"])


def _requests(journal: Path) -> list[dict]:
    """The journaled request (run options) of every item's run."""
    with sqlite3.connect(journal) as conn:
        rows = conn.execute(
            "SELECT r.request FROM batch_items bi JOIN runs r ON r.id = bi.run_id ORDER BY r.created, bi.item_id"
        ).fetchall()
    return [json.loads(request) for (request,) in rows]


def _batch_id(done: subprocess.CompletedProcess[str]) -> str:
    found = re.search(r"batch (b[\w-]+): \d+ items", done.stderr)
    assert found, done.stderr
    return found.group(1)


def _one_line_refusal(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "hint" in done.stderr and "Traceback" not in done.stderr
    assert all(word in done.stderr for word in words), done.stderr


# -- one declaration of every flag -------------------------------------------------------------


def _option(command: click.Command, name: str) -> click.Option:
    (option,) = [p for p in command.params if p.name == f"opt_{name}"]
    assert isinstance(option, click.Option)
    return option


def test_every_run_option_is_a_batch_option_declared_once():
    # Derived from cli_fields(): a field added to Options is offered by both, or this fails.
    shown = subprocess.run(
        [sys.executable, "-m", "autocontinue", "batch", "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    for name in cli_fields():
        run, batch = _option(run_command, name), _option(batch_command, name)
        assert batch.opts == run.opts and batch.opts[0] in shown, name
        assert batch.type.to_info_dict() == run.type.to_info_dict(), name
        assert (batch.multiple, batch.is_flag, batch.metavar) == (run.multiple, run.is_flag, run.metavar), (
            name
        )
        # A batch applies no default of its own: an unset option leaves each item's to Options.
        assert batch.default in (None, False), name


def test_seed_takes_any_whole_number_as_for_run(tmp_path):
    # run documents (and its tests pin) --seed -1; the batch used to refuse it (0 to 2**32-1).
    values = {}
    for command in (run_command, batch_command):
        context = command.make_context(command.name, ["--seed", "-1", "--max-rounds", "2", "x"])
        values[command.name] = (context.params["opt_seed"], context.params["opt_max_rounds"])
    assert values == {"run": (-1, 2), "batch": (-1, 2)}


# -- the options reach every item --------------------------------------------------------------


def test_until_stop_and_the_other_run_options_reach_every_item(start_emulator, tmp_path):
    url = start_emulator(length=300)
    source, journal = _input(tmp_path / "in.jsonl"), tmp_path / "j.sqlite3"
    env = batch_env(tmp_path / "home", ANTHROPIC_API_KEY="k", ANTHROPIC_BASE_URL=NOWHERE)
    # claude-sonnet-4-6 takes an effort setting (claude-haiku-4-5 refuses one).
    common = [str(source), "--model", "claude-sonnet-4-6", "--max-tokens-per-call", "20", "--base-url", url]
    common += ["--journal", str(journal), "-q"]
    until = batch_cli(
        *common, "-o", str(tmp_path / "u.jsonl"), "--until", "·40", "--no-cache", "--effort", "low", env=env
    )
    assert until.returncode == 0, until.stderr
    for line in _lines(tmp_path / "u.jsonl"):  # the emulator's words are numbered: word·40
        assert line["stop_reason"] == "until" and line["text"].endswith("·40"), line
    stop = batch_cli(*common, "-o", str(tmp_path / "s.jsonl"), "--stop", "·30", "--stop", "·99", env=env)
    assert stop.returncode == 0, stop.stderr
    for line in _lines(tmp_path / "s.jsonl"):
        assert line["stop_reason"] == "stop_sequence" and "·29" in line["text"], line
        assert "·30" not in line["text"], line
    requests = _requests(journal)
    assert len(requests) == 6 and emulator_stats(url)["requests"] > 6  # every call went to --base-url
    assert [(r["until"], r["cache"], r["effort"]) for r in requests[:3]] == [("·40", False, "low")] * 3
    assert [r["stop_sequences"] for r in requests[3:]] == [["·30", "·99"]] * 3


def test_via_batches_sends_its_jobs_to_the_base_url_and_honours_until(start_emulator, tmp_path):
    # Before, the Message Batches client went where ANTHROPIC_BASE_URL said, whatever the option.
    url = start_emulator(length=300)
    source, out = _input(tmp_path / "in.jsonl"), tmp_path / "out.jsonl"
    env = batch_env(tmp_path / "home", ANTHROPIC_API_KEY="k", ANTHROPIC_BASE_URL=NOWHERE)
    args = [str(source), "--via", "batches", "--poll-interval", "0.05", "--base-url", url, "-o", str(out)]
    done = batch_cli(*args, "--model", MODEL, "--max-tokens-per-call", "20", "--until", "·40", "-q", env=env)
    assert done.returncode == 0, done.stderr
    for line in _lines(out):
        assert line["stop_reason"] == "until" and line["text"].endswith("·40"), line
    with urllib.request.urlopen(f"{url}/emulator/batches") as response:
        assert json.load(response)["batches"] >= 2  # the rounds went as Message Batches jobs
    assert emulator_stats(url)["requests"] == 0  # and not one as a live call


def _strategies(journal: Path, batch_id: str) -> set[str]:
    """The strategies of every continuation round (after the first) of the batch's items."""
    with sqlite3.connect(journal) as conn:
        rows = conn.execute(
            "SELECT r.report FROM batch_items bi JOIN rounds r ON r.run_id = bi.run_id"
            " WHERE bi.batch_id = ? AND r.idx > 0",
            (batch_id,),
        ).fetchall()
    return {json.loads(report)["strategy"] for (report,) in rows}


def test_backend_openai_with_base_url_and_server_runs_every_item_there(start_emulator, tmp_path):
    pytest.importorskip("openai")
    url = start_emulator(length=200)
    source, journal = _input(tmp_path / "in.jsonl"), tmp_path / "j.sqlite3"
    args = [str(source), "--backend", "openai", "--base-url", f"{url}/vllm/v1", "--model", "emulated"]
    args += ["--max-tokens-per-call", "40", "--journal", str(journal)]
    env = batch_env(tmp_path / "home")  # no ANTHROPIC_* nor OPENAI_*: --base-url is the only endpoint
    probed = batch_cli(*args, "-o", str(tmp_path / "p.jsonl"), env=env)
    told = batch_cli(*args, "-o", str(tmp_path / "t.jsonl"), "--server", "openai", env=env)
    assert probed.returncode == told.returncode == 0, probed.stderr + told.stderr
    for out in ("p.jsonl", "t.jsonl"):
        assert [line["stop_reason"] for line in _lines(tmp_path / out)] == ["end_turn"] * 3
    # Probed, the vLLM endpoint continues the answer itself; told it is OpenAI's own API (which
    # never does), every item continues in a user turn.
    assert _strategies(journal, _batch_id(probed)) == {"prefill"}
    assert _strategies(journal, _batch_id(told)) == {"user-turn"}
    assert [r.get("server") for r in _requests(journal)] == [None] * 3 + ["openai"] * 3


# -- what a batch refuses ----------------------------------------------------------------------


def test_options_a_batch_cannot_honour_are_refused_in_one_line_before_any_call(start_emulator, tmp_path):
    url = start_emulator(length=200)
    source = _input(tmp_path / "in.jsonl")
    env = batch_env(tmp_path / "home", ANTHROPIC_API_KEY="k", ANTHROPIC_BASE_URL=url)
    # Message Batches are Anthropic's: nothing there reads how an OpenAI server continues.
    server = batch_cli(str(source), "--via", "batches", "--server", "vllm", env=env)
    _one_line_refusal(server, "--server", "Message Batches")
    _one_line_refusal(batch_cli(str(source), "--base-url", "ftp://x", env=env), "--base-url")
    # One backend serves the whole batch: an item's own endpoint would silently not apply.
    own = tmp_path / "own.jsonl"
    own.write_text(
        '{"id": "a", "prompt": "p"}\n{"id": "b", "prompt": "p", "base_url": "http://127.0.0.1:9"}\n',
        encoding="utf-8",
    )
    _one_line_refusal(batch_cli(str(own), "--base-url", url, env=env), "'b'", "line 2", "base_url")
    assert emulator_stats(url)["requests"] == 0
    with urllib.request.urlopen(f"{url}/emulator/batches") as response:
        assert json.load(response)["batches"] == 0


def test_a_resumed_batch_refuses_an_option_it_was_not_started_with(start_emulator, tmp_path):
    url = start_emulator(length=200)
    source, out = _input(tmp_path / "in.jsonl", 2), str(tmp_path / "out.jsonl")
    env = batch_env(tmp_path / "home", ANTHROPIC_API_KEY="k", ANTHROPIC_BASE_URL=url)
    first = batch_cli(str(source), "--model", MODEL, "--until", "·40", "-o", out, env=env)
    assert first.returncode == 0, first.stderr
    batch_id = _batch_id(first)
    changed = batch_cli("--resume", batch_id, "--until", "·50", "-o", out, env=env)
    _one_line_refusal(changed, batch_id, "until")
    same = batch_cli("--resume", batch_id, "--until", "·40", "--model", MODEL, "-o", out, env=env)
    assert same.returncode == 0 and _batch_id(same) == batch_id, same.stderr


# -- the batch key -----------------------------------------------------------------------------


def test_the_same_command_finds_its_batch_and_a_changed_option_makes_a_new_one(start_emulator, tmp_path):
    url = start_emulator(length=200)
    source, journal = _input(tmp_path / "in.jsonl", 2), tmp_path / "j.sqlite3"
    env = batch_env(tmp_path / "home", ANTHROPIC_API_KEY="k", ANTHROPIC_BASE_URL=url)
    old_flags = [str(source), "--model", MODEL, "--max-tokens-per-call", "100", "--journal", str(journal)]

    def ran(*more: str) -> str:
        done = batch_cli(*old_flags, *more, "-o", str(tmp_path / "o.jsonl"), env=env)
        assert done.returncode == 0, done.stderr
        return _batch_id(done)

    first = ran()
    assert ran() == first  # the same command again: the same batch
    until = ran("--until", "·40")
    assert len({first, until, ran("--no-cache")}) == 3  # each change: a new batch
    assert ran("--until", "·40") == until
    # A command of the old flags keys its batch as before: only the options it set, no
    # defaults applied (max_rounds=20, strategy="auto", cache=True would change every key).
    items, _ = parse_lines(source.read_text(encoding="utf-8"))
    want = batch_key(items, {"model": MODEL, "max_tokens_per_call": 100}, "live")
    with sqlite3.connect(journal) as conn:
        (key,) = conn.execute("SELECT key FROM batches WHERE id = ?", (first,)).fetchone()
    assert key == want


# -- which endpoint a batch ran on ------------------------------------------------------------


def _calls(url: str) -> int:
    return int(emulator_stats(url)["requests"])


def test_a_base_url_differing_only_in_its_secret_is_another_batch(start_emulator, tmp_path):
    # The journal keeps the base URL redacted, so alice@ and bob@ look the same there: their
    # digests (never the URL) tell the two accounts apart, and bob's answers are bob's.
    url = start_emulator(length=200)
    source, journal = _input(tmp_path / "in.jsonl", 2), tmp_path / "j.sqlite3"
    env = batch_env(tmp_path / "home", ANTHROPIC_API_KEY="k")
    flags = [str(source), "--model", MODEL, "--backend", "anthropic", "--journal", str(journal)]
    flags += ["-o", str(tmp_path / "o.jsonl")]

    def ran(user: str) -> str:
        done = batch_cli(*flags, "--base-url", url.replace("http://", f"http://{user}@"), env=env)
        assert done.returncode == 0, done.stderr
        return _batch_id(done)

    alice = ran("alice:pw")
    before = _calls(url)
    assert ran("bob:pw2") != alice
    assert _calls(url) > before  # bob's items were run, not taken from alice's batch
    assert ran("alice:pw") == alice  # the same URL again: the same batch
    with sqlite3.connect(journal) as conn:
        settings = " ".join(s for (s,) in conn.execute("SELECT settings FROM batches"))
    assert "alice" not in settings and "pw" not in settings and "bob" not in settings


def test_another_endpoint_from_the_environment_is_another_batch(start_emulator, tmp_path):
    # Without --base-url the endpoint is ANTHROPIC_BASE_URL: a rerun against another one runs
    # there (neither the earlier batch nor its items are taken as its answers).
    first, second = start_emulator(length=200), start_emulator(length=200)
    source, journal = _input(tmp_path / "in.jsonl", 2), tmp_path / "j.sqlite3"
    flags = [str(source), "--model", MODEL, "--journal", str(journal), "-o", str(tmp_path / "o.jsonl")]

    def ran(url: str) -> str:
        done = batch_cli(
            *flags, env=batch_env(tmp_path / "home", ANTHROPIC_API_KEY="k", ANTHROPIC_BASE_URL=url)
        )
        assert done.returncode == 0, done.stderr
        return _batch_id(done)

    earlier = ran(first)
    assert ran(second) != earlier
    assert _calls(second) > 0
    assert ran(first) == earlier


def test_a_batch_with_nothing_left_to_run_needs_no_key(start_emulator, tmp_path):
    # Every item finished (in this batch, or in earlier ones for a reordered input): the rerun
    # writes the answers and the summary without a backend, so without a key, and exits 0.
    url = start_emulator(length=200)
    source, journal, out = _input(tmp_path / "in.jsonl", 2), tmp_path / "j.sqlite3", tmp_path / "o.jsonl"
    flags = ["--model", MODEL, "--backend", "anthropic", "--base-url", url, "--journal", str(journal)]
    flags += ["-o", str(out)]
    done = batch_cli(str(source), *flags, env=batch_env(tmp_path / "home", ANTHROPIC_API_KEY="k"))
    assert done.returncode == 0, done.stderr
    answers = out.read_text(encoding="utf-8")
    before = _calls(url)
    keyless = batch_env(tmp_path / "home")
    again = batch_cli(str(source), *flags, env=keyless)
    assert again.returncode == 0, again.stderr
    assert _batch_id(again) == _batch_id(done)
    assert sorted(out.read_text(encoding="utf-8").splitlines()) == sorted(answers.splitlines())
    lines = source.read_text(encoding="utf-8").splitlines()
    reordered = tmp_path / "reordered.jsonl"
    reordered.write_text("\n".join(reversed(lines)) + "\n", encoding="utf-8")
    taken = batch_cli(str(reordered), *flags, env=keyless)
    assert taken.returncode == 0, taken.stderr
    assert _batch_id(taken) != _batch_id(done)
    assert sorted(out.read_text(encoding="utf-8").splitlines()) == sorted(answers.splitlines())
    assert _calls(url) == before
