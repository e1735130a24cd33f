"""The benchmarks still run: the cheapest parts of bench/ in a tiny configuration (< 30 s).

Real parts only: the emulator over HTTP with the official SDK, the real engine over
ScriptedBackend, matplotlib for the page. Nothing here times anything.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/ lives beside src/, not in it

pytest.importorskip("anthropic")
pytest.importorskip("matplotlib")

from bench import common, cost, engine_overhead, length, report  # noqa: E402


@pytest.fixture
def out_dir(tmp_path):
    previous = common.out_dir()
    common.set_out_dir(tmp_path / "out")
    yield tmp_path / "out"
    common.set_out_dir(previous)


def test_length_score_is_longbench_write_s_l():
    assert length.score(1000, 1000) == 100
    assert length.score(1000, 500) == pytest.approx(50)  # too short: x/y = 2
    assert length.score(1000, 2500) == pytest.approx(50)  # too long: y/x = 2.5
    assert length.score(1000, 4000) == 0
    assert length.score(1000, 0) == 0


def test_length_subset_takes_at_most_two_prompts_per_required_length():
    rows = length.subset(length.load_prompts())
    assert rows and all(row["length"] <= length.MAX_REQUIRED for row in rows)
    counts: dict[int, int] = {}
    for row in rows:
        counts[row["length"]] = counts.get(row["length"], 0) + 1
    assert max(counts.values()) == 2


def test_cost_bench_bills_every_method_and_only_autocontinue_and_loops_deliver_whole(out_dir):
    rows = cost.measure("claude-sonnet-4-6", 6000, log=lambda *_: None)
    lower = rows["lower bound (one uncapped call)"]
    assert lower["cost_usd"] > 0 and lower["requests"] == 1
    defaults = rows["autocontinue (defaults)"]
    assert defaults["exact"] and defaults["requests"] == 1
    capped = rows["autocontinue (4,096/call)"]
    assert capped["exact"]
    seed = rows["seed loop (prefill): fails on this model"]
    assert seed["stop"] == "error" and "prefill" in seed["error"]
    assert rows["seed loop, user-turn equivalent (4,096/call, no cache)"]["exact"]


def test_engine_overhead_and_join_run_the_real_engine_exactly(out_dir):
    row = engine_overhead.overhead_per_round(rounds=3, per_call=100, repeats=1)
    assert row["rounds"] == 3 and row["engine_ms_per_round"] > 0
    joined = engine_overhead.join_child(20_000, 4096, trace=True)
    assert joined["exact"] and joined["rounds"] == 5 and joined["tracemalloc_peak_mb"] > 0


def test_report_writes_page_and_plots_from_saved_results(out_dir, tmp_path):
    data = {
        "sizes": [3000],
        "models": ["claude-haiku-4-5"],
        "per_call": 4096,
        "results": {
            "claude-haiku-4-5": {"3000": cost.measure("claude-haiku-4-5", 3000, log=lambda *_: None)}
        },
    }
    common.save("cost", data)
    page = report.write(tmp_path / "docs" / "benchmarks.md")
    text = page.read_text()
    assert "## 1. Cost of one long answer" in text and "seed loop (prefill, 4,096/call, no cache)" in text
    assert "Not measured in this run" in text  # the parts not run here say so
    assert (tmp_path / "docs" / "img" / "cost.png").stat().st_size > 1000
