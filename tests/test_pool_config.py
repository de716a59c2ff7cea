"""The pool's settings: comfyui_urls in config.json and LINKPIX_COMFYUI_URLS, comfyui_url as the one-backend form."""

from __future__ import annotations

import json

import pytest

from linkpix.config import load_config
from linkpix.errors import ConfigError


def config(tmp_path, values: dict, use_env: bool = False):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    return load_config(path, use_env=use_env).settings


def test_comfyui_url_is_the_one_backend_form(tmp_path):
    backends = config(tmp_path, {"comfyui_url": "http://gpu:8188/"}).backends()
    assert [(b.url, b.label, b.weight, b.max_queue) for b in backends] == [("http://gpu:8188", "gpu:8188", 1.0, 0)]


def test_urls_and_objects_with_their_settings(tmp_path):
    settings = config(tmp_path, {"comfyui_url": "http://ignored:1", "comfyui_urls": [
        "http://user:secret@a:8188", {"url": "http://b:8188/", "name": "big", "weight": 2, "max_queue": 4,
                                      "tags": ["sdxl"]}]})
    a, b = settings.backends()
    assert (a.url, a.label) == ("http://user:secret@a:8188", "a:8188")  # the label never shows the password
    assert (b.url, b.label, b.weight, b.max_queue, b.tags) == ("http://b:8188", "big", 2.0, 4, ["sdxl"])


def test_the_environment_takes_a_comma_separated_list(tmp_path, monkeypatch):
    monkeypatch.setenv("LINKPIX_COMFYUI_URLS", "http://a:8188, http://b:8188")
    assert [b.url for b in config(tmp_path, {}, use_env=True).backends()] == ["http://a:8188", "http://b:8188"]
    monkeypatch.setenv("LINKPIX_COMFYUI_URLS", '[{"url": "http://c:8188", "name": "c"}]')
    assert [b.label for b in config(tmp_path, {}, use_env=True).backends()] == ["c"]


@pytest.mark.parametrize(("urls", "message"), [
    (["http://a:1", "http://a:1"], "two backends have the name 'a:1'"),
    ([{"url": "http://a:1", "name": "x"}, {"url": "http://b:1", "name": "x"}], "two backends have the name 'x'"),
    (["ftp://a"], "'comfyui_urls.0.url'"),
    ([{"url": "http://a:1", "weight": 0}], "'comfyui_urls.0.weight'"),
    ([{"url": "http://a:1", "gpu": 1}], "'comfyui_urls.0.gpu'"),
])
def test_bad_backends_stop_start_up_naming_the_key(tmp_path, urls, message):
    with pytest.raises(ConfigError, match="LINKPIX_COMFYUI_URLS") as caught:
        config(tmp_path, {"comfyui_urls": urls})
    assert message in caught.value.message
