"""On a shared LinkPix, requests waiting at links for new pictures cannot take every server thread
(pipeline/waiters.py), over real sockets: one user's share is `threads / 4`, all users' `threads - 8`;
beyond them a request gets 429 at once, and cached pictures keep being served meanwhile."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
import requests
from support import ApiServer

KEYS = {"k-alice": "alice", "k-bob": "bob", "k-carol": "carol"}
SLOW = "?steps=24"  # 24 steps of 0.25 s: a run of about 6 s
pytestmark = pytest.mark.slow


def _get(server: ApiServer, key: str, path: str) -> requests.Response:
    return requests.get(server.url + path, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _wait_until_waiting(server: ApiServer, futures: list[Future], count: int) -> None:
    """Until `count` server threads wait on runs (the runs are slow: none can have ended yet)."""
    waiters = server.services.generator.waiters
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and waiters.held_in_all() < count:
        assert not any(f.done() for f in futures), [f.result().status_code for f in futures if f.done()]
        time.sleep(0.02)
    assert waiters.held_in_all() == count


@pytest.fixture
def slow(simulator):
    simulator.faults.step_delay = 0.25
    return simulator


def test_one_user_waits_at_a_quarter_of_the_threads_and_others_are_still_served(project, slow):
    # threads 16: a user's share is 4, everyone's 8 (16 - 8 kept for what needs no run)
    server = ApiServer(project, slow.url, network_access=True, api_keys=KEYS, threads=16, max_pending=4)
    try:
        for key in KEYS:  # a picture each in the cache: a hit for later
            assert _get(server, key, "/prompt/cached?steps=1").status_code == 200
        with ThreadPoolExecutor(12) as pool:
            alice = [pool.submit(_get, server, "k-alice", "/prompt/a%20slow%20fox" + SLOW) for _ in range(4)]
            _wait_until_waiting(server, alice, 4)
            started = time.monotonic()
            fifth = _get(server, "k-alice", "/prompt/a%20slow%20fox" + SLOW)
            assert fifth.status_code == 429 and time.monotonic() - started < 2.0
            body = fifth.json()
            assert body["error"] == "queue_full" and "4 of your requests already wait" in body["message"]
            assert fifth.headers["Retry-After"] == "5"

            bob = [pool.submit(_get, server, "k-bob", "/prompt/a%20slow%20owl" + SLOW) for _ in range(4)]
            _wait_until_waiting(server, alice + bob, 8)
            carol = _get(server, "k-carol", "/prompt/a%20slow%20cat" + SLOW)  # her share is free, the total not
            assert carol.status_code == 429
            assert "8 requests already wait for new pictures" in carol.json()["message"]
            assert "alice" not in carol.text and "bob" not in carol.text  # nobody else is named

            started = time.monotonic()
            hit = _get(server, "k-carol", "/prompt/cached?steps=1")
            assert hit.status_code == 200 and hit.headers["X-LinkPix-Cache"] == "hit"
            assert time.monotonic() - started < 2.0  # a free thread answered, not the end of a run

            answers = [f.result() for f in alice + bob]
        assert [a.status_code for a in answers] == [200] * 8
        assert server.services.generator.waiters.held_in_all() == 0
        # the places are given back: alice waits again
        assert _get(server, "k-alice", "/prompt/a%20slow%20fox" + SLOW).headers["X-LinkPix-Cache"] == "hit"
    finally:
        server.close()


def test_without_network_access_nothing_is_counted(project, slow):
    server = ApiServer(project, slow.url, threads=16, max_pending=4)
    try:
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: requests.get(server.url + "/prompt/a%20shared%20fox?steps=4",
                                                           timeout=60), range(6)))
        assert [a.status_code for a in answers] == [200] * 6  # 6 > 16 / 4: no share applies
    finally:
        server.close()
