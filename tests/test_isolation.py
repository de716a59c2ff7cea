"""A shared LinkPix keeps its users apart (issue 20, items 1-3), over real sockets with the simulator.

Two users with keys (alice, bob), an admin key (root), network_access on: uploads belong to their
uploader on every surface, nothing lists another user's inputs, graphs through the ComfyUI front load
only the caller's own uploads and stay within size limits, and a key's user is the user on /prompt.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import pytest
import requests
from fronts_support import DATA, FrontServer, png_bytes

KEYS = {"k-alice": "alice", "k-bob": "bob", "k-root": "root"}
ALICE, BOB, ROOT = ({"X-API-Key": k} for k in KEYS)
IMG2IMG = "/prompt/a%20fox?workflow=sd15_img2img&width=64&height=64&denoise=0&image="


@pytest.fixture
def shared(project, simulator) -> Iterator[FrontServer]:
    server = FrontServer(project, simulator.url, network_access=True, api_keys=KEYS, admin_keys=["k-root"],
                         front_max_nodes=50, front_max_graph_mb=0.05)
    try:
        yield server
    finally:
        server.close()


def _upload(server: FrontServer, headers: dict[str, str], data: bytes) -> str:
    r = requests.post(server.url + "/uploads", data=data, headers={**headers, "Content-Type": "image/png"},
                      timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _loadimage_graph(name: str) -> dict:
    graph = json.loads((DATA.parent / "comfyui_captures" / "workflow_loadimage_invert_api.json").read_text())
    loader = next(k for k, n in graph.items() if n["class_type"] == "LoadImage")
    graph[loader]["inputs"]["image"] = name
    return graph


def test_upload_ids_are_per_user_stable_and_not_the_content_hash(shared):
    photo = png_bytes(color=(10, 20, 30))
    alice, bob = _upload(shared, ALICE, photo), _upload(shared, BOB, photo)
    assert alice != bob
    assert hashlib.sha256(photo).hexdigest()[:16] not in alice + bob  # nobody can compute an id from a photo
    assert _upload(shared, ALICE, photo) == alice  # the same photo by the same user: the same id


def test_another_users_upload_is_a_404_on_links_jobs_edits_and_the_front(shared):
    bob = _upload(shared, BOB, png_bytes(color=(1, 200, 3)))
    assert shared.get(IMG2IMG + bob, headers=BOB).status_code == 200  # bob uses his own
    unknown = "linkpix_0123456789abcdef.png"
    for headers in (ALICE, {}):  # alice's key, and no key at all
        r = shared.get(IMG2IMG + bob, headers=headers)
        assert r.status_code == 404 and r.json()["error"] == "not_found", r.text
        assert shared.get(IMG2IMG + unknown, headers=headers).json()["message"] == \
            r.json()["message"].replace(bob, unknown)  # the same answer as an id that never existed
    r = requests.post(shared.url + "/generate", json={"prompt": "x", "workflow": "sd15_img2img", "images": [bob],
                                                      "width": 64, "height": 64}, headers=ALICE, timeout=30)
    assert r.status_code == 404, r.text
    r = requests.post(shared.url + "/edit", json={"image": bob, "method": "lut", "prompt": "warmer"},
                      headers=ALICE, timeout=30)
    assert r.status_code == 404, r.text
    r = requests.post(shared.url + "/comfy/prompt", json={"prompt": _loadimage_graph(bob)},
                      headers={"Authorization": "Bearer k-alice"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["type"] == "prompt_outputs_failed_validation", r.text
    assert shared.get(IMG2IMG + bob, headers=ROOT).status_code == 200  # an admin key may


def test_no_answer_lists_other_users_input_images(shared):
    bob = _upload(shared, BOB, png_bytes(color=(7, 8, 9)))
    assert shared.get(IMG2IMG + bob, headers=BOB).status_code == 200  # now in the backend's input folder
    _refresh_object_info(shared)
    # the admin sees every working copy (named by the picture's bytes, not by bob's id)
    assert [n for n in shared.get("/api/models", headers=ROOT).json()["input_images"] if n.startswith("linkpix_")]
    for headers in ({}, ALICE, BOB):
        listed = shared.get("/api/models", headers=headers).json()["input_images"]
        assert not [n for n in listed if n.startswith("linkpix_")], listed
    r = shared.get("/prompt/a%20fox?workflow=sd15_img2img&image=nothere.png", headers=ALICE)
    assert r.status_code == 400 and bob not in r.text and "linkpix_" not in r.text, r.text
    node = shared.get("/comfy/object_info/LoadImage", headers={"Authorization": "Bearer k-alice"}).json()
    assert node["LoadImage"] and "linkpix_" not in json.dumps(node)


def _refresh_object_info(server: FrontServer) -> None:
    """A graph naming a checkpoint no backend has makes LinkPix read object_info again."""
    graph = json.loads((DATA.parent / "comfyui_captures" / "workflow_txt2img_tiny_sd15_api.json").read_text())
    loader = next(k for k, n in graph.items() if n["class_type"] == "CheckpointLoaderSimple")
    graph[loader]["inputs"]["ckpt_name"] = "not-here.safetensors"
    r = requests.post(server.url + "/comfy/prompt", json={"prompt": graph}, headers={"Authorization": "Bearer k-root"},
                      timeout=30)
    assert r.status_code == 400, r.text


def test_the_front_runs_only_the_callers_own_uploads(shared):
    front = shared.url + "/comfy"
    alice = {"Authorization": "Bearer k-alice"}
    up = requests.post(front + "/upload/image", files={"image": ("mine.png", png_bytes(), "image/png")},
                       headers=alice, timeout=30)
    assert up.status_code == 200, up.text
    ok = requests.post(front + "/prompt", json={"prompt": _loadimage_graph("mine.png")}, headers=alice, timeout=30)
    assert ok.status_code == 200, ok.text
    own_id = _upload(shared, ALICE, png_bytes(color=(50, 60, 70)))
    assert requests.post(front + "/prompt", json={"prompt": _loadimage_graph(own_id)}, headers=alice,
                         timeout=30).status_code == 200
    bob = {"Authorization": "Bearer k-bob"}
    for name in ("../../../../tmp/x.png", "/etc/passwd", "C:\\x.png", "mine.png", "sub/../mine.png",
                 "example.png"):
        r = requests.post(front + "/prompt", json={"prompt": _loadimage_graph(name)}, headers=bob, timeout=30)
        assert r.status_code == 400, (name, r.text)
        assert r.json()["error"]["type"] == "prompt_outputs_failed_validation" and r.json()["node_errors"], name
    viewed = requests.get(front + "/view", params={"filename": "mine.png", "type": "input"}, headers=bob, timeout=30)
    assert viewed.status_code == 404


def test_the_front_refuses_huge_graphs_before_comfyui_sees_them(shared, simulator):
    alice = {"Authorization": "Bearer k-alice"}
    before = len(shared.get("/api/requests", headers=ROOT).json())
    many = {str(i): {"class_type": "PrimitiveInt", "inputs": {"value": i}} for i in range(51)}
    r = requests.post(shared.url + "/comfy/prompt", json={"prompt": many}, headers=alice, timeout=30)
    assert r.status_code == 413 and "front_max_nodes" in r.json()["error"]["message"], r.text
    big = {"1": {"class_type": "CLIPTextEncode", "inputs": {"text": "x" * 60_000, "clip": ["2", 0]}}}
    r = requests.post(shared.url + "/comfy/prompt", json={"prompt": big}, headers=alice, timeout=30)
    assert r.status_code == 413 and "front_max_graph_mb" in r.json()["error"]["message"], r.text
    assert len(shared.get("/api/requests", headers=ROOT).json()) >= before


def test_a_keys_user_is_the_user_on_links(shared):
    link = "/prompt/bob%27s%20owl?width=64&height=64"
    r = shared.get(link, headers=BOB)
    assert r.status_code == 200 and r.headers["X-LinkPix-Image-Url"].startswith("/images/bob/"), r.headers
    assert shared.get(link + "&user=bob", headers=ALICE).status_code == 403
    r = shared.get(link, headers={**ALICE, "X-LinkPix-User": "bob"})
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert shared.get(link + "&user=bob").status_code == 403  # no key: not a keyed user
    assert shared.get(link, headers={"X-LinkPix-User": "bob"}).status_code == 403
    assert shared.get(link + "&user=bob", headers=ROOT).status_code == 200  # an admin key may
    assert shared.get(link + "&user=carol").status_code == 200  # a user without a key, as before
    bobs_log = [e for e in shared.get("/api/requests", headers=BOB).json() if e["path"].startswith("/prompt")]
    # bob's own link and the admin's on his behalf; alice's and the keyless tries are not in his log
    assert [e["status"] for e in bobs_log] == [200, 200], bobs_log


def test_without_network_access_a_named_user_is_taken_as_before(project, simulator):
    server = FrontServer(project, simulator.url, api_keys=KEYS)
    try:
        r = server.get("/prompt/fox?width=64&height=64&user=bob", headers=ALICE)
        assert r.status_code == 200 and r.headers["X-LinkPix-Image-Url"].startswith("/images/bob/")
        r = server.get("/prompt/fox?width=64&height=64", headers=ALICE)
        assert r.headers["X-LinkPix-Image-Url"].startswith("/images/alice/")
    finally:
        server.close()


def test_a_keys_user_is_the_user_on_jobs(shared):
    job = {"prompt": "x", "width": 64, "height": 64}
    r = requests.post(shared.url + "/generate", json={**job, "user": "bob"}, headers=ALICE, timeout=30)
    assert r.status_code == 403 and r.json()["error"] == "forbidden", r.text
    r = requests.post(shared.url + "/generate", json=job, headers={**ALICE, "X-LinkPix-User": "bob"}, timeout=30)
    assert r.status_code == 403, r.text
    r = requests.post(shared.url + "/generate", json={**job, "user": "bob"}, headers=ROOT, timeout=30)
    assert r.status_code == 202, r.text
    assert shared.get(f"/jobs/{r.json()['job_id']}", headers=BOB).json()["user"] == "bob"


def test_a_character_may_reference_only_its_owners_uploads(shared):
    bob = _upload(shared, BOB, png_bytes(color=(90, 91, 92)))
    r = requests.put(shared.url + "/api/characters/thief", json={"words": "x", "references": [bob]}, headers=ALICE,
                     timeout=30)
    assert r.status_code == 404 and bob in r.json()["message"], r.text
    r = requests.put(shared.url + "/api/characters/mine", json={"words": "x", "references": [bob]}, headers=BOB,
                     timeout=30)
    assert r.status_code == 201, r.text
