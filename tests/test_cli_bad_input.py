"""Every input mistake a user can make ends in one line on stderr with a hint and exit 2."""

from __future__ import annotations

import sqlite3
import sys

import pytest
from click.testing import CliRunner

from autocontinue.cli import cli
from autocontinue.journal import SCHEMA_VERSION, Journal, default_journal_path


def invoke(*args: str, input: bytes | str | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


def assert_one_line_error(result, *fragments: str, code: int = 2) -> str:
    """Exit ``code``, nothing on stdout, exactly one line on stderr containing each fragment."""
    assert result.exit_code == code, (result.exit_code, result.stderr, result.exception)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.mark.parametrize("prompt", ["", "   \n\t"])
def test_empty_prompt_is_refused(prompt):
    assert_one_line_error(invoke(prompt), "prompt is empty", "hint:")


def test_missing_prompt_is_refused_with_a_hint():
    assert_one_line_error(invoke("--max-rounds", "3"), "no prompt given", "-f FILE")


def test_empty_stdin_prompt_is_refused():
    assert_one_line_error(invoke("-", input=b""), "prompt is empty")


def test_unreadable_prompt_file_is_refused(tmp_path):
    line = assert_one_line_error(invoke("-f", str(tmp_path / "missing.txt")), "cannot read", "missing.txt")
    assert "hint:" in line


def test_directory_as_prompt_file_is_refused(tmp_path):
    assert_one_line_error(invoke("-f", str(tmp_path)), "cannot read")


def test_non_utf8_prompt_file_is_refused(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\u00e9 au lait".encode("latin-1"))
    assert_one_line_error(invoke("-f", str(path)), "not UTF-8", "0xe9", "iconv")


def test_non_utf8_stdin_is_refused():
    assert_one_line_error(invoke("-f", "-", input=b"\xff\xfe\x00bad"), "stdin is not UTF-8")


def test_prompt_and_file_together_are_refused(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("hello")
    assert_one_line_error(invoke("hello", "-f", str(path)), "not both")


def test_unknown_backend_is_refused():
    assert_one_line_error(invoke("hi", "--backend", "gemini"), "--backend", "'gemini'", "--help")


def test_unknown_model_is_refused_before_any_call(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # nothing listens: no call may be made
    assert_one_line_error(invoke("hi", "--model", "gpt-4"), "unknown model", "gpt-4", "hint:")


def test_unknown_model_on_the_local_backend_is_refused():
    pytest.importorskip("llama_cpp")
    assert_one_line_error(invoke("hi", "--backend", "local", "--model", "gpt-4"), "gpt-4", "hint:")


@pytest.mark.parametrize(
    "args",
    [
        ["--max-rounds", "0"],
        ["--max-rounds", "-1"],
        ["--max-rounds", "many"],
        ["--max-tokens-per-call", "10000000"],
        ["--max-tokens-per-call", "0"],
        ["--max-output-tokens", "-5"],
        ["--min-words", "0"],
        ["--temperature", "5"],
        ["--temperature", "-0.1"],
        ["--strategy", "sideways"],
    ],
)
def test_negative_or_absurd_numbers_are_refused(args):
    assert_one_line_error(invoke("hi", *args), args[0], "hint:")


def test_max_tokens_per_call_above_the_models_cap_is_refused(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    line = assert_one_line_error(
        invoke("hi", "--model", "claude-haiku-4-5", "--max-tokens-per-call", "200000"), "64000"
    )
    assert "hint:" in line


def test_nan_temperature_is_refused(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    assert_one_line_error(invoke("hi", "--temperature", "nan"), "temperature")


def test_blank_stop_sequence_is_refused(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    assert_one_line_error(invoke("hi", "--stop", "  "), "stop sequence")


def test_missing_api_key_says_how_to_set_it():
    assert_one_line_error(invoke("hi", "--backend", "anthropic"), "ANTHROPIC_API_KEY")


def test_missing_model_file_is_refused(tmp_path):
    assert_one_line_error(
        invoke("hi", "--model-path", str(tmp_path / "nope.gguf")), "--model-path", "does not exist"
    )


def test_output_into_a_missing_directory_is_refused_before_any_call(tmp_path):
    assert_one_line_error(invoke("hi", "-o", str(tmp_path / "no" / "such" / "a.txt")), "does not exist")


def test_journal_and_no_journal_together_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    assert_one_line_error(invoke("hi", "--journal", str(tmp_path / "j"), "--no-journal"), "contradict")


def test_unknown_run_id_is_refused_by_resume_and_show():
    assert_one_line_error(invoke("resume", "20990101-000000-ffff"), "no run", "autocontinue runs")
    assert_one_line_error(invoke("show", "nope"), "no run 'nope'")


def _corrupt_journal():
    path = default_journal_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00garbage, not a database\x00" * 200)
    return path


@pytest.mark.parametrize("command", [["hi", "--backend", "anthropic"], ["runs"], ["resume"], ["show", "x"]])
def test_corrupt_journal_names_the_file_and_says_to_move_it(command, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    path = _corrupt_journal()
    assert_one_line_error(invoke(*command), str(path), "move it away")


def test_journal_from_a_newer_version_is_refused():
    path = default_journal_path()
    Journal(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    assert_one_line_error(invoke("runs"), "newer", "upgrade")


def test_unknown_option_is_one_line_not_a_usage_dump():
    assert_one_line_error(invoke("hi", "--frobnicate"), "No such option", "--help")


def test_resume_with_no_journal_is_refused():
    assert_one_line_error(invoke("resume", "--no-journal"), "--no-journal")


def test_missing_emulator_module_gives_a_hint_not_a_traceback(monkeypatch):
    monkeypatch.setitem(sys.modules, "autocontinue.emulator.command", None)  # as if not installed
    assert_one_line_error(invoke("emulate", "--port", "0"), "emulator", "pip install")
