"""LinkPix's fair queue over real sockets: the order users' runs get, the GPU-seconds counted for them,
the gpu_seconds quota, and a backend dying while work waits in LinkPix (docs/fair-queue.md)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
from fronts_support import FrontServer
from jobs_support import JobsServer, wait_until
from pool_support import Sims, prompts_in
from support import ApiServer

LINK = "/prompt/{text}?width=64&height=64&seed={seed}&user={user}"


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[Sims]:
    group = Sims(tmp_path / "comfy")
    try:
        yield group
    finally:
        group.stop()


def history(sim: Any) -> list[dict[str, Any]]:
    """The simulator's runs in the order they started: prompt text, seconds in ComfyUI, success."""
    runs = []
    for prompt_id, entry in requests.get(f"{sim.url}/history", timeout=10).json().items():
        stamps = {m[0]: m[1]["timestamp"] for m in entry["status"]["messages"]}
        ok = "execution_success" in stamps
        runs.append({"id": prompt_id, "graph": json.dumps(entry["prompt"][2]), "ok": ok, "start": stamps.get(
            "execution_start", 0), "seconds": (stamps["execution_success"] - stamps["execution_start"]) / 1000
            if ok else None})
    return sorted(runs, key=lambda r: r["start"])


def marked(runs: list[dict[str, Any]], marker: str) -> list[dict[str, Any]]:
    return [r for r in runs if marker in r["graph"]]


@pytest.mark.slow
def test_a_second_user_goes_ahead_of_the_first_users_backlog_and_links_before_jobs(project, simulator):
    simulator.faults.run_delay = 1.0  # bob's job and link must both wait before alice's first run ends
    server = JobsServer(project, simulator.url, jobs_max_queued_per_user=20)
    try:
        a_jobs = [server.submit(prompt=f"alpha backlog {i}", seed=i, user="alice") for i in range(6)]
        wait_until(lambda: len(prompts_in(simulator)) == 2, 10, "ComfyUI to hold one running and one waiting")
        wait_until(lambda: server.get("/health").json()["fair_queue"]["waiting"] == 4, 10, "alice's other four")
        queue = server.get("/health").json()["fair_queue"]
        assert len(prompts_in(simulator)) == 2  # the other four wait in LinkPix, not in ComfyUI
        assert queue["depth"] == 2
        rows = {row["user"]: row for row in queue["users"]}
        assert rows["alice"]["waiting"] == 4 and rows["alice"]["positions"] == [1, 2, 3, 4]
        b_job = server.submit(prompt="bravo job", seed=1, user="bob")
        answer: list[requests.Response] = []
        link = threading.Thread(target=lambda: answer.append(server.get(LINK.format(
            text="bravo%20link", seed=2, user="bob"))))
        link.start()
        wait_until(lambda: any(r["user"] == "bob" and r["waiting"] == 2
                               for r in server.get("/health").json()["fair_queue"]["users"]), 5,
                   "bob's job and link to queue")
        link.join(60)
        assert answer and answer[0].status_code == 200, answer
        for job_id in [*a_jobs, b_job]:
            assert server.wait_for(job_id, timeout=60)["status"] == "succeeded"
        order = ["bob-link" if "bravo link" in r["graph"] else "bob-job" if "bravo job" in r["graph"] else "alice"
                 for r in history(simulator)]
        # alice's first two were in ComfyUI already; bob's link, then his job, come next; alice's rest after.
        assert order == ["alice", "alice", "bob-link", "bob-job", "alice", "alice", "alice", "alice"]
    finally:
        server.close()


@pytest.mark.slow
def test_gpu_seconds_are_counted_once_for_the_user_who_started_the_run(project, simulator):
    simulator.faults.run_delay = 0.3
    api = ApiServer(project, simulator.url)
    try:
        first = api.get(LINK.format(text="counted%20once", seed=5, user="carol"))
        assert first.status_code == 200
        comfy = marked(history(simulator), "counted once")[0]["seconds"]
        assert float(first.headers["X-LinkPix-GPU-Seconds"]) == pytest.approx(comfy, abs=0.002)
        again = api.get(LINK.format(text="counted%20once", seed=5, user="carol"))
        assert again.headers["X-LinkPix-Cache"] == "hit" and "X-LinkPix-GPU-Seconds" not in again.headers
        # Two users ask for the same new picture at once: one run, counted once, to the one who started it.
        answers: dict[str, requests.Response] = {}
        starter = threading.Thread(target=lambda: answers.update(dave=api.get(LINK.format(
            text="shared%20run", seed=6, user="dave"))))
        starter.start()
        wait_until(lambda: prompts_in(simulator), 10, "the shared run to start")
        answers["erin"] = api.get(LINK.format(text="shared%20run", seed=6, user="erin"))
        starter.join(30)
        assert simulator.prompts_received == 2
        shared = marked(history(simulator), "shared run")[0]["seconds"]
        assert float(answers["dave"].headers["X-LinkPix-GPU-Seconds"]) == pytest.approx(shared, abs=0.002)
        assert "X-LinkPix-GPU-Seconds" not in answers["erin"].headers
        usage = api.get("/api/usage").json()
        assert usage["totals"]["carol"] == pytest.approx(comfy, abs=0.002)
        assert usage["totals"]["dave"] == pytest.approx(shared, abs=0.002)
        assert "erin" not in usage["totals"]
        assert {row["user"] for row in usage["days"]} == {"carol", "dave"}
        assert all(row["runs"] == 1 and row["day"] == time.strftime("%Y-%m-%d", time.gmtime())
                   for row in usage["days"])
        metrics = api.get("/metrics").text
        assert f'linkpix_gpu_seconds_total{{user="dave"}} {float(answers["dave"].headers["X-LinkPix-GPU-Seconds"])}' \
            in metrics
    finally:
        api.close()
    restarted = ApiServer(project, simulator.url)  # the book is on disk: a restart keeps it
    try:
        assert restarted.get("/api/usage?user=carol").json()["totals"] == {"carol": pytest.approx(comfy, abs=0.002)}
    finally:
        restarted.close()


@pytest.mark.slow
def test_usage_shows_a_key_its_own_user_and_an_admin_everyone(project, simulator):
    keys = {"key-alice": "alice", "key-bob": "bob", "key-admin": "admin"}
    api = ApiServer(project, simulator.url, network_access=True, api_keys=keys, admin_keys=["key-admin"])
    try:
        for user in ("alice", "bob"):
            r = api.get(LINK.format(text=f"{user}%20picture", seed=1, user=user),
                        headers={"Authorization": f"Bearer key-{user}"})
            assert r.status_code == 200, r.text
        alice = api.get("/api/usage", headers={"X-API-Key": "key-alice"})
        assert alice.status_code == 200 and set(alice.json()["totals"]) == {"alice"}
        other = api.get("/api/usage?user=bob", headers={"X-API-Key": "key-alice"})
        assert other.status_code == 404 and "gpu_seconds" not in other.text and "day" not in other.json()
        admin = api.get("/api/usage", headers={"X-API-Key": "key-admin"}).json()
        assert set(admin["totals"]) == {"alice", "bob"}
        assert set(api.get("/api/usage?user=bob", headers={"X-API-Key": "key-admin"}).json()["totals"]) == {"bob"}
        anonymous = api.get("/api/usage")
        assert anonymous.status_code == 401 and "API key" in anonymous.json()["message"]
        health = api.get("/health").json()  # open to the network: no user names without a key
        assert "users" not in health["fair_queue"] and "waiting" in health["fair_queue"]
        bad = api.get("/api/usage?user=no%20spaces", headers={"X-API-Key": "key-admin"})
        assert bad.status_code == 400
    finally:
        api.close()


def test_a_used_up_gpu_quota_refuses_new_runs_but_serves_cached_pictures(project, simulator):
    server = JobsServer(project, simulator.url, rate_limits_user={"gpu_seconds": "1/day"})
    try:
        first = server.get(LINK.format(text="within%20quota", seed=1, user="frank"))
        assert first.status_code == 200 and "X-LinkPix-GPU-Seconds" in first.headers
        refused = server.get(LINK.format(text="over%20quota", seed=2, user="frank"))
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 3600  # a day's window: hours, not seconds
        assert "gpu_seconds" in refused.json()["message"]
        assert server.get(LINK.format(text="within%20quota", seed=1, user="frank")).status_code == 200  # cached
        job = server.post("/generate", json={"prompt": "a job over quota", "user": "frank", "width": 64,
                                             "height": 64})
        assert job.status_code == 429 and "gpu_seconds" in job.json()["message"]
        assert server.get(LINK.format(text="other%20user", seed=3, user="grace")).status_code == 200
        assert simulator.prompts_received == 2
    finally:
        server.close()


def test_quota_settings_are_checked():
    from linkpix.config import Settings

    with pytest.raises(ValueError, match="gpu_seconds is counted per user"):
        Settings(rate_limits_address={"gpu_seconds": "10/day"})
    with pytest.raises(ValueError, match="gpu_seconds"):
        Settings(rate_limits_user={"gpu_seconds": "lots"})


@pytest.mark.slow
def test_a_backend_dying_with_work_queued_in_linkpix_loses_nothing_and_runs_nothing_twice(project, sims):
    a = sims.start("gpu-a", run_delay=0.4)
    b = sims.start("gpu-b", run_delay=0.4)
    server = JobsServer(project, None, comfyui_urls=sims.specs(), jobs_max_queued_per_user=20)
    try:
        ids = {server.submit(prompt=f"survives {i}", seed=i, user="alice" if i % 2 else "bob"): i for i in range(10)}
        wait_until(lambda: len(prompts_in(a)) == 2 and len(prompts_in(b)) == 2, 10, "both backends to be fed")
        waiting = sum(row["waiting"] for row in server.get("/health").json()["fair_queue"]["users"])
        assert waiting >= 4  # queued in LinkPix when the backend dies
        a.faults.run_delay = 10.0  # its running prompt is still running when it dies
        before = [r for r in history(a) if r["ok"]]
        a.stop()
        results = {job_id: server.wait_for(job_id, timeout=90) for job_id in ids}
        assert all(job["status"] == "succeeded" for job in results.values()), results
        done = before + [r for r in history(b) if r["ok"]]
        for i in range(10):
            assert len(marked(done, f"survives {i}")) == 1, f"job {i} ran {len(marked(done, f'survives {i}'))} times"
        assert len(done) == 10
    finally:
        server.close()


@pytest.mark.slow
def test_the_fronts_answers_say_the_gpu_seconds_their_runs_took(project, simulator):
    """The A1111 and OpenAI fronts carry X-LinkPix-GPU-Seconds as links do: the batch's sum of ComfyUI's own
    stamps when something ran, nothing when every image came from the cache."""
    simulator.faults.run_delay = 0.2
    server = FrontServer(project, simulator.url)
    try:
        body = {"prompt": "front seconds", "seed": 41, "width": 64, "height": 64, "batch_size": 2}
        first = requests.post(server.url + "/sdapi/v1/txt2img", json=body, timeout=60)
        assert first.status_code == 200 and len(first.json()["images"]) == 2
        runs = marked(history(simulator), "front seconds")
        assert len(runs) == 2
        assert float(first.headers["X-LinkPix-GPU-Seconds"]) == pytest.approx(sum(r["seconds"] for r in runs),
                                                                             abs=0.004)
        again = requests.post(server.url + "/sdapi/v1/txt2img", json=body, timeout=60)
        assert again.status_code == 200 and "X-LinkPix-GPU-Seconds" not in again.headers
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="loopback", max_retries=0, timeout=60)
        raw = client.images.with_raw_response.generate(prompt="openai seconds", size="64x64", model="demo")
        assert len(raw.parse().data) == 1
        ran = marked(history(simulator), "openai seconds")[0]["seconds"]
        assert float(raw.headers["X-LinkPix-GPU-Seconds"]) == pytest.approx(ran, abs=0.002)
    finally:
        server.close()


@pytest.mark.slow
def test_a_users_weight_buys_a_bigger_share_of_the_gpu(project, simulator):
    """fair_weights: with bob's backlog first and alice at weight 3, alice's runs go ahead until her recent
    GPU-seconds over 3 reach bob's (equal weights alternate them once their use is level)."""
    simulator.faults.run_delay = 0.25
    server = JobsServer(project, simulator.url, jobs_max_queued_per_user=20, fair_weights={"alice": 3})
    try:
        b_jobs = [server.submit(prompt=f"bob weighed {i}", seed=i, user="bob") for i in range(6)]
        wait_until(lambda: len(prompts_in(simulator)) == 2, 10, "ComfyUI to hold bob's first two")
        a_jobs = [server.submit(prompt=f"alice weighed {i}", seed=i, user="alice") for i in range(6)]
        for job_id in [*b_jobs, *a_jobs]:
            assert server.wait_for(job_id, timeout=60)["status"] == "succeeded"
        order = ["alice" if "alice weighed" in r["graph"] else "bob" for r in history(simulator)]
        assert order[:2] == ["bob", "bob"]
        assert order[2:8].count("alice") >= 5, order  # equal weights gave 4: A A B A B A
    finally:
        server.close()


def test_a_weight_outside_its_range_is_refused_with_the_users_named(project):
    from linkpix.config.settings import Settings

    with pytest.raises(ValueError, match="from 0.01 to 1000.*zed"):
        Settings(fair_weights={"zed": 0, "amy": 2})


@pytest.mark.slow
def test_a_waiting_job_shows_its_place_in_the_fair_queue(project, simulator):
    simulator.faults.run_delay = 1.5  # the places are read before alice's first run ends
    server = JobsServer(project, simulator.url, jobs_max_queued_per_user=20)

    def places(ids: list[str]) -> list[Any]:
        return [server.get(f"/jobs/{i}").json()["fair_queue_position"] for i in ids]

    try:
        a_jobs = [server.submit(prompt=f"alpha placed {i}", seed=i, user="alice") for i in range(5)]
        wait_until(lambda: places(a_jobs[2:]) == [1, 2, 3], 10, "alice's last three to wait in LinkPix")
        assert places(a_jobs[:2]) == [None, None]  # given to ComfyUI: its queue_position says where
        b_job = server.submit(prompt="bravo placed", seed=9, user="bob")
        wait_until(lambda: places([b_job, *a_jobs[2:]]) == [1, 2, 3, 4], 5, "bob's job ahead of alice's backlog")
        for job_id in [*a_jobs, b_job]:
            assert server.wait_for(job_id, timeout=60)["status"] == "succeeded"
        assert places([b_job, *a_jobs]) == [None] * 6
    finally:
        server.close()
