"""The API's contract as /openapi.json states it, and what Schemathesis found breaking it (issue 15 item 5).

Each finding of the fuzzing run (tests/test_schemathesis.py) is pinned here by a plain request, so a
regression shows up with a readable name even when the fuzzer's draw misses it.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from support import ApiServer

from linkpix.simulator import SimulatorServer

# Slow (docs/testing.md): each test starts the API and waits on runs: seconds on two cores.
pytestmark = pytest.mark.slow

# 2xx answers that carry no body by design (ComfyUI's bare 200s, a websocket upgrade, "nothing more").
EMPTY = {("post", "/queue"), ("post", "/interrupt"), ("post", "/free"), ("post", "/history"),
         ("get", "/ws"), ("get", "/jobs/{job_id}/events"), ("get", "/api/v2/jobs/{job_id}/events"),
         ("head", "/api/v2/assets/by-hash/{digest}")}  # a HEAD answers headers only


def test_every_answer_documents_its_body(api: ApiServer) -> None:
    spec = api.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    named = spec["components"].get("responses", {})  # StoredFile, StoredFileRange
    thin = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            for code, response in op["responses"].items():
                if "$ref" in response:
                    response = named[response["$ref"].rsplit("/", 1)[1]]
                content = response.get("content")
                if content is None:
                    if code.startswith("2") and code != "204" and (method, path) not in EMPTY:
                        thin.append(f"{method.upper()} {path} {code}")
                    if code[0] in "45":
                        thin.append(f"{method.upper()} {path} {code} (error without a body shape)")
                    continue
                for media, body in content.items():
                    schema = body.get("schema")
                    if schema is None:
                        thin.append(f"{method.upper()} {path} {code} {media}")
                    elif "$ref" in schema:
                        assert schema["$ref"].rsplit("/", 1)[1] in schemas
            if "requestBody" in op:
                assert all("schema" in b for b in op["requestBody"]["content"].values()), (method, path)
    assert thin == []


def test_fronts_answer_errors_in_their_own_shape_in_the_description(api: ApiServer) -> None:
    paths = api.get("/openapi.json").json()["paths"]

    def error_ref(path: str, method: str, code: str) -> str:
        return paths[path][method]["responses"][code]["content"]["application/json"]["schema"]["$ref"]

    assert error_ref("/sdapi/v1/txt2img", "post", "400").endswith("/A1111Error")
    assert error_ref("/v1/images/generations", "post", "400").endswith("/OpenAIError")
    assert error_ref("/prompt", "post", "400").endswith("/ComfyError")
    assert error_ref("/generate", "post", "400").endswith("/Error")
    assert "image/png" in paths["/prompt/{text}"]["get"]["responses"]["400"]["content"]  # <img> clients


def test_a_prompt_with_a_newline_is_a_prompt_not_a_404(api: ApiServer) -> None:
    """Found by Schemathesis (and fixed on main at the same time, web/images.py's AnyPath): werkzeug's
    `path` converter stopped at a newline (%0A), so such a link answered 404."""
    r = api.get("/prompt/a%20fox%0Ain%20the%20snow", params={"format": "json"})
    assert r.status_code == 200, r.text
    assert r.json()["prompt"] == "a fox\nin the snow"
    assert api.get("/prompt/line%0Abreak").headers["Content-Type"] == "image/png"


def test_a_graph_whose_node_is_not_an_object_is_refused_before_comfyui(api: ApiServer,
                                                                       simulator: SimulatorServer) -> None:
    """Found by Schemathesis: `{"prompt": {"1": null}}` went to ComfyUI, whose validate_prompt raises on it
    (HTTP 500, in 0.3.64 and today alike), and came back as a 503 "backend unavailable"."""
    before = simulator.prompts_received
    for graph in ({"1": None}, {"1": {"class_type": ["KSampler"], "inputs": {}}}, {"1": "text"}):
        r = requests.post(api.url + "/prompt", json={"prompt": graph}, timeout=10)
        assert r.status_code == 400, r.text
        body: dict[str, Any] = r.json()
        assert body["error"]["type"] == "invalid_prompt" and body["node_errors"] == {}
        assert body["error"]["details"] == "Node ID '#1'"
    assert simulator.prompts_received == before


def test_comfy_front_bare_answers_claim_no_body(api: ApiServer) -> None:
    """Found by Schemathesis: ComfyUI's bodiless 404 (and 200s) came with `Content-Type: text/html`."""
    r = api.get("/models/not-a-folder")
    assert r.status_code == 404 and r.content == b"" and "Content-Type" not in r.headers
    r = requests.post(api.url + "/free", json={}, timeout=10)
    assert r.status_code == 200 and r.content == b"" and "Content-Type" not in r.headers
