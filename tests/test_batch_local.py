"""A batch on the embedded local model (SmolLM2 through llama.cpp): items in turn, one model."""

from __future__ import annotations

import json

import pytest

import autocontinue

pytestmark = pytest.mark.local_model


def test_a_local_batch_answers_each_item_in_turn_like_a_single_run(tmp_path):
    items = [{"id": "a", "prompt": "Name three colours."}, {"id": "b", "prompt": "Name three animals."}]
    options = dict(max_tokens_per_call=12, max_rounds=2, seed=3)
    result = autocontinue.batch(
        items,
        backend="local",
        journal=str(tmp_path / "j.sqlite3"),
        output=str(tmp_path / "o.jsonl"),
        concurrency=8,
        **options,
    )
    assert [r.error for r in result.results] == [None, None]
    lines = {
        json.loads(line)["id"]: json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()
    }
    for item in items:
        alone = autocontinue.generate(item["prompt"], backend="local", **options)
        assert lines[item["id"]]["text"] == alone.text
        assert lines[item["id"]]["rounds"] == len(alone.rounds)
