"""The v2 front's records in SQLite (`data/v2.sqlite3`): one connection, one lock, short transactions."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from linkpix.web.fronts.v2.records import IDEMPOTENCY_DAYS, AssetRecord, JobRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS v2_keys (
    user TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, claimed REAL NOT NULL,
    PRIMARY KEY (user, key)
);
CREATE TABLE IF NOT EXISTS v2_jobs (
    id TEXT PRIMARY KEY, user TEXT NOT NULL, created REAL NOT NULL, metadata TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS v2_jobs_user ON v2_jobs(user, created, id);
CREATE INDEX IF NOT EXISTS v2_jobs_created ON v2_jobs(created, id);
CREATE TABLE IF NOT EXISTS v2_assets (
    id TEXT PRIMARY KEY, user TEXT NOT NULL, hash TEXT NOT NULL, upload TEXT NOT NULL,
    size_bytes INTEGER NOT NULL, content_type TEXT NOT NULL, file_path TEXT, created REAL NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]'
);
CREATE UNIQUE INDEX IF NOT EXISTS v2_assets_hash ON v2_assets(user, hash);
"""


class SqliteRecords:
    """`V2Records` in one SQLite file (WAL: readers never wait on the one writer)."""

    def __init__(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    def claim_key(self, user: str, key: str, fingerprint: str) -> bool:
        now = time.time()
        with self._lock:
            self._db.execute("DELETE FROM v2_keys WHERE claimed < ?", (now - IDEMPOTENCY_DAYS * 86400,))
            cur = self._db.execute("INSERT OR IGNORE INTO v2_keys VALUES (?, ?, ?, ?)", (user, key, fingerprint, now))
        return cur.rowcount == 1

    def release_key(self, user: str, key: str) -> None:
        self._run("DELETE FROM v2_keys WHERE user = ? AND key = ?", (user, key))

    def add_job(self, record: JobRecord) -> None:
        self._run("INSERT INTO v2_jobs VALUES (?, ?, ?, ?)",
                  (record.id, record.user, record.created, json.dumps(record.metadata)))

    def job(self, job_id: str) -> JobRecord | None:
        row = self._run("SELECT id, user, created, metadata FROM v2_jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def jobs(self, user: str | None, before: tuple[float, str] | None, limit: int) -> list[JobRecord]:
        sql, args = "SELECT id, user, created, metadata FROM v2_jobs WHERE 1", []
        if user is not None:  # None: every user's (an admin key)
            sql, args = sql + " AND user = ?", [user]
        if before is not None:
            sql += " AND (created < ? OR (created = ? AND id < ?))"
            args += [before[0], before[0], before[1]]
        rows = self._run(sql + " ORDER BY created DESC, id DESC LIMIT ?", (*args, limit)).fetchall()
        return [_job(row) for row in rows]

    def prune_jobs(self, user: str, before: float) -> int:
        return self._run("DELETE FROM v2_jobs WHERE user = ? AND created < ?", (user, before)).rowcount

    def add_asset(self, record: AssetRecord) -> AssetRecord:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO v2_assets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (record.id, record.user, record.hash, record.upload, record.size_bytes,
                              record.content_type, record.file_path, record.created, json.dumps(record.tags)))
            row = self._db.execute("SELECT * FROM v2_assets WHERE user = ? AND hash = ?",
                                   (record.user, record.hash)).fetchone()
        return _asset(row)

    def asset(self, asset_id: str) -> AssetRecord | None:
        row = self._run("SELECT * FROM v2_assets WHERE id = ?", (asset_id,)).fetchone()
        return _asset(row) if row else None

    def asset_by_hash(self, user: str, digest: str) -> AssetRecord | None:
        row = self._run("SELECT * FROM v2_assets WHERE user = ? AND hash = ?", (user, digest)).fetchone()
        return _asset(row) if row else None

    def delete_asset(self, asset_id: str) -> bool:
        return self._run("DELETE FROM v2_assets WHERE id = ?", (asset_id,)).rowcount == 1

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _job(row: tuple[Any, ...]) -> JobRecord:
    return JobRecord(row[0], row[1], float(row[2]), json.loads(row[3]))


def _asset(row: tuple[Any, ...]) -> AssetRecord:
    return AssetRecord(id=row[0], user=row[1], hash=row[2], upload=row[3], size_bytes=int(row[4]),
                       content_type=row[5], file_path=row[6], created=float(row[7]), tags=json.loads(row[8]))
