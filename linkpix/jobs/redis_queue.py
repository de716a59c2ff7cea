"""The jobs queue across replicas: a Redis stream read by one consumer group, a consumer per replica.

Why a stream and not a queue library (rq, dramatiq, arq): their job is a function call run by a worker
process with the library's own states and retries, while ours is a row with our states, re-attached to a
ComfyUI prompt by id after a failure, whose webhook must go out once, run by threads of the replica that
also serves links (so identical jobs and links share one run and one cache). A stream gives exactly the
two things we lacked: delivery to one replica at a time (XREADGROUP), and taking over the entries of a
replica that died (XAUTOCLAIM after `replica_lease` seconds without renewal), with the job itself left
where it was, in the job store.

An entry is read only when one of this replica's `job_workers` is free, renewed every third of the lease
while this replica holds it (XCLAIM of its own entries, which resets their idle time), and acknowledged
once the job has ended and its webhook is delivered or given up, so a replica that dies between the two
leaves the webhook to the replica that claims the entry. If this replica was too slow to renew and
another claimed an entry, it is told (`on_lost`) and lets the job go. A replica restarted under the same
name first takes back its own unacknowledged entries.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from redis.exceptions import ResponseError

from linkpix.replicas.bus import Bus
from linkpix.replicas.connection import REDIS_ERRORS, RedisLink

log = logging.getLogger(__name__)

GROUP = "linkpix"
CANCEL_TOPIC = "cancel"
BLOCK_MS = 500

# Renew the entries this consumer still owns (and only those: one another replica claimed stays its own).
_RENEW = """
local kept = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    table.insert(kept, ARGV[i])
  end
end
return kept
"""

Runner = Callable[[str, bool], None]  # job id, claimed from a dead replica (or our own, after a restart)


class RedisJobQueue:
    def __init__(self, shared: RedisLink, bus: Bus, workers: int, run: Runner,
                 on_cancel: Callable[[str], None], on_lost: Callable[[str], None]) -> None:
        self.shared = shared
        self.bus = bus
        self.stream = shared.key("jobs", "stream")
        self._run = run
        self._on_lost = on_lost
        self._slots = threading.Semaphore(workers)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="job")
        self._lock = threading.Lock()
        self._held: dict[str, str] = {}  # job id -> stream entry id
        self._stop = threading.Event()
        self._renew = shared.redis.register_script(_RENEW)
        self._own_after: str | None = "0"  # after a restart: our own unacknowledged entries first
        bus.on(CANCEL_TOPIC, lambda body: on_cancel(str(body.get("job"))))
        self._threads = [threading.Thread(target=self._read_loop, name="jobs-reader", daemon=True),
                         threading.Thread(target=self._renew_loop, name="jobs-lease", daemon=True)]

    def start(self) -> RedisJobQueue:
        try:
            self.shared.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        except REDIS_ERRORS as exc:
            log.warning("the jobs queue waits for Redis: %s", exc)
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        """Stop reading and renewing; held entries stay pending for another replica (or our restart)."""
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        for thread in self._threads:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(BLOCK_MS / 1000 + 1.5)  # the reader is at most one blocking read away

    # -- producing -----------------------------------------------------------------------------------
    def put(self, job_id: str) -> None:
        self.shared.call("accepting a job", lambda: self.shared.redis.xadd(self.stream, {"job": job_id}))

    def announce_cancel(self, job_id: str) -> None:
        try:
            self.bus.publish(CANCEL_TOPIC, {"job": job_id})
        except REDIS_ERRORS as exc:
            log.warning("could not tell the other replicas that job %s was cancelled: %s", job_id, exc)

    def done(self, job_id: str) -> None:
        """The job has ended and its webhook is settled: nobody needs to run it again."""
        with self._lock:
            entry = self._held.pop(job_id, None)
        if entry is None:
            return
        try:
            pipe = self.shared.redis.pipeline()
            pipe.xack(self.stream, GROUP, entry)
            pipe.xdel(self.stream, entry)
            pipe.execute()
        except REDIS_ERRORS as exc:  # it stays pending: whoever claims it finds the job ended and settles it
            log.warning("could not acknowledge job %s: %s", job_id, exc)

    def holds(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._held

    # -- consuming -----------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        try:
            self._read()
        except Exception:
            if not self._stop.is_set():
                raise

    def _read(self) -> None:
        while not self._stop.is_set():
            if not self._slots.acquire(timeout=0.5):
                continue
            try:
                entry = self._next()
            except ResponseError as exc:  # NOGROUP: the stream was removed (Redis restarted empty)
                if "NOGROUP" not in str(exc):
                    raise
                entry = None  # Redis answers: not an outage (/health stays ok), the queue is made again
                log.warning("the jobs queue is being set up again (Redis lost it: restarted empty?)")
                self.start_group()
            except REDIS_ERRORS as exc:
                entry = None
                self.shared.failed(exc, "running jobs")
                self._stop.wait(1.0)
            if entry is None:
                self._slots.release()
                continue
            entry_id, job_id, claimed = entry
            with self._lock:
                self._held[job_id] = entry_id
            try:
                self._pool.submit(self._work, job_id, claimed)
            except RuntimeError:  # closing
                self._slots.release()
                return

    def start_group(self) -> None:
        try:
            self.shared.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except (ResponseError, *REDIS_ERRORS):
            pass

    def _next(self) -> tuple[str, str, bool] | None:
        """One entry for a free worker: our own left from before a restart, then a dead replica's, then
        a new one (waiting up to a second for it)."""
        r, me = self.shared.redis, self.shared.name
        if self._own_after is not None:
            entry = _first(r.xreadgroup(GROUP, me, {self.stream: self._own_after}, count=1))
            if entry is not None:
                self._own_after = entry[0]
                return (*entry, True)
            self._own_after = None
        claimed = r.xautoclaim(self.stream, GROUP, me, int(self.shared.lease * 1000), "0-0", count=1)
        for entry_id, fields in (claimed[1] if len(claimed) > 1 else []):
            if fields:
                log.info("job %s: its replica stopped renewing it; %s takes it over", _job(fields), me)
                return _decode(entry_id), _job(fields), True
        fresh = r.xreadgroup(GROUP, me, {self.stream: ">"}, count=1, block=BLOCK_MS)
        entry = _first(fresh)
        return (*entry, False) if entry is not None else None

    def _work(self, job_id: str, claimed: bool) -> None:
        try:
            self._run(job_id, claimed)
        except Exception:
            log.exception("job %s failed unexpectedly", job_id)
        finally:
            self._slots.release()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.shared.lease / 3):
            with self._lock:
                held = dict(self._held)
            if not held:
                continue
            try:
                kept = {_decode(e) for e in self._renew(keys=[self.stream],
                                                        args=[GROUP, self.shared.name, *held.values()])}
            except REDIS_ERRORS as exc:
                log.warning("could not renew this replica's jobs: %s", exc)
                continue
            for job_id, entry in held.items():
                if entry not in kept:
                    with self._lock:
                        if self._held.get(job_id) == entry:
                            del self._held[job_id]
                    log.warning("job %s was taken over by another replica (this one renewed it too late)", job_id)
                    self._on_lost(job_id)


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _job(fields: dict[Any, Any]) -> str:
    return _decode(fields.get(b"job", fields.get("job", b"")))


def _first(reply: Any) -> tuple[str, str] | None:
    for _stream, entries in reply or []:
        for entry_id, fields in entries:
            if fields:
                return _decode(entry_id), _job(fields)
    return None
