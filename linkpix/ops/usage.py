"""GPU-seconds per user and day: what each user's runs took in ComfyUI, kept across restarts.

One row per user and UTC day, added to as each run ends (the generator reports the run's time in
ComfyUI once, for the user whose request started it; a run others joined is not counted again). SQLite
in the data folder by default, so `GET /api/usage` still knows yesterday after a restart; with
`redis_url`, `RedisUsageBook` keeps the same figures in Redis, where every replica adds to them.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Protocol

SCHEMA = """CREATE TABLE IF NOT EXISTS usage (user TEXT NOT NULL, day TEXT NOT NULL, seconds REAL NOT NULL,
runs INTEGER NOT NULL, PRIMARY KEY (user, day))"""
# Hosted providers' runs (issue 26): their cost as configured, beside the GPU-seconds of the same user and day.
HOSTED_SCHEMA = """CREATE TABLE IF NOT EXISTS hosted (user TEXT NOT NULL, day TEXT NOT NULL, cost REAL NOT NULL,
runs INTEGER NOT NULL, PRIMARY KEY (user, day))"""


def day_of(when: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(when))


class Usage(Protocol):
    def add(self, user: str, seconds: float, when: float | None = None) -> None: ...

    def add_cost(self, user: str, cost: float, when: float | None = None) -> None: ...

    def rows(self, user: str | None = None) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


class UsageBook:
    """The SQLite book (`usage.sqlite3` in the data folder). Thread-safe; each add is one transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash loses no committed row, a power cut may
        self._db.execute(SCHEMA)
        self._db.execute(HOSTED_SCHEMA)
        self._lock = threading.Lock()

    def add(self, user: str, seconds: float, when: float | None = None) -> None:
        day = day_of(time.time() if when is None else when)
        with self._lock:
            self._db.execute("INSERT INTO usage (user, day, seconds, runs) VALUES (?, ?, ?, 1) ON CONFLICT "
                             "(user, day) DO UPDATE SET seconds = seconds + excluded.seconds, runs = runs + 1",
                             (user, day, float(seconds)))

    def add_cost(self, user: str, cost: float, when: float | None = None) -> None:
        day = day_of(time.time() if when is None else when)
        with self._lock:
            self._db.execute("INSERT INTO hosted (user, day, cost, runs) VALUES (?, ?, ?, 1) ON CONFLICT "
                             "(user, day) DO UPDATE SET cost = cost + excluded.cost, runs = runs + 1",
                             (user, day, float(cost)))

    def rows(self, user: str | None = None) -> list[dict[str, Any]]:
        """Per user and day, oldest day first; only `user`'s when given."""
        where, args = (" WHERE user = ?", (user,)) if user is not None else ("", ())
        with self._lock:
            gpu = self._db.execute(f"SELECT user, day, seconds, runs FROM usage{where}", args).fetchall()
            hosted = self._db.execute(f"SELECT user, day, cost, runs FROM hosted{where}", args).fetchall()
        return merged(gpu, hosted)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class RedisUsageBook:
    """The same book in Redis (`redis_url`): one hash per day, user -> seconds, and one of run counts."""

    PREFIX = "linkpix:usage:"

    def __init__(self, redis: Any) -> None:
        self._redis = redis

    def add(self, user: str, seconds: float, when: float | None = None) -> None:
        day = day_of(time.time() if when is None else when)
        pipe = self._redis.pipeline()
        pipe.hincrbyfloat(f"{self.PREFIX}{day}:seconds", user, float(seconds))
        pipe.hincrby(f"{self.PREFIX}{day}:runs", user, 1)
        pipe.sadd(f"{self.PREFIX}days", day)
        pipe.execute()

    def add_cost(self, user: str, cost: float, when: float | None = None) -> None:
        day = day_of(time.time() if when is None else when)
        pipe = self._redis.pipeline()
        pipe.hincrbyfloat(f"{self.PREFIX}{day}:cost", user, float(cost))
        pipe.hincrby(f"{self.PREFIX}{day}:hosted_runs", user, 1)
        pipe.sadd(f"{self.PREFIX}days", day)
        pipe.execute()

    def rows(self, user: str | None = None) -> list[dict[str, Any]]:
        gpu: list[tuple[str, str, float, int]] = []
        hosted: list[tuple[str, str, float, int]] = []
        for raw in sorted(self._redis.smembers(f"{self.PREFIX}days")):
            day = _text(raw)
            for kind, into in (("seconds", gpu), ("cost", hosted)):
                amounts = self._redis.hgetall(f"{self.PREFIX}{day}:{kind}")
                runs = self._redis.hgetall(f"{self.PREFIX}{day}:{'runs' if kind == 'seconds' else 'hosted_runs'}")
                into.extend((_text(name), day, float(amounts[name]), int(runs.get(name, 0)))
                            for name in amounts if user is None or _text(name) == user)
        return merged(gpu, hosted)

    def close(self) -> None:
        """The connection belongs to the replica link."""


def merged(gpu: list[tuple[str, str, float, int]], hosted: list[tuple[str, str, float, int]]) -> list[dict[str, Any]]:
    """One row per user and day: GPU-seconds and runs in ComfyUI, and the hosted providers' cost and runs."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for who, day, seconds, runs in gpu:
        rows[(day, who)] = {"user": who, "day": day, "gpu_seconds": round(seconds, 3), "runs": runs,
                            "provider_cost": 0.0, "provider_runs": 0}
    for who, day, cost, runs in hosted:
        row = rows.setdefault((day, who), {"user": who, "day": day, "gpu_seconds": 0.0, "runs": 0})
        row.update(provider_cost=round(cost, 6), provider_runs=runs)
    return [rows[k] for k in sorted(rows)]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
