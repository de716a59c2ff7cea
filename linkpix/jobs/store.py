"""Async jobs on disk: one SQLite table under `data/` (the input images are in `storage/uploads.py`).

A job must survive a LinkPix restart, so everything needed to finish it is stored when it is accepted:
the *rendered* workflows (not the request), so a restarted LinkPix runs exactly what was accepted even if
styles or settings changed meanwhile, and the input images by content-addressed name in `data/uploads/`.
SQLite runs in WAL mode behind one connection and a lock: writes are small and rare (a few per job), and
one connection avoids "database is locked" between threads of this process.

Terminal states are final: `finish()` only changes a job that is still queued or running, so a cancel
racing a success cannot be overwritten by the loser.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from linkpix.errors import NotFound
from linkpix.model import RenderedJob
from linkpix.storage.uploads import Uploads

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
ACTIVE = (QUEUED, RUNNING)
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)
STATES = ACTIVE + TERMINAL

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    prompt_id TEXT,
    prompt_ids TEXT NOT NULL DEFAULT '[]',
    backend TEXT,
    image_count INTEGER NOT NULL,
    spec TEXT NOT NULL,
    images TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    webhook TEXT,
    webhook_secret TEXT,
    base_url TEXT NOT NULL DEFAULT '',
    replica TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, created);
CREATE INDEX IF NOT EXISTS jobs_user ON jobs(user, created);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(finished);
-- a submit counts the user's unfinished jobs: without this it read every job the user still has (37 ms at 50,000)
CREATE INDEX IF NOT EXISTS jobs_state_user ON jobs(state, user);
CREATE TABLE IF NOT EXISTS job_events (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    at REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
"""
_JSON_COLUMNS = ("prompt_ids", "spec", "images", "error", "webhook")


@dataclass
class Job:
    """One row: what was asked (spec: one rendered workflow per image) and how far it got."""

    id: str
    user: str
    state: str
    created: float
    image_count: int
    spec: list[dict[str, Any]]
    started: float | None = None
    finished: float | None = None
    prompt_id: str | None = None  # the prompt of the image in progress (re-attached after a restart)
    prompt_ids: list[str] = field(default_factory=list)
    backend: str | None = None
    images: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    webhook: dict[str, Any] | None = None
    webhook_secret: str | None = None
    base_url: str = ""
    replica: str | None = None  # the LinkPix replica running it (or that ran it last)

    @property
    def finished_state(self) -> bool:
        return self.state in TERMINAL

    def public(self) -> dict[str, Any]:
        """The job as the API shows it (never the webhook secret, never the rendered graphs)."""
        first = self.spec[0] if self.spec else {}
        webhook = None
        if self.webhook:
            webhook = {k: v for k, v in self.webhook.items()}
            webhook["signed"] = bool(self.webhook_secret)
        return {"job_id": self.id, "status": self.state, "user": self.user, "created": self.created,
                "started": self.started, "finished": self.finished,
                "prompt_id": self.prompt_id or (self.prompt_ids[-1] if self.prompt_ids else None),
                "prompt_ids": self.prompt_ids, "backend": self.backend, "image_count": self.image_count,
                "prompt": first.get("prompt"), "workflow": first.get("workflow"),
                "images": self.images, "error": self.error, "webhook": webhook, "replica": self.replica}


def field_values(obj: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict, values shared, not copied: a job's parts are JSON values already,
    replaced and never changed in place, and `dataclasses.asdict` deep-copied a whole graph twice per job
    (1.3 ms of the v2 submit's 4, under a profiler)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def rendered_to_dict(job: RenderedJob) -> dict[str, Any]:
    """A RenderedJob as JSON; input images by name only (their bytes are in the upload store)."""
    out = field_values(job)
    out["uploads"] = [u.name for u in job.uploads]
    out["ignored"] = list(job.ignored)
    return out


def rendered_from_dict(data: dict[str, Any], uploads: Uploads) -> RenderedJob:
    values = dict(data)
    values["uploads"] = tuple(uploads.get(name) for name in data.get("uploads", []))
    values["ignored"] = tuple(data.get("ignored", []))
    values["notes"] = tuple(data.get("notes", []))
    return RenderedJob(**values)


class JobStore:
    """The jobs table. Thread-safe: one connection, one lock, each method one short transaction."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
            if "replica" not in columns:  # a database from before replicas existed
                self._db.execute("ALTER TABLE jobs ADD COLUMN replica TEXT")
        self._closed = False

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            if self._closed:
                raise RuntimeError("the job store is closed")
            return self._db.execute(sql, args)

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Job]:
        with self._lock:
            if self._closed:
                raise RuntimeError("the job store is closed")
            rows = self._db.execute(sql, args).fetchall()
        return [_job(row) for row in rows]

    # -- writing ---------------------------------------------------------------------------------
    def insert(self, job: Job) -> None:
        values = field_values(job)
        for key in _JSON_COLUMNS:
            values[key] = json.dumps(values[key]) if values[key] is not None else None
        names = ", ".join(values)
        marks = ", ".join(f":{k}" for k in values)
        with self._lock:
            self._db.execute(f"INSERT INTO jobs ({names}) VALUES ({marks})", values)

    def insert_within(self, job: Job, per_user: int | None, total: int | None) -> str | None:
        """Insert unless the user's or the total count of unfinished jobs is at its cap: then "user" or
        "total" (and nothing is written). One lock: two submits cannot both take the last place."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the job store is closed")
            active = "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')"
            mine = self._db.execute(active + " AND user = ?", (job.user,)).fetchone()[0]
            if per_user is not None and mine >= per_user:
                return "user"
            if total is not None and self._db.execute(active).fetchone()[0] >= total:
                return "total"
        self.insert(job)
        return None

    def update(self, job_id: str, *, only_active: bool = True, **changes: Any) -> bool:
        """Set columns of a job; with `only_active` (default) a finished job is left alone."""
        sets, args = [], []
        for key, value in changes.items():
            if key in _JSON_COLUMNS and value is not None:
                value = json.dumps(value)
            sets.append(f"{key} = ?")
            args.append(value)
        sql = f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?"
        if only_active:
            sql += " AND state IN ('queued', 'running')"
        return self._exec(sql, (*args, job_id)).rowcount == 1

    def finish(self, job_id: str, state: str, **changes: Any) -> bool:
        """Move an active job to a terminal state; False if it had already ended (the first end wins)."""
        assert state in TERMINAL
        return self.update(job_id, state=state, finished=time.time(), **changes)

    def set_webhook(self, job_id: str, webhook: dict[str, Any]) -> None:
        self.update(job_id, only_active=False, webhook=webhook)

    # -- reading ---------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        rows = self._rows("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise NotFound(f"no job {job_id!r}")
        return rows[0]

    def list(self, user: str | None = None, state: str | None = None, limit: int = 100) -> list[Job]:
        where, args = [], []
        if user is not None:
            where.append("user = ?")
            args.append(user)
        if state is not None:
            where.append("state = ?")
            args.append(state)
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        return self._rows(sql + " ORDER BY created DESC LIMIT ?", (*args, limit))

    def active(self) -> list[Job]:
        """Unfinished jobs, oldest first (start-up recovery re-queues them in this order)."""
        return self._rows("SELECT * FROM jobs WHERE state IN ('queued', 'running') ORDER BY created")

    def undelivered(self) -> list[Job]:
        """Finished jobs whose webhook was still being delivered when LinkPix stopped."""
        jobs = self._rows("SELECT * FROM jobs WHERE webhook IS NOT NULL AND state IN ('succeeded', 'failed')"
                          " AND json_extract(webhook, '$.state') = 'pending'")
        return jobs

    def count_waiting(self) -> int:
        """Jobs queued in LinkPix that have not reached ComfyUI yet."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND prompt_id IS NULL")
                       .fetchone()[0])

    def count_by_state(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        counts = dict.fromkeys(STATES, 0)
        counts.update({state: int(n) for state, n in rows})
        return counts

    # -- events (what an event stream resumes from) -----------------------------------------------
    def add_event(self, job_id: str, kind: str, data: dict[str, Any]) -> int:
        """Keep one of a job's events; returns its number (1, 2, ... per job: the SSE `id`)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the job store is closed")
            row = self._db.execute("INSERT INTO job_events (job_id, seq, kind, at, data) SELECT ?, "
                                   "COALESCE(MAX(seq), 0) + 1, ?, ?, ? FROM job_events WHERE job_id = ? RETURNING seq",
                                   (job_id, kind, time.time(), json.dumps(data, ensure_ascii=False), job_id)
                                   ).fetchone()
        return int(row[0])

    def events_after(self, job_id: str, seq: int) -> list[tuple[int, str, dict[str, Any]]]:
        with self._lock:
            rows = self._db.execute("SELECT seq, kind, data FROM job_events WHERE job_id = ? AND seq > ? "
                                    "ORDER BY seq", (job_id, seq)).fetchall()
        return [(int(n), kind, json.loads(data)) for n, kind, data in rows]

    def last_event(self, job_id: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT MAX(seq) FROM job_events WHERE job_id = ?", (job_id,)).fetchone()
        return int(row[0] or 0)

    # -- retention -------------------------------------------------------------------------------
    def prune(self, before: float) -> int:
        """Delete jobs that finished before `before` (a time), with their events; returns how many."""
        with self._lock:
            if self._closed:
                return 0
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM job_events WHERE job_id IN (SELECT id FROM jobs WHERE state IN "
                                 "('succeeded', 'failed', 'cancelled') AND finished < ?)", (before,))
                gone = self._db.execute("DELETE FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled') "
                                        "AND finished < ?", (before,)).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return int(gone)

    def referenced_uploads(self) -> set[str]:
        """Names of the input images that kept jobs still need."""
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT u.value FROM jobs, json_each(jobs.spec) AS s, "
                                    "json_each(s.value, '$.uploads') AS u").fetchall()
        return {str(name) for (name,) in rows}

    def count_active(self, user: str | None = None) -> int:
        sql = "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')"
        args: tuple[Any, ...] = ()
        if user is not None:
            sql += " AND user = ?"
            args = (user,)
        with self._lock:
            return int(self._db.execute(sql, args).fetchone()[0])


def _job(row: sqlite3.Row) -> Job:
    values = dict(row)
    for key in _JSON_COLUMNS:
        if values[key] is not None:
            values[key] = json.loads(values[key])
    return Job(**values)
