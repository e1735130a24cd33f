"""A changed input reuses what an earlier batch finished: the real CLI against the emulator.

Adding, fixing or removing one line of a batch's input makes a new batch (its key hashes every
item); the items whose record and settings are exactly those of an item an earlier batch of
the journal finished are taken over with their result, and the emulator bills only the rest.
The same prompt under another option or default is another item and runs again; so does
everything under ``--fresh``. The store's own tests (old journals, the indexed lookup) are at
the end; they open the journal file directly, nothing is mocked.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import emulator_stats

from autocontinue.batch.items import BatchItem
from autocontinue.batch.output import ItemResult
from autocontinue.batch.store import _TAKE_FINISHED, BatchStore
from autocontinue.journal import Journal

MODEL = "claude-haiku-4-5"
#: 300-token answers in calls of at most 100 tokens: several billed calls per item.
EMULATOR = dict(length=300)
ARGS = ("--model", MODEL, "--max-tokens-per-call", "100", "--concurrency", "1")


def _batch(source: Path, out: Path, home: Path, url: str, *more: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": "test-key",
        "AUTOCONTINUE_HOME": str(home),
    }
    command = [sys.executable, "-m", "autocontinue", "batch", str(source), "-o", str(out), *ARGS, *more]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def _write(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return path


def _items(n: int) -> list[dict]:
    return [{"id": f"r{i}", "prompt": f"Write report {i}"} for i in range(n)]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _calls(url: str) -> int:
    return emulator_stats(url)["requests"]


def _latest_batch(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT id FROM batches ORDER BY created DESC LIMIT 1").fetchone()[0]


def _uninterrupted(start_emulator, tmp_path: Path, source: Path, *more: str) -> list[dict]:
    """The output of the input run once, on an emulator and a journal of its own."""
    url = start_emulator(**EMULATOR)
    out = tmp_path / "clean.jsonl"
    _batch(source, out, tmp_path / "clean-home", url, *more)
    return _lines(out)


def test_an_appended_line_pays_only_for_the_new_item_and_the_output_is_the_uninterrupted_one(
    start_emulator, tmp_path
):
    url = start_emulator(**EMULATOR)
    source, out = _write(tmp_path / "in.jsonl", _items(5)), tmp_path / "out.jsonl"
    first = _batch(source, out, tmp_path, url)
    assert "taken from earlier batches" not in first.stderr
    before = _calls(url)
    _write(source, _items(6))
    again = _batch(source, out, tmp_path, url)
    got = _lines(out)
    new = next(d for d in got if d["id"] == "r5")
    assert new["rounds"] >= 2 and _calls(url) - before == new["rounds"]  # r0..r4 cost nothing
    assert again.stderr.count("5 of 6 items taken from earlier batches") == 1
    journal = tmp_path / "journal.sqlite3"
    with Journal(journal) as runs:
        listed = {run.id for run in runs.list_runs(limit=100)}
    store = BatchStore(journal)
    pointed = {r.run_id for r in store.items(_latest_batch(journal))}
    store.close()
    assert len(listed) == 6 and pointed == listed  # one run per answer: shared, not copied
    assert got == _uninterrupted(start_emulator, tmp_path, source)  # texts, ids, usage, order


def test_a_removed_line_makes_a_batch_that_calls_nothing(start_emulator, tmp_path):
    url = start_emulator(**EMULATOR)
    source, out = _write(tmp_path / "in.jsonl", _items(5)), tmp_path / "out.jsonl"
    _batch(source, out, tmp_path, url)
    whole = {d["id"]: d for d in _lines(out)}
    before = _calls(url)
    _write(source, [item for item in _items(5) if item["id"] != "r2"])
    again = _batch(source, out, tmp_path, url)
    assert _calls(url) == before and "4 of 4 items taken" in again.stderr
    assert _lines(out) == [whole[f"r{i}"] for i in (0, 1, 3, 4)]


def test_an_item_whose_option_changed_is_the_only_one_run_again(start_emulator, tmp_path):
    url = start_emulator(**EMULATOR)
    source, out = _write(tmp_path / "in.jsonl", _items(5)), tmp_path / "out.jsonl"
    _batch(source, out, tmp_path, url)
    earlier = {d["id"]: d for d in _lines(out)}
    before = _calls(url)
    changed = _items(5)
    changed[2]["max_tokens_per_call"] = 150  # the same prompt under another option: another item
    _write(source, changed)
    again = _batch(source, out, tmp_path, url)
    got = {d["id"]: d for d in _lines(out)}
    assert got["r2"]["rounds"] == 2 < earlier["r2"]["rounds"]  # run again, in calls of 150 tokens
    assert _calls(url) - before == 2 and "4 of 5 items taken" in again.stderr
    assert all(got[key] == earlier[key] for key in ("r0", "r1", "r3", "r4"))
    clean = _uninterrupted(start_emulator, tmp_path, source)
    assert sorted(got.values(), key=lambda d: d["id"]) == sorted(clean, key=lambda d: d["id"])


def test_fresh_runs_every_item_again_even_where_an_earlier_batch_finished_it(start_emulator, tmp_path):
    url = start_emulator(**EMULATOR)
    source, out = _write(tmp_path / "in.jsonl", _items(5)), tmp_path / "out.jsonl"
    _batch(source, out, tmp_path, url)
    _write(source, _items(6))
    before = _calls(url)
    _batch(source, out, tmp_path, url)
    assert _calls(url) - before == _lines(out)[-1]["rounds"]  # reused: only r5 was called
    before = _calls(url)
    fresh = _batch(source, out, tmp_path, url, "--fresh")
    assert _calls(url) - before == sum(d["rounds"] for d in _lines(out)) and len(_lines(out)) == 6
    assert "taken from earlier batches" not in fresh.stderr


def test_a_changed_default_runs_every_item_again(start_emulator, tmp_path):
    url = start_emulator(**EMULATOR)
    source, out = _write(tmp_path / "in.jsonl", _items(5)), tmp_path / "out.jsonl"
    _batch(source, out, tmp_path, url, "--max-rounds", "5")
    _write(source, _items(6))
    before = _calls(url)
    _batch(source, out, tmp_path, url, "--max-rounds", "5")
    assert _calls(url) - before == _lines(out)[-1]["rounds"]  # same default: only r5 was called
    before = _calls(url)
    other = _batch(source, out, tmp_path, url, "--max-rounds", "6")
    assert _calls(url) - before == sum(d["rounds"] for d in _lines(out)) and len(_lines(out)) == 6
    assert "taken from earlier batches" not in other.stderr


# -- the store: old journals, failed items, the indexed lookup ---------------------------------


def _settings(**options: object) -> dict:
    return {"options": {"model": MODEL, **options}, "via": "live"}


def test_only_finished_items_are_taken_over_never_failed_or_unfinished_ones(tmp_path):
    path = tmp_path / "j.sqlite3"
    Journal(path).close()
    store = BatchStore(path)
    items = [BatchItem(id=name, prompt=f"Write about {name}") for name in ("done", "failed", "running")]
    old = store.create(key="k1", via="live", settings=_settings(), items=items)
    store.finish_item(old, ItemResult(id="done", text="an answer", rounds=1), "finished")
    store.finish_item(old, ItemResult(id="failed", text="half", error="boom"), "failed")
    store.set_run(old, "running", "run-1")
    new, taken = store.create_reusing(key="k2", via="live", settings=_settings(), items=items)
    assert taken == 1
    rows = {r.item.id: r for r in store.items(new)}
    assert rows["done"].status == "finished" and rows["done"].origin == old
    assert rows["done"].result is not None and rows["done"].result.text == "an answer"
    assert [rows[k].status for k in ("failed", "running")] == ["pending", "pending"]
    other, taken = store.create_reusing(key="k3", via="live", settings=_settings(max_rounds=3), items=items)
    assert taken == 0  # another default: nothing is the same item
    store.close()


def test_a_journal_from_before_reuse_keys_opens_and_its_items_are_not_taken_over(tmp_path):
    path = tmp_path / "old.sqlite3"
    Journal(path).close()
    with sqlite3.connect(path) as conn:  # batch_items as it was before this change
        conn.execute(
            "CREATE TABLE batch_items (batch_id TEXT NOT NULL, item_id TEXT NOT NULL, position INTEGER NOT NULL,"
            " item TEXT NOT NULL, run_id TEXT, status TEXT NOT NULL, result TEXT, PRIMARY KEY (batch_id, item_id))"
        )
        item = json.dumps({"id": "a", "prompt": "x"})
        result = json.dumps(ItemResult(id="a", text="old answer", rounds=1).to_dict())
        conn.execute(
            "INSERT INTO batch_items VALUES ('b0', 'a', 0, ?, 'run-0', 'finished', ?)", (item, result)
        )
    store = BatchStore(path)
    (row,) = store.items("b0")  # the old row reads as before
    assert row.status == "finished" and row.result is not None and row.result.text == "old answer"
    new, taken = store.create_reusing(
        key="k", via="live", settings=_settings(), items=[BatchItem(id="a", prompt="x")]
    )
    assert taken == 0 and store.items(new)[0].status == "pending"
    store.close()


def test_the_lookup_is_one_indexed_query_even_over_fifty_batches_of_a_thousand(tmp_path):
    path = tmp_path / "big.sqlite3"
    Journal(path).close()
    store = BatchStore(path)
    items = [BatchItem(id=f"i{n}", prompt=f"Write report {n}") for n in range(1000)]
    for batch in range(50):
        store.create(key=f"k{batch}", via="live", settings=_settings(max_rounds=batch + 1), items=items)
    with sqlite3.connect(path) as conn:  # finish them all at once (finish_item is a write per item)
        conn.execute("UPDATE batch_items SET status = 'finished', result = '{}'")
    with sqlite3.connect(path) as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + _TAKE_FINISHED, ("b",)))
    assert "batch_items_by_reuse" in plan and "SCAN m" not in plan, plan
    started = time.perf_counter()
    _, taken = store.create_reusing(key="new", via="live", settings=_settings(max_rounds=50), items=items)
    took = time.perf_counter() - started
    assert taken == 1000 and took < 2.0, took  # measured here: about 0.1 s
    store.close()
