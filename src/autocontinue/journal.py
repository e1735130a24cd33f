"""The run journal: every CLI run in one SQLite file, so that no run is ever lost.

One row per run (the request minus secrets, state, totals), one row per finished round, and
one checkpoint per run: the answer text emitted so far plus the held tail, and the same pair
as it stood at the end of the last finished round (a seeded local model replays the
interrupted round from there, so its resumed text is the uninterrupted one). Each write is its
own committed transaction in WAL mode, so a run killed with ``kill -9`` keeps every checkpoint
written before the kill, and ``autocontinue resume`` continues from the last one.

The file lives at ``$AUTOCONTINUE_HOME/journal.sqlite3`` (default: the platformdirs user data
directory) and is private to its owner (mode 0600). The schema version sits in
``PRAGMA user_version``; a newer or unknown schema and a corrupt file raise JournalError with
a hint, never a raw sqlite3 error.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import JournalError
from .events import Checkpoint, Finished, Result, RoundFinished, RoundReport, TextDelta
from .usage import Usage

__all__ = [
    "SCHEMA_VERSION",
    "RUN_STATES",
    "RunRecord",
    "Journal",
    "RunRecorder",
    "default_journal_path",
    "new_run_id",
    "redact_request",
    "redact_url",
]

#: The schema this code writes; ``PRAGMA user_version`` of a journal it created.
SCHEMA_VERSION = 1

RUN_STATES = ("running", "finished", "failed", "interrupted")

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

#: Migrations from version N-1 to N, applied in order; index 0 creates version 1.
_MIGRATIONS = [_SCHEMA_V1]

#: Request keys that may hold a secret; they never reach the file.
_SECRET_KEYS = {"api_key", "auth_token", "authorization", "headers", "default_headers", "client", "x-api-key"}


def default_journal_path() -> Path:
    """``$AUTOCONTINUE_HOME/journal.sqlite3``, else the platform's user data directory."""
    home = os.environ.get("AUTOCONTINUE_HOME")
    if home:
        return Path(home).expanduser() / "journal.sqlite3"
    import platformdirs

    return Path(platformdirs.user_data_dir("autocontinue")) / "journal.sqlite3"


def new_run_id(now: float | None = None) -> str:
    """Short, sortable, unique enough: ``20261125-153012-a1b2`` (UTC time + 4 random hex)."""
    stamp = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc)
    return f"{stamp:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def redact_url(url: str) -> str:
    """The URL without user:password and without a query string (tokens hide there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact_request(request: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``request`` that is safe to store: no keys, headers or clients; clean URLs."""
    clean: dict[str, Any] = {}
    for key, value in request.items():
        if key.lower() in _SECRET_KEYS:
            continue
        if isinstance(value, str) and "://" in value and key.endswith("url"):
            value = redact_url(value)
        clean[key] = value
    return clean


@dataclass
class RunRecord:
    """One run as the journal holds it."""

    id: str
    created: float
    updated: float
    state: str
    backend: str
    model: str
    request: dict[str, Any]
    stop_reason: str | None = None
    error: str | None = None
    host: str | None = None
    pid: int | None = None
    text: str = ""
    held: str = ""
    #: Text and held tail at the end of the last finished round.
    round_text: str = ""
    round_held: str = ""
    rounds: list[RoundReport] = field(default_factory=list)

    @property
    def usage(self) -> Usage:
        total = Usage()
        for report in self.rounds:
            total = total + report.usage
        return total

    @property
    def cost_usd(self) -> float:
        return sum(report.cost_usd for report in self.rounds)

    @property
    def finished(self) -> bool:
        return self.state == "finished"

    def checkpoint(self) -> Checkpoint:
        """What ``stream(..., resume=...)`` needs to continue this run."""
        return Checkpoint(text=self.text, held=self.held, rounds=list(self.rounds))

    def round_checkpoint(self) -> Checkpoint:
        """Where the run stood at the end of its last finished round."""
        return Checkpoint(text=self.round_text, held=self.round_held, rounds=list(self.rounds))

    def result(self) -> Result:
        """The run as a Result (for a finished run, the final one)."""
        return Result(
            text=self.text,
            stop_reason=self.stop_reason or "",
            rounds=list(self.rounds),
            usage=self.usage,
            cost_usd=self.cost_usd,
            model=self.model,
            backend=self.backend,
            run_id=self.id,
        )

    @property
    def display_state(self) -> str:
        """The state, saying "interrupted (process gone)" for a run whose process died."""
        if self.state == "running" and self.host == socket.gethostname() and not self.is_alive_elsewhere():
            if self.pid != os.getpid():
                return "interrupted (process gone)"
        return self.state

    def is_alive_elsewhere(self) -> bool:
        """True if the process that is writing this run still runs (same host only)."""
        if self.state != "running" or not self.pid or self.host != socket.gethostname():
            return False
        if self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


class Journal:
    """A connection to one journal file. Safe to share between threads (one lock)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.RLock()
        self._conn = self._open()

    # -- opening -----------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        _create_private_file(self.path)
        try:
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: every commit survives a killed process (not a power cut).
            conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate(conn)
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

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction; sqlite errors become JournalError."""
        with self._lock:
            try:
                with _transaction(self._conn):
                    yield self._conn
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

    def start_run(self, *, backend: str, model: str, request: dict[str, Any], run_id: str | None = None) -> str:
        """Record a new run in state "running"; returns its id."""
        now = time.time()
        body = json.dumps(redact_request(request), ensure_ascii=False, sort_keys=True)
        for _ in range(20):
            candidate = run_id or new_run_id(now)
            try:
                with self._write() as conn:
                    conn.execute(
                        "INSERT INTO runs (id, created, updated, state, backend, model, request, host, pid)"
                        " VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?)",
                        (candidate, now, now, backend, model, body, socket.gethostname(), os.getpid()),
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
                " model = COALESCE(?, model), updated = ?, host = ?, pid = ? WHERE id = ?",
                (state, stop_reason, error, model, time.time(), socket.gethostname(), os.getpid(), run_id),
            )

    def finish_run(self, run_id: str, result: Result) -> None:
        """Store the final text, every round, and mark the run finished."""
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
        self.set_state(run_id, "finished", stop_reason=result.stop_reason, model=result.model)

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
        """The most recently created run that is not finished, or None."""
        rows = self._read("SELECT * FROM runs WHERE state != 'finished' ORDER BY created DESC, id DESC LIMIT 1")
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


class RunRecorder:
    """A listener on one run's events that keeps its journal entry current.

    Text deltas are collected in memory; a background thread commits a checkpoint every
    ``interval`` seconds while new text arrives, and every round end commits the round with
    its checkpoint at once. ``stop()`` writes the last checkpoint and the final state.
    """

    def __init__(
        self,
        journal: Journal,
        *,
        backend: str,
        model: str,
        request: dict[str, Any],
        run_id: str | None = None,
        text: str = "",
        held: str = "",
        interval: float = 0.5,
    ) -> None:
        self.journal = journal
        self.run_id = run_id
        self._new_run = dict(backend=backend, model=model, request=request)
        self._interval = interval
        self._parts = [text] if text else []
        self._held = held
        self._dirty = False
        self._parts_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: JournalError | None = None

    def start(self) -> str:
        """Create the run (or mark a resumed one running) and start the checkpoint thread."""
        if self.run_id is None:
            self.run_id = self.journal.start_run(**self._new_run)
        else:
            self.journal.set_state(self.run_id, "running")
        self._thread = threading.Thread(target=self._flush_loop, name="autocontinue-checkpoint", daemon=True)
        self._thread.start()
        return self.run_id

    def on_event(self, event: object) -> None:
        """Feed every event of the run here, in order."""
        if self._failure is not None:
            raise self._failure
        if isinstance(event, TextDelta):
            with self._parts_lock:
                self._parts.append(event.text)
                self._held = event.held
                self._dirty = True
        elif isinstance(event, RoundFinished):
            with self._write_lock:
                text, held = self._snapshot()
                self.journal.record_round(self._id(), event.report, text, held)
        elif isinstance(event, Finished):
            self._stop_thread()
            with self._write_lock:
                self.journal.finish_run(self._id(), event.result)
                self._dirty = False

    def stop(self, state: str, *, error: str | None = None) -> None:
        """Write the last checkpoint and leave the run in ``state`` (failed, interrupted...)."""
        if self.run_id is None:
            return
        self._stop_thread()
        self.flush()
        self.journal.set_state(self.run_id, state, error=error)

    def flush(self) -> None:
        """Commit the checkpoint now if text arrived since the last one."""
        with self._write_lock:
            if not self._dirty:
                return
            text, held = self._snapshot()
            self.journal.save_checkpoint(self._id(), text, held)

    @property
    def text(self) -> str:
        with self._parts_lock:
            return "".join(self._parts)

    def _snapshot(self) -> tuple[str, str]:
        with self._parts_lock:
            text = "".join(self._parts)
            self._parts = [text]
            self._dirty = False
            return text, self._held

    def _flush_loop(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self.flush()
            except JournalError as exc:
                self._failure = exc
                return

    def _stop_thread(self) -> None:
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _id(self) -> str:
        if self.run_id is None:
            raise RuntimeError("RunRecorder.start() was not called")
        return self.run_id


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


def _create_private_file(path: Path) -> None:
    """Make the directory (0700 if new) and the file (0600), and tighten an existing file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    except OSError as exc:
        raise JournalError(
            f"cannot open the journal {path}: {exc.strerror or exc}",
            hint="check the directory's permissions, set AUTOCONTINUE_HOME, or pass --journal PATH / --no-journal",
        ) from None
