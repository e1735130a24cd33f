"""The command line's pure parts: routing, tables, summaries, resume points, atomic writes."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from autocontinue.catalogue import all_models
from autocontinue.cli import cli
from autocontinue.cli.history import runs_table, seam_lines
from autocontinue.cli.models import models_table
from autocontinue.cli.output import write_atomically
from autocontinue.cli.progress import progress_line, summary_line
from autocontinue.cli.resume import resume_point
from autocontinue.events import Result, RoundReport
from autocontinue.journal import Journal
from autocontinue.usage import Usage


def test_no_arguments_prints_help_and_exits_0():
    result = CliRunner().invoke(cli, [])
    assert result.exit_code == 0
    assert "Usage: autocontinue" in result.stdout and "resume" in result.stdout


def test_version_and_help_are_not_taken_for_prompts():
    assert CliRunner().invoke(cli, ["--version"]).stdout.startswith("autocontinue, version")
    assert "--max-tokens-per-call" in CliRunner().invoke(cli, ["run", "--help"]).stdout


def test_models_lists_every_catalogue_model_with_prefill_and_prices():
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 1 + len(all_models())
    sonnet46 = next(line for line in lines if line.startswith("claude-sonnet-4-6 "))
    assert sonnet46.split()[1:5] == ["anthropic", "1M", "128k", "no"]
    assert models_table(all_models())[0].split()[:2] == ["MODEL", "BACKEND"]


def test_summary_names_stop_reason_rounds_tokens_cost_and_run():
    rounds = [RoundReport(index=i, strategy="prefill", max_tokens=10, usage=Usage(5, 10)) for i in range(3)]
    result = Result(
        "x", "end_turn", rounds, Usage(15, 30), 0.01234, "m", "anthropic", run_id="20260101-000000-abcd"
    )
    line = summary_line(result, elapsed=2.5)
    assert line == "end_turn · 3 rounds · 30 tokens out, 15 in · 2.5 s · $0.0123 · run 20260101-000000-abcd"


def test_budget_summary_says_which_option_to_raise():
    result = Result("x", "max_output_tokens", [], Usage(), 0.0, "m", "local")
    assert "raise --max-output-tokens" in summary_line(result)


def test_progress_line_shows_round_strategy_tokens_rate_and_cost():
    assert progress_line(round_index=2, strategy="prefill", tokens=1200, elapsed=10, cost=0.5) == (
        "round 3 · prefill · ~1,200 tokens · 120 tok/s · $0.5000"
    )


def test_runs_table_and_seam_lines_describe_a_run(tmp_path):
    with Journal(tmp_path / "j.sqlite3") as journal:
        run_id = journal.start_run(backend="anthropic", model="claude-haiku-4-5", request={})
        report = RoundReport(
            index=1,
            strategy="user-turn",
            max_tokens=9,
            stop_reason="max_tokens",
            usage=Usage(1, 9),
            seam={"strategy": "user-turn", "trimmed_echo": "the end", "notes": []},
            chars=40,
            cost_usd=0.5,
        )
        journal.record_round(run_id, report, "text", "")
        record = journal.get(run_id)
    header, row = runs_table([record])
    assert header.split() == ["ID", "WHEN", "MODEL", "ROUNDS", "TOKENS", "COST", "STATE"]
    assert row.startswith(run_id) and row.endswith("running") and "$0.5000" in row
    assert seam_lines(record) == [
        'round 2: user-turn, stop max_tokens, 9 tokens out, +40 chars; seam: trimmed_echo="the end"'
    ]


def test_seeded_local_runs_replay_from_the_start_and_others_resume_from_the_last_checkpoint(tmp_path):
    with Journal(tmp_path / "j.sqlite3") as journal:
        for backend, seed in [("local", 3), ("local", None), ("anthropic", None)]:
            run_id = journal.start_run(backend=backend, model="m", request={"prompt": "p", "seed": seed})
            journal.record_round(
                run_id, RoundReport(index=0, strategy="initial", max_tokens=9), "round end", " "
            )
            journal.save_checkpoint(run_id, "round end and more", "")
            point = resume_point(journal.get(run_id))
            if seed is not None and backend == "local":
                assert (point.text, point.rounds) == ("", [])
            else:
                assert point.text == "round end and more" and len(point.rounds) == 1


def test_atomic_write_replaces_the_file_whole_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "answer.md"
    target.write_text("old")
    write_atomically(target, "new \u00e9 text")
    assert target.read_text(encoding="utf-8") == "new \u00e9 text"
    assert [p.name for p in tmp_path.iterdir()] == ["answer.md"]


@pytest.mark.parametrize("word", ["runs", "models"])
def test_a_prompt_that_is_a_command_name_needs_run(word):
    """``autocontinue models`` lists models; ``autocontinue run models`` would send the prompt."""
    result = CliRunner().invoke(cli, ["run", word, "--max-rounds", "0"])
    assert result.exit_code == 2 and "--max-rounds" in result.stderr


def test_the_progress_token_count_never_goes_backwards():
    from autocontinue.cli.progress import Progress
    from autocontinue.events import RoundFinished, RoundStarted, TextDelta

    progress = Progress(live=False, quiet=True)
    shown = []
    progress.on_event(RoundStarted(index=0, strategy="initial", max_tokens=100))
    for _ in range(10):
        progress.on_event(TextDelta("x" * 40))  # 400 characters: about 100 tokens estimated
        shown.append(progress.shown_tokens())
    # The round reports fewer tokens than the estimate (a seam trimmed text, denser tokens).
    progress.on_event(
        RoundFinished(
            RoundReport(index=0, strategy="initial", max_tokens=100, usage=Usage(output_tokens=60)), 400
        )
    )
    shown.append(progress.shown_tokens())
    progress.on_event(RoundStarted(index=1, strategy="prefill", max_tokens=100))
    for _ in range(20):
        progress.on_event(TextDelta("y" * 20))
        shown.append(progress.shown_tokens())
    assert shown == sorted(shown) and shown[-1] >= 160
