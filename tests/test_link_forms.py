"""What a link may look like: a newline in the prompt, defaults stated or implied (one seed, one cache
entry), and `workflow_path` as a bare name or a path inside the workflows folder."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from support import ApiServer

from linkpix.config import load_config
from linkpix.errors import ConfigError
from linkpix.pipeline.request import parse_query
from linkpix.pipeline.resolver import Resolver
from linkpix.storage.jsonstore import JsonStore


def resolver(project: Path, **overrides: object) -> Resolver:
    cfg = load_config(project / "config.json", overrides={"workflow_path": "demo.json", **overrides},
                      use_env=False)
    return Resolver(lambda: cfg, JsonStore(), lambda: None)


def test_a_newline_in_the_prompt_is_kept(api, caplog):
    with caplog.at_level(logging.INFO, logger="linkpix.access"):
        meta = api.get("/prompt/line1%0Aline2?width=64&height=64&format=json")
        assert meta.status_code == 200, meta.text
        assert meta.json()["prompt"] == "line1\nline2"
        for _ in range(2):  # Flask, then the memoised fast path
            image = api.get("/prompt/line1%0Aline2?width=64&height=64")
            assert image.status_code == 200 and image.headers["Content-Type"] == "image/png"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and sum("line1" in r.getMessage() for r in caplog.records) < 3:
            time.sleep(0.01)
    logged = [r.getMessage() for r in caplog.records if "line1" in r.getMessage()]
    assert len(logged) == 3 and all("\n" not in line and "line1\\x0aline2" in line for line in logged)
    assert api.get("/prompt/%0A%0Atrailing%0A?width=64&height=64").status_code == 200


def test_stated_and_implied_defaults_give_one_seed_and_one_cache_entry(api, simulator, project):
    bare = api.get("/prompt/a+cat?width=64&height=64&format=json").json()
    stated = api.get("/prompt/a+cat?width=64&height=64&steps=8&cfg=7&sampler=euler&format=json").json()
    assert stated["params"]["steps"] == 8  # 8 is demo.json's own value
    assert stated["seed"] == bare["seed"] and stated["url"] == bare["url"]
    assert stated["cache"] == "hit" and simulator.prompts_received == 1
    other = api.get("/prompt/a+cat?width=64&height=64&steps=9&format=json").json()
    assert other["seed"] != bare["seed"] and other["url"] != bare["url"]
    assert len(list((project / "cache" / "default").glob("*.png"))) == 2


def test_a_default_from_settings_or_preferences_is_the_same_as_the_file_value(project):
    plain = resolver(project).resolve(parse_query("a cat", {}, "default"))
    (project / "workflows" / "settings" / "demo.json").write_text(json.dumps({"steps": 8}))
    (project / "data" / "user_preferences.json").write_text(json.dumps({"bob": {"params": {"cfg": 7.0}}}))
    r = resolver(project)
    assert r.resolve(parse_query("a cat", {}, "default")).seed == plain.seed
    assert r.resolve(parse_query("a cat", {}, "bob")).seed == plain.seed
    assert r.resolve(parse_query("a cat", {"steps": "0008"}, "default")).graph == plain.graph
    # A parameter the workflow ignores, and the output format, keep the picture.
    assert r.resolve(parse_query("a cat", {"frobnicate": "1", "format": "webp"}, "default")).seed == plain.seed
    (project / "workflows" / "settings" / "demo.json").write_text(json.dumps({"steps": 9}))
    changed = resolver(project).resolve(parse_query("a cat", {}, "default"))
    assert changed.seed != plain.seed  # another value lands in the graph: another picture


@pytest.mark.parametrize("form", ["workflows/demo.json", "./workflows/demo.json", "workflows/../workflows/demo.json",
                                  "demo.json", "demo", "{abs}/workflows/demo.json"])
def test_workflow_path_as_a_name_or_a_path_inside_the_folder(project, form):
    cfg = load_config(project / "config.json", overrides={"workflow_path": form.format(abs=project)},
                      use_env=False)
    assert cfg.default_workflow in ("demo.json", "demo")
    job = Resolver(lambda: cfg, JsonStore(), lambda: None).resolve(parse_query("a cat", {}, "default"))
    assert job.workflow == "demo.json"


@pytest.mark.parametrize("form", ["../demo.json", "data/styles.json", "workflows/settings/sd15.json",
                                  "/etc/passwd", "workflows/../../demo.json"])
def test_workflow_paths_that_leave_the_folder_are_refused_at_start(project, form):
    with pytest.raises(ConfigError) as err:
        load_config(project / "config.json", overrides={"workflow_path": form}, use_env=False)
    assert "workflow_path" in err.value.message and "workflows folder" in err.value.message
    assert form in err.value.message


@pytest.mark.slow
def test_the_original_linkpix_config_works_unchanged(project, simulator):
    original = {"comfyui_url": simulator.url, "workflow_path": "workflows/demo.json", "api_port": 4000}
    (project / "config.json").write_text(json.dumps(original))
    server = ApiServer(project, None, workflow_path="workflows/demo.json")
    try:
        r = server.get("/prompt/hello?width=64&height=64")
        assert r.status_code == 200 and r.headers["X-LinkPix-Workflow"] == "demo.json"
        assert server.get("/api/workflows").json()["default"] == "demo.json"
    finally:
        server.close()
