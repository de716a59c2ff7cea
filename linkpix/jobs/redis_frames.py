"""Each running job's newest preview frame in Redis, so the URL a `preview` event carries works on every replica.

Job events reach every replica through the bus (jobs/redis_events.py), and a client streaming them from one
replica fetches the frame URL from that same replica, which may not be the one running the job. So the
running replica keeps the newest frame in Redis as well (at most one write per job every 0.5 s: events are
throttled to that), under a key that expires `TTL` seconds after the last frame, which bounds what finished
or abandoned jobs leave behind. When Redis fails the frame is kept in this process only (as without
replicas): a preview is passing news, not worth refusing anything for.
"""

from __future__ import annotations

import logging

from linkpix.jobs.frames import LatestFrames
from linkpix.replicas.connection import REDIS_ERRORS, RedisLink

log = logging.getLogger(__name__)

TTL = 600  # s a job's newest frame is kept after it came


class RedisFrames(LatestFrames):
    """`LatestFrames` shared through Redis; this process's copy answers when Redis does not."""

    def __init__(self, shared: RedisLink, capacity: int = 256) -> None:
        super().__init__(capacity)
        self._shared = shared

    def put(self, job_id: str, data: bytes) -> int:
        number = super().put(job_id, data)
        key = self._shared.key("frame", job_id)
        try:
            pipe = self._shared.redis.pipeline(transaction=True)
            pipe.hincrby(key, "n", 1)
            pipe.hset(key, "data", data)
            pipe.expire(key, TTL)
            shared_number = pipe.execute()[0]
        except REDIS_ERRORS as exc:
            log.debug("preview frame of job %s kept here only: %s", job_id, exc)
            return number
        return int(shared_number)

    def get(self, job_id: str) -> tuple[int, bytes] | None:
        try:
            number, data = self._shared.redis.hmget(self._shared.key("frame", job_id), ["n", "data"])
        except REDIS_ERRORS as exc:
            log.debug("preview frame of job %s read here only: %s", job_id, exc)
            return super().get(job_id)
        if number is None or data is None:
            return super().get(job_id)
        return int(number), bytes(data)
