"""On a LinkPix of one user, plain links beyond the threads kept for waiting requests are parked off the
threads (web/parked.py), over real sockets: cached pictures keep being answered, every parked request gets
the same answer its thread would have given, and one access-log line with its whole time."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fronts_support import FrontServer

pytestmark = pytest.mark.slow
SLOW = "?steps=12"  # 12 steps of 0.25 s: a run of about 3 s


@pytest.fixture
def slow(simulator):
    simulator.faults.step_delay = 0.25
    return simulator


def _wait_until(check, what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_links_beyond_the_waiting_threads_are_parked_and_hits_still_answer(project, slow, caplog):
    # threads 16: 8 may wait on runs, 8 are kept; 14 requests for two new links: 8 wait, 6 are parked
    server = FrontServer(project, slow.url, threads=16, max_pending=8)
    waiters = server.services.generator.waiters
    try:
        assert server.get("/prompt/cached?steps=1").status_code == 200
        with caplog.at_level(logging.INFO, logger="linkpix.access"), ThreadPoolExecutor(14) as pool:
            links = [f"/prompt/a%20parked%20{'fox' if i % 2 else 'owl'}" + SLOW for i in range(14)]
            first = [pool.submit(server.get, link) for link in links[:8]]
            _wait_until(lambda: waiters.held_in_all() == 8, "8 requests to wait on threads")
            assert waiters.short_of_threads()
            rest = [pool.submit(server.get, link) for link in links[8:]]
            _wait_until(lambda: server.services.live.writer.open_slots() == 6, "6 requests to be parked")
            started = time.monotonic()
            hit = server.get("/prompt/cached?steps=1")
            assert hit.status_code == 200 and hit.headers["X-LinkPix-Cache"] == "hit"
            assert time.monotonic() - started < 2.0  # a kept thread answered it, not the end of a run
            assert not any(f.done() for f in first + rest)  # the runs are still going
            answers = [f.result() for f in first + rest]
        assert [a.status_code for a in answers] == [200] * 14
        assert server.services.generator.runs_started == 3  # the cached one and the two new links
        plain = {a.headers["X-LinkPix-Seed"]: a for a in answers[:8]}
        for parked in answers[8:]:  # the same answer as its twin that waited on a thread
            twin = plain[parked.headers["X-LinkPix-Seed"]]
            assert parked.content == twin.content and parked.headers["Content-Type"] == "image/png"
            for name in ("ETag", "Last-Modified", "Cache-Control", "X-LinkPix-Cache", "X-LinkPix-Workflow",
                         "X-LinkPix-Image-Url"):
                assert parked.headers[name] == twin.headers[name], name
            assert parked.headers["Connection"] == "close"
        lines = [r.getMessage() for r in caplog.records
                 if r.name == "linkpix.access" and "parked=True" in r.getMessage()]
        assert len(lines) == 6 and all(" 200 " in line and "cache=miss" in line for line in lines), lines
        assert all(float(line.split(" 200 ")[1].split("ms")[0]) > 1000 for line in lines)  # the whole wait
        assert server.services.live.writer.open_slots() == 0 and waiters.held_in_all() == 0
    finally:
        server.close()


def test_a_parked_request_gets_the_error_its_thread_would_have_got(project, slow, caplog):
    # runs of about 6 s against a timeout of 2 s: every request for the link ends with the same 504
    server = FrontServer(project, slow.url, threads=16, max_pending=8, timeout=2)
    link = "/prompt/a%20late%20fox?steps=24"
    try:
        with caplog.at_level(logging.INFO, logger="linkpix.access"), ThreadPoolExecutor(10) as pool:
            futures = [pool.submit(server.get, link) for _ in range(8)]
            _wait_until(lambda: server.services.generator.waiters.held_in_all() == 8, "8 waiting")
            as_json = pool.submit(server.get, link)  # as the 8 ask (Accept */*): the error as JSON
            as_img = pool.submit(server.get, link, headers={"Accept": "image/avif,image/webp,image/*,*/*;q=0.8"})
            _wait_until(lambda: server.services.live.writer.open_slots() == 2, "2 parked")
            waited, parked, picture = futures[0].result(), as_json.result(), as_img.result()
        assert waited.status_code == parked.status_code == 504
        assert parked.json()["error"] == waited.json()["error"] == "timeout"
        assert parked.json()["message"] == waited.json()["message"]
        assert parked.headers["Content-Type"] == "application/json"
        assert parked.headers["Cache-Control"] == waited.headers["Cache-Control"] == "no-store"
        assert picture.status_code == 504 and picture.headers["Content-Type"] == "image/png"  # an <img>'s
        assert picture.content.startswith(b"\x89PNG")
        parked_lines = [r.getMessage() for r in caplog.records if "parked=True" in r.getMessage()]
        assert len(parked_lines) == 2 and all(" 504 " in x and "error=timeout" in x for x in parked_lines)
    finally:
        server.close()
