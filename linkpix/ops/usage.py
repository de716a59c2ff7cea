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


def day_of(when: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(when))


class Usage(Protocol):
    def add(self, user: str, seconds: float, when: float | None = None) -> None: ...

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
        self._lock = threading.Lock()

    def add(self, user: str, seconds: float, when: float | None = None) -> None:
        day = day_of(time.time() if when is None else when)
        with self._lock:
            self._db.execute("INSERT INTO usage (user, day, seconds, runs) VALUES (?, ?, ?, 1) ON CONFLICT "
                             "(user, day) DO UPDATE SET seconds = seconds + excluded.seconds, runs = runs + 1",
                             (user, day, float(seconds)))

    def rows(self, user: str | None = None) -> list[dict[str, Any]]:
        """Per user and day, oldest day first; only `user`'s when given."""
        query = "SELECT user, day, seconds, runs FROM usage"
        args: tuple[Any, ...] = ()
        if user is not None:
            query, args = query + " WHERE user = ?", (user,)
        with self._lock:
            found = self._db.execute(query + " ORDER BY day, user", args).fetchall()
        return [{"user": u, "day": d, "gpu_seconds": round(s, 3), "runs": n} for u, d, s, n in found]

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

    def rows(self, user: str | None = None) -> list[dict[str, Any]]:
        out = []
        for raw in sorted(self._redis.smembers(f"{self.PREFIX}days")):
            day = raw.decode() if isinstance(raw, bytes) else str(raw)
            seconds = self._redis.hgetall(f"{self.PREFIX}{day}:seconds")
            runs = self._redis.hgetall(f"{self.PREFIX}{day}:runs")
            for name in sorted(seconds):
                who = name.decode() if isinstance(name, bytes) else str(name)
                if user is None or who == user:
                    out.append({"user": who, "day": day, "gpu_seconds": round(float(seconds[name]), 3),
                                "runs": int(runs.get(name, 0))})
        return out

    def close(self) -> None:
        """The connection belongs to the replica link."""
