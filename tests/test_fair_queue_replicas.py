"""The fair queue across two replicas sharing a real redis-server: one order and one depth per backend
whichever replica a request reached, and GPU-seconds counted in one book."""

from __future__ import annotations

import threading

import pytest
import requests
from jobs_support import JobsServer, wait_until
from pool_support import prompts_in
from replica_support import redis_server
from test_fair_queue import LINK, history, marked

__all__ = ["redis_server"]


@pytest.mark.slow
def test_two_replicas_keep_one_fair_order_and_one_book(project, simulator, redis_server):
    simulator.faults.run_delay = 1.5  # bob's two requests queue while alice's first run goes on
    shared = {"redis_url": redis_server.url, "replica_lease": 2, "jobs_max_queued_per_user": 20}
    first = JobsServer(project, simulator.url, replica_name="first", **shared)
    second = JobsServer(project, simulator.url, replica_name="second", **shared)
    try:
        backlog = [first.submit(prompt=f"alpha backlog {i}", seed=i, user="alice") for i in range(6)]
        wait_until(lambda: len(prompts_in(simulator)) == 2, 10, "ComfyUI to hold one running and one waiting")
        seen = []
        for _ in range(5):  # two replicas, but the backend still gets two runs in all
            seen.append(len(prompts_in(simulator)))
            threading.Event().wait(0.02)
        assert max(seen) == 2
        b_job = second.submit(prompt="bravo job", seed=1, user="bob")
        answer: list[requests.Response] = []
        link = threading.Thread(target=lambda: answer.append(second.get(LINK.format(
            text="bravo%20link", seed=2, user="bob"))))
        link.start()
        wait_until(lambda: any(r["user"] == "bob" and r["waiting"] == 2 for r in second.get(
            "/health").json()["fair_queue"]["users"]), 10, "bob's job and link to queue before alice's run ends")
        link.join(60)
        assert answer and answer[0].status_code == 200, answer
        for job_id in [*backlog, b_job]:
            assert first.wait_for(job_id, timeout=60)["status"] == "succeeded"
        runs = history(simulator)
        order = ["bob" if "bravo" in r["graph"] else "alice" for r in runs]
        assert len(order) == 8 and "bob" not in order[:2]
        assert order[2:4] == ["bob", "bob"], order  # bob's two go before alice's remaining four
        bob_comfy = sum(r["seconds"] for r in marked(runs, "bravo"))
        for replica in (first, second):  # one book in Redis, whichever replica is asked
            usage = replica.get("/api/usage").json()["totals"]
            assert usage["bob"] == pytest.approx(bob_comfy, abs=0.01)
            assert usage["alice"] == pytest.approx(sum(r["seconds"] for r in marked(runs, "alpha")), abs=0.01)
    finally:
        first.close()
        second.close()
