"""The dashboard's non-UI logic: links, settings validation, styles, workflows, cache files, parameter
controls, event-stream parsing and progress, and the login rule. Shared files are real files in a copy
of the project; the API is the real one where a test needs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import ApiServer

from linkpix.config import ConfigHolder, load_config
from linkpix.dashboard import cachefiles, configedit, genjob, stylesedit, workflowedit
from linkpix.dashboard.apiclient import ApiClient, ApiError, parse_sse
from linkpix.dashboard.context import DashboardContext, dashboard_auth
from linkpix.dashboard.graphcheck import graph_problems
from linkpix.dashboard.links import api_url, example_link, prompt_link, reproduce_link
from linkpix.dashboard.monitor import cache_rows, job_rows, recent_rows
from linkpix.dashboard.paramcontrols import control_specs, request_params
from linkpix.errors import BadRequest, ConfigError
from linkpix.render.placeholders import Registry
from linkpix.storage.jsonstore import JsonStore


@pytest.fixture
def store() -> JsonStore:
    return JsonStore()


@pytest.fixture
def registry(project: Path) -> Registry:
    return Registry(json.loads((project / "data" / "placeholders.json").read_text()))


# ---------------------------------------------------------------------------------------- links
def test_api_url_from_port_or_environment():
    assert api_url(4000, {}) == "http://127.0.0.1:4000"
    assert api_url(4000, {"LINKPIX_API_URL": "http://10.0.0.5:9000/"}) == "http://10.0.0.5:9000"


def test_prompt_link_encodes_the_prompt_and_keeps_slashes():
    link = prompt_link("http://h:1", "a fox & owl/at night?", {"width": 512, "negative": "", "cfg": 7.0})
    assert link == "http://h:1/prompt/a%20fox%20%26%20owl/at%20night%3F?width=512&cfg=7"
    assert example_link("http://h:1").startswith("http://h:1/prompt/a%20red%20fox")


def test_reproduce_link_writes_every_value_out():
    link = reproduce_link("http://h:1", "a cat", seed=42, workflow="demo.json", styles=["kawaii", "photo"],
                          width=256, height=128, params={"steps": 8, "width": 256, "sampler": "euler"})
    assert link == ("http://h:1/prompt/a%20cat?width=256&height=128&style=kawaii%2Cphoto&workflow=demo.json"
                    "&seed=42&steps=8&sampler=euler")


# ---------------------------------------------------------------------------------------- settings
def test_save_settings_validates_and_keeps_other_keys(project, store):
    path = project / "config.json"
    before = json.loads(path.read_text())
    changed = configedit.save_settings(store, path, {"timeout": 42, "comfyui_url": "http://gpu:8188/"})
    after = json.loads(path.read_text())
    assert changed == ["timeout", "comfyui_url"]
    assert after["timeout"] == 42 and after["comfyui_url"] == "http://gpu:8188"
    assert {k: v for k, v in after.items() if k not in changed} == {k: v for k, v in before.items()
                                                                     if k not in changed}
    assert load_config(path, use_env=False).settings.timeout == 42


@pytest.mark.parametrize("changes, words", [
    ({"timeout": -1}, "'timeout'"),
    ({"image_format": "gif"}, "'image_format'"),
    ({"comfyui_url": "gpu:8188"}, "http://"),
    ({"no_such": 1}, "unknown setting"),
])
def test_bad_settings_are_refused_with_the_reason_and_nothing_is_written(project, store, changes, words):
    path = project / "config.json"
    before = path.read_bytes()
    with pytest.raises(ConfigError) as err:
        configedit.save_settings(store, path, changes)
    assert words in err.value.message
    assert path.read_bytes() == before


def test_the_api_config_holder_sees_a_saved_setting(project, store):
    holder = ConfigHolder(project / "config.json", use_env=False)
    assert holder.get().settings.timeout != 77
    configedit.save_settings(store, project / "config.json", {"timeout": 77})
    assert holder.get().settings.timeout == 77


def test_restart_note_names_only_the_keys_that_need_one():
    assert "restarted" not in configedit.restart_note(["timeout"])
    assert "network_access" in configedit.restart_note(["timeout", "network_access"])


def test_check_connection(simulator):
    ok, text = configedit.check_connection(simulator.url)
    assert ok and "ComfyUI" in text
    ok, text = configedit.check_connection("http://127.0.0.1:9")
    assert not ok and "Cannot connect" in text
    assert configedit.check_connection("gpu:8188")[0] is False


def test_login_required_with_network_access_and_never_defaulted(tmp_path):
    def settings(**values):
        return load_config(tmp_path / "none.json", overrides=values, use_env=False).settings

    assert dashboard_auth(settings()) is None
    with pytest.raises(ConfigError) as err:
        dashboard_auth(settings(network_access=True))
    assert "dashboard_password" in err.value.message
    assert dashboard_auth(settings(network_access=True, dashboard_user="me", dashboard_password="pw")) == ("me", "pw")


# ---------------------------------------------------------------------------------------- styles
def test_styles_add_edit_delete_and_preview(project, store):
    path, prefs = project / "data" / "styles.json", project / "data" / "user_preferences.json"
    stylesedit.save_style(store, path, "noir", "film noir still of", "high contrast, black and white", "color", "")
    styles = stylesedit.list_styles(store, path)
    assert stylesedit.preview(styles, ["noir"], "a detective") == (
        "film noir still of a detective, high contrast, black and white", "color")
    stylesedit.save_style(store, path, "noir", "noir photo of", "", "", "edited")
    assert stylesedit.list_styles(store, path)["noir"].pre == "noir photo of"
    stylesedit.set_user_default(store, prefs, "alice", "noir", set(stylesedit.list_styles(store, path)))
    with pytest.raises(BadRequest, match="default style of alice"):
        stylesedit.delete_style(store, path, "noir", prefs)
    stylesedit.set_user_default(store, prefs, "alice", "", set())
    stylesedit.delete_style(store, path, "noir", prefs)
    assert "noir" not in stylesedit.list_styles(store, path)
    assert "alice" not in json.loads(prefs.read_text())


@pytest.mark.parametrize("name", ["", "a b", "../x", "none", "x" * 80])
def test_bad_style_names_are_refused(project, store, name):
    with pytest.raises(BadRequest):
        stylesedit.save_style(store, project / "data" / "styles.json", name, "p", "", "", "")


def test_user_default_style_must_exist(project, store):
    with pytest.raises(BadRequest, match="unknown style"):
        stylesedit.set_user_default(store, project / "data" / "user_preferences.json", "bob", "nope", {"none"})


# ---------------------------------------------------------------------------------------- workflows
@pytest.fixture
def object_info(simulator):
    import requests

    return requests.get(simulator.url + "/object_info", timeout=10).json()


def test_graph_check_names_node_and_reason(project, object_info):
    graph = json.loads((project / "workflows" / "demo.json").read_text())
    assert graph_problems(graph, object_info) == []
    graph["1"]["inputs"]["ckpt_name"] = "missing.safetensors"
    graph["5"]["inputs"]["steps"] = 0
    graph["6"]["inputs"]["samples"] = ["99", 0]
    graph["8"] = {"class_type": "NoSuchNode", "inputs": {}}
    del graph["4"]["inputs"]["batch_size"]
    text = "\n".join(graph_problems(graph, object_info))
    assert "missing.safetensors" in text and "node 1" in text
    assert "node 5" in text and "'steps' is 0" in text
    assert "node 99" in text and "NoSuchNode" in text and "'batch_size' is missing" in text


def test_prepare_refuses_bad_graphs_and_binds_good_ones(project, registry, object_info):
    graph = json.loads((project / "workflows" / "demo.json").read_text())
    prepared = workflowedit.prepare("mine", graph, registry, object_info)
    assert prepared.name == "mine.json" and "steps" in prepared.parameters
    with pytest.raises(BadRequest, match="no class_type"):
        workflowedit.prepare("x", {"1": {"inputs": {}}}, registry, object_info)
    with pytest.raises(BadRequest, match="not valid JSON: line 1"):
        workflowedit.parse_json_text("{oops")
    with pytest.raises(BadRequest, match="invalid workflow name"):
        workflowedit.prepare("../evil", graph, registry, object_info)


def test_ui_format_is_converted_on_upload(project, registry, object_info):
    ui = {"nodes": [{"id": 1, "type": "CheckpointLoaderSimple", "mode": 0, "inputs": [],
                     "outputs": [{"name": "MODEL", "type": "MODEL", "links": []}],
                     "widgets_values": ["demo.safetensors"]}], "links": []}
    prepared = workflowedit.prepare("ui", ui, registry, object_info)
    assert prepared.converted and prepared.graph["1"]["class_type"] == "CheckpointLoaderSimple"
    with pytest.raises(BadRequest, match="Save \\(API Format\\)"):
        workflowedit.prepare("ui", ui, registry, None)


def test_save_keeps_the_original_and_restore_brings_it_back(project, registry, store, object_info):
    wdir = project / "workflows"
    original = json.loads((wdir / "demo.json").read_text())
    edited = json.loads(json.dumps(original))
    edited["5"]["inputs"]["steps"] = 3
    workflowedit.save(wdir, workflowedit.prepare("demo.json", edited, registry, object_info), store)
    assert json.loads((wdir / "demo.json").read_text())["5"]["inputs"]["steps"] == 3
    workflowedit.restore_original(wdir, "demo.json", store)
    assert json.loads((wdir / "demo.json").read_text()) == original
    with pytest.raises(BadRequest, match="no saved original"):
        workflowedit.restore_original(wdir, "sd15.json", store)


def test_workflow_defaults_are_checked_like_requests(project, registry, store):
    wdir = project / "workflows"
    accepted = {"steps": {}, "cfg": {}}
    saved = workflowedit.save_settings(wdir, "demo.json", '{"steps": "12", "scale": 5}', store, registry, accepted)
    assert saved == {"steps": 12, "scale": 5.0}
    assert json.loads((wdir / "settings" / "demo.json").read_text()) == saved
    with pytest.raises(BadRequest, match="no parameter 'lora'"):
        workflowedit.save_settings(wdir, "demo.json", '{"lora": "x"}', store, registry, accepted)
    with pytest.raises(BadRequest, match="steps must be from 1"):
        workflowedit.save_settings(wdir, "demo.json", '{"steps": 0}', store, registry, accepted)


def test_upload_name_is_a_safe_file_name():
    assert workflowedit.upload_name("My Flow (1).json") == "My_Flow_1.json"
    assert workflowedit.upload_name("..json") == "workflow.json"


# ---------------------------------------------------------------------------------------- cache
def _entry(root: Path, user: str, key: str, size: int = 10) -> None:
    (root / user).mkdir(parents=True, exist_ok=True)
    (root / user / f"{key}.png").write_bytes(b"x" * size)
    (root / user / f"{key}.json").write_text(json.dumps({"prompt": key, "generation_ms": 5, "created": 1.0}))


def test_cache_counts_and_clears_per_user_and_all(tmp_path):
    root = tmp_path / "cache"
    _entry(root, "alice", "a" * 32, 100)
    _entry(root, "alice", "b" * 32, 50)
    _entry(root, "bob", "c" * 32, 7)
    (root / "bob" / f".{'d' * 32}.png.123.tmp").write_bytes(b"in progress")  # a write of the API
    assert cachefiles.per_user(root) == {"alice": {"images": 2, "bytes": 150}, "bob": {"images": 1, "bytes": 7}}
    assert cachefiles.summary(root, "alice") == (2, 150)
    assert cachefiles.clear(root, "alice") == 2
    assert cachefiles.summary(root) == (1, 7)
    assert cachefiles.clear(root) == 1
    assert (root / "bob" / f".{'d' * 32}.png.123.tmp").exists()  # never touched
    with pytest.raises(BadRequest):
        cachefiles.clear(root, "../etc")


# ---------------------------------------------------------------------------------------- generate
def test_controls_come_from_bindings_placeholders_and_models(project, registry):
    description = {"parameters": {
        "prompt": {"type": "string", "default": ""},
        "seed": {"type": "int", "default": 0, "min": 0, "max": 2**64 - 1},
        "steps": {"type": "int", "default": 8, "min": 1, "max": 150, "targets": []},
        "width": {"type": "int", "default": 512, "min": 16, "max": 8192},
        "sampler": {"type": "string", "default": "euler",
                    "targets": [{"class_type": "KSampler", "input": "sampler_name"}]},
        "model": {"type": "string", "default": "old.ckpt",
                  "targets": [{"class_type": "CheckpointLoaderSimple", "input": "ckpt_name"}]},
        "outfit": {"type": "string", "default": None, "custom": True}},
        "settings": {"scale": 4.5, "steps": 12}}
    description["parameters"]["cfg"] = {"type": "float", "default": 7.0, "min": 0, "max": 30}
    models = {"samplers": ["euler", "dpmpp_2m"], "checkpoints": ["a.ckpt"]}
    specs = {s.name: s for s in control_specs(description, registry, models)}
    assert list(specs)[0] == "width" and "prompt" not in specs and "seed" not in specs
    assert specs["steps"].kind == "slider" and specs["steps"].value == 12  # workflow settings win
    assert specs["cfg"].value == 4.5 and specs["cfg"].step == 0.1  # an alias in the settings
    assert specs["width"].step == 8
    assert specs["sampler"].kind == "dropdown" and specs["sampler"].choices == ("euler", "dpmpp_2m")
    assert specs["model"].choices == ("old.ckpt", "a.ckpt")  # the file's value stays choosable
    assert specs["outfit"].kind == "text"
    no_models = {s.name: s for s in control_specs(description, registry, None)}
    assert no_models["sampler"].kind == "text"
    ordered = list(specs.values())
    values = [s.value for s in ordered]
    values[list(specs).index("outfit")] = ""
    params = request_params(ordered, values)
    assert "outfit" not in params and params["steps"] == 12 and isinstance(params["steps"], int)


def test_job_body_and_seed_field():
    body = genjob.job_body("a fox", [], "demo.json", "", {"steps": 4})
    assert body == {"prompt": "a fox", "workflow": "demo.json", "style": ["none"], "params": {"steps": 4}}
    assert genjob.job_body("a", ["kawaii"], "w", " 42 ", {})["seed"] == 42
    assert genjob.parse_seed_field("-1") == "random"
    with pytest.raises(ValueError, match="whole number"):
        genjob.parse_seed_field("1.5")


def test_sse_parsing_and_progress_fraction():
    lines = ["id: 1", "event: progress", 'data: {"image": 2, "images": 2, "step": 5, "total": 10}', "",
             ": keep-alive", "", "event: succeeded", "data: {\"status\": \"succeeded\"}", ""]
    events = list(parse_sse(iter(lines)))
    assert [e.kind for e in events] == ["progress", "succeeded"]
    assert genjob.fraction_of(events[0].data) == 0.75
    assert genjob.fraction_of({"step": 0, "total": None}) == 0.0
    assert "step 5/10" in genjob.describe_progress(events[0].data)


def test_follow_a_job_through_the_real_api(project, slow_sim):
    """Steps of 60 ms, so the run lasts long enough to be followed (a run of a few ms on a loaded machine can
    end before the client's event stream opens, and then has no progress to show)."""
    api = ApiServer(project, slow_sim.url)
    try:
        updates = list(genjob.follow(ApiClient(api.url), genjob.job_body(
            "a lighthouse", [], "demo.json", "7", {"width": 64, "height": 64, "steps": 3})))
        final = updates[-1]
        assert final.error is None and final.done and final.seed == 7 and final.image.startswith(b"\x89PNG")
        assert any(0 < u.fraction < 1 for u in updates)
        assert api.get(final.link.removeprefix(api.url)).headers["X-LinkPix-Cache"] == "hit"
        refused = list(genjob.follow(ApiClient(api.url), genjob.job_body("x", ["nope"], "demo.json", "", {})))
        assert refused[-1].error and "unknown style 'nope'" in refused[-1].error
    finally:
        api.close()


def test_api_client_explains_an_unreachable_api():
    with pytest.raises(ApiError, match="not reachable"):
        ApiClient("http://127.0.0.1:9", timeout=1).health()


# ---------------------------------------------------------------------------------------- monitor
def test_monitor_rows():
    job = {"job_id": "f" * 32, "status": "succeeded", "user": "default", "created": 100.0, "finished": 101.5,
           "prompt": "a fox", "workflow": "demo.json", "image_count": 1,
           "images": [{"url": "/images/default/" + "a" * 32 + ".png", "cache": "hit"}], "error": None}
    assert job_rows([job])[0][2:4] == ["succeeded", "default"] and job_rows([job])[0][-2] == "1.5"
    requests = [{"time": 200.0, "method": "GET", "path": "/prompt/a fox", "status": 200, "ms": 1.5,
                 "user": "bob", "cache": "hit"},
                {"time": 100.0, "method": "GET", "path": "/prompt/x", "status": 400, "ms": 0.9,
                 "error": "bad_request"}]
    rows = recent_rows(requests)
    assert rows[0][1:] == ["GET /prompt/a fox", "bob", 200, "hit", 1.5]
    assert rows[1][3:5] == [400, "bad_request"]


def test_monitor_cache_rows_take_the_apis_count_and_count_from_disk_only_without_it(tmp_path):
    from linkpix.storage.cache import ImageCache
    ImageCache(tmp_path).put("carol", "a" * 32, "png", b"\x89PNG" + bytes(1020), {})
    health = {"cache": {"users": {"bob": {"images": 2, "bytes": 2048}}}}
    assert cache_rows(tmp_path, health) == [["bob", 2, "2.0 KiB"]]  # the API's figures: no scan here
    assert cache_rows(tmp_path, None) == [["carol", 1, "1.0 KiB"]]  # the API is down: counted from disk
    assert cache_rows(tmp_path, {"cache": {"images": 1}}) == [["carol", 1, "1.0 KiB"]]  # users not shown


def test_context_reads_the_config_and_environment(project):
    ctx = DashboardContext(project / "config.json", ConfigHolder(project / "config.json", use_env=False),
                           environ={"LINKPIX_API_URL": "http://x:1"})
    assert ctx.api_url == "http://x:1" and ctx.registry().known("steps")
