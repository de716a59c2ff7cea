"""The OpenAI Images front over real sockets, driven by the official `openai` package (base_url=.../v1)."""

from __future__ import annotations

import base64
import io

import openai
import pytest
import requests
from fronts_support import FrontServer, last_logged
from PIL import Image

# Slow (docs/testing.md): the openai client against a running API: seconds each.
pytestmark = pytest.mark.slow


def _client(server: FrontServer, key: str = "not-needed-on-loopback") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=60)


def test_generate_b64_and_url(fronts):
    client = _client(fronts)
    result = client.images.generate(prompt="a red fox", size="64x48", n=2, response_format="b64_json",
                                    model="demo")
    pictures = [Image.open(io.BytesIO(base64.b64decode(d.b64_json))) for d in result.data]
    assert [p.size for p in pictures] == [(64, 48), (64, 48)]
    assert pictures[0].tobytes() != pictures[1].tobytes()  # n images: seed + i
    assert result.data[0].revised_prompt == "a red fox" and result.created > 0
    linked = client.images.generate(prompt="a red fox", size="64x48", model="dall-e-3")
    url = linked.data[0].url
    assert url.startswith(fronts.url + "/images/default/")
    fetched = requests.get(url, timeout=30)
    assert fetched.status_code == 200 and fetched.headers["Content-Type"] == "image/png"
    logged = last_logged(fronts, "/v1/images/generations", count=2)
    assert logged["front"] == "openai" and logged["status"] == 200


def test_style_and_models(fronts):
    client = _client(fronts)
    ids = [m.id for m in client.models.list()]
    assert "demo" in ids and "dall-e-3" in ids and "sd15" in ids
    styled = client.images.generate(prompt="a castle", size="64x64", style="vivid", response_format="b64_json")
    assert styled.data[0].revised_prompt == "a castle"  # OpenAI's "vivid" is no LinkPix style: ignored


def test_edit_goes_through_the_edit_path(fronts):
    """images.edit runs LinkPix's edit path (edit_workflow; with a mask a1111_inpaint_workflow): the result
    comes back at the photo's own resolution."""
    client = _client(fronts)
    photo = Image.new("RGB", (96, 80), (200, 30, 30))
    out = io.BytesIO()
    photo.save(out, "PNG")
    raw = client.images.with_raw_response.edit(image=("in.png", out.getvalue(), "image/png"),
                                               prompt="make it warmer", response_format="b64_json", n=2)
    assert raw.headers["X-LinkPix-Workflow"] == "flux_kontext_edit.json"
    result = raw.parse()
    pictures = [Image.open(io.BytesIO(base64.b64decode(d.b64_json))) for d in result.data]
    assert [p.size for p in pictures] == [(96, 80), (96, 80)]
    assert result.data[0].revised_prompt == "make it warmer"
    mask = Image.new("RGBA", (96, 80), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 48, 80))  # OpenAI: the transparent half is what changes
    masked = io.BytesIO()
    mask.save(masked, "PNG")
    raw = client.images.with_raw_response.edit(image=("in.png", out.getvalue(), "image/png"), prompt="a door",
                                               mask=("mask.png", masked.getvalue(), "image/png"))
    assert raw.headers["X-LinkPix-Workflow"] == "sd15_inpaint.json"
    url = raw.parse().data[0].url
    assert Image.open(io.BytesIO(requests.get(url, timeout=30).content)).size == (96, 80)
    with pytest.raises(openai.BadRequestError) as missing:
        requests_files = {"prompt": (None, "x")}
        r = requests.post(fronts.url + "/v1/images/edits", files=requests_files, timeout=30)
        raise openai.BadRequestError(r.json()["error"]["message"], response=_httpx_response(r), body=r.json())
    assert missing.value.body["error"]["param"] == "image"


def test_errors_in_openai_shape(project, simulator):
    server = FrontServer(project, simulator.url, network_access=True, api_keys={"sk-linkpix": "alice"})
    try:
        with pytest.raises(openai.AuthenticationError) as denied:
            _client(server, "sk-wrong").images.generate(prompt="x", size="64x64")
        assert denied.value.status_code == 401 and denied.value.code == "invalid_api_key"
        r = requests.post(server.url + "/v1/images/generations", json={"prompt": "x"},
                          headers={"Authorization": "Bearer "}, timeout=30)
        assert r.status_code == 401 and set(r.json()["error"]) == {"message", "type", "param", "code"}
        client = _client(server, "sk-linkpix")
        with pytest.raises(openai.BadRequestError) as bad:
            client.images.generate(prompt="x", size="big")
        assert bad.value.status_code == 400 and bad.value.body["param"] == "size"
        assert bad.value.body["type"] == "invalid_request_error"
        with pytest.raises(openai.BadRequestError) as huge:
            client.images.generate(prompt="x", size="4096x4096")
        assert "max_pixels" in huge.value.body["message"] and huge.value.body["param"] == "size"
        with pytest.raises(openai.NotFoundError) as unknown:
            client.images.generate(prompt="x", model="no-such-model")
        assert unknown.value.code == "model_not_found" and "demo" in unknown.value.body["message"]
        with pytest.raises(openai.BadRequestError):
            client.images.generate(prompt="x", n=99)
        ok = client.images.generate(prompt="x", size="64x64", response_format="b64_json")
        assert len(ok.data) == 1
        assert last_logged(server, "/v1/images/generations", count=7)["user"] == "alice"
    finally:
        server.close()


def test_empty_bearer_is_ignored_on_loopback(fronts):
    r = requests.post(fronts.url + "/v1/images/generations", json={"prompt": "x", "size": "64x64"},
                      headers={"Authorization": "Bearer "}, timeout=30)
    assert r.status_code == 200 and r.json()["data"][0]["url"].endswith(".png")


def _httpx_response(r: requests.Response):
    import httpx
    return httpx.Response(r.status_code, json=r.json(), request=httpx.Request("POST", r.url))
