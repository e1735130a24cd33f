"""A batch's bookkeeping, in its own tables of the run journal's SQLite file.

``batches`` (one row per batch: its key, how it runs, its settings), ``batch_items`` (each
item, its run in the journal, its status and, once it ended, its output line) and
``batch_rounds`` (each Message Batches job sent to the service: its id, the custom ids in it,
whether its results were collected) and ``batch_intents`` (each job about to be sent: its
custom ids, the time, and when its last create call was sent, committed before each call, so a process killed after the
service accepted a job but before it learnt the job's id leaves a trace that a resume matches
against the service instead of paying for the round again) and ``batch_warnings`` (lines
about money the user must see, e.g. a round the service billed twice, kept for a resume's
summary). Each item row also holds its reuse key (a hash of the item's record and the batch's
settings), indexed, so a new batch finds the items an earlier one already finished with the
same record and settings in one indexed query and takes them over (``create_reusing``). The tables are created
idempotently next to the journal's own (a journal written before ``batch_intents`` existed
gains it when opened; older code ignores it); the runs themselves are written through ``autocontinue.journal``. Every write
is one committed transaction, so a batch killed at any moment resumes from what landed.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import JournalError
from ..journal import new_run_id
from .items import BatchItem
from .output import ItemResult

__all__ = ["BatchStore", "BatchRecord", "ItemRecord", "ServiceJob", "JobIntent", "ITEM_STATES"]

ITEM_STATES = ("pending", "running", "finished", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id       TEXT PRIMARY KEY,
    created  REAL NOT NULL,
    updated  REAL NOT NULL,
    key      TEXT NOT NULL,
    via      TEXT NOT NULL,
    state    TEXT NOT NULL,
    settings TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_by_key ON batches(key, created);
CREATE TABLE IF NOT EXISTS batch_items (
    batch_id TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
    item_id  TEXT NOT NULL,
    position INTEGER NOT NULL,
    item     TEXT NOT NULL,
    run_id   TEXT,
    status   TEXT NOT NULL,
    result   TEXT,
    reuse_key TEXT,
    origin   TEXT,
    PRIMARY KEY (batch_id, item_id)
);
CREATE TABLE IF NOT EXISTS batch_rounds (
    batch_id   TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
    service_id TEXT NOT NULL,
    created    REAL NOT NULL,
    custom_ids TEXT NOT NULL,
    state      TEXT NOT NULL,
    PRIMARY KEY (batch_id, service_id)
);
CREATE TABLE IF NOT EXISTS batch_intents (
    id         INTEGER PRIMARY KEY,
    batch_id   TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
    created    REAL NOT NULL,
    custom_ids TEXT NOT NULL,
    state      TEXT NOT NULL,
    service_id TEXT,
    last_sent  REAL
);
CREATE TABLE IF NOT EXISTS batch_warnings (
    id       INTEGER PRIMARY KEY,
    batch_id TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
    created  REAL NOT NULL,
    line     TEXT NOT NULL
);
"""

#: Made after ``_migrate_items`` (an older ``batch_items`` lacks the column until then).
_REUSE_INDEX = "CREATE INDEX IF NOT EXISTS batch_items_by_reuse ON batch_items(reuse_key, status)"

#: For each item of a batch with a reuse key: the latest finished item of another batch with
#: the same key (its batch, run and result); one index seek per item.
_TAKE_FINISHED = (
    "SELECT n.item_id, o.batch_id, o.run_id, o.result FROM batch_items AS n"
    " JOIN batch_items AS o ON o.rowid = ("
    "  SELECT m.rowid FROM batch_items AS m"
    "  WHERE m.reuse_key = n.reuse_key AND m.status = 'finished'"
    "   AND m.result IS NOT NULL AND m.batch_id != n.batch_id"
    "  ORDER BY m.rowid DESC LIMIT 1)"
    " WHERE n.batch_id = ? AND n.reuse_key IS NOT NULL"
)


@dataclass
class BatchRecord:
    id: str
    key: str
    via: str
    state: str
    settings: dict[str, Any]


@dataclass
class ItemRecord:
    item: BatchItem
    position: int
    run_id: str | None
    status: str
    result: ItemResult | None
    #: The batch whose finished item this one was taken from (None: its own run).
    origin: str | None = None


@dataclass
class ServiceJob:
    """One Message Batches job: its service id and the custom ids sent in it."""

    service_id: str
    custom_ids: list[str]
    state: str


@dataclass
class JobIntent:
    """A job journaled before its create call: ``creating`` until the service's id is known."""

    id: int
    created: float
    custom_ids: list[str]
    #: creating (sent or about to be), submitted (the service's id is known), dropped (it never landed).
    state: str
    service_id: str | None
    #: When the last create call for it was sent (committed before the call; ``created`` if none was).
    last_sent: float = 0.0

    def __post_init__(self) -> None:
        self.last_sent = max(self.last_sent, self.created)


class BatchStore:
    """The batch tables of one journal file (open the Journal first: it makes the file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA foreign_keys = ON")
            with self._write() as conn:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(statement)
                columns = {row[1] for row in conn.execute("PRAGMA table_info(batch_intents)")}
                if "last_sent" not in columns:  # a journal from before create attempts were timed
                    conn.execute("ALTER TABLE batch_intents ADD COLUMN last_sent REAL")
                _migrate_items(conn)
        except sqlite3.DatabaseError as exc:
            raise JournalError(
                f"the journal {path} cannot hold batches ({exc})", hint="pass --journal PATH"
            ) from None

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self._conn.in_transaction:  # inside another write (create_reusing): one transaction
            yield self._conn
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        cursor = self._conn.execute(sql, args)
        cursor.row_factory = sqlite3.Row
        return cursor.fetchall()

    # -- batches ----------------------------------------------------------------------------

    def create(self, *, key: str, via: str, settings: dict[str, Any], items: list[BatchItem]) -> str:
        batch_id = "b" + new_run_id()
        now = time.time()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO batches (id, created, updated, key, via, state, settings) VALUES (?, ?, ?, ?, ?, 'running', ?)",
                (batch_id, now, now, key, via, json.dumps(settings, ensure_ascii=False, sort_keys=True)),
            )
            conn.executemany(
                "INSERT INTO batch_items (batch_id, item_id, position, item, status, reuse_key)"
                " VALUES (?, ?, ?, ?, 'pending', ?)",
                [
                    (
                        batch_id,
                        it.id,
                        i,
                        json.dumps(_item_record(it), ensure_ascii=False),
                        _reuse_key(it, settings),
                    )
                    for i, it in enumerate(items)
                ],
            )
        return batch_id

    def create_reusing(
        self, *, key: str, via: str, settings: dict[str, Any], items: list[BatchItem]
    ) -> tuple[str, int]:
        """``create``, then take over every item an earlier batch of this journal finished with
        the same record and settings (same reuse key): the new batch's row becomes finished with
        that item's result and points at the same run (nothing is called again, and the run is
        not copied: ``runs`` and ``show`` keep one run per answer). One transaction, so a kill
        leaves either no batch or one with its items taken over. Returns (batch id, items taken).
        """
        with self._write():
            batch_id = self.create(key=key, via=via, settings=settings, items=items)
            return batch_id, self._take_finished(batch_id)

    def _take_finished(self, batch_id: str) -> int:
        """Point each item of ``batch_id`` at the latest finished item with its reuse key in
        another batch (one indexed lookup per item: ``batch_items_by_reuse``)."""
        found = self._conn.execute(_TAKE_FINISHED, (batch_id,)).fetchall()
        self._conn.executemany(
            "UPDATE batch_items SET status = 'finished', run_id = ?, result = ?, origin = ?"
            " WHERE batch_id = ? AND item_id = ?",
            [(run_id, result, origin, batch_id, item_id) for item_id, origin, run_id, result in found],
        )
        return len(found)

    def get(self, batch_id: str) -> BatchRecord | None:
        rows = self._rows("SELECT * FROM batches WHERE id = ?", (batch_id,))
        return _batch(rows[0]) if rows else None

    def latest_with_key(
        self, key: str, match: Callable[[BatchRecord], bool] | None = None
    ) -> BatchRecord | None:
        """The newest batch with ``key`` (of those ``match`` accepts, when given)."""
        rows = self._rows("SELECT * FROM batches WHERE key = ? ORDER BY created DESC", (key,))
        return next((b for b in map(_batch, rows) if match is None or match(b)), None)

    def set_state(self, batch_id: str, state: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE batches SET state = ?, updated = ? WHERE id = ?", (state, time.time(), batch_id)
            )

    # -- items ------------------------------------------------------------------------------

    def items(self, batch_id: str) -> list[ItemRecord]:
        rows = self._rows("SELECT * FROM batch_items WHERE batch_id = ? ORDER BY position", (batch_id,))
        return [_item_row(row) for row in rows]

    def set_run(self, batch_id: str, item_id: str, run_id: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE batch_items SET run_id = ?, status = 'running' WHERE batch_id = ? AND item_id = ?",
                (run_id, batch_id, item_id),
            )

    def finish_item(self, batch_id: str, result: ItemResult, status: str) -> None:
        """Store the item's output line; ``status`` is finished or failed."""
        with self._write() as conn:
            conn.execute(
                "UPDATE batch_items SET status = ?, result = ? WHERE batch_id = ? AND item_id = ?",
                (status, json.dumps(result.to_dict(), ensure_ascii=False), batch_id, result.id),
            )

    # -- Message Batches jobs ---------------------------------------------------------------

    def add_intent(self, batch_id: str, custom_ids: list[str]) -> JobIntent:
        """Journal a job about to be created (committed before the create call)."""
        now = time.time()
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO batch_intents (batch_id, created, custom_ids, state) VALUES (?, ?, ?, 'creating')",
                (batch_id, now, json.dumps(custom_ids)),
            )
        assert cursor.lastrowid is not None
        return JobIntent(cursor.lastrowid, now, list(custom_ids), "creating", None)

    def intent_sent(self, intent: JobIntent) -> None:
        """Journal that a create call for ``intent`` is being sent now (committed before the call)."""
        now = time.time()
        with self._write() as conn:
            conn.execute("UPDATE batch_intents SET last_sent = ? WHERE id = ?", (now, intent.id))
        intent.last_sent = now

    def intent_landed(self, batch_id: str, intent_id: int, service_id: str) -> None:
        """The intent's job is ``service_id`` on the service: one transaction makes it a job."""
        with self._write() as conn:
            (custom_ids,) = conn.execute(
                "SELECT custom_ids FROM batch_intents WHERE id = ?", (intent_id,)
            ).fetchone()
            conn.execute(
                "UPDATE batch_intents SET state = 'submitted', service_id = ? WHERE id = ?",
                (service_id, intent_id),
            )
            conn.execute(
                "INSERT INTO batch_rounds (batch_id, service_id, created, custom_ids, state) VALUES (?, ?, ?, ?, 'submitted')",
                (batch_id, service_id, time.time(), custom_ids),
            )

    def drop_intent(self, intent_id: int) -> None:
        """The intent's create never reached the service: its round is to be sent again."""
        with self._write() as conn:
            conn.execute("UPDATE batch_intents SET state = 'dropped' WHERE id = ?", (intent_id,))

    def ignore_jobs(self, batch_id: str, service_ids: list[str], custom_ids: list[str]) -> None:
        """Journal service jobs that also answer an intent but were not used (never matched again)."""
        with self._write() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO batch_rounds (batch_id, service_id, created, custom_ids, state) VALUES (?, ?, ?, ?, 'ignored')",
                [(batch_id, sid, time.time(), json.dumps(custom_ids)) for sid in service_ids],
            )

    def intents(self, batch_id: str) -> list[JobIntent]:
        """The batch's intents still ``creating`` (their job's id never reached the journal)."""
        rows = self._rows(
            "SELECT * FROM batch_intents WHERE batch_id = ? AND state = 'creating' ORDER BY id", (batch_id,)
        )
        return [
            JobIntent(
                row["id"],
                row["created"],
                json.loads(row["custom_ids"]),
                row["state"],
                row["service_id"],
                row["last_sent"] or 0.0,
            )
            for row in rows
        ]

    def add_warning(self, batch_id: str, line: str) -> None:
        """Keep a warning the user must see (money spent twice) with the batch, for every later run."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO batch_warnings (batch_id, created, line) VALUES (?, ?, ?)",
                (batch_id, time.time(), line),
            )

    def warnings(self, batch_id: str) -> list[str]:
        rows = self._rows("SELECT line FROM batch_warnings WHERE batch_id = ? ORDER BY id", (batch_id,))
        return [row["line"] for row in rows]

    def known_service_ids(self) -> set[str]:
        """Every service job id any batch of this journal knows (these are never another's)."""
        return {row["service_id"] for row in self._rows("SELECT service_id FROM batch_rounds")}

    def job_collected(self, batch_id: str, service_id: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE batch_rounds SET state = 'collected' WHERE batch_id = ? AND service_id = ?",
                (batch_id, service_id),
            )

    def jobs(self, batch_id: str) -> list[ServiceJob]:
        rows = self._rows("SELECT * FROM batch_rounds WHERE batch_id = ? ORDER BY created", (batch_id,))
        return [ServiceJob(row["service_id"], json.loads(row["custom_ids"]), row["state"]) for row in rows]


def _reuse_key(item: BatchItem, settings: dict[str, Any]) -> str:
    """What makes two items the same answer: the item's record (id, prompt or messages, system,
    its options) and the settings of its batch (defaults, via, backend), exactly; a line number
    is not part of it. Items with equal keys in two batches are answered once."""
    blob = json.dumps(
        {"item": item.to_record(), "settings": settings}, sort_keys=True, ensure_ascii=False, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _migrate_items(conn: sqlite3.Connection) -> None:
    """Give a ``batch_items`` from before reuse keys its two columns, then the index. Its rows
    keep no key (their batch's settings may predate the backend being recorded): they are never
    taken over, only items journaled from now on are."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(batch_items)")}
    for name in ("reuse_key", "origin"):
        if name not in columns:
            conn.execute(f"ALTER TABLE batch_items ADD COLUMN {name} TEXT")
    conn.execute(_REUSE_INDEX)


def _item_record(item: BatchItem) -> dict[str, Any]:
    return {**item.to_record(), "line": item.line}


def _batch(row: sqlite3.Row) -> BatchRecord:
    return BatchRecord(row["id"], row["key"], row["via"], row["state"], json.loads(row["settings"]))


def _item_row(row: sqlite3.Row) -> ItemRecord:
    data = json.loads(row["item"])
    item = BatchItem(
        id=data["id"],
        prompt=data["prompt"],
        system=data.get("system"),
        options=data.get("options") or {},
        line=data.get("line", 0),
    )
    result = None
    if row["result"]:
        raw = json.loads(row["result"])
        from ..usage import Usage

        result = ItemResult(
            id=raw["id"],
            text=raw["text"],
            stop_reason=raw["stop_reason"],
            rounds=raw["rounds"],
            usage=Usage.from_dict(raw["usage"]),
            cost_usd=raw["cost_usd"] or 0.0,
            cost_known=raw["cost_usd"] is not None,
            error=raw["error"],
            run_id=row["run_id"],
        )
    return ItemRecord(item, row["position"], row["run_id"], row["status"], result, row["origin"])
