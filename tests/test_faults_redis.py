"""Redis restarted empty, and Redis down (issue 20, item 5): a real redis-server, restarted by the test."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jobs_support import JobsServer, wait_until
from replica_support import RedisServer, redis_server

from linkpix.simulator import SimulatorServer

__all__ = ["redis_server"]


@pytest.fixture
def replica(project: Path, simulator: SimulatorServer, redis_server: RedisServer) -> Iterator[JobsServer]:
    server = JobsServer(project, simulator.url, redis_url=redis_server.url, replica_name="a", replica_lease=2)
    try:
        yield server
    finally:
        server.close()


@pytest.mark.slow
def test_redis_restarted_empty_takes_new_jobs_and_links_within_seconds(replica, redis_server):
    first = replica.submit(prompt="before the restart")
    assert replica.wait_for(first)["status"] == "succeeded"
    redis_server.stop()
    redis_server.start()  # empty: the stream, its consumer group and every key are gone
    wait_until(lambda: replica.get("/health").json()["redis"]["state"] == "up", 10, "Redis to be seen again")
    started = time.monotonic()
    job_id = replica.submit(prompt="after the restart")
    assert replica.wait_for(job_id, timeout=20)["status"] == "succeeded"
    link = replica.get("/prompt/a%20link%20after%20the%20restart?width=64&height=64")
    assert link.status_code == 200, link.text
    assert time.monotonic() - started < 15
    states = set()
    for _ in range(20):  # /health stays ok: it does not flap between ok and degraded
        states.add(replica.get("/health").json()["status"])
        time.sleep(0.1)
    assert states == {"ok"}, states


def test_ready_is_503_while_redis_is_down(replica, redis_server):
    assert replica.get("/ready").status_code == 200
    redis_server.stop()
    (r,) = wait_until(lambda: (lambda x: (x,) if x.status_code == 503 else None)(replica.get("/ready")), 10,
                      "/ready to say 503")  # a tuple: a Response with an error status is falsy
    assert "Redis" in r.json()["reason"] and r.headers["Retry-After"]
    redis_server.start()
    wait_until(lambda: replica.get("/ready").status_code == 200, 10, "/ready to be 200 again")


def test_the_first_redis_connection_is_not_logged_as_answering_again(project, simulator, redis_server, caplog):
    caplog.set_level(logging.INFO, logger="linkpix")
    server = JobsServer(project, simulator.url, redis_url=redis_server.url, replica_name="b")
    try:
        lines = [r.getMessage() for r in caplog.records if "Redis at" in r.getMessage()]
        assert lines and "answers again" not in lines[0] and "connected" in lines[0], lines
    finally:
        server.close()
