"""First contact (issue 13): the command line behaves like a well-made tool.

Typos are not sent as paid prompts, ``--help`` shows the run options and every exit code,
stdin is read when piped, ``--json`` works for every listing, ``resume`` writes the run's own
``-o`` file, a missing ``--journal`` is an error, permanent failures are not offered as
resumable, and every error has a hint. Runs go to the emulator over real HTTP; the pipe and
stdin tests run the real CLI in a subprocess.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import emulator_stats, reset_emulator

from autocontinue import errors
from autocontinue.cli import cli
from autocontinue.cli.errors import EXIT_CODES, error_line
from autocontinue.journal import Journal, default_journal_path
from autocontinue.options import OPTION_FIELDS, Options

MODEL = "claude-haiku-4-5"
PROMPT = "Write a long story about a lighthouse."
SMALL = ["--model", MODEL, "--max-tokens-per-call", "60"]
KEY = "sk-ant-api03-test-key"
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def emulator():
    from autocontinue.emulator import run_emulator

    with run_emulator(length=400) as url:
        yield url


@pytest.fixture
def api_env(emulator, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    return emulator


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


def _cli(*args: str, env: dict[str, str] | None = None, input: bytes | None = None, timeout: float = 240):
    return subprocess.run(
        [sys.executable, "-m", "autocontinue", *args],
        capture_output=True,
        input=input,
        timeout=timeout,
        env=env or dict(os.environ),
    )


def _env(url: str) -> dict[str, str]:
    return dict(os.environ, ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY=KEY)


# -- a typo is not a paid prompt ------------------------------------------------------------


@pytest.mark.parametrize(
    ("typo", "command"), [("rusn", "runs"), ("shwo", "show"), ("resmue", "resume"), ("model", "models")]
)
def test_a_one_word_typo_of_a_command_is_refused_before_any_call(api_env, typo, command):
    reset_emulator(api_env)
    result = invoke(typo)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert f"did you mean {command}?" in result.stderr and f"autocontinue run {typo}" in result.stderr
    assert emulator_stats(api_env)["requests"] == 0


@pytest.mark.parametrize("form", [["run", "rusn", *SMALL], ["--", "rusn"]])
def test_a_real_one_word_prompt_can_still_be_sent(api_env, form, monkeypatch):
    result = invoke(*form, "-q") if form[0] == "run" else invoke(*SMALL, "-q", *form)
    assert result.exit_code == 0, result.stderr
    assert result.stdout
    assert Journal(default_journal_path()).list_runs()[0].request["prompt"] == "rusn"


def test_ordinary_one_word_prompts_are_not_mistaken_for_typos(api_env):
    result = invoke("Lighthouses", *SMALL, "-q")
    assert result.exit_code == 0, result.stderr


# -- --help ---------------------------------------------------------------------------------


def test_top_level_help_shows_the_run_options_and_every_exit_code():
    result = _cli("--help")
    assert result.returncode == 0
    text = result.stdout.decode()
    for flag in (
        "--max-tokens-per-call",
        "--max-words",
        "--effort",
        "--thinking",
        "--base-url",
        "--server",
        "--json",
        "--journal",
        "--raw",
    ):
        assert flag in text, flag
    codes = text.split("Exit codes:")[1]
    for code, _ in EXIT_CODES:
        assert re.search(rf"^\s+{code}\s", codes, re.M), code


def test_every_options_field_is_a_run_option_with_its_own_help():
    from autocontinue.cli.options import CLI_EXCLUDED, CLI_META

    offered = [name for name in OPTION_FIELDS if name not in CLI_EXCLUDED]
    assert set(offered) <= set(CLI_META), set(offered) - set(CLI_META)
    text = _cli("run", "--help").stdout.decode()
    for name in offered:
        flag = CLI_META[name].flag or "--" + name.replace("_", "-")
        assert flag in text, flag
    assert "openai" in text and "low|medium|high|xhigh|max" in text and "adaptive|off" in text


def test_the_journal_stores_the_request_as_options_to_record(api_env):
    result = invoke(PROMPT, *SMALL, "--max-words", "40", "--seed", "-1", "--stop", "END", "-q")
    assert result.exit_code == 0, result.stderr
    request = Journal(default_journal_path()).list_runs()[0].request
    assert request["prompt"] == PROMPT and request["backend"] == "anthropic"
    options = Options.from_record(request)
    assert (options.max_words, options.seed, options.stop_sequences, options.max_tokens_per_call) == (
        40,
        -1,
        ("END",),
        60,
    )
    recordable = {f.name for f in dataclasses.fields(Options)} - {
        "backend",
        "client",
        "resume",
        "retry",
        "extra",
    }
    assert recordable <= set(request)


def test_max_words_ends_the_run_with_exit_0(api_env):
    result = invoke(PROMPT, *SMALL, "--max-words", "30", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["stop_reason"] in ("max_words", "end_turn")


def test_the_readme_exit_code_table_matches_the_cli():
    text = README.read_text(encoding="utf-8")
    table = dict(re.findall(r"^\|\s*`?(\d+)`?\s*\|\s*(.+?)\s*\|\s*$", text, re.M))
    assert {str(code) for code, _ in EXIT_CODES} <= set(table), table
    for code, meaning in EXIT_CODES:
        resumable_here = "resumable" in meaning and "not resumable" not in meaning
        resumable_there = (
            "resumable" in table[str(code)].lower() and "not resumable" not in table[str(code)].lower()
        )
        assert resumable_here == resumable_there, (code, table[str(code)])


# -- stdin ----------------------------------------------------------------------------------


def test_a_piped_stdin_is_the_prompt_when_none_is_given(emulator):
    piped = _cli(*SMALL, "--no-journal", env=_env(emulator), input=PROMPT.encode())
    given = _cli(PROMPT, *SMALL, "--no-journal", env=_env(emulator))
    assert piped.returncode == given.returncode == 0, piped.stderr
    assert piped.stdout == given.stdout != b""


def test_prompt_and_piped_stdin_together_say_which_one_wins(emulator):
    both = _cli(PROMPT, *SMALL, "--no-journal", env=_env(emulator), input=b"another prompt entirely")
    alone = _cli(PROMPT, *SMALL, "--no-journal", env=_env(emulator))
    assert both.returncode == 0, both.stderr
    assert b"stdin is ignored: the PROMPT argument is the prompt" in both.stderr
    assert both.stdout == alone.stdout


# -- --json everywhere ----------------------------------------------------------------------


def test_runs_models_and_show_speak_json(api_env):
    run_id = json.loads(invoke(PROMPT, *SMALL, "--json").stdout)["run_id"]
    listed = json.loads(invoke("runs", "--json").stdout)
    assert listed[0]["id"] == run_id and listed[0]["state"] == "finished" and listed[0]["rounds"] > 1
    shown = json.loads(invoke("show", run_id, "--json").stdout)
    assert shown["text"] == Journal(default_journal_path()).get(run_id).text
    assert len(shown["rounds"]) == listed[0]["rounds"] and "seam" in shown["rounds"][0]
    catalogue = json.loads(invoke("models", "--json").stdout)
    assert any(m["id"] == MODEL and m["prefill"] in (True, False) for m in catalogue)


def test_show_says_1_round(api_env):
    run_id = json.loads(invoke(PROMPT, "--model", MODEL, "--json").stdout)["run_id"]
    shown = invoke("show", run_id, "--seams")
    assert ", 1 round\n" in shown.stdout and "1 rounds" not in shown.stdout


# -- the journal path -----------------------------------------------------------------------


@pytest.mark.parametrize("command", [["runs"], ["show", "20260101-000000-aaaa"]])
def test_a_journal_path_that_does_not_exist_is_an_error_not_an_empty_list(tmp_path, command):
    missing = tmp_path / "nowhere" / "journal.sqlite3"
    result = invoke(*command, "--journal", str(missing))
    assert result.exit_code == 2
    assert f"there is no journal at {missing}" in result.stderr and "hint:" in result.stderr
    assert not missing.parent.exists()


# -- permanent and transient failures -------------------------------------------------------


def test_a_refused_key_is_permanent_not_offered_as_resumable(monkeypatch, start_emulator):
    url = start_emulator(length=400, api_key="the-right-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    result = invoke(PROMPT, *SMALL)
    assert result.exit_code == 2, result.stderr
    assert "resume with" not in result.stderr and "hint:" in result.stderr
    journal = Journal(default_journal_path())
    assert journal.latest_unfinished() is None
    assert journal.list_runs()[0].state == "failed"


def test_an_unknown_model_is_permanent(api_env):
    result = invoke(PROMPT, "--model", "claude-no-such-model-9", "--max-tokens-per-call", "60")
    assert result.exit_code == 2, result.stderr
    assert "resume with" not in result.stderr


#: Every request from the third on is refused as overloaded: the run gets two rounds of text,
#: then fails after the SDK's and the engine's retries (about 40 s).
ALWAYS_OVERLOADED_FROM_3 = ",".join(f"529@{n}" for n in range(3, 200))


@pytest.mark.slow
def test_a_service_that_keeps_failing_exits_3_resumable_json_keeps_the_text_and_resume_writes_the_o_file(
    monkeypatch, start_emulator, api_env, tmp_path
):
    target = tmp_path / "answer.md"
    monkeypatch.setenv("ANTHROPIC_BASE_URL", start_emulator(length=400, faults=ALWAYS_OVERLOADED_FROM_3))
    failed = invoke(PROMPT, *SMALL, "--json", "-o", str(target))
    assert failed.exit_code == 3, failed.stderr
    run_id = Journal(default_journal_path()).latest_unfinished().id
    assert failed.stderr.strip().endswith(f"resume with: autocontinue resume {run_id}")
    data = json.loads(failed.stdout)
    assert data["run_id"] == run_id and data["resumable"] is True and data["exit_code"] == 3
    assert data["text"] and data["text"] == Journal(default_journal_path()).get(run_id).text
    assert not target.exists()

    monkeypatch.setenv("ANTHROPIC_BASE_URL", api_env)
    resumed = invoke("resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert f"writing the answer to {target}" in resumed.stderr and resumed.stdout == ""
    assert target.read_text(encoding="utf-8") == invoke(PROMPT, *SMALL, "-q", "--no-journal").stdout


def _error_classes() -> list[type[errors.AutocontinueError]]:
    return [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, errors.AutocontinueError)
    ]


@pytest.mark.parametrize("kind", _error_classes(), ids=lambda k: k.__name__)
def test_every_autocontinue_error_reaches_the_user_with_a_hint(kind):
    line = error_line(kind("something went wrong"))
    assert line.startswith("something went wrong (hint: ") and line.endswith(")")


# -- bad endpoints and arguments ------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://[::1", "localhost:8080", "http://host:port/"])
def test_an_unparseable_base_url_is_exit_2_at_once(url):
    result = _cli(PROMPT, env=dict(os.environ, ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY=KEY), timeout=240)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "ANTHROPIC_BASE_URL" in lines[0] and "hint:" in lines[0]


def test_a_missing_api_key_is_reported_before_the_sdk_is_imported():
    code = (
        "import sys; from autocontinue.cli import main\n"
        "try:\n    main(['hello there', '--backend', 'anthropic'])\n"
        "except SystemExit as done:\n    print(done.code, 'anthropic' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, timeout=240)
    assert result.stdout.decode().split() == ["2", "False"], result.stderr
    assert b"no Anthropic API key" in result.stderr


def test_an_argument_that_is_not_utf8_is_exit_2_in_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "autocontinue", b"caf\xe9 story"], capture_output=True, timeout=240
    )
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "not valid UTF-8" in lines[0] and "\\xe9" in lines[0]


def test_seed_minus_one_is_accepted_like_the_python_api(api_env):
    result = invoke(PROMPT, *SMALL, "--seed", "-1", "-q")
    assert result.exit_code == 0, result.stderr


def test_a_prompt_too_large_for_the_context_is_an_error_not_a_finished_empty_run(api_env, tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("word " * 1_700_000, encoding="utf-8")  # 8.5 MB, ~1.7M tokens
    result = invoke("-f", str(big), "--model", MODEL, "--json")
    assert result.exit_code == 2, result.stderr
    assert "does not fit the context window of claude-haiku-4-5" in result.stderr
    assert "resume with" not in result.stderr
    assert json.loads(result.stdout)["resumable"] is False
    record = Journal(default_journal_path()).list_runs()[0]
    assert record.state == "failed"


def test_a_stalled_run_exits_1_stays_resumable_and_show_counts_the_idle_rounds(monkeypatch, start_emulator):
    # The emulator's answer ends after 200 tokens; asking for 5,000 words makes every later
    # round add nothing, until the engine gives up with "stalled".
    monkeypatch.setenv("ANTHROPIC_BASE_URL", start_emulator(length=200))
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    result = invoke(PROMPT, "--model", MODEL, "--max-tokens-per-call", "100", "--min-words", "5000")
    assert result.exit_code == 1, result.stderr
    journal = Journal(default_journal_path())
    record = journal.latest_unfinished()
    assert record is not None and record.stop_reason == "stalled" and record.state == "interrupted"
    assert result.stderr.strip().endswith(f"try again with: autocontinue resume {record.id}")
    assert record.stalled_rounds >= 1
    shown = json.loads(invoke("show", record.id, "--json").stdout)
    assert shown["stalled_rounds"] == record.stalled_rounds and shown["stop_reason"] == "stalled"
    seams = invoke("show", record.id, "--seams").stdout
    assert f"{record.stalled_rounds} round{'s' if record.stalled_rounds != 1 else ''} added no text" in seams


def test_a_404_from_a_wrong_base_url_path_is_not_called_an_unknown_model(emulator):
    result = _cli(PROMPT, "--model", MODEL, env=_env(emulator + "/wrong/path"), timeout=240)
    assert result.returncode == 2, result.stderr
    line = result.stderr.decode().strip().splitlines()[-1]
    assert "404" in line and "model" not in line.split("(hint")[0] and "base URL" in line
    assert "resume with" not in line
