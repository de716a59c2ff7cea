"""The jobs table on Redis: the same interface as `store.JobStore`, readable and writable by every replica.

A job is one JSON document (`linkpix:job:<id>`) plus index sets kept in step with it in the same
transaction: all jobs and each user's by creation time, the active ones (overall and per user: the queue
caps), the ones waiting for ComfyUI, each state's, the finished ones by end time (retention), and those
whose webhook is still being delivered. Changes are read-modify-write under WATCH (redis-py's
`transaction`), so "a finished job is final" and "the first end wins" hold across replicas as they hold in
SQLite; the caps are checked in the transaction that inserts, so two replicas cannot both take the last
place. A job's milestones are a list whose length is the newest event's number.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from redis.client import Pipeline

from linkpix.errors import NotFound
from linkpix.jobs.store import ACTIVE, STATES, TERMINAL, Job, field_values
from linkpix.replicas.connection import REDIS_ERRORS, RedisLink

T = TypeVar("T")
BATCH = 200


def _redis(fn: Callable[..., T]) -> Callable[..., T]:
    """A Redis error becomes the 503 that names Redis (see `RedisLink.failed`)."""

    @functools.wraps(fn)
    def wrapper(self: RedisJobStore, *args: Any, **kwargs: Any) -> T:
        try:
            return fn(self, *args, **kwargs)
        except REDIS_ERRORS as exc:
            raise self.shared.failed(exc, "the jobs API") from None

    return wrapper


class RedisJobStore:
    """`JobStore` for several replicas (see the module docstring)."""

    def __init__(self, shared: RedisLink) -> None:
        self.shared = shared
        self.r = shared.redis
        self.path = shared.url

    def _k(self, *parts: str) -> str:
        return self.shared.key(*parts)

    def close(self) -> None:
        """The connection belongs to the replica's `RedisLink`; nothing to close here."""

    # -- writing ---------------------------------------------------------------------------------
    @_redis
    def insert(self, job: Job) -> None:
        self.insert_within(job, None, None)

    @_redis
    def insert_within(self, job: Job, per_user: int | None, total: int | None) -> str | None:
        """Insert unless the user's or the total count of unfinished jobs is at its cap: then "user" or
        "total" (and nothing is written)."""
        doc = field_values(job)
        user_key, all_key = self._k("jobs", "active", job.user), self._k("jobs", "active")

        def tx(pipe: Pipeline) -> str | None:
            if per_user is not None and pipe.scard(user_key) >= per_user:
                return "user"
            if total is not None and pipe.scard(all_key) >= total:
                return "total"
            pipe.multi()
            pipe.set(self._k("job", job.id), json.dumps(doc, ensure_ascii=False))
            pipe.zadd(self._k("jobs", "all"), {job.id: job.created})
            pipe.zadd(self._k("jobs", "user", job.user), {job.id: job.created})
            self._index(pipe, None, doc)
            return None

        return self.r.transaction(tx, user_key, all_key, value_from_callable=True)

    @_redis
    def update(self, job_id: str, *, only_active: bool = True, **changes: Any) -> bool:
        """Set fields of a job; with `only_active` (default) a finished job is left alone."""
        key = self._k("job", job_id)

        def tx(pipe: Pipeline) -> bool:
            raw = pipe.get(key)
            if raw is None:
                return False
            old = json.loads(raw)
            if only_active and old["state"] not in ACTIVE:
                return False
            new = dict(old, **changes)
            pipe.multi()
            pipe.set(key, json.dumps(new, ensure_ascii=False))
            self._index(pipe, old, new)
            return True

        return self.r.transaction(tx, key, value_from_callable=True)

    def finish(self, job_id: str, state: str, **changes: Any) -> bool:
        """Move an active job to a terminal state; False if it had already ended (the first end wins)."""
        assert state in TERMINAL
        return self.update(job_id, state=state, finished=time.time(), **changes)

    def set_webhook(self, job_id: str, webhook: dict[str, Any]) -> None:
        self.update(job_id, only_active=False, webhook=webhook)

    def _index(self, pipe: Pipeline, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        """Keep the index sets in step with one document's change (queued in the transaction)."""
        job_id, user, state = new["id"], new["user"], new["state"]
        if old is not None and old["state"] != state:
            pipe.srem(self._k("jobs", "state", old["state"]), job_id)
        pipe.sadd(self._k("jobs", "state", state), job_id)
        active = state in ACTIVE
        for key in (self._k("jobs", "active"), self._k("jobs", "active", user)):
            (pipe.sadd if active else pipe.srem)(key, job_id)
        waiting = state == "queued" and not new.get("prompt_id")
        (pipe.sadd if waiting else pipe.srem)(self._k("jobs", "waiting"), job_id)
        if state in TERMINAL and new.get("finished"):
            pipe.zadd(self._k("jobs", "finished"), {job_id: new["finished"]})
        hook = new.get("webhook") or {}
        pending = state in ("succeeded", "failed") and hook.get("state") == "pending"
        (pipe.sadd if pending else pipe.srem)(self._k("jobs", "webhooks"), job_id)

    # -- reading ---------------------------------------------------------------------------------
    @_redis
    def get(self, job_id: str) -> Job:
        raw = self.r.get(self._k("job", job_id))
        if raw is None:
            raise NotFound(f"no job {job_id!r}")
        return Job(**json.loads(raw))

    def _load(self, ids: Iterable[bytes | str]) -> list[Job]:
        names = [i.decode() if isinstance(i, bytes) else i for i in ids]
        jobs: list[Job] = []
        for start in range(0, len(names), BATCH):
            chunk = names[start:start + BATCH]
            for raw in self.r.mget([self._k("job", i) for i in chunk]):
                if raw is not None:
                    jobs.append(Job(**json.loads(raw)))
        return jobs

    @_redis
    def list(self, user: str | None = None, state: str | None = None, limit: int = 100) -> list[Job]:
        index = self._k("jobs", "user", user) if user is not None else self._k("jobs", "all")
        found: list[Job] = []
        start = 0
        while len(found) < limit:
            ids = self.r.zrevrange(index, start, start + BATCH - 1)
            if not ids:
                break
            found += [j for j in self._load(ids) if state is None or j.state == state]
            start += BATCH
        return found[:limit]

    @_redis
    def active(self) -> list[Job]:
        return sorted(self._load(self.r.smembers(self._k("jobs", "active"))), key=lambda j: j.created)

    @_redis
    def undelivered(self) -> list[Job]:
        return self._load(self.r.smembers(self._k("jobs", "webhooks")))

    @_redis
    def count_waiting(self) -> int:
        return int(self.r.scard(self._k("jobs", "waiting")))

    @_redis
    def count_by_state(self) -> dict[str, int]:
        pipe = self.r.pipeline(transaction=False)
        for state in STATES:
            pipe.scard(self._k("jobs", "state", state))
        return {state: int(n) for state, n in zip(STATES, pipe.execute(), strict=True)}

    @_redis
    def count_active(self, user: str | None = None) -> int:
        key = self._k("jobs", "active", user) if user is not None else self._k("jobs", "active")
        return int(self.r.scard(key))

    # -- events ----------------------------------------------------------------------------------
    @_redis
    def add_event(self, job_id: str, kind: str, data: dict[str, Any]) -> int:
        return int(self.r.rpush(self._k("job", job_id, "events"),
                                json.dumps([kind, time.time(), data], ensure_ascii=False)))

    @_redis
    def events_after(self, job_id: str, seq: int) -> list[tuple[int, str, dict[str, Any]]]:
        rows = self.r.lrange(self._k("job", job_id, "events"), seq, -1)
        out = []
        for offset, raw in enumerate(rows):
            kind, _at, data = json.loads(raw)
            out.append((seq + offset + 1, kind, data))
        return out

    @_redis
    def last_event(self, job_id: str) -> int:
        return int(self.r.llen(self._k("job", job_id, "events")))

    # -- retention -------------------------------------------------------------------------------
    @_redis
    def prune(self, before: float) -> int:
        ids = [i.decode() for i in self.r.zrangebyscore(self._k("jobs", "finished"), "-inf", before)]
        for job in self._load(ids):
            pipe = self.r.pipeline()
            pipe.delete(self._k("job", job.id), self._k("job", job.id, "events"))
            pipe.zrem(self._k("jobs", "all"), job.id)
            pipe.zrem(self._k("jobs", "user", job.user), job.id)
            pipe.zrem(self._k("jobs", "finished"), job.id)
            pipe.srem(self._k("jobs", "state", job.state), job.id)
            pipe.srem(self._k("jobs", "webhooks"), job.id)
            pipe.execute()
        return len(ids)

    @_redis
    def referenced_uploads(self) -> set[str]:
        names: set[str] = set()
        start = 0
        while True:
            ids = self.r.zrange(self._k("jobs", "all"), start, start + BATCH - 1)
            if not ids:
                return names
            for job in self._load(ids):
                for spec in job.spec:
                    names.update(str(n) for n in spec.get("uploads", []))
            start += BATCH
