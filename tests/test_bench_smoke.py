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


def test_report_keeps_published_sections_whose_results_are_not_in_out(out_dir, tmp_path):
    page = tmp_path / "docs" / "benchmarks.md"
    page.parent.mkdir(parents=True)
    published = "## 8. OpenAI-compatible backend: K rounds on a real llama-server\n\nFigures from 3 May.\n"
    published += "- llama-server, 8 rounds: **1.05x** (target <= 1.10x: met).\n"
    page.write_text("# Benchmarks\n\n" + published + "\n## 4. Engine overhead, an old title\n\nold figures\n")
    common.save(
        "startup",
        {
            "measured": "2026-12-01 21:00 UTC",
            "load_average": 0.5,
            "cpus": 2,
            "python": "3.11",
            "repeat": 1,
            "help_imports": ["autocontinue.cli"],
            "results": {
                name: {"median_ms": ms, "best_ms": ms, "cpu_median_ms": ms, "cpu_best_ms": ms, "exit_code": 0}
                for name, ms in (
                    ("interpreter", 20.0),
                    ("help", 60.0),
                    ("help_module", 70.0),
                    ("missing_key", 80.0),
                )
            },
        },
    )
    text = report.write(page).read_text()
    assert published.rstrip() in text  # no openai_rounds.json here: the published section is kept
    assert "old figures" in text  # kept under its own heading although the writer's title changed
    assert "## 10. Start-up of the command line" in text and "**60 ms** median" in text  # made from JSON
    glance = text.split("## Targets at a glance", 1)[1].split("\n## ", 1)[0]
    assert "1.05x" in glance and "**60 ms** median" in glance  # kept and new verdicts are both listed
    assert "## 1. Cost of one long answer" in text and "Not measured in this run" in text  # never published
