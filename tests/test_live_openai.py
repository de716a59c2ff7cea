"""The OpenAI front's `stream: true` with `partial_images`, read by the official `openai` SDK over a real socket."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import requests
from fronts_support import FrontServer
from PIL import Image

from linkpix.simulator import SimulatorServer


@pytest.fixture
def fronts(project: Path, slow_sim: SimulatorServer) -> Iterator[FrontServer]:
    server = FrontServer(project, slow_sim.url)
    try:
        yield server
    finally:
        server.close()


def _client(server: FrontServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="not-needed-on-loopback", max_retries=0, timeout=60)


@pytest.mark.slow
def test_the_sdk_receives_partial_images_then_the_image(fronts, slow_sim):
    stream = _client(fronts).images.generate(prompt="a fox, streamed", model="demo", size="384x256",
                                             stream=True, partial_images=2, extra_body={"steps": 12})
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds == ["image_generation.partial_image", "image_generation.partial_image", "image_generation.completed"]
    partials = [base64.b64decode(e.b64_json) for e in events[:2]]
    assert partials[0] != partials[1]
    assert [e.partial_image_index for e in events[:2]] == [0, 1]
    assert all(Image.open(io.BytesIO(p)).format == "JPEG" for p in partials)
    done = events[-1]
    final = Image.open(io.BytesIO(base64.b64decode(done.b64_json)))
    assert final.size == (384, 256) and done.size == "384x256" and done.output_format == "png"
    same = _client(fronts).images.generate(prompt="a fox, streamed", model="demo", size="384x256",
                                           response_format="b64_json", extra_body={"steps": 12})
    assert base64.b64decode(same.data[0].b64_json) == base64.b64decode(done.b64_json)
    assert slow_sim.prompts_received == 1


def test_a_cached_picture_streams_only_its_completed_event(fronts):
    client = _client(fronts)
    client.images.generate(prompt="cached fox", model="demo", size="64x64", response_format="b64_json")
    events = list(client.images.generate(prompt="cached fox", model="demo", size="64x64", stream=True,
                                         partial_images=3))
    assert [e.type for e in events] == ["image_generation.completed"]


def test_a_failed_run_raises_in_the_sdk(fronts, slow_sim):
    slow_sim.faults.fail_class = "KSampler"
    stream = _client(fronts).images.generate(prompt="doomed fox", model="demo", size="64x64", stream=True,
                                             partial_images=1)
    with pytest.raises(openai.APIError) as caught:
        list(stream)
    assert "KSampler" in str(caught.value) or "failed" in str(caught.value).lower()


def test_bad_stream_fields_are_clear_errors(fronts):
    url = fronts.url + "/v1/images/generations"
    bad = requests.post(url, json={"prompt": "x", "stream": True, "partial_images": 7}, timeout=30)
    assert bad.status_code == 400 and "partial_images must be" in bad.json()["error"]["message"]
    many = requests.post(url, json={"prompt": "x", "stream": True, "n": 2}, timeout=30)
    assert many.status_code == 400 and many.json()["error"]["param"] == "n"
