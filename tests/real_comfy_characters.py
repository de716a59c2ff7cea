"""By hand, against a real ComfyUI (not collected by pytest): characters and LoRAs end to end.

    python3 tests/real_comfy_characters.py [http://127.0.0.1:8188]

Needs the tiny SD1.5 checkpoint `tiny-random-sd15.safetensors` and `tiny-lora.safetensors` on that ComfyUI.
LinkPix runs in this process under waitress on a loopback port with a throw-away project folder; the graphs
are read back from the real ComfyUI's /history. Prints what it checked; exits non-zero on the first failure.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from support import ApiServer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CKPT = "tiny-random-sd15.safetensors"


def node(cls: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": cls, "inputs": inputs}


TXT2IMG = {
    "4": node("CheckpointLoaderSimple", ckpt_name=CKPT),
    "6": node("CLIPTextEncode", text="a photo of a cat", clip=["4", 1]),
    "7": node("CLIPTextEncode", text="blurry", clip=["4", 1]),
    "5": node("EmptyLatentImage", width=64, height=64, batch_size=1),
    "3": node("KSampler", seed=44, steps=3, cfg=7.0, sampler_name="euler", scheduler="normal", denoise=1.0,
              model=["4", 0], positive=["6", 0], negative=["7", 0], latent_image=["5", 0]),
    "8": node("VAEDecode", samples=["3", 0], vae=["4", 2]),
    "9": node("SaveImage", images=["8", 0], filename_prefix="linkpix_char_trial"),
}
IMG2IMG = {**TXT2IMG, "10": node("LoadImage", image="example.png"),
           "11": node("VAEEncode", pixels=["10", 0], vae=["4", 2])}
IMG2IMG["3"] = node("KSampler", seed=44, steps=3, cfg=7.0, sampler_name="euler", scheduler="normal", denoise=0.6,
                    model=["4", 0], positive=["6", 0], negative=["7", 0], latent_image=["11", 0])


def png(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buf, "PNG")
    return buf.getvalue()


def newest(comfy: str, since: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        history = requests.get(comfy + "/history", timeout=10).json()
        fresh = [v for k, v in history.items() if k not in since]
        if fresh:
            return fresh[-1]["prompt"][2]
        time.sleep(0.2)
    raise AssertionError("no new history entry")


def check(what: str, ok: bool) -> None:
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        sys.exit(1)


def main(comfy: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="linkpix-real-"))
    project = tmp / "project"
    project.mkdir()
    for name in ("data", "workflows"):
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("*.lock", "*.sqlite3*", "uploads"))
    shutil.copy(ROOT / "config.json", project / "config.json")
    (project / "cache").mkdir()
    (project / "workflows" / "tiny.json").write_text(json.dumps(TXT2IMG), encoding="utf-8")
    (project / "workflows" / "tiny_ref.json").write_text(json.dumps(IMG2IMG), encoding="utf-8")
    api = ApiServer(project, comfy, workflow_path="tiny.json")
    try:
        seen = set(requests.get(comfy + "/history", timeout=10).json())
        face = png((240, 20, 20))
        ref = requests.post(api.url + "/uploads", data=face, headers={"Content-Type": "image/png"}, timeout=30).json()
        r = requests.put(api.url + "/api/characters/tina", json={
            "words": "tina, a red robot", "negative": "rust", "references": [ref["id"]],
            "loras": [{"name": "tiny-lora", "strength": 0.8}]}, timeout=30)
        check(f"PUT /api/characters/tina -> {r.status_code}", r.status_code == 201)
        t0 = time.monotonic()
        r = api.get(f"/prompt/waving%20hello?char=tina&seed=7&t={time.time()}")
        check(f"link with char=tina -> {r.status_code} in {time.monotonic() - t0:.1f} s", r.status_code == 200)
        graph = newest(comfy, seen)
        seen = set(requests.get(comfy + "/history", timeout=10).json())
        lora = graph[graph["3"]["inputs"]["model"][0]]
        check(f"sampler model through {lora['class_type']} {lora['inputs'].get('lora_name')} "
              f"{lora['inputs'].get('strength_model')}", lora["class_type"] == "LoraLoader"
              and lora["inputs"]["lora_name"] == "tiny-lora.safetensors" and lora["inputs"]["strength_model"] == 0.8)
        positive = graph["6"]["inputs"]["text"]
        check(f"positive {positive!r}", positive.startswith("tina, a red robot"))
        check(f"negative {graph['7']['inputs']['text']!r}", graph["7"]["inputs"]["text"].endswith("rust"))
        r = api.get(f"/prompt/waving%20hello?char=tina&workflow=tiny_ref&seed=7&t={time.time()}")
        check(f"reference workflow -> {r.status_code}", r.status_code == 200)
        graph = newest(comfy, seen)
        seen = set(requests.get(comfy + "/history", timeout=10).json())
        name = graph["10"]["inputs"]["image"]
        view = requests.get(comfy + "/view", params={"filename": name, "type": "input"}, timeout=10)
        check(f"LoadImage loads {name}, the reference's bytes", view.content == face)
        r = api.get(f"/prompt/a%20cat%20%3Clora%3Atiny-lora%3A0.5%3E?seed=3&t={time.time()}")
        check(f"<lora:tiny-lora:0.5> -> {r.status_code}", r.status_code == 200)
        graph = newest(comfy, seen)
        seen = set(requests.get(comfy + "/history", timeout=10).json())
        lora = graph[graph["3"]["inputs"]["model"][0]]
        check(f"  strength {lora['inputs']['strength_model']}, text {graph['6']['inputs']['text']!r}",
              lora["inputs"]["strength_model"] == 0.5 and graph["6"]["inputs"]["text"] == "a cat")
        r = api.get("/prompt/a%20cat%20%3Clora%3Anope%3E?format=json")
        check(f"<lora:nope> -> {r.status_code} {r.json().get('message')}", r.status_code == 400)
        avatar = png((10, 200, 90))
        uri = "data:image/png;base64," + base64.b64encode(avatar).decode()
        st = {"10": node("LoadImage", image=uri), "11": node("ImageInvert", image=["10", 0]),
              "12": node("SaveImage", images=["11", 0], filename_prefix="linkpix_char_trial")}
        r = requests.post(api.url + "/prompt", json={"prompt": st, "client_id": "trial"}, timeout=120)
        check(f"ComfyUI front, data-URI LoadImage -> {r.status_code}", r.status_code == 200)
        graph = newest(comfy, seen)
        view = requests.get(comfy + "/view", params={"filename": graph["10"]["inputs"]["image"], "type": "input"},
                            timeout=10)
        check(f"  ComfyUI loaded {graph['10']['inputs']['image']}, the avatar's bytes", view.content == avatar)
        seen = set(requests.get(comfy + "/history", timeout=10).json())
        tagged = json.loads(json.dumps(TXT2IMG))
        tagged["6"]["inputs"]["text"] = "a robot <lora:tiny-lora:0.4>"
        r = requests.post(api.url + "/prompt", json={"prompt": tagged, "client_id": "trial"}, timeout=120)
        check(f"ComfyUI front, <lora:tiny-lora:0.4> in the graph -> {r.status_code}", r.status_code == 200)
        graph = newest(comfy, seen)
        lora = graph[graph["3"]["inputs"]["model"][0]]
        check(f"  {lora['class_type']} {lora['inputs'].get('strength_model')}, text {graph['6']['inputs']['text']!r}",
              lora["class_type"] == "LoraLoader" and graph["6"]["inputs"]["text"] == "a robot")
    finally:
        api.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8188")
