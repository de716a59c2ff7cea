"""The JSON routes, the OpenAPI description, signed links and the error shape, over real sockets."""

from __future__ import annotations

import re
import time

import pytest
import requests

from linkpix.web.signing import sign

# Slow (docs/testing.md): each test starts the API and waits on runs: seconds on two cores.
pytestmark = pytest.mark.slow


def test_health_reports_comfyui_and_cache(api, simulator):
    api.get("/prompt/warm?width=64&height=64")
    r = api.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["comfyui"] == "reachable" and body["status"] == "ok"
    assert "simulator" in body["comfyui_version"]
    assert body["queue_pending"] == 0
    assert body["cache"]["images"] == 1 and body["cache"]["misses"] == 1
    assert r.headers["Cache-Control"] == "no-store"


def test_styles_workflows_and_models(api):
    styles = api.get("/api/styles").json()
    assert "none" in styles and "kawaii" in styles
    wf = api.get("/api/workflows").json()
    assert "demo.json" in wf["workflows"] and wf["default"] == "demo.json"
    described = api.get("/api/workflows/demo.json")
    assert described.status_code == 200
    assert "prompt" in described.text and "seed" in described.text
    assert api.get("/api/workflows/..%2Fconfig.json").status_code in (400, 404)
    models = api.get("/api/models").json()
    assert "demo.safetensors" in models["checkpoints"]
    assert "euler" in models["samplers"] and "karras" in models["schedulers"]


def test_openapi_describes_every_route(api):
    spec = api.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    documented = set(spec["paths"])
    for rule in api.app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)  # <converter:name> -> {name}
        assert path in documented, f"{rule.rule} is missing from /openapi.json"


def test_unknown_route_and_method_use_the_error_shape(api):
    r = api.get("/nope")
    assert r.status_code == 404 and set(r.json()) == {"error", "message", "details"}
    r = requests.post(api.url + "/health", timeout=10)
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"


def test_signed_links(project, simulator):
    from support import ApiServer

    server = ApiServer(project, simulator.url, signing_keys=["new-key", "old-key"], require_signature=True)
    try:
        path, query = "/prompt/signed%20fox", "width=64&height=64"
        assert server.get(f"{path}?{query}").status_code == 401
        assert server.get(sign("new-key", path, query)).status_code == 200
        assert server.get(sign("old-key", path, query)).status_code == 200  # rotation: old links still work
        tampered = sign("new-key", path, query).replace("width=64", "width=96")
        assert server.get(tampered).status_code == 401
        assert server.get(sign("stranger", path, query)).status_code == 401
    finally:
        server.close()


def test_cors_only_for_configured_origins(project, simulator):
    from support import ApiServer

    server = ApiServer(project, simulator.url, cors_origins=["http://chat.local"])
    try:
        ok = server.get("/api/styles", headers={"Origin": "http://chat.local"})
        assert ok.headers.get("Access-Control-Allow-Origin") == "http://chat.local"
        other = server.get("/api/styles", headers={"Origin": "http://evil.example"})
        assert "Access-Control-Allow-Origin" not in other.headers
    finally:
        server.close()


def test_recent_requests_list_outcomes_newest_first(api):
    api.get("/prompt/listed?width=64&height=64&user=dora")
    api.get("/prompt/listed?width=64&height=64&user=dora")
    api.get("/prompt/listed?style=nope")
    api.get("/health")  # not an image request: not listed
    deadline = time.monotonic() + 5  # a request is recorded once its response has been sent
    while len(listed := api.get("/api/requests?limit=10").json()) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [(r["status"], r.get("cache"), r.get("error")) for r in listed] == [
        (400, None, "bad_request"), (200, "hit", None), (200, "miss", None)]
    assert listed[1]["user"] == "dora" and listed[1]["ms"] >= 0
    assert api.get("/api/requests?limit=x").status_code == 400


def test_recent_requests_need_a_key_on_the_network(project, simulator):
    from support import ApiServer

    server = ApiServer(project, simulator.url, network_access=True, api_keys={"k1": "alice"})
    try:
        assert server.get("/api/requests").status_code == 401
        assert server.get("/api/requests", headers={"X-API-Key": "k1"}).status_code == 200
    finally:
        server.close()
