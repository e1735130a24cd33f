"""Live batches against the emulator over real HTTP, through the official SDK.

Every item is checked against a single ``generate`` of the same prompt; the emulator's own
counters show what was billed.
"""

from __future__ import annotations

import asyncio
import json

import anthropic
import pytest
from conftest import emulator_stats

import autocontinue
from autocontinue.batch.store import BatchStore
from autocontinue.journal import Journal

MODEL = "claude-haiku-4-5"


def _items(n: int, **options):
    return [{"id": f"item-{i}", "prompt": f"Write report number {i} in full", **options} for i in range(n)]


def test_every_item_is_answered_to_its_end_and_written_as_one_line(start_emulator, env, tmp_path):
    url = start_emulator(length=600)
    env(url)
    out = tmp_path / "out.jsonl"
    result = autocontinue.batch(
        _items(5),
        output=str(out),
        journal=str(tmp_path / "j.sqlite3"),
        model=MODEL,
        max_tokens_per_call=250,
        concurrency=3,
    )
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(line["id"] for line in lines) == [f"item-{i}" for i in range(5)]
    client = anthropic.Anthropic(base_url=url, api_key="test-key")
    for line in lines:
        prompt = f"Write report number {line['id'].split('-')[1]} in full"
        alone = autocontinue.generate(prompt, client=client, model=MODEL, max_tokens_per_call=250)
        assert line["text"] == alone.text
        assert line["stop_reason"] == "end_turn" and line["rounds"] == len(alone.rounds) == 3
        assert line["error"] is None and line["usage"]["output_tokens"] == 600
    assert [r.id for r in result.results] == [f"item-{i}" for i in range(5)]  # input order
    with Journal(tmp_path / "j.sqlite3") as journal:
        runs = journal.list_runs(limit=50)
        assert len(runs) == 5 and all(r.request["batch"] == result.batch_id for r in runs)
        assert all(r.state == "finished" for r in runs)


def test_a_plain_rerun_skips_finished_items_and_pays_nothing(start_emulator, env, tmp_path):
    url = start_emulator(length=300)
    env(url)
    args = dict(journal=str(tmp_path / "j.sqlite3"), model=MODEL, max_tokens_per_call=200)
    first = autocontinue.batch(_items(4), output=str(tmp_path / "a.jsonl"), **args)
    billed = emulator_stats(url)
    again = autocontinue.batch(_items(4), output=str(tmp_path / "b.jsonl"), **args)
    assert again.batch_id == first.batch_id
    assert emulator_stats(url) == billed
    assert (tmp_path / "a.jsonl").read_text() != ""
    assert sorted((tmp_path / "a.jsonl").read_text().splitlines()) == sorted(
        (tmp_path / "b.jsonl").read_text().splitlines()
    )
    fresh = autocontinue.batch(_items(4), output=str(tmp_path / "c.jsonl"), fresh=True, **args)
    assert fresh.batch_id != first.batch_id and emulator_stats(url)["requests"] > billed["requests"]


def test_a_failing_item_reports_its_error_and_the_others_finish(start_emulator, env, tmp_path):
    env(start_emulator(length=200))
    items = _items(2) + [{"id": "bad", "prompt": "x", "max_tokens_per_call": 10**6}]
    result = autocontinue.batch(
        items, journal=str(tmp_path / "j.sqlite3"), model=MODEL, output=str(tmp_path / "o.jsonl")
    )
    by_id = {r.id: r for r in result.results}
    assert by_id["bad"].error and "max_tokens_per_call" in by_id["bad"].error and "hint" in by_id["bad"].error
    assert by_id["item-0"].stop_reason == "end_turn" and by_id["item-1"].error is None
    assert len(result.failed) == 1


def _drain(url: str, tokens: int) -> None:
    """Spend the emulator's output allowance with one long call."""
    client = anthropic.Anthropic(base_url=url, api_key="test-key", max_retries=8)
    with client.messages.stream(
        model=MODEL, max_tokens=tokens, messages=[{"role": "user", "content": "drain"}]
    ) as s:
        s.get_final_message()


@pytest.mark.slow
def test_pacing_keeps_calls_inside_the_output_rate_limit(start_emulator, env, tmp_path):
    # 3,000 output tokens a minute = 50 a second. One long call overdraws the allowance by 600
    # tokens (12 s to refill, a wide margin on a loaded machine); unpaced, calls sent then are
    # refused (429) until it has refilled, and retried blindly. The pacer learns the limit
    # from the first refusal's headers and waits instead.
    items = _items(8, max_tokens_per_call=25, max_rounds=1)

    async def unpaced(url: str) -> int:
        client = anthropic.AsyncAnthropic(base_url=url, api_key="test-key", max_retries=0)
        fast = autocontinue.RetryPolicy(base_delay=0.05, max_delay=0.2, max_attempts=100)
        await asyncio.gather(
            *(
                autocontinue.agenerate(
                    i["prompt"], client=client, model=MODEL, max_rounds=1, max_tokens_per_call=25, retry=fast
                )
                for i in items
            )
        )
        await client.close()
        return emulator_stats(url)["errors"]

    url = start_emulator(length=3_600, otpm=3_000)
    _drain(url, 3_600)
    throttled_unpaced = asyncio.run(unpaced(url))
    url = start_emulator(length=3_600, otpm=3_000)
    env(url)
    _drain(url, 3_600)
    result = autocontinue.batch(
        items, journal=str(tmp_path / "j.sqlite3"), model=MODEL, output=str(tmp_path / "o.jsonl")
    )
    throttled = emulator_stats(url)["errors"]
    assert all(r.error is None and r.usage.output_tokens == 25 for r in result.results)
    assert throttled == result.throttled
    assert throttled <= 2 < throttled_unpaced


def test_the_journal_holds_the_batch_and_its_items(start_emulator, env, tmp_path):
    env(start_emulator(length=200))
    result = autocontinue.batch(
        _items(3), journal=str(tmp_path / "j.sqlite3"), model=MODEL, output=str(tmp_path / "o.jsonl")
    )
    store = BatchStore(tmp_path / "j.sqlite3")
    try:
        record = store.get(result.batch_id)
        assert record is not None and record.state == "finished" and record.via == "live"
        items = store.items(result.batch_id)
        assert [i.status for i in items] == ["finished"] * 3 and all(i.run_id for i in items)
    finally:
        store.close()


def test_a_batch_and_a_single_run_take_their_backend_from_options_in_one_place(monkeypatch):
    from autocontinue import Options
    from autocontinue.backends.select import backend_for
    from autocontinue.errors import ConfigurationError

    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    from_mapping = backend_for({"base_url": "http://127.0.0.1:9"})  # a batch's options
    from_options = backend_for(Options(base_url="http://127.0.0.1:9"))  # a run's
    assert from_mapping.name == from_options.name == "anthropic"
    assert str(from_mapping.client.base_url) == str(from_options.client.base_url)
    with pytest.raises(ConfigurationError, match="server="):
        backend_for({"backend": "local", "server": "llama-server"})


def test_an_item_whose_run_finished_before_the_batch_heard_of_it_is_taken_from_the_journal(
    start_emulator, env, tmp_path
):
    """A kill -9 between the run's journal entry ending "finished" and the batch's item row
    being marked: the rerun takes the answer from the journal and sends nothing (it claimed
    the finished run and stopped the whole batch with "finished by another process")."""
    import sqlite3

    url = start_emulator(length=300)
    env(url)
    journal = tmp_path / "j.sqlite3"
    args = dict(journal=str(journal), model=MODEL, max_tokens_per_call=200)
    first = autocontinue.batch(_items(3), output=str(tmp_path / "a.jsonl"), **args)
    with sqlite3.connect(journal) as db:  # as the killed process left it
        db.execute(
            "UPDATE batch_items SET status = 'running', result = NULL WHERE batch_id = ?", (first.batch_id,)
        )
    billed = emulator_stats(url)
    again = autocontinue.batch(_items(3), output=str(tmp_path / "b.jsonl"), **args)
    assert again.batch_id == first.batch_id and not again.failed
    assert emulator_stats(url) == billed
    assert sorted((tmp_path / "a.jsonl").read_text().splitlines()) == sorted(
        (tmp_path / "b.jsonl").read_text().splitlines()
    )
