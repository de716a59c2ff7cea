"""What several LinkPix replicas share through Redis (issue 14); imported only when `redis_url` is set.

One module per concern, each the Redis-backed twin of an embedded piece behind the same interface:
`connection.py` (the client, its health, the one translation of Redis errors into a 503), `bus.py`
(one pub/sub connection per replica, fanning notices out to local handlers), `flights.py` (single-flight
across replicas), `files.py` (a shared file changed on one machine: every replica re-reads). The jobs'
twins live with the jobs (`jobs/redis_store.py`, `jobs/redis_queue.py`, `jobs/redis_events.py`) and the
S3 cache with the storage (`storage/s3.py`), so each package keeps one subject.
"""
