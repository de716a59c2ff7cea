"""Resolution: request > workflow settings > user preferences > workflow file; seeds; limits; styles;
backend checks against object_info; input images; the fingerprint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support import CAPTURES
from test_request import PNG

from linkpix.config import load_config
from linkpix.errors import BadRequest, ConfigError
from linkpix.model import GenerationRequest, make_input_image
from linkpix.pipeline.request import parse_query
from linkpix.pipeline.resolver import Resolver
from linkpix.storage.jsonstore import JsonStore

ROOT = Path(__file__).resolve().parent.parent


def make(project: Path, info: dict | None = None, **overrides: Any) -> Resolver:
    cfg = load_config(project / "config.json", overrides=overrides, use_env=False)
    return Resolver(lambda: cfg, JsonStore(), lambda: info)


def q(prompt: str = "a red fox", user: str = "default", **query: str) -> GenerationRequest:
    return parse_query(prompt, query, user)


@pytest.fixture(scope="module")
def info() -> dict[str, Any]:
    data = json.loads((CAPTURES / "object_info_full.json").read_text(encoding="utf-8"))
    data["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = [
        "v1-5-pruned-emaonly.safetensors", "sd_xl_base_1.0.safetensors", "demo.safetensors"]
    data["UNETLoader"]["input"]["required"]["unet_name"][0] = ["flux1-schnell.safetensors"]
    data["LoraLoader"]["input"]["required"]["lora_name"][0] = ["add_detail.safetensors"]
    return data


def write(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")


def test_precedence_request_settings_preferences_file(project: Path) -> None:
    write(project / "data" / "user_preferences.json",
          {"alice": {"workflow": "sd15.json", "style": "photo", "params": {"steps": 30, "denoise": 0.9}}})
    r = make(project)
    job = r.resolve(q(user="alice"))
    assert job.workflow == "sd15.json"  # preference
    ks = job.graph["3"]["inputs"]
    assert ks["steps"] == 25  # workflows/settings/sd15.json beats the preference
    assert ks["denoise"] == 0.9  # preference beats the file (1.0)
    assert ks["cfg"] == 7.5 and ks["sampler_name"] == "dpmpp_2m"  # settings beat the placeholder defaults
    assert job.graph["5"]["inputs"]["width"] == 512
    assert job.prompt.startswith("professional photograph of a red fox")  # preferred style
    job = r.resolve(q(user="alice", steps="9", style="none", workflow="sd15"))
    assert job.graph["3"]["inputs"]["steps"] == 9 and job.prompt == "a red fox"  # the request wins
    # Someone else: the configured default workflow and no style.
    job = r.resolve(q(user="bob"))
    assert job.workflow == "flux_schnell.json" and job.prompt == "a red fox"
    assert job.graph["17"]["inputs"]["steps"] == 4  # the value in the file


def test_workflow_settings_can_choose_a_style(project: Path) -> None:
    write(project / "workflows" / "settings" / "demo.json", {"style": "anime", "steps": 3})
    job = make(project).resolve(q(workflow="demo"))
    assert job.prompt.startswith("anime artwork of a red fox") and job.graph["5"]["inputs"]["steps"] == 3
    assert job.params["style"] == "anime"


def test_aliases_and_types_reach_the_graph(project: Path) -> None:
    job = make(project).resolve(q(workflow="sd15.json", scale="5", clip_skip="2", seed="77", sampler="euler"))
    ks = job.graph["3"]["inputs"]
    assert ks["cfg"] == 5.0 and isinstance(ks["cfg"], float)
    assert ks["seed"] == 77 and ks["sampler_name"] == "euler"
    assert job.graph["10"]["inputs"]["stop_at_clip_layer"] == -2
    assert job.params["cfg"] == 5.0 and job.params["seed"] == 77


def test_styles_wrap_prompt_and_extend_negative(project: Path) -> None:
    r = make(project)
    styles = r.styles()
    job = r.resolve(q(workflow="sd15", style="kawaii,cinematic", negative="grainy"))
    assert job.prompt == (f"{styles['kawaii']['pre']} {styles['cinematic']['pre']} a red fox, "
                          f"{styles['kawaii']['post']}, {styles['cinematic']['post']}")
    assert job.negative == f"grainy, {styles['kawaii']['negative']}, {styles['cinematic']['negative']}"
    assert job.graph["6"]["inputs"]["text"] == job.prompt and job.graph["7"]["inputs"]["text"] == job.negative
    with pytest.raises(BadRequest) as err:
        r.resolve(q(style="nope"))
    assert "kawaii" in err.value.message and "none" in err.value.message


def test_seed_policy(project: Path) -> None:
    r = make(project)
    a, b = r.resolve(q()), r.resolve(q())
    assert a.seed == b.seed and not a.seed_is_random and a.graph == b.graph
    assert a.graph["25"]["inputs"]["noise_seed"] == a.seed
    assert r.resolve(q("a blue fox")).seed != a.seed
    assert r.resolve(q(style="photo")).seed != a.seed
    assert r.resolve(q(width="512")).seed != a.seed
    assert r.resolve(q(seed="5")).seed == 5
    randoms = {r.resolve(q(seed="random")).seed for _ in range(5)}
    assert len(randoms) > 1 and r.resolve(q(seed="-1")).seed_is_random


def test_limits(project: Path) -> None:
    r = make(project, max_pixels=512 * 512, max_prompt_chars=20)
    with pytest.raises(BadRequest, match="max_pixels"):
        r.resolve(q(width="1024", height="1024"))
    assert r.resolve(q(width="512", height="512")).params["width"] == 512
    with pytest.raises(BadRequest, match="20"):
        r.resolve(q("x" * 21))
    with pytest.raises(BadRequest, match="empty"):
        r.resolve(GenerationRequest(prompt="   "))
    with pytest.raises(BadRequest, match="width must be"):
        r.resolve(q(width="wide"))


def test_unknown_workflow_lists_the_available_ones(project: Path) -> None:
    with pytest.raises(BadRequest) as err:
        make(project).resolve(q(workflow="nope"))
    assert "flux_schnell.json" in err.value.message and "sdxl.json" in err.value.message


def test_params_the_workflow_does_not_take_are_reported(project: Path) -> None:
    job = make(project).resolve(q(lora="add_detail.safetensors", negative="x", utm_source="mail", steps="2"))
    assert set(job.ignored) == {"lora", "negative_prompt", "utm_source"}
    assert job.graph["17"]["inputs"]["steps"] == 2


def test_backend_choices_are_checked_when_object_info_is_there(project: Path, info: dict) -> None:
    r = make(project, info)
    with pytest.raises(BadRequest) as err:
        r.resolve(q(workflow="sd15", model="nope.safetensors"))
    assert "v1-5-pruned-emaonly.safetensors" in err.value.message and err.value.details["parameter"] == "model"
    with pytest.raises(BadRequest) as err:
        r.resolve(q(sampler="bogus"))
    assert "euler" in err.value.message
    assert r.resolve(q(workflow="sdxl", model="sd_xl_base_1.0.safetensors")).graph["4"]["inputs"]["ckpt_name"] \
        == "sd_xl_base_1.0.safetensors"
    # Without object_info the value goes through; ComfyUI will judge it.
    assert make(project).resolve(q(workflow="sd15", model="nope.safetensors")).params["model"] == "nope.safetensors"


def test_input_images_are_uploaded_and_bound(project: Path) -> None:
    image = make_input_image(PNG)
    r = make(project)
    job = r.resolve(GenerationRequest(prompt="fox", workflow="sd15_img2img.json", input_images=(image,),
                                      params={"denoise": "0.4"}))
    assert job.uploads == (image,)
    assert job.graph["10"]["inputs"]["image"] == image.name and job.graph["3"]["inputs"]["denoise"] == 0.4
    with pytest.raises(BadRequest, match="no image input.*workflows that take an image: .*sd15_img2img.json"):
        r.resolve(GenerationRequest(prompt="fox", input_images=(image,)))  # demo.json takes none


def test_output_format(project: Path) -> None:
    r = make(project)
    assert r.resolve(q()).output_format == "png"
    assert r.resolve(q(format="webp")).output_format == "webp"
    assert r.resolve(q(img_format="jpeg")).output_format == "jpeg"
    assert make(project, image_format="webp").resolve(q()).output_format == "webp"


def test_bad_settings_file_value_is_a_config_error_naming_it(project: Path) -> None:
    write(project / "workflows" / "settings" / "demo.json", {"steps": "many"})
    with pytest.raises(ConfigError) as err:
        make(project).resolve(q(workflow="demo"))
    assert "settings/demo.json" in err.value.message and "steps" in err.value.message


def test_broken_styles_file_keeps_the_last_good_version(project: Path) -> None:
    r = make(project)
    assert "kawaii" in r.styles()
    path = project / "data" / "styles.json"
    path.write_text('{"kawaii": {"pre": "x",}\n', encoding="utf-8")
    assert r.resolve(q(style="kawaii")).prompt.startswith("kawaii illustration of")
    assert any("styles.json" in p and "line 1" in p for p in r.problems())


def test_fingerprint_tracks_every_file_that_matters(project: Path) -> None:
    r = make(project)
    r.resolve(q(workflow="sd15"))
    fp = r.fingerprint()
    assert r.fingerprint() == fp
    changes = [
        lambda: JsonStore().update(project / "data" / "styles.json", lambda s: {**s, "new": {"pre": "n"}}),
        lambda: write(project / "workflows" / "extra.json", {"1": {"class_type": "EmptyImage", "inputs": {}}}),
        lambda: write(project / "workflows" / "settings" / "flux_schnell.json", {"steps": 2}),
        lambda: JsonStore().update(project / "workflows" / "settings" / "sd15.json", lambda s: {**s, "steps": 3}),
        lambda: write(project / "data" / "user_preferences.json", {"x": {}}),
        lambda: (project / "workflows" / "sd15.yaml").write_text("seed: 3.seed\n", encoding="utf-8"),
    ]
    for change in changes:
        change()
        now = r.fingerprint()
        assert now != fp
        fp = now
    assert "extra.json" in r.workflow_names()


def test_describe_workflow(project: Path) -> None:
    d = make(project).describe_workflow("sd15")
    assert d["name"] == "sd15.json" and d["settings"]["steps"] == 25 and d["sidecar"] is None
    assert d["parameters"]["cfg"]["source"] == "placeholder"
    assert d["parameters"]["cfg"]["targets"][0] == {"node": "3", "class_type": "KSampler", "input": "cfg",
                                                    "mode": "value"}
    assert make(project).describe_workflow("sdxl.json")["sidecar"] == "sdxl.yaml"
    with pytest.raises(BadRequest):
        make(project).describe_workflow("../config")
