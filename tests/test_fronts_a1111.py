"""The A1111 front over real sockets: the `webuiapi` client library, SillyTavern's SD WebUI source request
for request (from src/endpoints/stable-diffusion.js of SillyTavern 1.12.6), and errors in A1111's shape."""

from __future__ import annotations

import base64
import json
import threading

import pytest
import requests
import webuiapi
from fronts_support import FrontServer, image_of, last_logged, wait_for
from PIL import Image

from linkpix.simulator import SimulatorServer

# Slow (docs/testing.md): the webuiapi client against a running API: seconds each.
pytestmark = pytest.mark.slow

ERROR_KEYS = {"error", "detail", "body", "errors"}
EMPTY_BASIC = {"Authorization": "Basic "}  # SillyTavern's header when no user:password is set


def _api(server: FrontServer, **kwargs) -> webuiapi.WebUIApi:
    host, port = server.url.removeprefix("http://").split(":")
    return webuiapi.WebUIApi(host=host, port=int(port), **kwargs)


def test_webuiapi_txt2img_batch_seeds_and_lists(fronts):
    api = _api(fronts)
    result = api.txt2img(prompt="a red fox", width=64, height=64, steps=2, seed=7, batch_size=2,
                         sampler_name="DPM++ 2M Karras")
    assert [im.size for im in result.images] == [(64, 64), (64, 64)]
    assert result.info["all_seeds"] == [7, 8] and result.info["seed"] == 7
    assert result.info["sampler_name"] == "DPM++ 2M" and "Schedule type: karras" in result.info["infotexts"][0]
    assert result.parameters["prompt"] == "a red fox"
    again = api.txt2img(prompt="a red fox", width=64, height=64, steps=2, seed=7, batch_size=2,
                        sampler_name="DPM++ 2M Karras")
    assert [im.tobytes() for im in again.images] == [im.tobytes() for im in result.images]
    logged = last_logged(fronts, "/sdapi/v1/txt2img", count=2)
    assert logged["cache"] == "hit" and logged["front"] == "a1111"
    assert "demo.safetensors" in api.util_get_model_names()
    samplers = api.util_get_sampler_names()
    assert {"Euler a", "DPM++ 2M", "DDIM"} <= set(samplers)
    assert {s["label"] for s in api.get_schedulers()} >= {"Automatic", "Karras"}
    assert api.get_options()["sd_model_checkpoint"] == "demo.safetensors"
    assert {"name": "none", "prompt": "{prompt}", "negative_prompt": ""} in api.get_prompt_styles()
    assert api.get_progress()["state"]["job_count"] == 0


def test_checkpoint_is_remembered_per_user(project, simulator):
    server = FrontServer(project, simulator.url, api_keys={"alice-key": "alice", "bob-key": "bob"})
    try:
        alice = _api(server, username="alice", password="alice-key")
        bob = _api(server, username="bob", password="bob-key")
        alice.util_set_model("v1-5-pruned-emaonly.safetensors", find_closest=False)
        assert alice.get_options()["sd_model_checkpoint"] == "v1-5-pruned-emaonly.safetensors"
        assert bob.get_options()["sd_model_checkpoint"] == "demo.safetensors"
        made = alice.txt2img(prompt="a lighthouse", width=64, height=64, steps=2, seed=1)
        assert made.info["sd_model_name"] == "v1-5-pruned-emaonly"
        assert bob.txt2img(prompt="a lighthouse", width=64, height=64, steps=2, seed=1).info["sd_model_name"] == "demo"
        # A1111's title form "name [hash]" and the bare model name work too.
        alice.set_options({"sd_model_checkpoint": "demo [abcdef12]"})
        assert alice.get_options()["sd_model_checkpoint"] == "demo.safetensors"
    finally:
        server.close()


def test_webuiapi_img2img(fronts):
    api = _api(fronts)
    source = Image.new("RGB", (64, 64), (20, 120, 220))
    result = api.img2img(images=[source], prompt="the same, at night", denoising_strength=0.4, steps=2, seed=3,
                         width=64, height=64)
    assert len(result.images) == 1 and result.images[0].size[0] > 0
    assert result.info["denoising_strength"] == 0.4
    assert result.info["extra_generation_params"]["LinkPix workflow"] == "sd15_img2img.json"
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))  # A1111: white = inpaint
    inpainted = api.img2img(images=[source], mask_image=mask, prompt="a door", steps=2, seed=3, width=64,
                            height=64)
    assert inpainted.info["extra_generation_params"]["LinkPix workflow"] == "sd15_inpaint.json"
    assert len(inpainted.images) == 1
    r = requests.post(fronts.url + "/sdapi/v1/img2img", json={"prompt": "x"}, timeout=30)
    assert r.status_code == 400 and set(r.json()) == ERROR_KEYS and "init_images" in r.json()["detail"]


def test_sillytavern_sd_webui_source_request_for_request(fronts):
    """What SillyTavern's server sends (the URL's path overwritten, `Authorization: Basic ` with no
    credentials): ping, model/sampler/scheduler/VAE/upscaler lists, set-model, generate."""
    u = fronts.url
    assert requests.get(u + "/sdapi/v1/options", headers=EMPTY_BASIC, timeout=30).ok  # /api/sd/ping
    titles = [m["title"] for m in requests.get(u + "/sdapi/v1/sd-models", headers=EMPTY_BASIC, timeout=30).json()]
    assert "demo.safetensors" in titles
    samplers = [s["name"] for s in requests.get(u + "/sdapi/v1/samplers", headers=EMPTY_BASIC, timeout=30).json()]
    schedulers = [s["name"] for s in requests.get(u + "/sdapi/v1/schedulers", headers=EMPTY_BASIC, timeout=30).json()]
    assert "Euler a" in samplers and "karras" in schedulers
    upscalers = [x["name"] for x in requests.get(u + "/sdapi/v1/upscalers", headers=EMPTY_BASIC, timeout=30).json()]
    latent = [x["name"] for x in requests.get(u + "/sdapi/v1/latent-upscale-modes", headers=EMPTY_BASIC,
                                              timeout=30).json()]
    assert upscalers[0] == "None" and "Latent" in latent
    assert isinstance(requests.get(u + "/sdapi/v1/sd-vae", headers=EMPTY_BASIC, timeout=30).json(), list)
    # /api/sd/set-model: POST options, then poll progress until idle.
    r = requests.post(u + "/sdapi/v1/options", json={"sd_model_checkpoint": "demo.safetensors"},
                      headers={**EMPTY_BASIC, "Content-Type": "application/json"}, timeout=30)
    assert r.ok
    state = requests.get(u + "/sdapi/v1/progress", headers=EMPTY_BASIC, timeout=30).json()
    assert state["progress"] == 0.0 and state["state"]["job_count"] == 0
    # /api/sd/generate: the extension's whole body, url and auth included; seed left out = random.
    body = {"url": "http://127.0.0.1:7860", "auth": "", "prompt": "a cat in a hat", "negative_prompt": "blurry",
            "sampler_name": "DPM++ 2M", "scheduler": "Karras", "steps": 2, "cfg_scale": 7, "width": 64,
            "height": 64, "restore_faces": False, "enable_hr": False, "hr_upscaler": "Latent", "hr_scale": 2,
            "denoising_strength": 0.7, "hr_second_pass_steps": 0,
            "override_settings": {"CLIP_stop_at_last_layers": 1}, "override_settings_restore_afterwards": True,
            "clip_skip": 1, "save_images": True, "send_images": True, "do_not_save_grid": False,
            "do_not_save_samples": False}
    r = requests.post(u + "/sdapi/v1/txt2img", json=body, headers=EMPTY_BASIC, timeout=60)
    assert r.status_code == 200, r.text
    assert image_of(r.json()["images"][0]).format == "PNG"
    assert "auth" not in r.json()["parameters"]
    other = requests.post(u + "/sdapi/v1/txt2img", json=body, headers=EMPTY_BASIC, timeout=60).json()
    assert other["images"][0] != r.json()["images"][0]  # no seed: a new picture each time, as in A1111


def test_errors_in_a1111_shape(project, simulator):
    server = FrontServer(project, simulator.url, network_access=True, api_keys={"k1": "alice"})
    try:
        u = server.url + "/sdapi/v1/txt2img"
        r = requests.post(u, json={"prompt": "x"}, timeout=30)
        assert r.status_code == 401 and set(r.json()) == ERROR_KEYS and r.headers["WWW-Authenticate"] == "Basic"
        r = requests.post(u, json={"prompt": "x"}, headers=EMPTY_BASIC, timeout=30)
        assert r.status_code == 401
        auth = ("anyone", "k1")
        r = requests.post(u, json={"prompt": "x", "width": 4096, "height": 4096}, auth=auth, timeout=30)
        # A1111's keys, and the rule no schema states that the request broke (docs/api.md#rules-no-schema-states)
        assert r.status_code == 400 and set(r.json()) == ERROR_KEYS | {"rule"} and "max_pixels" in r.json()["detail"]
        assert r.json()["rule"] == "max_pixels"
        assert r.json()["errors"].startswith("400: ")
        r = requests.post(u, json={"prompt": "x", "override_settings": {"sd_model_checkpoint": "nope.ckpt"}},
                          auth=auth, timeout=30)
        assert r.status_code == 400 and "demo.safetensors" in r.json()["detail"]
        r = requests.post(u, json={"prompt": "x", "sampler_name": "Bogus"}, auth=auth, timeout=30)
        assert r.status_code == 400 and "Euler a" in r.json()["detail"]
        r = requests.post(server.url + "/sdapi/v1/options", json={"sd_model_checkpoint": "nope"}, auth=auth,
                          timeout=30)
        assert r.status_code == 400 and set(r.json()) == ERROR_KEYS | {"rule"} and r.json()["rule"] == "backend_names"
        for images in ({"0": "x"}, "not a list", 5):  # found by Schemathesis: an object here was a 500
            r = requests.post(server.url + "/sdapi/v1/img2img", json={"prompt": "x", "init_images": images},
                              auth=auth, timeout=30)
            assert r.status_code == 400 and "init_images" in r.json()["detail"], r.text
        r = requests.post(u, json={"prompt": "x", "batch_size": 9}, auth=auth, timeout=30)
        assert r.status_code == 400 and "max_image_count" in r.json()["detail"]
        ok = requests.post(u, json={"prompt": "x", "width": 64, "height": 64, "steps": 2}, auth=auth, timeout=30)
        assert ok.status_code == 200 and base64.b64decode(ok.json()["images"][0])[:4] == b"\x89PNG"
    finally:
        server.close()


def test_front_can_be_turned_off(project, simulator):
    server = FrontServer(project, simulator.url, fronts=["openai"])
    try:
        r = requests.get(server.url + "/sdapi/v1/options", timeout=30)
        assert r.status_code == 404 and set(r.json()) == ERROR_KEYS
        assert requests.get(server.url + "/v1/models", timeout=30).ok
    finally:
        server.close()


def test_progress_preview_and_interrupt_of_own_runs(project, tmp_path):
    sim = SimulatorServer(host="127.0.0.1", port=0, root=tmp_path / "slow", step_delay=0.15)
    sim.start()
    server = FrontServer(project, sim.url)
    try:
        api = _api(server)
        done: dict[str, object] = {}
        worker = threading.Thread(target=lambda: done.update(r=api.txt2img(
            prompt="a slow one", width=64, height=64, steps=30, seed=11, n_iter=2)))
        worker.start()
        state = wait_for(lambda: (p := api.get_progress())["state"]["sampling_step"] > 1 and p["current_image"]
                         and p, timeout=20)
        assert state["state"]["job_count"] == 2 and 0 < state["progress"] < 1
        assert image_of(state["current_image"]).format == "JPEG"  # the sampler's live preview
        assert requests.get(server.url + "/sdapi/v1/progress?skip_current_image=true",
                            timeout=10).json()["current_image"] is None
        api.interrupt()
        worker.join(timeout=20)
        assert not worker.is_alive() and done["r"].images == []  # interrupted before any image was done
        assert api.get_progress()["state"]["job_count"] == 0
    finally:
        server.close()
        sim.stop()


def test_open_webui_automatic1111_engine(fronts):
    """Open WebUI (routers/images.py): models from sd-models (id = title), set_image_model GETs the options
    and POSTs the whole dict back, then txt2img with prompt, batch_size = n, width, height, steps."""
    u, auth = fronts.url, {"authorization": ""}  # its header when no API auth is set
    models = requests.get(u + "/sdapi/v1/sd-models", headers=auth, timeout=30).json()
    assert {"id": "demo.safetensors", "name": "demo"} in [{"id": m["title"], "name": m["model_name"]} for m in models]
    options = requests.get(u + "/sdapi/v1/options", headers=auth, timeout=30).json()
    options["sd_model_checkpoint"] = "v1-5-pruned-emaonly.safetensors"
    assert requests.post(u + "/sdapi/v1/options", json=options, headers=auth, timeout=30).ok
    r = requests.post(u + "/sdapi/v1/txt2img", json={"prompt": "a harbour", "batch_size": 2, "width": 64,
                                                      "height": 64, "steps": 2}, headers=auth, timeout=60)
    assert r.status_code == 200 and len(r.json()["images"]) == 2
    assert json.loads(r.json()["info"])["sd_model_name"] == "v1-5-pruned-emaonly"

