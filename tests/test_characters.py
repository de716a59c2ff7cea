"""Characters and LoRAs (issue 23), over real sockets: LinkPix under waitress, the ComfyUI simulator behind it,
and the graphs read back from the simulator's /history."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image
from support import ApiServer, running_simulator

from linkpix.simulator import SimulatorServer

LORAS = ["alice_face.safetensors", "add_detail.safetensors", "styles/ink.safetensors"]
UNETS = ["flux1-dev-kontext_fp8_scaled.safetensors", "flux1-schnell.safetensors",
         "qwen_image_edit_2509_fp8_e4m3fn.safetensors"]


def picture(colour: tuple[int, int, int], size: tuple[int, int] = (40, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimulatorServer]:
    with running_simulator(tmp_path / "comfyui", loras=LORAS, unets=UNETS) as server:
        yield server


@pytest.fixture
def lp(project: Path, sim: SimulatorServer) -> Iterator[ApiServer]:
    server = ApiServer(project, sim.url, workflow_path="sd15.json")
    try:
        yield server
    finally:
        server.close()


def put(api: ApiServer, name: str, body: dict[str, Any], **kw: Any) -> requests.Response:
    return requests.put(f"{api.url}/api/characters/{name}", json=body, timeout=30, **kw)


def upload(api: ApiServer, data: bytes, **kw: Any) -> str:
    r = requests.post(api.url + "/uploads", data=data, headers={"Content-Type": "image/png", **kw}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def generate(api: ApiServer, **body: Any) -> dict[str, Any]:
    """A job through POST /generate, waited for; its final state."""
    r = requests.post(api.url + "/generate", json=body, timeout=30)
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = requests.get(f"{api.url}/jobs/{job_id}", timeout=10).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError("the job never ended")


def last_graph(sim: SimulatorServer) -> dict[str, Any]:
    """The graph of the newest entry of the simulator's /history (as ComfyUI recorded it)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        history = requests.get(sim.url + "/history", timeout=10).json()
        if history:
            return max(history.values(), key=lambda e: e["prompt"][0])["prompt"][2]
        time.sleep(0.02)
    raise AssertionError("no history")


def sampler(graph: dict[str, Any]) -> dict[str, Any]:
    return next(n for n in graph.values() if n["class_type"] in ("KSampler", "SamplerCustomAdvanced"))


def model_chain(graph: dict[str, Any], start: list[Any]) -> list[dict[str, Any]]:
    """The nodes the sampler's model passes through, sampler side first, to the loader."""
    out, link = [], start
    while isinstance(link, list):
        node = graph[link[0]]
        out.append(node)
        link = node["inputs"].get("model")
    return out


def texts(graph: dict[str, Any], side: str) -> str:
    return graph[sampler(graph)["inputs"][side][0]]["inputs"]["text"]


def test_character_words_negative_and_lora_reach_the_graph(lp: ApiServer, sim: SimulatorServer) -> None:
    r = put(lp, "alice", {"words": "alice, red hair, green eyes", "negative": "beard",
                          "loras": [{"name": "alice_face", "strength": 0.7}]})
    assert r.status_code == 201, r.text
    r = lp.get("/prompt/reading%20in%20a%20cafe?char=alice&width=64&height=64&negative=blurry")
    assert r.status_code == 200, r.text
    graph = last_graph(sim)
    chain = model_chain(graph, sampler(graph)["inputs"]["model"])
    assert [n["class_type"] for n in chain] == ["LoraLoader", "CheckpointLoaderSimple"]
    assert chain[0]["inputs"]["lora_name"] == "alice_face.safetensors"
    assert chain[0]["inputs"]["strength_model"] == 0.7 and chain[0]["inputs"]["strength_clip"] == 0.7
    assert texts(graph, "positive") == "alice, red hair, green eyes, reading in a cafe"
    assert texts(graph, "negative") == "blurry, beard"
    encoders = [n for n in graph.values() if n["class_type"] == "CLIPTextEncode"]
    lora_id = sampler(graph)["inputs"]["model"][0]
    for encoder in encoders:  # the text encoders read the LoRA's CLIP (sd15.json: through CLIPSetLastLayer)
        clip = graph[encoder["inputs"]["clip"][0]]
        assert clip["class_type"] == "CLIPSetLastLayer" and clip["inputs"]["clip"] == [lora_id, 1]
    # the same words work as a prompt prefix (for clients that send only text: OpenAI, SillyTavern)
    r = lp.get("/prompt/char:alice%20reading%20in%20a%20cafe?width=64&height=64&negative=blurry")
    assert r.status_code == 200 and r.headers["X-LinkPix-Cache"] == "hit"


def test_an_edited_profile_gives_a_new_run(lp: ApiServer, sim: SimulatorServer) -> None:
    assert put(lp, "alice", {"words": "alice", "loras": [{"name": "alice_face", "strength": 0.7}]}).status_code == 201
    link = "/prompt/on%20a%20bench?char=alice&width=64&height=64"
    assert lp.get(link).status_code == 200
    assert lp.get(link).headers["X-LinkPix-Cache"] == "hit" and sim.prompts_received == 1
    r = put(lp, "alice", {"words": "alice", "loras": [{"name": "alice_face", "strength": 0.4}]})
    assert r.status_code == 200, r.text
    again = lp.get(link)
    assert again.headers["X-LinkPix-Cache"] == "miss" and sim.prompts_received == 2
    assert model_chain(last_graph(sim), sampler(last_graph(sim))["inputs"]["model"])[0]["inputs"]["strength_model"] \
        == 0.4
    put(lp, "alice", {"words": "alice", "description": "only the description changed",
                      "loras": [{"name": "alice_face", "strength": 0.4}]})
    assert lp.get(link).headers["X-LinkPix-Cache"] == "miss" and sim.prompts_received == 3  # the version moved


def test_lora_tags_in_a_prompt(lp: ApiServer, sim: SimulatorServer) -> None:
    r = lp.get("/prompt/a%20castle%2C%20%3Clora%3Aink%3A0.6%3E%2C%20at%20dusk?width=64&height=64")
    assert r.status_code == 200, r.text
    graph = last_graph(sim)
    chain = model_chain(graph, sampler(graph)["inputs"]["model"])
    assert chain[0]["inputs"]["lora_name"] == "styles/ink.safetensors" and chain[0]["inputs"]["strength_model"] == 0.6
    assert texts(graph, "positive") == "a castle, at dusk"
    r = lp.get("/prompt/a%20castle%20%3Clora%3Aadd_detail.safetensors%3A0.5%3A1.2%3E%20%3Clora%3Aink%3E"
               "?width=64&height=64")
    assert r.status_code == 200, r.text
    graph = last_graph(sim)
    chain = model_chain(graph, sampler(graph)["inputs"]["model"])
    loras = {n["inputs"]["lora_name"]: n["inputs"] for n in chain if n["class_type"] == "LoraLoader"}
    assert loras["add_detail.safetensors"]["strength_clip"] == 0.5  # A1111's <lora:name:te:unet>
    assert loras["add_detail.safetensors"]["strength_model"] == 1.2
    assert loras["styles/ink.safetensors"]["strength_model"] == 1.0
    runs = sim.prompts_received
    r = lp.get("/prompt/a%20castle%20%3Clora%3Anope%3A0.5%3E?width=64&height=64")
    assert r.status_code == 400
    message = r.headers.get("X-LinkPix-Error", "") or r.text
    assert "nope" in message and "alice_face.safetensors" in message and "styles/ink.safetensors" in message
    assert sim.prompts_received == runs
    r = requests.post(lp.url + "/generate", json={"prompt": "a castle <lora:ink:abc>"}, timeout=30)
    assert r.status_code == 400 and "must be a number" in r.json()["message"]


def test_references_are_what_load_image_loads(lp: ApiServer, sim: SimulatorServer) -> None:
    face = picture((250, 10, 10))
    ref = upload(lp, face)
    r = put(lp, "bob", {"words": "bob, a tall man", "references": [ref], "workflow": "character_kontext",
                        "loras": [{"name": "alice_face", "strength": 0.9}]})
    assert r.status_code == 201, r.text
    job = generate(lp, prompt="in the park", char="bob", width=64, height=64)
    assert job["status"] == "succeeded", job
    graph = last_graph(sim)
    loads = [n for n in graph.values() if n["class_type"] == "LoadImage"]
    assert [n["inputs"]["image"] for n in loads] == [ref]
    assert (sim.root / "input" / ref).read_bytes() == face
    chain = model_chain(graph, sampler(graph)["inputs"]["model"])  # Flux: a UNETLoader and a DualCLIPLoader
    assert [n["class_type"] for n in chain] == ["LoraLoader", "UNETLoader"]
    assert graph[chain[0]["inputs"]["clip"][0]]["class_type"] == "DualCLIPLoader"


def test_qwen_2509_takes_up_to_three_references(lp: ApiServer, sim: SimulatorServer) -> None:
    refs = [upload(lp, picture(c)) for c in ((200, 0, 0), (0, 200, 0), (0, 0, 200))]
    put(lp, "trio", {"references": refs[:1], "workflow": "character_qwen_edit_2509"})
    r = lp.get("/prompt/at%20the%20beach?char=trio&width=64&height=64")
    assert r.status_code == 200, r.text
    graph = last_graph(sim)
    assert [n["inputs"]["image"] for n in graph.values() if n["class_type"] == "LoadImage"] == refs[:1]
    encoder = graph[sampler(graph)["inputs"]["positive"][0]]
    assert "image2" not in encoder["inputs"] and "image3" not in encoder["inputs"]  # empty slots taken out
    put(lp, "trio", {"references": refs, "workflow": "character_qwen_edit_2509",
                     "loras": [{"name": "alice_face", "strength": 0.5}]})
    assert lp.get("/prompt/at%20the%20beach?char=trio&width=64&height=64").status_code == 200
    graph = last_graph(sim)
    encoder = graph[sampler(graph)["inputs"]["positive"][0]]
    assert [graph[encoder["inputs"][k][0]]["inputs"]["image"] for k in ("image1", "image2", "image3")] == refs
    for ref, colour in zip(refs, ((200, 0, 0), (0, 200, 0), (0, 0, 200)), strict=True):
        assert Image.open(sim.root / "input" / ref).getpixel((0, 0)) == colour
    chain = model_chain(graph, sampler(graph)["inputs"]["model"])
    assert [n["class_type"] for n in chain] == ["CFGNorm", "ModelSamplingAuraFlow", "LoraLoader", "UNETLoader"]


def test_a_graph_without_clip_gets_model_only_loaders(project: Path, lp: ApiServer, sim: SimulatorServer) -> None:
    # Stable Video Diffusion: ImageOnlyCheckpointLoader has MODEL, CLIP_VISION and VAE, no CLIP.
    graph = {
        "1": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": "demo.safetensors"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "3": {"class_type": "SVD_img2vid_Conditioning", "inputs": {
            "clip_vision": ["1", 1], "init_image": ["2", 0], "vae": ["1", 2], "width": 64, "height": 64,
            "video_frames": 2, "motion_bucket_id": 127, "fps": 6, "augmentation_level": 0.0}},
        "4": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 2, "cfg": 1.0, "sampler_name": "euler",
                                                   "scheduler": "simple", "denoise": 1.0, "model": ["1", 0],
                                                   "positive": ["3", 0], "negative": ["3", 1],
                                                   "latent_image": ["3", 2]}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "t", "images": ["7", 0]}},
    }
    import json

    (project / "workflows" / "noclip.json").write_text(json.dumps(graph), encoding="utf-8")
    # it takes an image: one of ComfyUI's input folder, named (without one it is a 400)
    r = lp.get("/prompt/anything%20%3Clora%3Aadd_detail%3A0.3%3E?workflow=noclip&image=example.png")
    assert r.status_code == 200, r.text
    got = last_graph(sim)
    chain = model_chain(got, sampler(got)["inputs"]["model"])
    assert [n["class_type"] for n in chain] == ["LoraLoaderModelOnly", "ImageOnlyCheckpointLoader"]
    assert chain[0]["inputs"]["strength_model"] == 0.3


def test_a_lora_the_graph_already_loads_is_not_loaded_twice(project: Path, lp: ApiServer,
                                                             sim: SimulatorServer) -> None:
    import json

    graph = json.loads((project / "workflows" / "sd15.json").read_text(encoding="utf-8"))
    graph["20"] = {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["10", 0],
                                                          "lora_name": "add_detail.safetensors",
                                                          "strength_model": 1.0, "strength_clip": 1.0}}
    for node in graph.values():
        for key, value in node["inputs"].items():
            if value == ["4", 0] and node is not graph["20"]:
                node["inputs"][key] = ["20", 0]
            elif value == ["10", 0] and node is not graph["20"]:
                node["inputs"][key] = ["20", 1]
    (project / "workflows" / "with_lora.json").write_text(json.dumps(graph), encoding="utf-8")
    r = lp.get("/prompt/x%20%3Clora%3Aadd_detail%3A0.25%3E%20%3Clora%3Aalice_face%3A0.8%3E?workflow=with_lora"
               "&width=64&height=64")
    assert r.status_code == 200, r.text
    got = last_graph(sim)
    chain = model_chain(got, sampler(got)["inputs"]["model"])
    assert [(n["class_type"], n["inputs"].get("lora_name"), n["inputs"].get("strength_model")) for n in chain] == [
        ("LoraLoader", "add_detail.safetensors", 0.25), ("LoraLoader", "alice_face.safetensors", 0.8),
        ("CheckpointLoaderSimple", None, None)]


def test_bad_profiles_are_400s_naming_the_field(lp: ApiServer) -> None:
    cases = [
        ("bad name!", {"words": "x"}, "invalid character name"),
        ("ok", {"words": 5}, "words must be text"),
        ("ok", {"loras": [{"name": "alice_face", "strength": 50}]}, "between -10 and 10"),
        ("ok", {"loras": [{"name": "../etc/passwd"}]}, "invalid LoRA name"),
        ("ok", {"loras": [{"name": "missing_lora"}]}, "alice_face.safetensors"),
        ("ok", {"references": ["http://x/y.png"]}, "not an upload id"),
        ("ok", {"workflow": "nope"}, "unknown workflow"),
        ("ok", {"style": "nope"}, "unknown style"),
        ("ok", {"colour": "red"}, "unknown field"),
    ]
    for name, body, words in cases:
        r = put(lp, name, body)
        assert r.status_code == 400, (name, body, r.text)
        assert words in r.json()["message"], r.json()
    unknown = put(lp, "ok", {"references": ["linkpix_0123456789abcdef.png"]})  # as another user's id: 404
    assert unknown.status_code == 404 and "no upload" in unknown.json()["message"], unknown.text
    assert requests.put(lp.url + "/api/characters/ok", data="nope", timeout=10).status_code == 400
    r = lp.get("/prompt/hi?char=ghost")
    assert r.status_code == 400 and "ghost" in r.headers.get("X-LinkPix-Error", r.text)
    r = lp.get("/prompt/hi?char=bad%20name!")
    assert r.status_code == 400 and "invalid character name" in r.headers.get("X-LinkPix-Error", r.text)
    assert requests.delete(lp.url + "/api/characters/ghost", timeout=10).status_code == 404


@pytest.mark.slow
def test_profiles_are_per_user_and_shared_ones_come_from_an_admin(project: Path, sim: SimulatorServer) -> None:
    keys = {"key-ann": "ann", "key-ben": "ben", "key-root": "root"}
    api = ApiServer(project, sim.url, workflow_path="sd15.json", network_access=True, api_keys=keys,
                    admin_keys=["key-root"])
    ann, ben, root = ({"Authorization": f"Bearer {k}"} for k in keys)
    try:
        assert put(api, "alice", {"words": "ann's alice"}).status_code == 401
        assert put(api, "alice", {"words": "ann's secret alice"}, headers=ann).status_code == 201
        assert requests.get(api.url + "/api/characters/alice", headers=ben, timeout=10).status_code == 404
        listing = requests.get(api.url + "/api/characters", headers=ben, timeout=10)
        assert listing.status_code == 200 and "secret" not in listing.text and "alice" not in listing.text
        r = api.get("/prompt/hi?char=alice&width=64&height=64&format=json", headers=ben)
        assert r.status_code == 400 and "secret" not in r.text and "ann" not in r.text
        assert "yours and the shared ones: none" in r.json()["message"]
        r = api.get("/prompt/hi?char=alice&user=ann&width=64&height=64")  # no key may act as a keyed user
        assert r.status_code == 403 and "secret" not in r.text
        assert requests.delete(api.url + "/api/characters/alice", headers=ben, timeout=10).status_code == 404
        assert put(api, "hero", {"words": "the hero"}, headers=ben, params={"scope": "shared"}).status_code == 403
        assert put(api, "hero", {"words": "the shared hero"}, headers=root,
                   params={"scope": "shared"}).status_code == 201
        for who in (ann, ben):
            names = [c["name"] for c in requests.get(api.url + "/api/characters", headers=who, timeout=10)
                     .json()["characters"]]
            assert "hero" in names
        r = api.get("/prompt/waving?char=hero&width=64&height=64", headers=ben)
        assert r.status_code == 200, r.text
        assert texts(last_graph(sim), "positive") == "the shared hero, waving"
        r = api.get("/prompt/waving?char=alice&width=64&height=64", headers=ann)
        assert r.status_code == 200 and texts(last_graph(sim), "positive") == "ann's secret alice, waving"
    finally:
        api.close()


@pytest.mark.slow
def test_fronts_jobs_and_edit_take_char(lp: ApiServer, sim: SimulatorServer) -> None:
    put(lp, "alice", {"words": "alice", "negative": "beard", "loras": [{"name": "alice_face", "strength": 0.7}]})
    from openai import OpenAI

    client = OpenAI(base_url=lp.url + "/v1", api_key="unused")
    client.images.generate(prompt="char:alice on a boat", size="256x256", response_format="b64_json")
    graph = last_graph(sim)
    assert texts(graph, "positive") == "alice, on a boat"
    assert model_chain(graph, sampler(graph)["inputs"]["model"])[0]["inputs"]["lora_name"] == "alice_face.safetensors"
    r = requests.post(lp.url + "/sdapi/v1/txt2img", json={"prompt": "on a horse", "char": "alice", "width": 64,
                                                          "height": 64, "steps": 2}, timeout=60)
    assert r.status_code == 200, r.text
    assert texts(last_graph(sim), "positive") == "alice, on a horse"
    assert texts(last_graph(sim), "negative").endswith("beard")
    assert generate(lp, prompt="in the snow", char="alice", width=64, height=64)["status"] == "succeeded"
    assert texts(last_graph(sim), "positive") == "alice, in the snow"
    photo = base64.b64encode(picture((90, 90, 90), (64, 64))).decode()
    r = requests.post(lp.url + "/edit", json={"image": photo, "prompt": "smiling", "char": "alice",
                                              "workflow": "sd15_img2img"}, timeout=60)
    assert r.status_code == 200, r.text
    assert texts(last_graph(sim), "positive") == "alice, smiling"


def test_a_data_uri_load_image_runs_through_the_comfy_front(lp: ApiServer, sim: SimulatorServer) -> None:
    avatar = picture((12, 34, 56))
    uri = "data:image/png;base64," + base64.b64encode(avatar).decode()
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": uri}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "st", "images": ["2", 0]}},
    }
    r = requests.post(lp.url + "/prompt", json={"prompt": graph, "client_id": "st"}, timeout=60)
    assert r.status_code == 200, r.text
    prompt_id = r.json()["prompt_id"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        entry = requests.get(f"{lp.url}/history/{prompt_id}", timeout=10).json().get(prompt_id)
        if entry and entry["status"].get("completed"):
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the front never finished")
    name = last_graph(sim)["1"]["inputs"]["image"]
    assert name.startswith("linkpix_") and (sim.root / "input" / name).read_bytes() == avatar
    bad = {**graph, "1": {"class_type": "LoadImage", "inputs": {"image": "data:image/png;base64,!!!"}}}
    r = requests.post(lp.url + "/prompt", json={"prompt": bad}, timeout=30)
    assert r.status_code == 400 and "node 1 input image" in r.text and "base64" in r.text
    bad["1"]["inputs"]["image"] = "data:text/plain,hello"
    r = requests.post(lp.url + "/prompt", json={"prompt": bad}, timeout=30)
    assert r.status_code == 400 and "data:image/...;base64" in r.text


def test_retention_keeps_the_pictures_a_character_names(project: Path, sim: SimulatorServer) -> None:
    api = ApiServer(project, sim.url, workflow_path="sd15.json", jobs_keep_days=2)
    try:
        face, other = upload(api, picture((1, 2, 3))), upload(api, picture((4, 5, 6)))
        assert put(api, "kept", {"references": [face]}).status_code == 201
        pruner = api.services.jobs.pruner
        assert pruner.prune(time.time() + 3 * 86400) == {"jobs": 0, "uploads": 1}
        root = api.services.jobs.uploads.root
        assert (root / face).exists() and not (root / other).exists()
    finally:
        api.close()


def test_concurrent_edits_all_land(lp: ApiServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: put(lp, f"c{i}", {"words": f"person {i}"}).status_code, range(24)))
    assert codes == [201] * 24
    listed = requests.get(lp.url + "/api/characters", timeout=10).json()["characters"]
    assert sorted(c["name"] for c in listed) == sorted(f"c{i}" for i in range(24))
    assert requests.delete(lp.url + "/api/characters/c3", timeout=10).status_code == 204
    assert requests.get(lp.url + "/api/characters/c3", timeout=10).status_code == 404


def test_lora_tags_in_a_graph_sent_to_the_comfy_front(lp: ApiServer, sim: SimulatorServer) -> None:
    def n(cls: str, **inputs: Any) -> dict[str, Any]:
        return {"class_type": cls, "inputs": inputs}

    graph = {"4": n("CheckpointLoaderSimple", ckpt_name="v1-5-pruned-emaonly.safetensors"),
             "6": n("CLIPTextEncode", text="a knight <lora:alice_face:0.6>, in armour", clip=["4", 1]),
             "7": n("CLIPTextEncode", text="blurry", clip=["4", 1]),
             "5": n("EmptyLatentImage", width=64, height=64, batch_size=1),
             "3": n("KSampler", seed=1, steps=2, cfg=7.0, sampler_name="euler", scheduler="normal", denoise=1.0,
                    model=["4", 0], positive=["6", 0], negative=["7", 0], latent_image=["5", 0]),
             "8": n("VAEDecode", samples=["3", 0], vae=["4", 2]),
             "9": n("SaveImage", images=["8", 0], filename_prefix="st")}
    r = requests.post(lp.url + "/prompt", json={"prompt": graph, "client_id": "st"}, timeout=60)
    assert r.status_code == 200, r.text
    got = last_graph(sim)
    assert got["6"]["inputs"]["text"] == "a knight, in armour"
    chain = model_chain(got, got["3"]["inputs"]["model"])
    assert [n["class_type"] for n in chain] == ["LoraLoader", "CheckpointLoaderSimple"]
    assert chain[0]["inputs"]["lora_name"] == "alice_face.safetensors" and chain[0]["inputs"]["strength_model"] == 0.6
    graph["6"]["inputs"]["text"] = "a knight <lora:nobody:1>"
    r = requests.post(lp.url + "/prompt", json={"prompt": graph}, timeout=60)
    assert r.status_code == 400 and "nobody" in r.text and "alice_face.safetensors" in r.text
