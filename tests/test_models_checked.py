"""A model ComfyUI does not have is a 400 before anything runs (issue 13 item 7): from a link, and from
POST /generate before the job is accepted, whether the request, the workflow settings or the workflow
file itself names it."""

from __future__ import annotations

import json

import pytest


def _workflow_with_model(project, name: str, model: str) -> None:
    graph = json.loads((project / "workflows" / "demo.json").read_text())
    loader = next(n for n in graph.values() if n["class_type"] == "CheckpointLoaderSimple")
    loader["inputs"]["ckpt_name"] = model
    (project / "workflows" / f"{name}.json").write_text(json.dumps(graph))


@pytest.mark.slow
def test_a_workflow_naming_a_missing_model_is_a_400_from_a_link(api, project, simulator):
    _workflow_with_model(project, "stale", "gone.safetensors")
    r = api.get("/prompt/cat?workflow=stale&width=64&height=64")
    assert r.status_code == 400, r.text
    body = r.json()
    assert "gone.safetensors" in body["message"] and "demo.safetensors" in body["message"]
    assert "demo.safetensors" in body["details"]["allowed"]
    assert simulator.prompts_received == 0


def test_a_job_with_a_missing_model_is_refused_before_it_is_accepted(jobs, project, simulator):
    _workflow_with_model(project, "stale", "gone.safetensors")
    r = jobs.post("/generate", json={"prompt": "cat", "workflow": "stale", "width": 64, "height": 64})
    assert r.status_code == 400, r.text
    assert "gone.safetensors" in r.json()["message"]
    (project / "workflows" / "settings").mkdir(exist_ok=True)
    (project / "workflows" / "settings" / "demo.json").write_text(json.dumps({"model": "gone.safetensors"}))
    r = jobs.post("/generate", json={"prompt": "cat", "width": 64, "height": 64})
    assert r.status_code == 400 and "gone.safetensors" in r.json()["message"], r.text
    assert jobs.get("/jobs").json()["jobs"] == [] and simulator.prompts_received == 0


def test_models_it_has_pass(jobs):
    job = jobs.wait_for(jobs.submit(prompt="cat", model="demo.safetensors"))
    assert job["status"] == "succeeded", job
