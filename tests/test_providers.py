"""Hosted image APIs beside ComfyUI (issue 26), over real sockets: a second LinkPix's OpenAI front as the
OpenAI-compatible provider (the real protocol, its own simulator behind it), and a BFL-protocol server
(tests/providers_support.py) for BFL's submit-and-poll API. Routing by `model=<provider>:<model>`, the
fallback when the only ComfyUI is down (and none when the workflow says so), provider errors (429, a
refused key, moderation), cost counted, and a hosted edit returned at the photo's full resolution."""

from __future__ import annotations

import io
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from providers_support import KEY as BFL_KEY
from providers_support import BflServer
from replica_support import redis_server
from support import ApiServer

from linkpix.simulator import SimulatorServer

__all__ = ["redis_server"]

# Slow (docs/testing.md): hosted providers (stand-in APIs on loopback) through a running API: seconds each.
pytestmark = pytest.mark.slow

REMOTE_KEY = "remote-secret-key-123"


@pytest.fixture(autouse=True)
def keys() -> Iterator[None]:
    """The providers' keys, as an operator sets them: in the environment, never in config.json."""
    os.environ["TEST_BFL_KEY"], os.environ["TEST_REMOTE_KEY"] = BFL_KEY, REMOTE_KEY
    yield
    del os.environ["TEST_BFL_KEY"], os.environ["TEST_REMOTE_KEY"]


@pytest.fixture
def bfl() -> Iterator[BflServer]:
    server = BflServer()
    yield server
    server.close()


@pytest.fixture
def remote(tmp_path: Path, project: Path) -> Iterator[tuple[ApiServer, SimulatorServer]]:
    """Another LinkPix with its own simulator, keyed: the hosted OpenAI-compatible API."""
    other = tmp_path / "other"
    other.mkdir()
    for name in ("data", "workflows", "config.json", "cache"):
        src = project / name
        (other / name).write_bytes(src.read_bytes()) if src.is_file() else \
            __import__("shutil").copytree(src, other / name)
    sim = SimulatorServer(host="127.0.0.1", port=0, root=tmp_path / "other-comfy", step_delay=0.0)
    sim.start()
    server = ApiServer(other, sim.url, api_keys={REMOTE_KEY: "tenant"}, network_access=True)
    yield server, sim
    server.close()
    sim.stop()


def providers(bfl: BflServer | None = None, remote: ApiServer | None = None, **extra) -> list[dict]:
    out = []
    if remote is not None:
        out.append({"name": "remote", "kind": "openai", "url": f"{remote.url}/v1", "api_key_env": "TEST_REMOTE_KEY",
                    "models": ["demo", "flux_kontext_edit"], "priority": 2, "cost_per_image": 0.04, **extra})
    if bfl is not None:
        out.append({"name": "bfl", "kind": "bfl", "url": f"{bfl.url}/v1", "api_key_env": "TEST_BFL_KEY",
                    "models": ["flux-dev", "flux-kontext-pro"], "priority": 1, "cost_per_megapixel": 0.5, **extra})
    return out


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def runs(sim: SimulatorServer) -> int:
    return len(requests.get(f"{sim.url}/history", timeout=10).json())


def png_size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def test_a_link_naming_an_openai_compatible_provider_runs_there_and_is_cached(project, simulator, remote):
    other, other_sim = remote
    api = ApiServer(project, simulator.url, providers=providers(remote=other))
    try:
        r = api.get("/prompt/a red fox?model=remote:demo&width=320&height=256")
        assert r.status_code == 200, r.text
        assert r.headers["X-LinkPix-Backend"] == "remote:demo"
        assert png_size(r.content) == (320, 256)
        assert runs(other_sim) == 1 and runs(simulator) == 0  # the hosted side ran it, our ComfyUI did not
        again = api.get("/prompt/a red fox?model=remote:demo&width=320&height=256")
        assert again.headers["X-LinkPix-Cache"] == "hit" and again.content == r.content
        assert runs(other_sim) == 1
        plain = api.get("/prompt/a red fox?width=320&height=256")  # no provider named: our ComfyUI
        assert plain.status_code == 200 and plain.headers["X-LinkPix-Backend"] != "remote:demo"
        assert runs(simulator) == 1
    finally:
        api.close()


def test_bfl_submit_then_poll_and_cost_counted_per_user(project, simulator, bfl):
    api = ApiServer(project, simulator.url, providers=providers(bfl=bfl))
    try:
        r = api.get("/prompt/a lighthouse?model=bfl:flux-dev&width=500&height=300&seed=7")
        assert r.status_code == 200, r.text
        assert r.headers["X-LinkPix-Backend"] == "bfl:flux-dev"
        sent = bfl.requests[-1]
        assert sent["model"] == "flux-dev" and sent["prompt"] == "a lighthouse" and sent["seed"] == 7
        assert (sent["width"], sent["height"]) == (512, 288)  # multiples of 32, as BFL takes them
        assert png_size(r.content) == (512, 288)
        kontext = api.get("/prompt/a lighthouse?model=bfl:flux-kontext-pro&width=1024&height=768")
        assert kontext.status_code == 200 and bfl.requests[-1]["aspect_ratio"] == "4:3"
        assert png_size(kontext.content) == (1024, 1024)  # Kontext takes a ratio; our server draws 1024 square
        metrics = api.get("/metrics").text
        costs = {tuple(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(metrics)
                 for s in f.samples if s.name == "linkpix_provider_cost_total"}
        expected = 0.5 * 512 * 288 / 1e6 + 0.5 * 1024 * 1024 / 1e6  # per megapixel delivered
        assert costs[(("provider", "bfl"), ("user", "default"))] == pytest.approx(expected)
        usage = api.get("/api/usage").json()["days"]
        assert [(r["user"], r["provider_runs"]) for r in usage] == [("default", 2)]
        assert usage[0]["provider_cost"] == pytest.approx(expected, abs=1e-6) and usage[0]["gpu_seconds"] == 0
        health = api.get("/health")
        assert health.json()["providers"] == [{"name": "bfl", "kind": "bfl", "models": ["flux-dev", "flux-kontext-pro"],
                                               "priority": 1, "features": ["txt2img", "img2img", "inpainting"]}]
        assert BFL_KEY not in metrics and BFL_KEY not in health.text and "TEST_BFL_KEY" not in health.text
    finally:
        api.close()


def test_fallback_when_the_only_comfyui_is_down_and_none_when_the_workflow_says_no(project, bfl):
    settings = project / "workflows" / "settings"
    settings.mkdir(exist_ok=True)
    (settings / "sd15.json").write_text(json.dumps({"provider_fallback": "none"}))
    api = ApiServer(project, dead_url(), providers=providers(bfl=bfl), provider_fallback="auto")
    try:
        r = api.get("/prompt/a castle at dusk?width=256&height=256")
        assert r.status_code == 200, r.text
        assert r.headers["X-LinkPix-Backend"] == "bfl:flux-dev"  # auto: the best-priority provider for text
        refused = api.get("/prompt/a castle at dusk?workflow=sd15&width=256&height=256")
        assert refused.status_code == 503 and refused.json()["error"] == "backend_unavailable"
    finally:
        api.close()
    plain = ApiServer(project, dead_url(), providers=providers(bfl=bfl))  # no fallback configured
    try:
        assert plain.get("/prompt/a castle at dusk?width=256&height=256").status_code == 503
    finally:
        plain.close()


def test_provider_errors_become_clear_answers(project, simulator, bfl, remote):
    other, _ = remote
    specs = providers(bfl=bfl, remote=other, retries=0)
    specs[0]["api_key_env"] = "TEST_BFL_KEY"  # the remote provider gets the wrong key: 401 over there
    api = ApiServer(project, simulator.url, providers=specs)
    try:
        refused = api.get("/prompt/x?model=remote:demo")
        body = refused.json()
        assert refused.status_code == 502 and body["error"] == "provider_key_refused", body
        assert "TEST_BFL_KEY" in body["message"] and BFL_KEY not in refused.text
        bfl.rate_limited = True
        limited = api.get("/prompt/y?model=bfl:flux-dev")
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
        assert limited.json()["error"] == "provider_rate_limited" and "bfl" in limited.json()["message"]
        bfl.rate_limited = False
        moderated = api.get("/prompt/something forbidden?model=bfl:flux-dev")
        assert moderated.status_code == 422 and moderated.json()["error"] == "content_refused"
        unknown = api.get("/prompt/z?model=bfl:flux-ultra-9000")
        assert unknown.status_code == 400 and "flux-dev" in unknown.json()["message"]
        assert api.get("/prompt/y?model=bfl:flux-dev").status_code == 200  # nothing of the errors was cached
    finally:
        api.close()


def test_a_hosted_edit_comes_back_at_the_photos_full_resolution(project, simulator, remote):
    other, other_sim = remote
    api = ApiServer(project, simulator.url, providers=providers(remote=other))
    try:
        y, x = np.mgrid[0:1500, 0:2000] / 2000
        photo = Image.fromarray(np.clip(np.stack([x * 255, y * 255, 128 + 0 * x], -1), 0, 255).astype(np.uint8))
        buf = io.BytesIO()
        photo.save(buf, "PNG")
        r = requests.post(f"{api.url}/edit", files={"image": ("p.png", buf.getvalue(), "image/png")},
                          data={"prompt": "black and white", "model": "remote:flux_kontext_edit", "format": "png"},
                          timeout=120)
        assert r.status_code == 200, r.text
        assert png_size(r.content) == (2000, 1500)  # the photo's size, not the hosted model's
        assert r.headers["X-LinkPix-Backend"] == "remote:flux_kontext_edit"
        assert r.headers["X-LinkPix-Edit-Method"] == "lut"
        out = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")).astype(float)
        assert np.abs(out[..., 0] - out[..., 1]).mean() < 6  # grey: the hosted model's edit, applied
        assert runs(other_sim) == 1 and runs(simulator) == 0
    finally:
        api.close()


def test_the_settings_are_checked_at_start_and_read_from_the_environment_as_json(project, monkeypatch):
    from linkpix.config import load_config
    from linkpix.errors import ConfigError

    spec = {"name": "bfl", "kind": "bfl", "url": "http://127.0.0.1:9/v1", "models": ["flux-dev"]}
    monkeypatch.setenv("LINKPIX_PROVIDERS", json.dumps([spec]))
    monkeypatch.setenv("LINKPIX_PROVIDER_FALLBACK", "bfl:flux-dev")
    settings = load_config(project / "config.json").settings
    assert settings.providers[0].name == "bfl" and settings.providers[0].features == ["txt2img", "img2img",
                                                                                       "inpainting"]
    for bad, says in (([spec, spec], "must differ"), ([{**spec, "kind": "fal"}], "kind"),
                      ([{**spec, "url": "ftp://x"}], "http")):
        monkeypatch.setenv("LINKPIX_PROVIDERS", json.dumps(bad))
        with pytest.raises(ConfigError, match=says):
            load_config(project / "config.json")
    monkeypatch.setenv("LINKPIX_PROVIDERS", json.dumps([spec]))
    monkeypatch.setenv("LINKPIX_PROVIDER_FALLBACK", "openai:gpt-image-1")
    with pytest.raises(ConfigError, match="names no configured provider"):
        load_config(project / "config.json")


def test_a_job_runs_on_a_provider_and_reports_it(project, simulator, bfl):
    from jobs_support import JobsServer

    server = JobsServer(project, simulator.url, providers=providers(bfl=bfl))
    try:
        job_id = server.submit(prompt="a quiet harbour", width=256, height=256, params={"model": "bfl:flux-dev"})
        done = server.wait_for(job_id)
        assert done["status"] == "succeeded", done
        assert done["backend"] == "bfl:flux-dev", done
        image = server.get(done["images"][0]["url"])
        assert image.status_code == 200 and png_size(image.content) == (256, 256)
        assert bfl.requests[-1]["prompt"] == "a quiet harbour" and runs(simulator) == 0
    finally:
        server.close()


def test_two_replicas_on_redis_count_the_hosted_cost_in_one_book(project, simulator, bfl, redis_server):
    first = ApiServer(project, simulator.url, providers=providers(bfl=bfl), redis_url=redis_server.url,
                      replica_name="one")
    second = ApiServer(project, simulator.url, providers=providers(bfl=bfl), redis_url=redis_server.url,
                       replica_name="two")
    try:
        assert first.get("/prompt/a tower?model=bfl:flux-dev&width=256&height=256").status_code == 200
        assert second.get("/prompt/a bridge?model=bfl:flux-dev&width=256&height=256").status_code == 200
        for server in (first, second):
            rows = server.get("/api/usage").json()["days"]
            assert [(r["user"], r["provider_runs"]) for r in rows] == [("default", 2)]
            assert rows[0]["provider_cost"] == pytest.approx(2 * 0.5 * 256 * 256 / 1e6)
    finally:
        first.close()
        second.close()


def test_a_picture_comfyui_made_is_still_served_from_the_cache_when_the_fallback_takes_new_work(project, bfl):
    sim = SimulatorServer(host="127.0.0.1", port=0, root=project.parent / "fallback-comfy", step_delay=0.0)
    sim.start()
    api = ApiServer(project, sim.url, providers=providers(bfl=bfl), provider_fallback="auto")
    try:
        made = api.get("/prompt/an old mill?width=256&height=256")
        assert made.status_code == 200 and made.headers["X-LinkPix-Backend"] != "bfl:flux-dev"
        sim.freeze()  # like kill -STOP: LinkPix judges it frozen, so no ComfyUI backend can run new work
        deadline = time.monotonic() + 20
        while api.get("/health").json()["backends"][0]["state"] != "frozen" and time.monotonic() < deadline:
            time.sleep(0.2)
        again = api.get("/prompt/an old mill?height=256&width=256")  # another URL of the same picture
        assert again.status_code == 200 and again.headers["X-LinkPix-Cache"] == "hit"
        assert again.content == made.content and not bfl.requests
        new = api.get("/prompt/a new mill?width=256&height=256")
        assert new.status_code == 200 and new.headers["X-LinkPix-Backend"] == "bfl:flux-dev"
    finally:
        sim.thaw()
        api.close()
        sim.stop()
