"""The journal file: SQLite schema and migrations, writes, reads, and the run lock.

One row per run (the request minus secrets, state, owner process, totals), one row per
finished round, and one checkpoint per run: the answer text emitted so far plus the held tail,
and the same pair as it stood at the end of the last finished round (a seeded local model
replays the interrupted round from there, so its resumed text is the uninterrupted one). Each
write is its own committed transaction in WAL mode, so a run killed with ``kill -9`` keeps
every checkpoint written before the kill, and ``autocontinue resume`` continues from the last
one.

A run is driven by one process at a time: the row names its owner (host, pid and the pid's
start time); ``claim_run`` takes a run over inside one write transaction, and refuses while the
owner lives (a stale owner, a dead process or a reused pid, is taken over).

The file lives at ``$AUTOCONTINUE_HOME/journal.sqlite3`` (default: the platformdirs user data
directory) and is private to its owner (see ``files``). The schema version sits in
``PRAGMA user_version``; a newer or unknown schema and a corrupt file raise JournalError with
a hint, never a raw sqlite3 error.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import JournalError
from ..events import Result, RoundReport
from .files import default_journal_path, prepare_journal_file, tighten_journal_file
from .records import RUN_STATES, RunRecord, new_run_id, owner_alive, process_start, redact_request

__all__ = ["SCHEMA_VERSION", "Journal", "RunBusyError", "default_journal_path"]

#: The schema this code writes; ``PRAGMA user_version`` of a journal it created.
SCHEMA_VERSION = 2

_SCHEMA_V1 = """
CREATE TABLE runs (
    id          TEXT PRIMARY KEY,
    created     REAL NOT NULL,
    updated     REAL NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('running', 'finished', 'failed', 'interrupted')),
    backend     TEXT NOT NULL,
    model       TEXT NOT NULL,
    request     TEXT NOT NULL,
    stop_reason TEXT,
    error       TEXT,
    host        TEXT,
    pid         INTEGER
);
CREATE TABLE rounds (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx     INTEGER NOT NULL,
    report  TEXT NOT NULL,
    PRIMARY KEY (run_id, idx)
);
CREATE TABLE checkpoints (
    run_id     TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    text       TEXT NOT NULL,
    held       TEXT NOT NULL,
    updated    REAL NOT NULL,
    round_text TEXT NOT NULL DEFAULT '',
    round_held TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_by_created ON runs(created);
"""

#: Version 2: the owner's process start time (the run lock), stalled rounds, the -o file.
_SCHEMA_V2 = """
ALTER TABLE runs ADD COLUMN proc_start TEXT;
ALTER TABLE runs ADD COLUMN stalled_rounds INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN output TEXT;
"""

#: Migrations from version N-1 to N, applied in order; index 0 creates version 1.
_MIGRATIONS = [_SCHEMA_V1, _SCHEMA_V2]

_OWN_START = process_start(os.getpid())


class RunBusyError(JournalError):
    """Another live process is driving this run."""


class Journal:
    """A connection to one journal file. Safe to share between threads (one lock)."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path).expanduser()
        if not create and not self.path.exists():
            raise JournalError(
                f"there is no journal at {self.path}",
                hint="check the path; without --journal the default journal is used",
            )
        self._lock = threading.RLock()
        self._conn = self._open()

    # -- opening -----------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        created = prepare_journal_file(self.path)
        try:
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: every commit survives a killed process (not a power cut).
            conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate(conn)
            if not created:
                tighten_journal_file(self.path)
        except JournalError:
            raise
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from None
        return conn

    def _corrupt(self, exc: Exception) -> JournalError:
        return JournalError(
            f"the journal {self.path} cannot be read ({exc})",
            hint=f"move it away (mv {self.path} {self.path}.broken) and a new one is made; "
            "or pass --journal PATH / --no-journal",
        )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Check the schema version and bring it up to date, holding the write lock throughout.

        Two processes may open a new journal at once (a run starting while ``runs`` looks):
        the check and the creation happen in one IMMEDIATE transaction, so the second waits
        and then finds the tables made.
        """
        if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return  # up to date: no write lock needed (a read-only journal can still be read)
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise JournalError(
                    f"the journal {self.path} has schema version {version}, newer than this "
                    f"autocontinue understands ({SCHEMA_VERSION})",
                    hint="upgrade autocontinue, or pass --journal PATH to use another file",
                )
            if version == 0 and _has_tables(conn):
                raise JournalError(
                    f"{self.path} is an SQLite file but not an autocontinue journal",
                    hint="pass --journal PATH to choose another file, or move this one away",
                )
            for step in range(version, SCHEMA_VERSION):
                for statement in filter(str.strip, _MIGRATIONS[step].split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {step + 1}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self, *, clash_ok: bool = False) -> Iterator[sqlite3.Connection]:
        """One committed transaction; sqlite errors become JournalError. With ``clash_ok`` a
        row that is there already (``sqlite3.IntegrityError``: a run id taken) is raised as it
        is, for the caller to answer."""
        with self._lock:
            try:
                with _transaction(self._conn):
                    yield self._conn
            except sqlite3.IntegrityError as exc:
                if clash_ok:
                    raise
                raise self._corrupt(exc) from None
            except sqlite3.DatabaseError as exc:
                raise self._corrupt(exc) from None

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                cursor = self._conn.execute(sql, args)
                cursor.row_factory = sqlite3.Row
                return cursor.fetchall()
            except sqlite3.DatabaseError as exc:
                raise self._corrupt(exc) from None

    # -- writing -----------------------------------------------------------------------

    def start_run(
        self,
        *,
        backend: str,
        model: str,
        request: dict[str, Any],
        run_id: str | None = None,
        output: str | None = None,
    ) -> str:
        """Record a new run in state "running", owned by this process; returns its id."""
        now = time.time()
        body = json.dumps(redact_request(request), ensure_ascii=False, sort_keys=True)
        for _ in range(20):
            candidate = run_id or new_run_id(now)
            try:
                with self._write(clash_ok=True) as conn:
                    conn.execute(
                        "INSERT INTO runs (id, created, updated, state, backend, model, request, host, pid,"
                        " proc_start, output) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                        (
                            candidate,
                            now,
                            now,
                            backend,
                            model,
                            body,
                            socket.gethostname(),
                            os.getpid(),
                            _OWN_START,
                            output,
                        ),
                    )
                    conn.execute(
                        "INSERT INTO checkpoints (run_id, text, held, updated) VALUES (?, '', '', ?)",
                        (candidate, now),
                    )
                return candidate
            except sqlite3.IntegrityError:
                if run_id:
                    raise JournalError(f"run {run_id} already exists", hint="choose another id") from None
        raise JournalError("could not find a free run id", hint="try again")

    def save_checkpoint(self, run_id: str, text: str, held: str) -> None:
        """Replace the run's checkpoint (committed before returning)."""
        now = time.time()
        with self._write() as conn:
            conn.execute(
                "UPDATE checkpoints SET text = ?, held = ?, updated = ? WHERE run_id = ?",
                (text, held, now, run_id),
            )
            conn.execute("UPDATE runs SET updated = ? WHERE id = ?", (now, run_id))

    def record_round(self, run_id: str, report: RoundReport, text: str, held: str) -> None:
        """Store a finished round together with the checkpoint at its end."""
        now = time.time()
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO rounds (run_id, idx, report) VALUES (?, ?, ?)",
                (run_id, report.index, json.dumps(report.to_dict(), ensure_ascii=False)),
            )
            conn.execute(
                "UPDATE checkpoints SET text = ?, held = ?, round_text = ?, round_held = ?, updated = ?"
                " WHERE run_id = ?",
                (text, held, text, held, now, run_id),
            )
            conn.execute("UPDATE runs SET updated = ? WHERE id = ?", (now, run_id))

    def set_state(
        self,
        run_id: str,
        state: str,
        *,
        stop_reason: str | None = None,
        error: str | None = None,
        model: str | None = None,
    ) -> None:
        """Mark the run running, finished, failed or interrupted."""
        if state not in RUN_STATES:
            raise ValueError(f"unknown run state {state!r}")
        with self._write() as conn:
            conn.execute(
                "UPDATE runs SET state = ?, stop_reason = COALESCE(?, stop_reason), error = ?,"
                " model = COALESCE(?, model), updated = ?, host = ?, pid = ?, proc_start = ? WHERE id = ?",
                (
                    state,
                    stop_reason,
                    error,
                    model,
                    time.time(),
                    socket.gethostname(),
                    os.getpid(),
                    _OWN_START,
                    run_id,
                ),
            )

    def claim_run(self, run_id: str) -> None:
        """Make this process the run's owner and mark it running, in one write transaction.

        RunBusyError if another live process owns it or it finished meanwhile; an owner
        that is gone (dead, or its pid reused) is taken over.
        """
        with self._write() as conn:
            row = conn.execute(
                "SELECT state, host, pid, proc_start, updated FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise JournalError(
                    f"no run {run_id!r} in the journal {self.path}", hint="list runs with: autocontinue runs"
                )
            state, host, pid, started, updated = row
            if state == "finished":
                raise RunBusyError(
                    f"run {run_id} was finished by another process meanwhile",
                    hint=f"print it with: autocontinue show {run_id}",
                )
            mine = host == socket.gethostname() and pid == os.getpid()
            if state == "running" and not mine and owner_alive(host, pid, started, updated):
                since = datetime.fromtimestamp(updated).strftime("%H:%M:%S")
                raise RunBusyError(
                    f"run {run_id} is being driven by another process (pid {pid} on {host}, last write {since})",
                    hint="a run is driven by one process at a time: wait for it, or stop that process first",
                )
            conn.execute(
                "UPDATE runs SET state = 'running', error = NULL, updated = ?, host = ?, pid = ?, proc_start = ?"
                " WHERE id = ?",
                (time.time(), socket.gethostname(), os.getpid(), _OWN_START, run_id),
            )

    def delete_run(self, run_id: str) -> None:
        """Remove a run with its rounds and checkpoint."""
        with self._write() as conn:
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def finish_run(self, run_id: str, result: Result, *, state: str = "finished") -> None:
        """Store the final text and every round, and mark the run finished (or ``state``: a
        stalled run stays resumable as "interrupted")."""
        with self._write() as conn:
            for report in result.rounds:
                conn.execute(
                    "INSERT OR REPLACE INTO rounds (run_id, idx, report) VALUES (?, ?, ?)",
                    (run_id, report.index, json.dumps(report.to_dict(), ensure_ascii=False)),
                )
            conn.execute(
                "UPDATE checkpoints SET text = ?, held = '', round_text = ?, round_held = '', updated = ?"
                " WHERE run_id = ?",
                (result.text, result.text, time.time(), run_id),
            )
            conn.execute(
                "UPDATE runs SET stalled_rounds = ? WHERE id = ?",
                (getattr(result, "stalled_rounds", 0), run_id),
            )
        self.set_state(run_id, state, stop_reason=result.stop_reason, model=result.model)

    # -- reading -----------------------------------------------------------------------

    def get(self, run_id: str) -> RunRecord:
        """The run with this id (a unique prefix works too); KeyError if absent."""
        rows = self._read("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            like = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            rows = self._read("SELECT * FROM runs WHERE id LIKE ? ESCAPE '\\' LIMIT 2", (like,))
            if len(rows) != 1:
                raise KeyError(run_id)
        return self._record(rows[0])

    def latest_unfinished(self) -> RunRecord | None:
        """The most recently created run that can be resumed (interrupted, or running with its
        process gone), or None; a failed run (a permanent failure) is resumed only by id."""
        rows = self._read(
            "SELECT * FROM runs WHERE state IN ('interrupted', 'running') ORDER BY created DESC, id DESC LIMIT 1"
        )
        return self._record(rows[0]) if rows else None

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        """The newest ``limit`` runs, newest first (text not loaded)."""
        rows = self._read("SELECT * FROM runs ORDER BY created DESC, id DESC LIMIT ?", (limit,))
        return [self._record(row, with_text=False) for row in rows]

    def _record(self, row: sqlite3.Row, *, with_text: bool = True) -> RunRecord:
        try:
            request = json.loads(row["request"])
        except ValueError as exc:
            raise self._corrupt(exc) from None
        record = RunRecord(
            id=row["id"],
            created=row["created"],
            updated=row["updated"],
            state=row["state"],
            backend=row["backend"],
            model=row["model"],
            request=request,
            stop_reason=row["stop_reason"],
            error=row["error"],
            host=row["host"],
            pid=row["pid"],
            proc_start=row["proc_start"],
            stalled_rounds=row["stalled_rounds"] or 0,
            output=row["output"],
        )
        record.rounds = [
            RoundReport.from_dict(json.loads(r["report"]))
            for r in self._read("SELECT report FROM rounds WHERE run_id = ? ORDER BY idx", (record.id,))
        ]
        if with_text:
            rows = self._read("SELECT * FROM checkpoints WHERE run_id = ?", (record.id,))
            if rows:
                row = rows[0]
                record.text, record.held = row["text"], row["held"]
                record.round_text, record.round_held = row["round_text"], row["round_held"]
        return record


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (autocommit connection)."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _has_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] > 0
