"""Behaviour of the simulator beyond single captures: queue order, cache, interrupts, faults, lifecycle,
and the picture it draws."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket
from PIL import Image
from simulator_support import Recorder, png, post_prompt, run, upload, wait_history, workflow

from linkpix.simulator import SimulatorServer
from linkpix.simulator.images import seed_colour


def txt2img(seed: int = 7, text: str = "a red fox", width: int = 64, height: int = 48, steps: int = 3,
            prefix: str = "sim") -> dict[str, Any]:
    wf = workflow("workflow_txt2img_tiny_sd15_api.json")
    wf["3"]["inputs"].update(seed=seed, steps=steps)
    wf["5"]["inputs"].update(width=width, height=height)
    wf["6"]["inputs"]["text"] = text
    wf["9"]["inputs"]["filename_prefix"] = prefix
    return wf


def image(width: int = 32, height: int = 32, color: int = 0, prefix: str = "img") -> dict[str, Any]:
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": width, "height": height, "batch_size": 1,
                                                         "color": color}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}}}


def view(url: str, img: dict[str, str]) -> Image.Image:
    r = requests.get(url + "/view", params=img, timeout=10)
    assert r.status_code == 200
    return Image.open(io.BytesIO(r.content))


def wait_running(url: str, timeout: float = 10.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = requests.get(url + "/queue", timeout=10).json()["queue_running"]
        if running:
            return running
        time.sleep(0.01)
    raise AssertionError("nothing started running")


# -- the picture ----------------------------------------------------------------------------------
def test_drawn_png_has_size_seed_colour_and_prompt(simulator: SimulatorServer) -> None:
    entry = run(simulator.url, txt2img(seed=1234, text="lighthouse at dusk", width=96, height=64))
    img_ref = entry["outputs"]["9"]["images"][0]
    assert img_ref["filename"] == "sim_00001_.png" and img_ref["type"] == "output"
    pic = view(simulator.url, img_ref)
    assert pic.size == (96, 64)
    assert pic.convert("RGB").getpixel((0, 0)) == seed_colour(1234)
    assert seed_colour(1234) != seed_colour(1235)
    meta = json.loads(pic.info["prompt"])
    assert meta["6"]["inputs"]["text"] == "lighthouse at dusk"
    entry = run(simulator.url, txt2img(seed=1235, width=96, height=64))
    other = view(simulator.url, entry["outputs"]["9"]["images"][0])
    assert other.convert("RGB").getpixel((0, 0)) == seed_colour(1235)


def test_save_naming_counter_subfolder_and_preview(simulator: SimulatorServer) -> None:
    url = simulator.url
    wf = image(prefix="probe/test")
    wf["4"] = {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
    wf["1"]["inputs"]["batch_size"] = 2
    entry = run(url, wf, extra_data={"extra_pnginfo": {"workflow": {"k": 1}}})
    names = [i["filename"] for i in entry["outputs"]["2"]["images"]]
    assert names == ["test_00001_.png", "test_00002_.png"]
    assert entry["outputs"]["2"]["images"][0]["subfolder"] == "probe"
    preview = entry["outputs"]["4"]["images"][0]
    assert preview["type"] == "temp" and preview["filename"].startswith("ComfyUI_temp_")
    assert (simulator.root / "temp" / preview["filename"]).is_file()
    saved = Image.open(simulator.root / "output" / "probe" / "test_00001_.png")
    assert json.loads(saved.info["workflow"]) == {"k": 1}
    (simulator.root / "output" / "probe" / "test_00041_.png").write_bytes(png())
    wf["1"]["inputs"]["color"] = 5
    entry = run(url, wf)
    assert entry["outputs"]["2"]["images"][0]["filename"] == "test_00042_.png"


def test_loadimage_real_decode_and_invert(simulator: SimulatorServer) -> None:
    url = simulator.url
    assert upload(url, "in.png", png(40, 30, (10, 20, 30))).json()["name"] == "in.png"
    wf = {"1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
          "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
          "3": {"class_type": "ImageScale", "inputs": {"image": ["2", 0], "upscale_method": "bilinear",
                                                       "width": 20, "height": 0, "crop": "disabled"}},
          "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "inv"}}}
    pic = view(url, run(url, wf)["outputs"]["4"]["images"][0])
    assert pic.size == (20, 15)
    assert pic.convert("RGB").getpixel((5, 5)) == (245, 235, 225)


# -- queue ----------------------------------------------------------------------------------------
def test_counter_and_number_semantics(simulator: SimulatorServer) -> None:
    url = simulator.url
    assert post_prompt(url, image())["number"] == 0
    assert requests.post(url + "/prompt", json={"prompt": {}}, timeout=10).status_code == 400
    assert post_prompt(url, image(color=1))["number"] == 2  # rejected POSTs consume numbers too
    assert post_prompt(url, image(color=2), number=7)["number"] == 7.0
    assert post_prompt(url, image(color=3))["number"] == 3
    assert post_prompt(url, image(color=4), front=True)["number"] == -4
    assert post_prompt(url, image(color=5), prompt_id="mine")["prompt_id"] == "mine"
    assert simulator.prompts_received == 6


def test_queue_order_delete_clear_and_status(simulator: SimulatorServer) -> None:
    url = simulator.url
    simulator.faults.hang = True
    rec = Recorder(url)
    blocker = post_prompt(url, txt2img(seed=1), rec.client_id)["prompt_id"]
    wait_running(url)
    a = post_prompt(url, image(color=1))["prompt_id"]
    b = post_prompt(url, image(color=2), front=True)["prompt_id"]
    c = post_prompt(url, image(color=3), number=0.5)["prompt_id"]
    d = post_prompt(url, image(color=4))["prompt_id"]
    queue = requests.get(url + "/queue", timeout=10).json()
    assert queue["queue_running"][0][1] == blocker
    pending = sorted(queue["queue_pending"], key=lambda item: (item[0], item[1]))
    assert [item[1] for item in pending] == [b, c, a, d]
    assert all(len(item) == 5 for item in pending)
    assert requests.get(url + "/prompt", timeout=10).json() == {"exec_info": {"queue_remaining": 5}}
    assert requests.post(url + "/queue", json={"delete": [d, "unknown"]}, timeout=10).content == b""
    assert d not in [i[1] for i in requests.get(url + "/queue", timeout=10).json()["queue_pending"]]
    simulator.faults.hang = False
    wait_history(url, a)
    assert list(requests.get(url + "/history", timeout=10).json()) == [blocker, b, c, a]
    statuses = [f for f in rec.frames if f.get("type") == "status"]
    assert statuses[-1]["data"]["status"]["exec_info"]["queue_remaining"] == 0
    simulator.faults.hang = True
    post_prompt(url, txt2img(seed=2))
    wait_running(url)
    post_prompt(url, image(color=9))
    requests.post(url + "/queue", json={"clear": True}, timeout=10)
    assert requests.get(url + "/queue", timeout=10).json()["queue_pending"] == []
    requests.post(url + "/interrupt", timeout=10)
    rec.close()


def test_history_paging_delete_clear(simulator: SimulatorServer) -> None:
    url = simulator.url
    ids = [run(url, image(color=i))["prompt"][1] for i in range(4)]
    assert list(requests.get(url + "/history?max_items=2", timeout=10).json()) == ids[2:]
    assert list(requests.get(url + "/history?offset=1&max_items=2", timeout=10).json()) == ids[1:3]
    assert list(requests.get(url + "/api/history?offset=3", timeout=10).json()) == ids[3:]
    requests.post(url + "/history", json={"delete": [ids[0]]}, timeout=10)
    assert requests.get(url + f"/history/{ids[0]}", timeout=10).json() == {}
    requests.post(url + "/history", json={"clear": True}, timeout=10)
    assert requests.get(url + "/history", timeout=10).json() == {}


def test_partial_targets_and_partially_valid_prompts(simulator: SimulatorServer) -> None:
    url = simulator.url
    wf = image(prefix="a")
    wf["3"] = {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "b"}}
    entry = run(url, wf, partial_execution_targets=["3"])
    assert entry["prompt"][4] == ["3"] and list(entry["outputs"]) == ["3"]
    r = requests.post(url + "/prompt", json={"prompt": wf, "partial_execution_targets": ["1"]}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["type"] == "prompt_no_outputs"
    wf["4"] = {"class_type": "EmptyImage", "inputs": {"width": 0, "height": 8, "batch_size": 1, "color": 0}}
    wf["5"] = {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "c"}}
    body = post_prompt(url, wf)
    assert body["node_errors"]["4"]["errors"][0]["type"] == "value_smaller_than_min"
    assert body["node_errors"]["4"]["dependent_outputs"] == ["5"]
    entry = wait_history(url, body["prompt_id"])[body["prompt_id"]]
    assert sorted(entry["prompt"][4]) == ["2", "3"]


def test_validation_of_models_and_combos(simulator: SimulatorServer) -> None:
    url = simulator.url
    wf = txt2img()
    wf["4"]["inputs"]["ckpt_name"] = "nope.safetensors"
    wf["3"]["inputs"]["sampler_name"] = "bogus"
    body = requests.post(url + "/prompt", json={"prompt": wf}, timeout=10).json()
    ckpt = body["node_errors"]["4"]["errors"][0]
    assert ckpt["details"] == ("ckpt_name: 'nope.safetensors' not in ['demo.safetensors', "
                               "'flux1-schnell-fp8.safetensors', 'sd_xl_base_1.0.safetensors', "
                               "'v1-5-pruned-emaonly.safetensors']")
    sampler = body["node_errors"]["3"]["errors"][0]
    assert sampler["details"].startswith("sampler_name: 'bogus' not in (list of length ")
    assert sampler["extra_info"]["input_config"] is None
    wf = txt2img()
    wf["3"]["inputs"].update(seed="12", steps=2.9, cfg="7.5")
    entry = run(url, wf)
    assert entry["prompt"][2]["3"]["inputs"]["seed"] == 12 and entry["prompt"][2]["3"]["inputs"]["steps"] == 2
    cycle = {"1": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
             "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
             "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}}}
    r = requests.post(url + "/prompt", json={"prompt": cycle}, timeout=10)
    assert r.status_code == 400 and r.json()["node_errors"] == {}
    assert r.json()["error"]["type"] == "prompt_outputs_failed_validation"


def test_custom_models_replace_defaults(tmp_path: Path) -> None:
    with SimulatorServer(port=0, root=tmp_path / "c", models={"checkpoints": ["only.safetensors"]}) as sim:
        assert requests.get(sim.url + "/models/checkpoints", timeout=10).json() == ["only.safetensors"]
        assert requests.get(sim.url + "/models/loras", timeout=10).json() == ["add_detail.safetensors",
                                                                              "pixel-art-xl.safetensors"]
        assert requests.get(sim.url + "/models/unet", timeout=10).status_code == 404


# -- cache ---------------------------------------------------------------------------------------
def test_cached_rerun_executes_nothing_and_repeats_filenames(simulator: SimulatorServer) -> None:
    url = simulator.url
    first = run(url, txt2img(seed=5))
    nodes = simulator.nodes_executed
    assert nodes == 7
    second = run(url, txt2img(seed=5))
    assert simulator.nodes_executed == nodes and simulator.prompts_executed == 2
    assert second["outputs"] == first["outputs"]
    assert second["status"]["messages"][1][1]["nodes"] == ["4", "6", "7", "5", "3", "8", "9"]
    renumbered = {str(int(k) + 100): v for k, v in json.loads(json.dumps(txt2img(seed=5))).items()}
    for node in renumbered.values():
        for key, value in node["inputs"].items():
            if isinstance(value, list):
                node["inputs"][key] = [str(int(value[0]) + 100), value[1]]
    run(url, renumbered)
    assert simulator.nodes_executed == nodes
    run(url, txt2img(seed=6))
    assert simulator.nodes_executed == nodes + 3  # sampler, decode, save
    run(url, image())
    run(url, txt2img(seed=6))  # only the previous prompt's results survive
    assert simulator.nodes_executed == nodes + 3 + 2 + 7
    requests.post(url + "/free", json={"free_memory": True}, timeout=10)
    run(url, txt2img(seed=6))
    assert simulator.nodes_executed == nodes + 3 + 2 + 7 + 7


def test_loadimage_cache_follows_file_content(simulator: SimulatorServer) -> None:
    url = simulator.url
    upload(url, "c.png", png(8, 8, (1, 1, 1)))
    wf = {"1": {"class_type": "LoadImage", "inputs": {"image": "c.png"}},
          "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "c"}}}
    run(url, wf)
    run(url, wf)
    assert simulator.nodes_executed == 2
    upload(url, "c.png", png(8, 8, (2, 2, 2)), overwrite="true")
    run(url, wf)
    assert simulator.nodes_executed == 4


# -- interrupts and faults --------------------------------------------------------------------------
def test_interrupt_during_sampling(simulator: SimulatorServer) -> None:
    url = simulator.url
    simulator.faults.step_delay = 0.05
    rec = Recorder(url)
    pid = post_prompt(url, txt2img(steps=200), rec.client_id)["prompt_id"]
    rec.until(lambda f: f.get("type") == "progress" and f["data"]["value"] >= 2)
    requests.post(url + "/interrupt", json={"prompt_id": "someone-else"}, timeout=10)
    rec.until(lambda f: f.get("type") == "progress" and f["data"]["value"] >= 4)
    requests.post(url + "/interrupt", json={"prompt_id": pid}, timeout=10)
    frames = rec.until_done(pid)
    interrupted = [f for f in frames if f.get("type") == "execution_interrupted"]
    assert interrupted and interrupted[0]["data"]["node_id"] == "3"
    assert interrupted[0]["data"]["node_type"] == "KSampler"
    progress = [f["data"]["value"] for f in frames if f.get("type") == "progress"]
    assert 4 <= max(progress) < 20
    entry = requests.get(url + f"/history/{pid}", timeout=10).json()[pid]
    assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
    rec.close()


def test_hang_until_interrupted_then_next_prompt_runs(simulator: SimulatorServer) -> None:
    url = simulator.url
    simulator.faults.hang = True
    hung = post_prompt(url, txt2img())["prompt_id"]
    nxt = post_prompt(url, image())["prompt_id"]
    wait_running(url)
    time.sleep(0.2)
    assert requests.get(url + f"/history/{hung}", timeout=10).json() == {}
    requests.post(url + "/api/interrupt", timeout=10)
    entry = wait_history(url, hung)[hung]
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    assert wait_history(url, nxt)[nxt]["status"]["status_str"] == "success"


def test_fail_class_gives_execution_error(simulator: SimulatorServer) -> None:
    url = simulator.url
    simulator.faults.fail_class = "VAEDecode"
    rec = Recorder(url)
    pid = post_prompt(url, txt2img(), rec.client_id)["prompt_id"]
    frames = rec.until_done(pid)
    err = next(f for f in frames if f.get("type") == "execution_error")["data"]
    assert err["node_id"] == "8" and err["node_type"] == "VAEDecode" and err["exception_type"] == "RuntimeError"
    assert err["exception_message"].endswith("\n") and isinstance(err["traceback"], list)
    assert set(err["current_inputs"]) == {"samples", "vae"}
    assert sorted(err["executed"]) == ["3", "4", "5", "6", "7"]
    assert [label for label in (f.get("type") for f in frames[-3:])] == ["execution_error", "status", "executing"]
    simulator.faults.fail_class = None
    assert run(url, txt2img())["status"]["status_str"] == "success"
    rec.close()


def test_owner_reconnect_gets_executing_resend(simulator: SimulatorServer) -> None:
    url = simulator.url
    simulator.faults.hang = True
    rec = Recorder(url, client_id="owner")
    post_prompt(url, txt2img(), "owner")
    rec.until(lambda f: f.get("type") == "executing" and f["data"].get("node") == "3")
    rec.close()
    again = websocket.create_connection(url.replace("http", "ws") + "/ws?clientId=owner", timeout=10)
    hello = json.loads(again.recv())
    assert hello["data"]["sid"] == "owner" and hello["data"]["status"]["exec_info"]["queue_remaining"] == 1
    assert json.loads(again.recv()) == {"type": "executing", "data": {"node": "3"}}
    again.close()
    requests.post(url + "/interrupt", timeout=10)


def test_unowned_prompt_broadcasts_progress_only(simulator: SimulatorServer) -> None:
    url = simulator.url
    rec = Recorder(url)
    entry = run(url, txt2img())
    time.sleep(0.2)
    rec.ws.settimeout(0.5)
    try:
        while True:
            rec._read_one()
    except websocket.WebSocketTimeoutException:
        pass
    types = {f.get("type") for f in rec.frames}
    assert "progress" in types and "progress_state" in types and "status" in types
    assert not types & {"executing", "executed", "execution_start", "execution_success"}
    assert entry["status"]["completed"] is True
    rec.close()


def test_drop_websockets_closes_clients(simulator: SimulatorServer) -> None:
    rec = Recorder(simulator.url)
    simulator.faults.drop_websockets()
    rec.ws.settimeout(5)
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        for _ in range(5):
            opcode, _data = rec.ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise websocket.WebSocketConnectionClosedException("closed")
    again = Recorder(simulator.url)  # a reconnect works
    again.close()


# -- lifecycle ------------------------------------------------------------------------------------
def test_restart_forgets_state_and_keeps_port(simulator: SimulatorServer) -> None:
    url, port = simulator.url, simulator.port
    pid = run(url, image())["prompt"][1]
    simulator.faults.hang = True
    post_prompt(url, txt2img())
    wait_running(url)
    rec = Recorder(url)
    simulator.restart()
    simulator.faults.hang = False
    assert simulator.port == port
    rec.ws.settimeout(5)
    with pytest.raises((ConnectionError, websocket.WebSocketException, OSError)):
        for _ in range(10):
            opcode, _ = rec.ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise ConnectionError("closed")
    assert requests.get(url + f"/history/{pid}", timeout=10).json() == {}
    assert requests.get(url + "/queue", timeout=10).json() == {"queue_running": [], "queue_pending": []}
    executed = simulator.nodes_executed
    body = post_prompt(url, image())
    assert body["number"] == 0
    wait_history(url, body["prompt_id"])  # node cache forgotten: the image that ran before restart runs again
    assert simulator.nodes_executed == executed + 2


def test_pause_refuses_connections_and_resume_keeps_state(simulator: SimulatorServer) -> None:
    url = simulator.url
    pid = run(url, image())["prompt"][1]
    simulator.pause()
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/queue", timeout=5)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", simulator.port)) != 0
    simulator.resume()
    assert pid in requests.get(url + f"/history/{pid}", timeout=10).json()
    assert post_prompt(url, image(color=1))["number"] == 1
    simulator.stop()
    simulator.stop()


def test_cli_listens_and_stops_on_sigterm(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "linkpix.simulator", "--port", str(port), "--root",
                             str(tmp_path / "cli"), "--step-delay", "0"], stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parent.parent, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stderr.readline() if proc.stderr else ""
        assert f"127.0.0.1:{port}" in line and "simulator" in line
        assert requests.get(f"http://127.0.0.1:{port}/system_stats", timeout=10).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
