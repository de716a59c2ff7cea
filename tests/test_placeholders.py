"""The parameter vocabulary in data/placeholders.json: names, SillyTavern aliases, conversion, limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from linkpix.errors import BadRequest, ConfigError
from linkpix.render.placeholders import Ref, Registry, split_text

ROOT = Path(__file__).resolve().parent.parent
LINKPIX_NAMES = ("prompt", "negative_prompt", "width", "height", "seed", "model", "vae", "lora", "lora_strength",
                 "sampler", "scheduler", "steps", "cfg", "denoise", "clip_skip", "img_format", "batch_size",
                 "guidance", "image")
# SillyTavern's ComfyUI placeholders (its workflow editor lists these) and what they mean here.
SILLYTAVERN = {"prompt": "prompt", "negative_prompt": "negative_prompt", "model": "model", "vae": "vae",
               "sampler": "sampler", "scheduler": "scheduler", "steps": "steps", "scale": "cfg",
               "width": "width", "height": "height", "seed": "seed", "denoise": "denoise",
               "clip_skip": "clip_skip"}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry(json.loads((ROOT / "data" / "placeholders.json").read_text(encoding="utf-8")))


def test_every_linkpix_parameter_is_defined_with_type_and_description(registry: Registry) -> None:
    for name in LINKPIX_NAMES:
        spec = registry.spec(name)
        assert spec is not None, name
        assert spec.type in ("string", "int", "float", "bool") and spec.description


def test_sillytavern_names_map_to_ours(registry: Registry) -> None:
    for theirs, ours in SILLYTAVERN.items():
        assert registry.canonical(theirs) == ours


def test_choices_come_from_object_info(registry: Registry) -> None:
    assert ("KSampler", "sampler_name") in registry.spec("sampler").choices_from
    assert ("CheckpointLoaderSimple", "ckpt_name") in registry.spec("model").choices_from
    assert ("LoraLoader", "lora_name") in registry.spec("lora").choices_from
    info = {"KSampler": {"input": {"required": {"sampler_name": [["euler", "dpmpp_2m"]]}}}}
    assert registry.backend_choices("sampler", info) == ["euler", "dpmpp_2m"]
    assert registry.backend_choices("sampler", None) is None


def test_conversion_keeps_types(registry: Registry) -> None:
    assert registry.coerce("steps", "20") == 20
    assert registry.coerce("scale", "7.5") == 7.5
    assert registry.coerce("cfg", 7) == 7.0 and isinstance(registry.coerce("cfg", 7), float)
    assert registry.coerce("width", 768.0) == 768
    assert registry.coerce("model", "a b.safetensors") == "a b.safetensors"
    assert registry.coerce("img_format", "webp") == "webp"
    assert registry.coerce("outfit", "red dress") == "red dress"  # custom placeholder: as given


@pytest.mark.parametrize("name, value, words", [
    ("width", "abc", "width must be a whole number"),
    ("width", "99999", "width must be from 16 to 8192"),
    ("steps", "0", "steps must be from 1 to 150"),
    ("cfg", "nan", "cfg must be a number"),
    ("denoise", "1.5", "denoise must be from 0 to 1"),
    ("steps", "2.5", "whole number"),
    ("img_format", "gif", "png, jpeg, webp"),
    ("steps", True, "whole number"),
])
def test_bad_values_name_the_parameter_and_what_is_allowed(registry: Registry, name: str, value: object,
                                                           words: str) -> None:
    with pytest.raises(BadRequest) as err:
        registry.coerce(name, value)
    assert words in err.value.message
    assert err.value.details["parameter"] == registry.canonical(name)


def test_clip_skip_is_written_negative_like_sillytavern(registry: Registry) -> None:
    assert registry.coerce("clip_skip", "2") == 2
    assert registry.coerce("clip_skip", "-2") == 2  # ComfyUI's own spelling accepted
    assert registry.written("clip_skip", 2) == -2
    assert registry.written("steps", 2) == 2


def test_split_text() -> None:
    assert split_text("plain") is None
    assert split_text("100% cotton, 50% off") is None
    assert split_text("%date:yyyy-MM-dd%_%Empty Latent Image.width%") is None  # ComfyUI's own tokens
    assert split_text("%prompt%") == (Ref("prompt"),)
    assert split_text("a %prompt%, by %artist%!") == ("a ", Ref("prompt"), ", by ", Ref("artist"), "!")


def test_bad_definitions_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        Registry({"params": {}})
    with pytest.raises(ConfigError, match="type"):
        Registry({"parameters": {"x": {"type": "complex"}}})
    with pytest.raises(ConfigError, match="alias"):
        Registry({"parameters": {"a": {"aliases": ["b"]}, "b": {}}})


def test_split_text_reads_percent_signs_as_a_person_would() -> None:
    assert split_text("50% off %prompt%") == ("50% off ", Ref("prompt"))
    assert split_text("%prompt%%negative_prompt%") == (Ref("prompt"), Ref("negative_prompt"))
    assert split_text("%date:yyyy%_%KSampler.seed%_%seed%") == ("%date:yyyy%_%KSampler.seed%_", Ref("seed"))
    assert split_text("100%") is None
