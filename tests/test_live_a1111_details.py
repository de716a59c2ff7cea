"""A1111 and OpenAI front details found while adding previews (issue 22 item 6), over real sockets."""

from __future__ import annotations

import requests

from linkpix.web.fronts.a1111.options import memory_of


def test_prompt_styles_read_as_linkpix_applies_them(fronts):
    styles = {s["name"]: s for s in requests.get(fronts.url + "/sdapi/v1/prompt-styles", timeout=30).json()}
    kawaii = styles["kawaii"]
    assert kawaii["prompt"].startswith("kawaii illustration of {prompt}, cute")  # no comma after "of"
    assert ", ," not in kawaii["prompt"] and styles["none"]["prompt"] == "{prompt}"
    shown = requests.get(fronts.url + "/prompt/a%20cat?style=kawaii&format=json", timeout=30).json()["prompt"]
    assert shown == kawaii["prompt"].replace("{prompt}", "a cat")


def test_memory_in_a1111_shape(fronts):
    body = requests.get(fronts.url + "/sdapi/v1/memory", timeout=30).json()
    assert set(body) == {"ram", "cuda"}
    assert body["ram"]["total"] > 0 and body["ram"]["used"] + body["ram"]["free"] == body["ram"]["total"]
    assert body["cuda"] == {"error": "unavailable"}  # the simulator plays a CPU machine


def test_memory_of_a_cuda_machine():
    gib = 1 << 30
    stats = {"system": {"ram_total": 64 * gib, "ram_free": 40 * gib},
             "devices": [{"type": "cuda", "vram_total": 24 * gib, "vram_free": 20 * gib,
                          "torch_vram_total": 3 * gib, "torch_vram_free": 1 * gib}]}
    cuda = memory_of(stats)["cuda"]
    assert cuda["system"] == {"free": 20 * gib, "used": 4 * gib, "total": 24 * gib}
    assert cuda["allocated"]["current"] == 2 * gib and cuda["events"] == {"retries": 0, "oom": 0}


def test_models_lists_what_the_readme_documents(fronts):
    ids = [m["id"] for m in requests.get(fronts.url + "/v1/models", timeout=30).json()["data"]]
    assert {"dall-e-2", "dall-e-3", "gpt-image-1", "sd15", "demo"} <= set(ids)
    assert "gpt-image-1-mini" not in ids and "gpt-image-1.5" not in ids
    accepted = requests.post(fronts.url + "/v1/images/generations",
                             json={"prompt": "x", "model": "gpt-image-1.5", "size": "64x64"}, timeout=60)
    assert accepted.status_code == 200  # still accepted, standing for the default workflow
