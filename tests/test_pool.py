"""Several ComfyUI backends behind one LinkPix, over real sockets: spreading, model-aware routing, failover,
a backend leaving and rejoining, removal while busy, /ready and /health per backend."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from jobs_support import JobsServer, wait_until
from pool_support import Sims, pool_api, posts_to, prompts_in, write_workflow

from linkpix.comfy import routing

# Slow (docs/testing.md): pools of simulators, failover and health probes: seconds each.
pytestmark = pytest.mark.slow


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[Sims]:
    group = Sims(tmp_path / "comfy")
    try:
        yield group
    finally:
        group.stop()


def backend_of(response) -> str:
    assert response.status_code == 200, response.text
    return response.headers["X-LinkPix-Backend"]


def test_distinct_links_spread_over_both_backends(project, sims):
    a, b = sims.start("gpu-a", run_delay=0.3), sims.start("gpu-b", run_delay=0.3)
    api = pool_api(project, sims)
    try:
        with ThreadPoolExecutor(6) as workers:
            answers = list(workers.map(lambda i: api.get(f"/prompt/spread%20{i}?width=64&height=64"), range(6)))
        names = [backend_of(r) for r in answers]
        assert sorted(set(names)) == ["gpu-a", "gpu-b"]
        assert (a.prompts_received, b.prompts_received) == (names.count("gpu-a"), names.count("gpu-b"))
        assert min(a.prompts_received, b.prompts_received) >= 2
        again = api.get("/prompt/spread%200?width=64&height=64")  # a hit names the backend that drew it
        assert again.headers["X-LinkPix-Cache"] == "hit" and backend_of(again) == names[0]
    finally:
        api.close()


def test_a_checkpoint_only_one_backend_has_runs_there(project, sims):
    sims.start("plain")
    special = sims.start("special", checkpoints=["demo.safetensors", "special.safetensors"])
    api = pool_api(project, sims)
    try:
        for i in range(4):
            r = api.get(f"/prompt/only%20here%20{i}?width=64&height=64&model=special.safetensors")
            assert backend_of(r) == "special"
        assert special.prompts_received == 4 and sims["plain"].prompts_received == 0
        models = api.get("/api/models").json()["checkpoints"]
        assert "special.safetensors" in models and "demo.safetensors" in models  # merged over the pool
    finally:
        api.close()


def test_a_model_no_backend_has_is_400_naming_who_has_what_before_anything_is_queued(project, sims):
    a = sims.start("gpu-a", loras=["add_detail.safetensors"])
    b = sims.start("gpu-b", loras=["pixel-art-xl.safetensors"])
    write_workflow(project, "ghost_lora", {
        "8": {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["1", 1], "strength_model": 1.0,
                                                     "strength_clip": 1.0, "lora_name": "ghost.safetensors"}},
        "5": {"inputs": {"model": ["8", 0]}}})
    api = pool_api(project, sims)
    try:
        r = api.get("/prompt/haunted?width=64&height=64&workflow=ghost_lora")
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["message"].startswith("no ComfyUI backend has the LoRA 'ghost.safetensors' "
                                           "(LoraLoader.lora_name in node 8): ")
        assert "gpu-a has add_detail.safetensors" in body["message"]
        assert "gpu-b has pixel-art-xl.safetensors" in body["message"]
        assert body["details"]["backends"] == {"gpu-a": ["add_detail.safetensors"],
                                               "gpu-b": ["pixel-art-xl.safetensors"]}
        assert posts_to(a) == posts_to(b) == 0
    finally:
        api.close()


def test_the_backend_with_the_model_loaded_is_preferred(project, sims):
    both = ["demo.safetensors", "other.safetensors"]
    sims.start("gpu-a", checkpoints=both)
    sims.start("gpu-b", checkpoints=both)
    api = pool_api(project, sims)
    try:
        where: dict[str, set[str]] = {"demo.safetensors": set(), "other.safetensors": set()}
        for i in range(3):
            for model in where:
                r = api.get(f"/prompt/round%20{i}?width=64&height=64&model={model}")
                where[model].add(backend_of(r))
        assert all(len(names) == 1 for names in where.values()), where
        assert where["demo.safetensors"] != where["other.safetensors"]
        rows = {r["name"]: r for r in api.get("/health").json()["backends"]}
        assert {rows[n]["last_model"] for n in rows} == {"demo.safetensors", "other.safetensors"}
    finally:
        api.close()


def test_a_backend_down_at_submit_is_skipped(project, sims):
    down = sims.start("down")
    up = sims.start("up")
    down.pause()
    api = pool_api(project, sims)
    try:
        for i in range(3):
            started = time.monotonic()
            assert backend_of(api.get(f"/prompt/skip%20{i}?width=64&height=64")) == "up"
            assert time.monotonic() - started < 2
        assert up.prompts_received == 3
    finally:
        down.resume()
        api.close()


def first_running(*sims_) -> tuple:
    """The simulator that runs a prompt now, and that prompt's id."""
    for sim in sims_:
        running = prompts_in(sim)
        if running:
            return sim, running[0]
    return None


@pytest.mark.parametrize("fault", ["restart", "freeze"])
def test_a_backend_that_dies_mid_run_fails_the_run_over(project, sims, fault):
    a = sims.start("gpu-a", run_delay=0.5)
    b = sims.start("gpu-b", run_delay=0.5)
    api = pool_api(project, sims)
    try:
        with ThreadPoolExecutor(1) as workers:
            future = workers.submit(api.get, "/prompt/survivor?width=64&height=64")
            victim, prompt_id = wait_until(lambda: first_running(a, b), 10, "the run to start")
            victim.faults.run_delay = 5.0  # still running when the fault hits
            getattr(victim, fault)()
            r = future.result(timeout=30)
        other = b if victim is a else a
        assert backend_of(r) == other.name
        if fault == "freeze":
            victim.thaw()
            wait_until(lambda: not prompts_in(victim), 10, "the abandoned prompt to be stopped after the thaw")
        job = api.get("/health").json()
        assert {row["name"]: row["failures"] for row in job["backends"]}[victim.name] == 1
        assert prompt_id not in prompts_in(other)
    finally:
        api.close()


def test_a_run_comfyui_refused_or_failed_is_not_retried_elsewhere(project, sims):
    a, b = sims.start("gpu-a"), sims.start("gpu-b")
    write_workflow(project, "bad_denoise", {"5": {"inputs": {"denoise": 5.0}}})
    api = pool_api(project, sims)
    try:
        r = api.get("/prompt/refused?width=64&height=64&workflow=bad_denoise")
        assert r.status_code == 422, r.text
        assert posts_to(a) + posts_to(b) == 1
        a.faults.fail_class = b.faults.fail_class = "KSampler"
        r = api.get("/prompt/failing?width=64&height=64")
        assert r.status_code == 502 and r.json()["details"]["node_type"] == "KSampler"
        assert a.prompts_received + b.prompts_received == 1
    finally:
        api.close()


def test_a_frozen_backend_leaves_the_rotation_and_rejoins(project, sims):
    a, b = sims.start("gpu-a"), sims.start("gpu-b")
    api = pool_api(project, sims)
    try:
        a.freeze()
        wait_until(lambda: {r["name"]: r["state"] for r in api.get("/health").json()["backends"]}["gpu-a"]
                   == "frozen", 5, "gpu-a to be seen frozen")
        for i in range(4):
            started = time.monotonic()
            assert backend_of(api.get(f"/prompt/frozen%20out%20{i}?width=64&height=64")) == "gpu-b"
            assert time.monotonic() - started < 2
        a.thaw()
        wait_until(lambda: {r["name"]: r["state"] for r in api.get("/health").json()["backends"]}["gpu-a"]
                   == "up", 5, "gpu-a to rejoin")
        a.faults.run_delay = b.faults.run_delay = 0.3
        with ThreadPoolExecutor(4) as workers:  # sequential runs would all stay where the model is loaded
            answers = list(workers.map(lambda i: api.get(f"/prompt/back%20{i}?width=64&height=64"), range(4)))
        assert "gpu-a" in {backend_of(r) for r in answers}
    finally:
        api.close()


def edit_config(project: Path, **changes) -> None:
    path = project / "config.json"
    values = json.loads(path.read_text())
    values.update(changes)
    path.write_text(json.dumps(values))
    stamp = time.time_ns() + 1_000_000
    os.utime(path, ns=(stamp, stamp))


def test_a_backend_removed_while_busy_finishes_its_run_first(project, sims):
    a = sims.start("gpu-a", run_delay=1.5)
    b = sims.start("gpu-b")
    edit_config(project, comfyui_urls=sims.specs("gpu-a"))
    api = pool_api(project, sims, comfyui_urls=None)
    try:
        with ThreadPoolExecutor(1) as workers:
            busy = workers.submit(api.get, "/prompt/long%20one?width=64&height=64")
            wait_until(lambda: prompts_in(a), 10, "the long run to start on gpu-a")
            edit_config(project, comfyui_urls=sims.specs("gpu-b"))
            rows = {r["name"]: r for r in api.get("/health").json()["backends"]}
            assert rows["gpu-a"]["retiring"] and rows["gpu-a"]["inflight"] == 1
            assert backend_of(api.get("/prompt/new%20work?width=64&height=64")) == "gpu-b"
            assert backend_of(busy.result(timeout=20)) == "gpu-a"
        wait_until(lambda: [r["name"] for r in api.get("/health").json()["backends"]] == ["gpu-b"], 5,
                   "gpu-a to leave the pool")
        assert b.prompts_received == 1
    finally:
        api.close()


def test_a_reattached_job_goes_back_to_its_backend(project, sims):
    a = sims.start("gpu-a", step_delay=0.2)
    b = sims.start("gpu-b", step_delay=0.2)
    urls = sims.specs()
    first = JobsServer(project, a.url, comfyui_urls=urls)
    try:
        job_id = first.submit(prompt="follow me home", seed=3)
        running = wait_until(lambda: (lambda j: j if j["prompt_id"] and j["backend"] else None)(first.job(job_id)),
                             10, "the job to reach a backend")
    finally:
        first.close()
    second = JobsServer(project, a.url, comfyui_urls=list(reversed(urls)))
    try:
        done = second.wait_for(job_id)
        assert done["status"] == "succeeded" and done["prompt_id"] == running["prompt_id"], done
        assert done["backend"] == running["backend"]
        home = sims[running["backend"]]
        away = b if home is a else a
        assert (home.prompts_received, away.prompts_received) == (1, 0)
    finally:
        second.close()


def test_ready_and_health_per_backend(project, sims):
    a = sims.start("gpu-a", run_delay=1.0)
    b = sims.start("gpu-b", run_delay=1.0)
    api = pool_api(project, sims, comfyui_urls=sims.specs(max_queue=1, tags=["test"]))
    try:
        r = api.get("/ready")
        assert r.status_code == 200 and r.json()["ready"] is True
        assert backend_of(api.get("/prompt/warm?width=64&height=64"))
        health = api.get("/health").json()
        assert health["backends_up"] == 2 and health["status"] == "ok"
        rows = {row["name"]: row for row in health["backends"]}
        assert set(rows) == {"gpu-a", "gpu-b"}
        ran = [row for row in rows.values() if row["runs"] == 1]
        assert len(ran) == 1 and ran[0]["mean_run_seconds"] >= 1.0 and ran[0]["last_model"] == "demo.safetensors"
        assert rows["gpu-a"]["devices"][0]["name"].startswith("gpu-a: ")
        assert rows["gpu-a"]["tags"] == ["test"] and rows["gpu-a"]["max_queue"] == 1
        with ThreadPoolExecutor(2) as workers:
            pending = [workers.submit(api.get, f"/prompt/fill%20{i}?width=64&height=64") for i in range(2)]
            wait_until(lambda: prompts_in(a) and prompts_in(b), 10, "both backends to be busy")
            wait_until(lambda: api.get("/ready").status_code == 503, 5, "/ready to say every queue is full")
            assert "full" in api.get("/ready").json()["reason"]
            for future in pending:
                assert future.result(timeout=20).status_code == 200
        a.freeze()
        b.freeze()
        started = time.monotonic()
        wait_until(lambda: api.get("/ready").status_code == 503, 5, "/ready to notice the freeze")
        r = api.get("/health")
        assert r.status_code == 503 and time.monotonic() - started < 5
        assert {row["state"] for row in r.json()["backends"]} == {"frozen"}
    finally:
        api.close()


def test_routing_reads_every_loader_and_merges_object_info(simulator):
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors"}},
             "2": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "l.safetensors",
                                                              "clip_name2": "t5.safetensors", "type": "flux"}},
             "3": {"class_type": "UnetLoaderGGUF", "inputs": {"unet_name": "flux.gguf"}},
             "4": {"class_type": "KSampler", "inputs": {"sampler_name": "euler", "model": ["1", 0]}}}
    refs = routing.model_files(graph)
    assert [(r.node_id, r.kind, r.value) for r in refs] == [
        ("1", "checkpoint", "a.safetensors"), ("2", "text encoder", "l.safetensors"),
        ("2", "text encoder", "t5.safetensors"), ("3", "model", "flux.gguf")]
    assert routing.main_model(refs) == "a.safetensors"
    one = {"CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["a.safetensors"], {}]}}}}
    two = {"CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["b.safetensors", "a.safetensors"], {}]}}},
           "UNETLoader": {"input": {"required": {"unet_name": ["COMBO", {"options": ["u.safetensors"]}]}}}}
    merged = routing.merge_object_info([one, two])
    assert merged["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == ["a.safetensors", "b.safetensors"]
    assert merged["UNETLoader"] is two["UNETLoader"]
    assert [r.value for r in routing.missing(one, refs)] == ["l.safetensors", "t5.safetensors", "flux.gguf"]


def test_a_job_naming_a_model_no_backend_has_is_refused_before_it_is_accepted(project, sims):
    sims.start("gpu-a")
    write_workflow(project, "ghost_vae", {
        "8": {"class_type": "VAELoader", "inputs": {"vae_name": "ghost_vae.safetensors"}},
        "6": {"inputs": {"vae": ["8", 0]}}})
    server = JobsServer(project, sims["gpu-a"].url, comfyui_urls=sims.specs())
    try:
        r = server.post("/generate", json={"prompt": "no such vae", "workflow": "ghost_vae"})
        assert r.status_code == 400 and "no ComfyUI backend has the VAE 'ghost_vae.safetensors'" in r.json()["message"]
        assert server.get("/jobs").json()["jobs"] == []
    finally:
        server.close()
