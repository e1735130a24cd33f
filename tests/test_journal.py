"""The SQLite run journal: checkpoints survive, secrets do not, bad files get clear errors."""

from __future__ import annotations

import re
import sqlite3
import stat
import time

import pytest

from autocontinue.errors import JournalError
from autocontinue.events import Finished, Result, RoundFinished, RoundReport, TextDelta
from autocontinue.journal import (
    SCHEMA_VERSION,
    Journal,
    RunRecorder,
    default_journal_path,
    new_run_id,
    redact_request,
    redact_url,
)
from autocontinue.usage import Usage


@pytest.fixture
def journal(tmp_path):
    with Journal(tmp_path / "j.sqlite3") as j:
        yield j


def _round(index: int, out: int = 10, cost: float = 0.001) -> RoundReport:
    return RoundReport(
        index=index,
        strategy="prefill" if index else "initial",
        max_tokens=100,
        stop_reason="max_tokens",
        usage=Usage(input_tokens=5, output_tokens=out),
        seam={"trimmed": " x"},
        cost_usd=cost,
    )


def test_run_ids_are_short_sortable_and_distinct():
    first = new_run_id(1_700_000_000)
    later = new_run_id(1_700_000_001)
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", first)
    assert first < later
    assert len({new_run_id(1_700_000_000) for _ in range(50)}) > 40


def test_default_path_follows_autocontinue_home(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOCONTINUE_HOME", str(tmp_path / "home"))
    assert default_journal_path() == tmp_path / "home" / "journal.sqlite3"


def test_new_journal_is_private_wal_and_versioned(tmp_path):
    path = tmp_path / "sub" / "j.sqlite3"
    with Journal(path) as j:
        j.start_run(backend="local", model="m", request={"prompt": "p"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_existing_world_readable_journal_is_tightened(tmp_path):
    path = tmp_path / "j.sqlite3"
    Journal(path).close()
    path.chmod(0o644)
    Journal(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_checkpoints_rounds_and_finish_round_trip(journal):
    run_id = journal.start_run(backend="anthropic", model="claude-haiku-4-5", request={"prompt": "hi"})
    journal.save_checkpoint(run_id, "Hello", " ")
    journal.record_round(run_id, _round(0), "Hello wor", "ld")
    record = journal.get(run_id)
    assert (record.state, record.text, record.held) == ("running", "Hello wor", "ld")
    assert record.rounds[0].seam == {"trimmed": " x"}
    assert record.checkpoint().rounds[0].usage.output_tokens == 10

    result = Result(
        "Hello world.", "end_turn", [_round(0), _round(1, 7)], Usage(), 0.002, "claude-haiku-4-5", "anthropic"
    )
    journal.finish_run(run_id, result)
    record = journal.get(run_id)
    assert (record.state, record.stop_reason, record.text, record.held) == (
        "finished",
        "end_turn",
        "Hello world.",
        "",
    )
    assert record.usage.output_tokens == 17
    assert record.cost_usd == pytest.approx(0.002)


def test_round_checkpoint_stays_at_the_last_round_end_while_text_streams(journal):
    run_id = journal.start_run(backend="local", model="m", request={})
    journal.record_round(run_id, _round(0), "one two", " ")
    journal.save_checkpoint(run_id, "one two three fo", "ur")
    record = journal.get(run_id)
    assert (record.text, record.held) == ("one two three fo", "ur")
    at_round = record.round_checkpoint()
    assert (at_round.text, at_round.held, len(at_round.rounds)) == ("one two", " ", 1)


def test_run_can_be_found_by_unique_prefix_only(journal):
    a = journal.start_run(backend="local", model="m", request={}, run_id="20260101-000000-aaaa")
    journal.start_run(backend="local", model="m", request={}, run_id="20260101-000000-aabb")
    assert journal.get("20260101-000000-aaa").id == a
    with pytest.raises(KeyError):
        journal.get("20260101-000000-aa")
    with pytest.raises(KeyError):
        journal.get("nope")


def test_latest_unfinished_skips_finished_runs(journal):
    old = journal.start_run(backend="local", model="m", request={}, run_id="20260101-000000-0001")
    done = journal.start_run(backend="local", model="m", request={}, run_id="20260101-000000-0002")
    journal.set_state(old, "interrupted")
    journal.finish_run(done, Result("x", "end_turn", [], Usage(), 0.0, "m", "local"))
    assert journal.latest_unfinished().id == old
    journal.set_state(old, "finished")
    assert journal.latest_unfinished() is None
    assert [r.id for r in journal.list_runs()] == [done, old]


def test_secrets_and_url_credentials_never_reach_the_file(tmp_path):
    path = tmp_path / "j.sqlite3"
    with Journal(path) as j:
        j.start_run(
            backend="anthropic",
            model="m",
            request={
                "prompt": "p",
                "api_key": "sk-ant-SECRET1",
                "headers": {"x-api-key": "sk-ant-SECRET2"},
                "base_url": "https://user:sk-ant-SECRET3@proxy.example:8443/v1?token=SECRET4",
            },
        )
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"SECRET" not in data
    assert b"https://proxy.example:8443/v1" in data


def test_redaction_keeps_ordinary_fields():
    assert redact_request({"prompt": "a://b", "Authorization": "x"}) == {"prompt": "a://b"}
    assert redact_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000"


def test_corrupt_file_gets_a_hint_naming_the_file(tmp_path):
    path = tmp_path / "j.sqlite3"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(JournalError) as info:
        Journal(path)
    assert str(path) in info.value.one_line()
    assert "move it away" in info.value.one_line()


def test_newer_schema_is_refused_with_an_upgrade_hint(tmp_path):
    path = tmp_path / "j.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(JournalError, match="newer") as info:
        Journal(path)
    assert "upgrade" in info.value.one_line()


def test_foreign_sqlite_file_is_not_taken_over(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="not an autocontinue journal"):
        Journal(path)


def test_unwritable_directory_is_a_journal_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(JournalError, match="cannot open the journal"):
        Journal(blocker / "j.sqlite3")


def test_recorder_checkpoints_text_while_streaming(journal):
    recorder = RunRecorder(journal, backend="local", model="m", request={"prompt": "p"}, interval=0.05)
    run_id = recorder.start()
    recorder.on_event(TextDelta("Once upon", held=" "))
    deadline = time.monotonic() + 5
    while journal.get(run_id).text != "Once upon" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (journal.get(run_id).text, journal.get(run_id).held) == ("Once upon", " ")
    recorder.stop("interrupted")
    assert journal.get(run_id).state == "interrupted"


def test_recorder_commits_each_round_end_with_its_text(journal):
    recorder = RunRecorder(journal, backend="local", model="m", request={}, interval=60)
    run_id = recorder.start()
    recorder.on_event(TextDelta("abc", held="d"))
    recorder.on_event(RoundFinished(_round(0), 3))
    record = journal.get(run_id)
    assert (record.text, record.held, len(record.rounds)) == ("abc", "d", 1)
    result = Result("abcdef", "end_turn", [_round(0), _round(1)], Usage(), 0.0, "m2", "local")
    recorder.on_event(TextDelta("def"))
    recorder.on_event(Finished(result))
    record = journal.get(run_id)
    assert (record.state, record.text, record.model, len(record.rounds)) == ("finished", "abcdef", "m2", 2)


def test_recorder_resumes_an_existing_run_appending_new_text(journal):
    run_id = journal.start_run(backend="local", model="m", request={})
    journal.save_checkpoint(run_id, "first ", "")
    journal.set_state(run_id, "interrupted")
    recorder = RunRecorder(
        journal, backend="local", model="m", request={}, run_id=run_id, text="first ", interval=60
    )
    recorder.start()
    assert journal.get(run_id).state == "running"
    recorder.on_event(TextDelta("second"))
    recorder.stop("failed", error="boom")
    record = journal.get(run_id)
    assert (record.text, record.state, record.error) == ("first second", "failed", "boom")


def _open_and_close(path: str) -> None:
    Journal(path).close()


def test_processes_opening_a_new_journal_at_once_all_succeed(tmp_path):
    # A run creating the journal while another command reads it raced on the schema
    # ("table runs already exists"); the check and creation now share one write lock.
    import multiprocessing

    for attempt in range(3):
        path = str(tmp_path / f"race{attempt}.sqlite3")
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=_open_and_close, args=(path,)) for _ in range(6)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(30)
        assert [proc.exitcode for proc in procs] == [0] * 6
        with Journal(path) as journal:
            assert journal.list_runs(5) == []


def test_a_run_id_taken_in_the_same_second_is_drawn_again_not_reported_as_a_broken_journal(
    journal, monkeypatch
):
    """Ids are the second plus 4 random hex digits: hundreds of batch items starting in one
    second draw the same one now and then (found at 300 items). The clash is redrawn."""
    from autocontinue.journal import store

    first = journal.start_run(backend="local", model="m", request={})
    drawn = iter([first, first, "20260101-000000-beef"])
    monkeypatch.setattr(store, "new_run_id", lambda now=None: next(drawn))
    assert journal.start_run(backend="local", model="m", request={}) == "20260101-000000-beef"
    with pytest.raises(JournalError, match="already exists"):
        journal.start_run(backend="local", model="m", request={}, run_id=first)


def test_a_round_of_a_run_that_is_gone_is_a_journal_error_not_a_raw_sqlite_one(journal):
    """Only start_run answers a clash itself; any other broken constraint is the journal's
    one-line error (a raw sqlite3.IntegrityError would be an internal error)."""
    with pytest.raises(JournalError):
        journal.record_round("20260101-000000-gone", _round(0), "text", "")
