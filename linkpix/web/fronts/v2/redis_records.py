"""The v2 front's records on Redis (with `redis_url`), so every replica refuses the same reused key and
finds the same jobs and assets. Keys under LinkPix's prefix: `v2key:<user>:<key>` (SET NX, expiring),
`v2job:<id>`, the per-user index `v2jobs:<user>` and the index of all `v2alljobs` (by creation time), `v2asset:<id>` and
`v2hash:<user>:<hash>` (the dedup index, claimed with SET NX so two replicas cannot both add one)."""

from __future__ import annotations

import json
from typing import Any

from linkpix.replicas.connection import REDIS_ERRORS, RedisLink
from linkpix.web.fronts.v2.records import IDEMPOTENCY_DAYS, AssetRecord, JobRecord


class RedisRecords:
    """`V2Records` on the replicas' shared Redis; a Redis error is the 503 that names Redis."""

    def __init__(self, shared: RedisLink) -> None:
        self.shared = shared
        self.r = shared.redis

    def _k(self, *parts: str) -> str:
        return self.shared.key(*parts)

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except REDIS_ERRORS as exc:
            raise self.shared.failed(exc, "the Comfy API v2") from None

    def claim_key(self, user: str, key: str, fingerprint: str) -> bool:
        ttl = int(IDEMPOTENCY_DAYS * 86400)
        return bool(self._call(lambda: self.r.set(self._k("v2key", user, key), fingerprint, nx=True, ex=ttl)))

    def release_key(self, user: str, key: str) -> None:
        self._call(lambda: self.r.delete(self._k("v2key", user, key)))

    def add_job(self, record: JobRecord) -> None:
        def write() -> None:
            pipe = self.r.pipeline()
            pipe.set(self._k("v2job", record.id), json.dumps(record.__dict__))
            pipe.zadd(self._k("v2jobs", record.user), {record.id: record.created})
            pipe.zadd(self._k("v2alljobs"), {record.id: record.created})  # an admin key's listing
            pipe.execute()
        self._call(write)

    def job(self, job_id: str) -> JobRecord | None:
        raw = self._call(lambda: self.r.get(self._k("v2job", job_id)))
        return JobRecord(**json.loads(raw)) if raw else None

    def jobs(self, user: str | None, before: tuple[float, str] | None, limit: int) -> list[JobRecord]:
        top = before[0] if before is not None else "+inf"
        index = self._k("v2jobs", user) if user is not None else self._k("v2alljobs")
        ids = self._call(lambda: self.r.zrevrangebyscore(index, top, "-inf", withscores=True,
                                                         start=0, num=limit + 64))
        pairs = sorted(((float(score), member.decode()) for member, score in ids), reverse=True)
        if before is not None:
            pairs = [p for p in pairs if p < before]
        out = []
        for _, job_id in pairs[:limit]:
            record = self.job(job_id)
            if record is not None:
                out.append(record)
        return out

    def prune_jobs(self, user: str, before: float) -> int:
        index = self._k("v2jobs", user)
        old = self._call(lambda: self.r.zrangebyscore(index, "-inf", f"({before}"))
        if old:
            self._call(lambda: self.r.delete(*(self._k("v2job", m.decode()) for m in old)))
            self._call(lambda: self.r.zrem(index, *old))
            self._call(lambda: self.r.zrem(self._k("v2alljobs"), *old))
        return len(old)

    def add_asset(self, record: AssetRecord) -> AssetRecord:
        index = self._k("v2hash", record.user, record.hash)
        if self._call(lambda: self.r.set(index, record.id, nx=True)):
            self._call(lambda: self.r.set(self._k("v2asset", record.id), json.dumps(record.to_dict())))
            return record
        existing = self.asset_by_hash(record.user, record.hash)
        return existing if existing is not None else record

    def asset(self, asset_id: str) -> AssetRecord | None:
        raw = self._call(lambda: self.r.get(self._k("v2asset", asset_id)))
        return AssetRecord(**json.loads(raw)) if raw else None

    def asset_by_hash(self, user: str, digest: str) -> AssetRecord | None:
        asset_id = self._call(lambda: self.r.get(self._k("v2hash", user, digest)))
        return self.asset(asset_id.decode()) if asset_id else None

    def delete_asset(self, asset_id: str) -> bool:
        record = self.asset(asset_id)
        if record is None:
            return False
        self._call(lambda: self.r.delete(self._k("v2asset", asset_id), self._k("v2hash", record.user, record.hash)))
        return True

    def close(self) -> None:
        """The connection belongs to the replica's `RedisLink`."""
