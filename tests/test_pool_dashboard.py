"""The dashboard's share of the pool: the Settings tab edits the backend list, the Monitor shows a row each."""

from __future__ import annotations

import json

import pytest
from pool_support import Sims, pool_api

from linkpix.dashboard import configedit
from linkpix.dashboard.monitor import all_gpu_rows, backend_rows, health_markdown
from linkpix.errors import ConfigError
from linkpix.storage.jsonstore import JsonStore


def test_the_backend_list_round_trips_through_the_form_and_is_saved_as_json(project):
    text = "http://a:8188 name=gpu1 weight=2\n\n# a spare\nhttp://b:8188 max_queue=8 tags=sdxl,fast\n"
    entries = configedit.parse_backends(text)
    assert entries == [{"url": "http://a:8188", "name": "gpu1", "weight": "2"},
                       {"url": "http://b:8188", "max_queue": "8", "tags": ["sdxl", "fast"]}]
    changed = configedit.save_settings(JsonStore(), project / "config.json", {"comfyui_urls": entries})
    assert changed == ["comfyui_urls"]
    saved = json.loads((project / "config.json").read_text())["comfyui_urls"]
    assert saved == [{"url": "http://a:8188", "name": "gpu1", "weight": 2.0, "max_queue": 0, "tags": []},
                     {"url": "http://b:8188", "name": "", "weight": 1.0, "max_queue": 8, "tags": ["sdxl", "fast"]}]
    assert configedit.backends_text(saved) == ("http://a:8188 name=gpu1 weight=2\n"
                                               "http://b:8188 max_queue=8 tags=sdxl,fast")
    assert configedit.save_settings(JsonStore(), project / "config.json", {"comfyui_urls": []}) == ["comfyui_urls"]


@pytest.mark.parametrize(("text", "words"), [("http://a:1 gpu=2", "line 1: 'gpu=2'"),
                                             ("http://a:1\nhttp://b:1 nameless", "line 2: 'nameless'")])
def test_a_bad_line_is_refused_naming_it(text, words):
    with pytest.raises(ConfigError, match=words):
        configedit.parse_backends(text)


def test_bad_values_are_refused_by_the_settings_model_and_nothing_is_written(project):
    before = (project / "config.json").read_text()
    with pytest.raises(ConfigError, match="comfyui_urls.0.weight"):
        configedit.save_settings(JsonStore(), project / "config.json",
                                 {"comfyui_urls": configedit.parse_backends("http://a:1 weight=-1")})
    assert (project / "config.json").read_text() == before


def test_the_monitor_shows_a_row_per_backend(project, tmp_path):
    sims = Sims(tmp_path / "comfy")
    sims.start("gpu-a")
    sims.start("gpu-b")
    api = pool_api(project, sims)
    try:
        assert api.get("/prompt/monitored?width=64&height=64").status_code == 200
        health = api.get("/health").json()
        rows = backend_rows(health)
        assert sorted(r[0] for r in rows) == ["gpu-a", "gpu-b"] and {r[1] for r in rows} == {"up"}
        assert sum(r[3] for r in rows) == 1
        assert {r[0] for r in all_gpu_rows(health)} == {"gpu-a", "gpu-b"}
        assert "(2 of 2 backends)" in health_markdown(health, None)
    finally:
        api.close()
        sims.stop()
