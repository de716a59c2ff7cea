"""Fidelity of the simulator's HTTP answers against captures from a real ComfyUI 0.3.64.

Each capture that records a request/response is replayed against the simulator: same status code and the
same JSON shape (keys and value types, recursively; ids, times and sizes may differ).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
from simulator_support import (
    CAPTURES,
    Recorder,
    assert_same_shape,
    load,
    png,
    post_prompt,
    upload,
    wait_history,
    workflow,
)

from linkpix.simulator import SimulatorServer


def expected(name: str) -> tuple[int, Any]:
    data = load(name)
    if isinstance(data, dict) and "status" in data and "body" in data and "request" in data:
        return data["status"], data["body"]
    return 200, data


def check(name: str, response: requests.Response) -> None:
    status, body = expected(name)
    assert response.status_code == status, response.text
    if body == "":
        assert response.content == b""
        return
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert_same_shape(body, response.json())


# -- plain GETs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name,path", [
    ("system_stats.json", "/system_stats"),
    ("features.json", "/features"),
    ("embeddings.json", "/embeddings"),
    ("models.json", "/models"),
    ("models_checkpoints.json", "/models/checkpoints"),
    ("models_loras.json", "/models/loras"),
    ("models_unknown_folder.json", "/models/nonexistent_folder"),
    ("object_info_single_KSampler.json", "/object_info/KSampler"),
    ("object_info_single_unknown.json", "/object_info/NoSuchNode"),
    ("queue_empty.json", "/queue"),
    ("prompt_get_queue_info.json", "/prompt"),
    ("history_unknown_id.json", "/history/00000000-0000-0000-0000-000000000000"),
])
@pytest.mark.parametrize("prefix", ["", "/api"])
def test_get_matches_capture(simulator: SimulatorServer, name: str, path: str, prefix: str) -> None:
    check(name, requests.get(simulator.url + prefix + path, timeout=10))


def test_object_info_full_matches_capture(simulator: SimulatorServer) -> None:
    captured = load("object_info_full.json")
    got = requests.get(simulator.url + "/object_info", timeout=30).json()
    assert set(got) == set(captured) and len(got) == 478
    assert_same_shape(captured, got)
    subset = load("object_info_subset.json")
    assert_same_shape(subset, {k: got[k] for k in subset})


def test_model_lists_are_live(simulator: SimulatorServer) -> None:
    info = requests.get(simulator.url + "/object_info/CheckpointLoaderSimple", timeout=10).json()
    assert "v1-5-pruned-emaonly.safetensors" in info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    vae = requests.get(simulator.url + "/object_info/VAELoader", timeout=10).json()
    vaes = ["ae.safetensors", "qwen_image_vae.safetensors", "sdxl_vae.safetensors"]
    assert vae["VAELoader"]["input"]["required"]["vae_name"][0] == vaes + ["pixel_space"]
    assert requests.get(simulator.url + "/models/vae", timeout=10).json() == vaes
    unet = requests.get(simulator.url + "/object_info/UNETLoader", timeout=10).json()
    assert unet["UNETLoader"]["input"]["required"]["unet_name"][0] == [
        "flux1-dev-kontext_fp8_scaled.safetensors", "flux1-schnell.safetensors",
        "qwen_image_edit_fp8_e4m3fn.safetensors"]
    load_image = requests.get(simulator.url + "/object_info/LoadImage", timeout=10).json()
    assert load_image["LoadImage"]["input"]["required"]["image"][0] == ["example.png"]
    assert upload(simulator.url, "new.png", png()).status_code == 200
    load_image = requests.get(simulator.url + "/object_info/LoadImage", timeout=10).json()
    assert load_image["LoadImage"]["input"]["required"]["image"][0] == ["example.png", "new.png"]


# -- POST /prompt errors -------------------------------------------------------------------------
ERROR_CAPTURES = sorted(p.name for p in CAPTURES.glob("prompt_error_*.json"))


@pytest.mark.parametrize("name", ERROR_CAPTURES)
def test_prompt_error_matches_capture(simulator: SimulatorServer, name: str) -> None:
    capture = load(name)
    r = requests.post(simulator.url + "/prompt", json=capture["request_body"], timeout=10)
    check(name, r)
    body, want = r.json(), capture["body"]
    assert body["error"]["type"] == want["error"]["type"]
    assert body["error"]["message"] == want["error"]["message"]
    if name not in ("prompt_error_missing_checkpoint.json",):
        assert body["error"]["details"] == want["error"]["details"]
    for node_id, entry in want["node_errors"].items():
        got = body["node_errors"][node_id]
        assert got["class_type"] == entry["class_type"] and got["dependent_outputs"] == entry["dependent_outputs"]
        by_type = {e["type"]: e for e in got["errors"]}
        for err in entry["errors"]:
            mine = by_type[err["type"]]
            assert mine["message"] == err["message"]
            if err["type"] != "value_not_in_list" or "ckpt_name" not in err["details"]:
                assert mine["details"] == err["details"]
                assert {k: v for k, v in mine["extra_info"].items() if k != "traceback"} == \
                       {k: v for k, v in err["extra_info"].items() if k != "traceback"}


def test_prompt_not_json_gives_500_text(simulator: SimulatorServer) -> None:
    r = requests.post(simulator.url + "/prompt", data="this is not json {", headers={"Content-Type": "text/plain"},
                      timeout=10)
    assert r.status_code == 500
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.text == "500 Internal Server Error\n\nServer got itself in trouble"


# -- uploads -------------------------------------------------------------------------------------
def test_upload_sequence_matches_captures(simulator: SimulatorServer) -> None:
    url = simulator.url
    tiny = png(64, 48)
    check("upload_response.json", upload(url, "tiny_input.png", tiny, overwrite="true", type="input",
                                         subfolder="capture_tests"))
    r = upload(url, "tiny_input.png", tiny, subfolder="capture_tests")
    check("upload_response_duplicate_same_bytes.json", r)
    assert r.json()["name"] == "tiny_input.png"
    r = upload(url, "tiny_input.png", png(64, 48, (1, 2, 3)), subfolder="capture_tests")
    check("upload_response_name_conflict.json", r)
    assert r.json() == {"name": "tiny_input (1).png", "subfolder": "capture_tests", "type": "input"}
    r = upload(url, "tiny_input.png", png(64, 48, (4, 5, 6)), subfolder="capture_tests")
    assert r.json()["name"] == "tiny_input (2).png"
    r = upload(url, "tiny_input.png", png(64, 48, (7, 8, 9)), subfolder="capture_tests", overwrite="1")
    assert r.json()["name"] == "tiny_input.png"
    r = upload(url, "corrupt_not_really.png", b"definitely not a png", subfolder="capture_tests")
    check("upload_response_corrupt_file.json", r)
    r = upload(url, "tiny_root.png", tiny)
    check("upload_response_defaults.json", r)
    assert r.json() == {"name": "tiny_root.png", "subfolder": "", "type": "input"}
    r = requests.post(url + "/upload/image", files={"overwrite": (None, "true")}, timeout=10)
    check("upload_response_missing_image_field.json", r)


def test_upload_error_cases(simulator: SimulatorServer) -> None:
    url = simulator.url
    assert upload(url, "x.png", png(), subfolder="../escape").status_code == 400
    r = upload(url, "x.png", png(), type="bogus")
    assert r.status_code == 500 and r.text.startswith("500 Internal Server Error")
    r = upload(url, "t.png", png(), type="temp", subfolder="a/b")
    assert r.json() == {"name": "t.png", "subfolder": "a/b", "type": "temp"}
    assert (simulator.root / "temp" / "a" / "b" / "t.png").read_bytes() == png()


# -- /view ---------------------------------------------------------------------------------------
def test_view_cases_match_captures(simulator: SimulatorServer) -> None:
    url = simulator.url
    history = wait_history(url, post_prompt(url, workflow("workflow_emptyimage_api.json"))["prompt_id"])
    image = next(iter(history.values()))["outputs"]["4"]["images"][0]
    r = requests.get(url + "/view", params={"filename": image["filename"], "subfolder": "", "type": "output"},
                     timeout=10)
    assert r.status_code == 200 and r.content[:8].hex() == "89504e470d0a1a0a"
    assert r.headers["Content-Type"] == "image/png"
    assert r.headers["Content-Disposition"] == f'filename="{image["filename"]}"'
    for header in ("Etag", "Last-Modified", "Accept-Ranges"):
        assert header in r.headers
    r = requests.get(url + "/view", params={"filename": "no_such_file.png", "type": "output", "subfolder": ""},
                     timeout=10)
    assert (r.status_code, r.content) == (404, b"")
    assert requests.get(url + "/view", timeout=10).status_code == 404
    assert requests.get(url + "/view?filename=..%2Fetc%2Fpasswd&type=output", timeout=10).status_code == 400
    r = requests.get(url + "/view", params={"filename": "x.png", "subfolder": "../.."}, timeout=10)
    assert r.status_code == 403
    assert requests.get(url + "/view", params={"filename": "x.png", "type": "nope"}, timeout=10).status_code == 400
    r = requests.get(url + "/view", params={"filename": image["filename"] + " [output]", "type": "input"}, timeout=10)
    assert r.status_code == 200
    r = requests.get(url + "/api/view", params={"filename": image["filename"], "preview": "jpeg;50"}, timeout=10)
    assert r.headers["Content-Type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    r = requests.get(url + "/view", params={"filename": image["filename"], "preview": "png"}, timeout=10)
    assert r.headers["Content-Type"] == "image/webp"
    r = requests.get(url + "/view", params={"filename": image["filename"], "channel": "a"}, timeout=10)
    assert r.headers["Content-Type"] == "image/png"
    r = requests.get(url + "/view", params={"filename": "example.png", "type": "input"}, timeout=10)
    assert r.status_code == 200


# -- queue, interrupt, history around a slow prompt (the interrupt captures) -----------------------
def quick_prompt() -> dict[str, Any]:
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 123456}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "capture_quick"}}}


def slow_prompt() -> dict[str, Any]:
    wf = workflow("workflow_slow_for_interrupt_api.json")
    wf["1"]["inputs"].update(width=64, height=64)
    return wf


def test_interrupt_scenario_matches_captures(simulator: SimulatorServer) -> None:
    url = simulator.url
    simulator.faults.node_delay = 0.15
    rec = Recorder(url)
    slow = post_prompt(url, slow_prompt(), rec.client_id)["prompt_id"]
    quick = post_prompt(url, quick_prompt(), rec.client_id)["prompt_id"]
    rec.until(lambda f: f.get("type") == "executing" and f["data"].get("node") == "3")
    check("queue_running.json", requests.get(url + "/queue", timeout=10))
    check("prompt_get_while_running.json", requests.get(url + "/prompt", timeout=10))
    assert requests.get(url + "/prompt", timeout=10).json()["exec_info"]["queue_remaining"] == 2
    r = requests.post(url + "/interrupt", timeout=10)
    assert (r.status_code, r.content) == (200, b"")
    rec.until_done(slow)
    simulator.faults.node_delay = 0.0
    rec.until_done(quick)
    rec.close()
    history = requests.get(url + f"/history/{slow}", timeout=10).json()
    check("history_interrupted.json", requests.get(url + f"/history/{slow}", timeout=10))
    messages = history[slow]["status"]["messages"]
    assert messages[-1][0] == "execution_interrupted" and messages[-1][1]["node_id"] == "4"
    assert sorted(messages[-1][1]["executed"]) == ["1", "2", "3"]
    check("history_all_max2.json", requests.get(url + "/history?max_items=2", timeout=10))
    assert list(requests.get(url + "/history?max_items=2", timeout=10).json()) == [slow, quick]
    check("queue_after.json", requests.get(url + "/queue", timeout=10))
    r = requests.post(url + "/interrupt", json={"prompt_id": "not-running"}, timeout=10)
    assert (r.status_code, r.content) == (200, b"")


def test_prompt_responses_and_histories_match_captures(simulator: SimulatorServer) -> None:
    url = simulator.url
    r = requests.post(url + "/prompt", json={"prompt": workflow("workflow_emptyimage_api.json"), "client_id": "c"},
                      timeout=10)
    check("prompt_response_success.json", r)
    first = r.json()["prompt_id"]
    check("history_success.json", _history(url, first))
    r = requests.post(url + "/prompt", json={"prompt": workflow("workflow_emptyimage_api.json"), "client_id": "c"},
                      timeout=10)
    check("prompt_response_cached.json", r)
    check("history_cached.json", _history(url, r.json()["prompt_id"]))
    assert upload(url, "tiny_input.png", png(64, 48), subfolder="capture_tests").status_code == 200
    r = requests.post(url + "/prompt", json={"prompt": workflow("workflow_loadimage_invert_api.json"),
                                             "client_id": "c"}, timeout=10)
    check("prompt_response_img2img.json", r)
    check("history_img2img.json", _history(url, r.json()["prompt_id"]))
    assert upload(url, "corrupt_not_really.png", b"nope", subfolder="capture_tests").status_code == 200
    r = requests.post(url + "/prompt", json={"prompt": workflow("workflow_execution_error_api.json"),
                                             "client_id": "c"}, timeout=10)
    check("prompt_response_execution_error.json", r)
    check("history_execution_error.json", _history(url, r.json()["prompt_id"]))


def _history(url: str, prompt_id: str) -> requests.Response:
    wait_history(url, prompt_id)
    return requests.get(f"{url}/history/{prompt_id}", timeout=10)


@pytest.mark.parametrize("name,preview,setup", [
    ("history_ksampler_no_preview.json", "none", "cold"),
    ("history_ksampler_no_preview_warm.json", "none", "warm"),
    ("history_ksampler.json", "auto", "cold"),
    ("history_ksampler_preview_metadata.json", "auto", "warm"),
])
def test_ksampler_histories_match_captures(tmp_path: Any, name: str, preview: str, setup: str) -> None:
    with SimulatorServer(port=0, root=tmp_path / "c", preview_method=preview) as sim:
        wf = workflow("workflow_txt2img_tiny_sd15_api.json")
        if setup == "warm":
            wait_history(sim.url, post_prompt(sim.url, wf, "c")["prompt_id"])
            wf["3"]["inputs"]["seed"] += 1
        pid = post_prompt(sim.url, wf, "c")["prompt_id"]
        check(name, _history(sim.url, pid))
        entry = requests.get(f"{sim.url}/history/{pid}", timeout=10).json()[pid]
        assert entry["status"]["messages"][1][1]["nodes"] == (["4", "6", "7", "5"] if setup == "warm" else [])


def test_history_written_before_final_executing(simulator: SimulatorServer) -> None:
    rec = Recorder(simulator.url)
    pid = post_prompt(simulator.url, quick_prompt(), rec.client_id)["prompt_id"]
    rec.until_done(pid)
    # The very first request after `executing null` must already see the entry.
    assert requests.get(f"{simulator.url}/history/{pid}", timeout=10).json()[pid]["status"]["completed"] is True
    rec.close()


def test_csrf_origin_check(simulator: SimulatorServer) -> None:
    url = simulator.url
    r = requests.get(url + "/queue", headers={"Origin": "http://evil.example"}, timeout=10)
    assert (r.status_code, r.content) == (403, b"")
    r = requests.get(url + "/queue", headers={"Origin": url}, timeout=10)
    assert r.status_code == 200
    assert requests.get(url + "/queue", timeout=10).status_code == 200


def test_odd_input_never_crashes(simulator: SimulatorServer) -> None:
    url = simulator.url
    for body in (b"[]", b"123", b'{"prompt": 5}', b'{"prompt": {"1": 5}}', b'{"prompt": {"1": {"class_type": 5}}}',
                 b'{"number": "x", "prompt": {}}', b'{"prompt": {"1": {"class_type": "SaveImage", "inputs": 3}}}'):
        r = requests.post(url + "/prompt", data=body, timeout=10)
        assert r.status_code in (400, 500), (body, r.status_code)
        if r.status_code == 500:
            assert r.text == "500 Internal Server Error\n\nServer got itself in trouble"
    for path, body in (("/queue", b"nope"), ("/history", b"nope"), ("/free", b"{")):
        assert requests.post(url + path, data=body, timeout=10).status_code == 500
    assert requests.get(url + "/history?max_items=abc", timeout=10).status_code == 500
    assert requests.get(url + "/system_stats", timeout=10).status_code == 200
    assert json.loads(requests.get(url + "/queue", timeout=10).text) == {"queue_running": [], "queue_pending": []}
    time.sleep(0)
