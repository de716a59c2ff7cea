"""The ComfyUI front over real sockets: SillyTavern's ComfyUI source request for request (from
src/endpoints/stable-diffusion.js and the extension's generateComfyImage, SillyTavern 1.12.6) with its
default workflow, Open WebUI's flow (utils/images/comfyui.py: websocket with clientId, POST /prompt with
client_id, `executing` with node null, /history/<id>, /view), and ComfyUI's own errors passed through."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import time
import urllib.parse
import uuid
from typing import Any

import aiohttp
import pytest
import requests
import websocket
from fronts_support import DATA, FrontServer, png_bytes, sillytavern_workflow, wait_for
from PIL import Image

from linkpix.simulator import SimulatorServer

ST_SETTINGS = {"model": "demo.safetensors", "sampler": "euler", "scheduler": "normal", "steps": 2, "scale": 7,
               "width": 64, "height": 48, "clip_skip": -1}
CUSTOM = {"denoise": 1}  # the user's own placeholder (SillyTavern's comfy_placeholders)


def _st_generate(base: str, prompt_text: str) -> tuple[dict[str, Any], bytes, float]:
    """SillyTavern's /api/sd/comfy/generate against `base`: POST /prompt as text/plain without a client
    id, poll the whole /history every 100 ms, then /view with the names pasted into the query."""
    started = time.monotonic()
    r = requests.post(base + "/prompt", data=prompt_text.encode(),
                      headers={"Content-Type": "text/plain;charset=UTF-8"}, timeout=30)
    assert r.ok, r.text
    prompt_id = r.json()["prompt_id"]
    while True:
        history = requests.get(base + "/history", timeout=30).json()
        item = history.get(prompt_id)
        if item:
            break
        assert time.monotonic() - started < 30
        time.sleep(0.1)
    assert item["status"]["status_str"] != "error"
    info = [img for out in item["outputs"].values() for img in out["images"]][0]
    view = requests.get(f"{base}/view?filename={info['filename']}&subfolder={info['subfolder']}&type={info['type']}",
                        timeout=30)
    assert view.status_code == 200
    return item, view.content, time.monotonic() - started


def test_sillytavern_comfy_source_request_for_request(fronts):
    base = fronts.url + "/any/path/sillytavern/drops"  # SillyTavern keeps only the host
    root = urllib.parse.urljoin(base, "/").rstrip("/")
    assert requests.get(root + "/system_stats", timeout=30).ok  # /api/sd/comfy/ping
    info = requests.get(root + "/object_info", timeout=30).json()
    samplers = info["KSampler"]["input"]["required"]["sampler_name"][0]
    schedulers = info["KSampler"]["input"]["required"]["scheduler"][0]
    models = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    assert "euler" in samplers and "normal" in schedulers and "demo.safetensors" in models
    text = sillytavern_workflow("a red fox in the snow", "blurry", 12345, ST_SETTINGS, CUSTOM)
    item, png, _ = _st_generate(root, text)
    picture = Image.open(io.BytesIO(png))
    assert picture.format == "PNG" and picture.size == (64, 48)
    assert item["prompt"][2]["6"]["inputs"]["text"] == "a red fox in the snow"
    # The same graph again: LinkPix's cache answers at once (no ComfyUI run).
    runs = fronts.services.generator.runs_started
    item2, png2, seconds = _st_generate(root, text)
    assert png2 == png and fronts.services.generator.runs_started == runs and seconds < 1.0
    assert [m[0] for m in item2["status"]["messages"]] == ["execution_start", "execution_cached", "execution_success"]


def test_sillytavern_clip_skip_is_refused_with_comfyuis_own_error(fronts, simulator):
    """SillyTavern 1.12.6 writes its clip skip (1) into CLIPSetLastLayer, whose range is -24..-1: ComfyUI
    refuses it, and LinkPix passes ComfyUI's answer through unchanged."""
    text = sillytavern_workflow("a fox", "", 1, {**ST_SETTINGS, "clip_skip": 1}, CUSTOM)
    direct = requests.post(simulator.url + "/prompt", data=text.encode(), timeout=30)
    via = requests.post(fronts.url + "/prompt", data=text.encode(), headers={"Content-Type": "text/plain"},
                        timeout=30)
    assert via.status_code == direct.status_code == 400
    assert via.json() == direct.json()
    assert via.json()["node_errors"]["10"]["errors"][0]["type"] == "value_bigger_than_max"
    assert requests.get(fronts.url + "/history", timeout=30).json() == {}
    # An unknown model and a bad size: ComfyUI's own node errors, as ComfyUI gives them.
    for settings, node, kind in (({"model": "nope.safetensors"}, "4", "value_not_in_list"),
                                 ({"width": 0}, "5", "value_smaller_than_min")):
        text = sillytavern_workflow("a fox", "", 1, {**ST_SETTINGS, **settings}, CUSTOM)
        r = requests.post(fronts.url + "/prompt", data=text.encode(), timeout=30)
        assert r.status_code == 400 and r.json()["node_errors"][node]["errors"][0]["type"] == kind


async def _open_webui_flow(base: str, workflow: dict[str, Any], headers: dict[str, str]) -> tuple[list[Any], bytes]:
    """Open WebUI's comfyui_create_image: websocket first, then queue the prompt with its client id, read
    until `executing` with node null for it, then history/<id> and /view (urlencoded)."""
    client_id = str(uuid.uuid4())
    ws_url = base.replace("http://", "ws://")
    seen: list[Any] = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{ws_url}/ws?clientId={client_id}", headers=headers) as ws:
            async with session.post(f"{base}/prompt", json={"prompt": workflow, "client_id": client_id},
                                    headers={"User-Agent": "Mozilla/5.0", **headers}) as r:
                r.raise_for_status()
                prompt_id = (await r.json())["prompt_id"]
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    message = json.loads(msg.data)
                    seen.append(message)
                    if message["type"] == "executing":
                        data = message["data"]
                        if data["node"] is None and data["prompt_id"] == prompt_id:
                            break
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    seen.append(("binary", struct.unpack(">I", msg.data[:4])[0]))
                else:
                    raise AssertionError(f"websocket closed: {msg.type}")
        async with session.get(f"{base}/history/{prompt_id}", headers=headers) as r:
            history = (await r.json())[prompt_id]
        image = None
        for node_id, output in history["outputs"].items():
            if workflow[node_id]["class_type"] in ("SaveImage", "PreviewImage"):
                for img in output["images"]:
                    query = urllib.parse.urlencode({"filename": img["filename"], "subfolder": img["subfolder"],
                                                    "type": img["type"]})
                    async with session.get(f"{base}/view?{query}", headers=headers) as r:
                        r.raise_for_status()
                        image = await r.read()
    assert image is not None
    return seen, image


def _demo_graph(seed: int = 7, text: str = "a lighthouse") -> dict[str, Any]:
    graph = json.loads((DATA.parent.parent / "workflows" / "demo.json").read_text())
    graph["2"]["inputs"]["text"] = text
    graph["3"]["inputs"]["text"] = ""
    graph["5"]["inputs"]["seed"] = seed
    graph["5"]["inputs"]["steps"] = 3
    graph["4"]["inputs"].update(width=64, height=64)
    return graph


@pytest.mark.parametrize("prefix", ["/comfy", ""])
def test_open_webui_comfyui_flow(fronts, prefix):
    seen, image = asyncio.run(_open_webui_flow(fronts.url + prefix, _demo_graph(), {"Authorization": "Bearer "}))
    kinds = [m["type"] for m in seen if isinstance(m, dict)]
    assert seen[0]["type"] == "status" and "sid" in seen[0]["data"]
    assert kinds.index("execution_start") < kinds.index("executed") < kinds.index("execution_success")
    assert kinds[-1] == "executing" and "progress" in kinds
    assert Image.open(io.BytesIO(image)).size == (64, 64)


def test_open_webui_edit_uploads_under_api(fronts):
    """Open WebUI uploads edit inputs to `{base}/api/upload/image` and names them in LoadImage."""
    base = fronts.url + "/comfy"
    form = {"type": "input"}
    up = requests.post(base + "/api/upload/image", files={"image": ("photo one.png", png_bytes(), "image/png")},
                       data=form, timeout=30).json()
    assert up == {"name": "photo one.png", "subfolder": "", "type": "input"}
    again = requests.post(base + "/api/upload/image", files={"image": ("photo one.png", png_bytes(color=(1, 2, 3)),
                                                                         "image/png")}, data=form, timeout=30).json()
    assert again["name"] == "photo one (1).png"
    graph = json.loads((DATA.parent / "comfyui_captures" / "workflow_loadimage_invert_api.json").read_text())
    loader = next(k for k, n in graph.items() if n["class_type"] == "LoadImage")
    graph[loader]["inputs"]["image"] = "photo one.png"
    _, image = asyncio.run(_open_webui_flow(base, graph, {}))
    assert Image.open(io.BytesIO(image)).getpixel((0, 0))[:3] == (255 - 200, 255 - 30, 255 - 30)  # inverted
    shown = requests.get(base + "/view", params={"filename": "photo one.png", "type": "input"}, timeout=30)
    assert shown.status_code == 200 and shown.content == png_bytes()


def test_websocket_feature_flags_and_previews(fronts):
    client_id = uuid.uuid4().hex
    ws = websocket.create_connection(fronts.url.replace("http", "ws") + f"/ws?clientId={client_id}", timeout=10)
    try:
        hello = json.loads(ws.recv())
        assert hello == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client_id}}
        ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
        flags = json.loads(ws.recv())
        assert flags["type"] == "feature_flags" and flags["data"]["supports_preview_metadata"] is True
        r = requests.post(fronts.url + "/prompt", json={"prompt": _demo_graph(seed=99), "client_id": client_id},
                          timeout=30)
        prompt_id = r.json()["prompt_id"]
        binary = []
        while True:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_BINARY:
                binary.append(data)
                continue
            message = json.loads(data)
            if message["type"] == "executing" and message["data"]["node"] is None:
                assert message["data"]["prompt_id"] == prompt_id
                break
        assert binary and all(struct.unpack(">I", b[:4])[0] == 4 for b in binary)
        length = struct.unpack(">I", binary[0][4:8])[0]
        meta = json.loads(binary[0][8:8 + length])
        assert meta["prompt_id"] == prompt_id and meta["image_type"] == "image/jpeg"
    finally:
        ws.close()


@pytest.mark.slow
def test_queue_and_interrupt_of_a_running_prompt(project, tmp_path):
    sim = SimulatorServer(host="127.0.0.1", port=0, root=tmp_path / "slow", step_delay=0.2)
    sim.start()
    server = FrontServer(project, sim.url)
    try:
        graph = _demo_graph(seed=5)
        graph["5"]["inputs"]["steps"] = 40
        prompt_id = requests.post(server.url + "/prompt", json={"prompt": graph}, timeout=30).json()["prompt_id"]
        queue = wait_for(lambda: (q := requests.get(server.url + "/queue", timeout=30).json())["queue_running"] and q)
        assert queue["queue_running"][0][1] == prompt_id
        assert requests.get(server.url + "/prompt", timeout=30).json() == {"exec_info": {"queue_remaining": 1}}
        assert requests.post(server.url + "/interrupt", json={}, timeout=30).status_code == 200
        entry = wait_for(lambda: requests.get(server.url + f"/history/{prompt_id}", timeout=30).json(), timeout=20)
        assert entry[prompt_id]["status"]["status_str"] == "error"
        assert entry[prompt_id]["status"]["messages"][-1][0] == "execution_interrupted"
        assert wait_for(lambda: sim_queue_empty(sim), timeout=20)
    finally:
        server.close()
        sim.stop()


def sim_queue_empty(sim: SimulatorServer) -> bool:
    q = requests.get(sim.url + "/queue", timeout=10).json()
    return not q["queue_running"] and not q["queue_pending"]


@pytest.mark.slow
def test_auth_key_in_path_bearer_and_fronts_allow(project, simulator):
    server = FrontServer(project, simulator.url, network_access=True, api_keys={"ck": "carol"})
    try:
        r = requests.get(server.url + "/system_stats", timeout=30)
        assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized" and "node_errors" in r.json()
        assert requests.get(server.url + "/comfy/k/ck/system_stats", timeout=30).ok
        assert requests.get(server.url + "/comfy/k/ck/api/object_info/KSampler", timeout=30).json()["KSampler"]
        assert requests.get(server.url + "/history", headers={"Authorization": "Bearer ck"}, timeout=30).ok
        assert requests.get(server.url + "/comfy/k/wrong/history", timeout=30).status_code == 401
        with pytest.raises(websocket.WebSocketBadStatusException):
            websocket.create_connection(server.url.replace("http", "ws") + "/ws?clientId=x", timeout=10)
        seen, _ = asyncio.run(_open_webui_flow(server.url + "/comfy/k/ck", _demo_graph(seed=3), {}))
        assert seen[-1]["data"]["node"] is None
        # carol's history is hers: the anonymous user's is another one.
        assert len(requests.get(server.url + "/comfy/k/ck/history", timeout=30).json()) == 1
    finally:
        server.close()
    allowed = FrontServer(project, simulator.url, network_access=True, api_keys={"ck": "carol"},
                          fronts_allow=["127.0.0.0/8"])
    try:
        assert requests.get(allowed.url + "/system_stats", timeout=30).ok
        assert requests.get(allowed.url + "/sdapi/v1/options", timeout=30).ok
    finally:
        allowed.close()


def test_comfy_front_leaves_linkpix_routes_alone(fronts):
    assert requests.get(fronts.url + "/prompt/a%20fox?width=64&height=64", timeout=60).headers[
        "Content-Type"] == "image/png"
    assert "checkpoints" in requests.get(fronts.url + "/api/models", timeout=30).json()  # LinkPix's own
    assert "checkpoints" in requests.get(fronts.url + "/models", timeout=30).json()  # ComfyUI's folder list
    assert "demo.safetensors" in requests.get(fronts.url + "/api/models/checkpoints", timeout=30).json()
    assert requests.get(fronts.url + "/features", timeout=30).json()["supports_preview_metadata"] is True
    r = requests.post(fronts.url + "/prompt", data=b"{not json", timeout=30)
    assert r.status_code == 400 and "error" in r.json()
    r = requests.post(fronts.url + "/prompt", json={"nothing": 1}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["type"] == "no_prompt"
    assert requests.get(fronts.url + "/ws", timeout=30).status_code == 400  # not an upgrade


@pytest.mark.slow
def test_history_polling_is_cheap(fronts):
    """SillyTavern polls the whole history every 100 ms: with many entries it stays a lookup."""
    for i in range(30):
        requests.post(fronts.url + "/prompt", json={"prompt": _demo_graph(seed=1000 + i)}, timeout=30)
    wait_for(lambda: len(requests.get(fronts.url + "/history", timeout=30).json()) == 30, timeout=60)
    started = time.perf_counter()
    for _ in range(50):
        assert requests.get(fronts.url + "/history", timeout=30).status_code == 200
    assert (time.perf_counter() - started) / 50 < 0.05


def test_websocket_upgrades_extend_a_custom_channel_class():
    """The server's own channel customisations (JSON error answers...) survive enabling upgrades."""
    from waitress.channel import HTTPChannel
    from waitress.server import create_server

    from linkpix.web.fronts import upgrade

    class Custom(HTTPChannel):
        pass

    server = create_server(lambda environ, start_response: [], host="127.0.0.1", port=0)
    try:
        server.channel_class = Custom
        upgrade.enable(server)
        upgrade.enable(server)  # twice is once
        assert issubclass(server.channel_class, Custom) and server.channel_class.__bases__ == (Custom,)
        assert hasattr(server.channel_class.task_class, "_take_socket")
    finally:
        server.close()


def test_deleting_a_pending_prompt_leaves_no_history(project, tmp_path):
    sim = SimulatorServer(host="127.0.0.1", port=0, root=tmp_path / "slow", step_delay=0.2)
    sim.start()
    server = FrontServer(project, sim.url)
    try:
        first, second = _demo_graph(seed=21), _demo_graph(seed=22)
        first["5"]["inputs"]["steps"] = 30
        running = requests.post(server.url + "/prompt", json={"prompt": first}, timeout=30).json()["prompt_id"]
        pending = requests.post(server.url + "/prompt", json={"prompt": second}, timeout=30).json()["prompt_id"]
        queue = wait_for(lambda: (q := requests.get(server.url + "/queue", timeout=30).json())["queue_running"]
                         and q)
        assert [i[1] for i in queue["queue_pending"]] == [pending]
        requests.post(server.url + "/queue", json={"delete": [pending]}, timeout=30)
        wait_for(lambda: not requests.get(server.url + "/queue", timeout=30).json()["queue_pending"])
        requests.post(server.url + "/interrupt", json={"prompt_id": running}, timeout=30)
        wait_for(lambda: running in requests.get(server.url + "/history", timeout=30).json(), timeout=20)
        assert pending not in requests.get(server.url + "/history", timeout=30).json()
        assert wait_for(lambda: sim_queue_empty(sim), timeout=20)
    finally:
        server.close()
        sim.stop()


def test_a_partner_key_reaches_comfyui_for_its_own_run_and_is_shown_nowhere(fronts, simulator):
    """extra_data.api_key_comfy_org through the ComfyUI front: ComfyUI gets it with this prompt's own run
    (an identical keyless prompt runs apart, so the paid result is nobody else's); the front's /queue and
    /history show the rest of extra_data but neither Comfy secret; a malformed key is refused unechoed."""
    key, token = "comfyui-partner-8c1e4a7f", "session-token-55d0"
    simulator.faults.run_delay = 0.4
    graph = _demo_graph(seed=31, text="a paid lighthouse")
    before = simulator.prompts_received
    paid = requests.post(fronts.url + "/prompt", json={"prompt": graph, "extra_data": {
        "api_key_comfy_org": key, "auth_token_comfy_org": token, "note": "kept"}}, timeout=30)
    assert paid.status_code == 200, paid.text
    free = requests.post(fronts.url + "/prompt", json={"prompt": graph}, timeout=30)
    assert free.status_code == 200
    seen: list[str] = []

    def key_in_comfyui() -> bool:
        queue = requests.get(simulator.url + "/queue", timeout=10).json()
        seen.extend(json.dumps(item[3]) for item in queue["queue_running"] + queue["queue_pending"])
        return any(key in text for text in seen)

    wait_for(key_in_comfyui, 10)
    assert not any(token in text for text in seen)  # the session token is not forwarded
    shown = [requests.get(fronts.url + "/queue", timeout=10).text]
    wait_for(lambda: all(requests.get(f"{fronts.url}/history/{p.json()['prompt_id']}", timeout=10).json()
                         for p in (paid, free)), 30)
    history = requests.get(f"{fronts.url}/history/{paid.json()['prompt_id']}", timeout=10)
    shown.append(history.text)
    assert all(key not in text and token not in text for text in shown)
    assert history.json()[paid.json()["prompt_id"]]["prompt"][3]["note"] == "kept"
    assert simulator.prompts_received == before + 2  # two runs: the keyless prompt did not join the paid one
    bad = requests.post(fronts.url + "/prompt", json={"prompt": graph, "extra_data": {
        "api_key_comfy_org": "has spaces secret"}}, timeout=30)
    assert bad.status_code == 400 and "secret" not in bad.text and "api_key_comfy_org" in bad.text
