"""Parsing URLs and JSON bodies into GenerationRequests: shapes, names, seeds, formats, images."""

from __future__ import annotations

import base64
import hashlib

import pytest

from linkpix.errors import BadRequest
from linkpix.model import GenerationRequest, make_input_image, validate_user, validate_workflow_name
from linkpix.pipeline.request import parse_json, parse_query

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"  # 1x1 red, decodes fully
                    "1f15c4890000000d49444154789c63f8cfc0f01f00050001ff89993d1d0000000049454e44ae426082")


def test_query_maps_fields_and_keeps_unknown_params() -> None:
    req = parse_query("a red fox", {"width": "768", "height": "1024", "style": "kawaii, photo",
                                    "seed": "42", "workflow": "sd15", "negative": "blurry", "steps": "9",
                                    "format": "jpg", "scale": "5", "lora": "x.safetensors"}, "default")
    assert req.prompt == "a red fox"
    assert req.styles == ("kawaii", "photo")
    assert req.seed == 42 and not req.random_seed
    assert req.workflow == "sd15.json"
    assert req.output_format == "jpeg"
    assert dict(req.params) == {"width": "768", "height": "1024", "negative_prompt": "blurry", "steps": "9",
                                "scale": "5", "lora": "x.safetensors"}


def test_pollinations_params_are_dropped_silently() -> None:
    req = parse_query("x", {"nologo": "true", "private": "1", "nofeed": "1", "enhance": "false", "safe": "1",
                            "referrer": "me", "token": "t", "width": "64"}, "default")
    assert dict(req.params) == {"width": "64"}


@pytest.mark.parametrize("value", ["random", "RANDOM", "-1"])
def test_random_seed(value: str) -> None:
    req = parse_query("x", {"seed": value}, "default")
    assert req.random_seed and req.seed is None


@pytest.mark.parametrize("value", ["abc", "-5", str(2**64), "1.5"])
def test_bad_seed_names_the_parameter(value: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse_query("x", {"seed": value}, "default")
    assert err.value.details["parameter"] == "seed" and "seed" in err.value.message


def test_absent_seed_is_left_to_the_resolver() -> None:
    req = parse_query("x", {}, "default")
    assert req.seed is None and not req.random_seed and req.styles is None and req.workflow is None


@pytest.mark.parametrize("name", ["../config.json", "/etc/passwd", "a/b.json", "..", "..json", "a\\b", "",
                                  ".hidden.json", "x" * 200, "sd15.json\x00", "C:evil", "%2e%2e"])
def test_traversal_and_odd_workflow_names_are_rejected(name: str) -> None:
    with pytest.raises(BadRequest) as err:
        validate_workflow_name(name)
    assert "workflow" in err.value.message


def test_workflow_name_gets_json_suffix() -> None:
    assert validate_workflow_name("sd15") == "sd15.json"
    assert validate_workflow_name("flux_schnell.json") == "flux_schnell.json"


def test_empty_prompt_and_bad_format() -> None:
    with pytest.raises(BadRequest, match="empty"):
        parse_query("   ", {}, "default")
    with pytest.raises(BadRequest, match="png, jpeg or webp"):
        parse_query("x", {"format": "gif"}, "default")


def test_user_names() -> None:
    assert validate_user("alice_01-x") == "alice_01-x"
    for bad in ("", "a b", "../x", "é", "x" * 65):
        with pytest.raises(BadRequest):
            validate_user(bad)
    # The anonymous caller may name a user; an authenticated one cannot be overridden.
    assert parse_query("x", {"user": "bob"}, "default").user == "bob"
    assert parse_query("x", {"user": "bob"}, "alice").user == "alice"
    with pytest.raises(BadRequest):
        parse_query("x", {"user": "../root"}, "default")


def test_style_names_are_checked_for_syntax() -> None:
    assert parse_query("x", {"style": " , "}, "default").styles is None
    with pytest.raises(BadRequest):
        parse_query("x", {"style": "../etc"}, "default")


def test_alias_given_twice_with_different_values() -> None:
    with pytest.raises(BadRequest, match="twice"):
        parse_query("x", {"negative": "a", "negative_prompt": "b"}, "default")


def test_json_body_with_params_and_images() -> None:
    b64 = base64.b64encode(PNG).decode()
    req = parse_json({"prompt": "a fox", "styles": ["anime"], "seed": 7, "width": 640,
                      "params": {"steps": 12, "cfg": 6.5}, "images": [b64, "data:image/png;base64," + b64],
                      "format": "webp", "nologo": True}, "default")
    assert req.styles == ("anime",) and req.seed == 7 and req.output_format == "webp"
    assert dict(req.params) == {"width": 640, "steps": 12, "cfg": 6.5}
    digest = hashlib.sha256(PNG).hexdigest()[:16]
    assert [i.name for i in req.input_images] == [f"linkpix_{digest}.png"] * 2
    assert req.input_images[0].data == PNG
    assert str(len(PNG)) in repr(req.input_images[0])


@pytest.mark.parametrize("images, message", [
    (["not base64!!"], "base64"),
    ([base64.b64encode(b"hello world").decode()], "not a PNG"),
    ([1], "base64 string"),
    ({"a": 1}, "list"),
])
def test_bad_images(images: object, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_json({"prompt": "x", "images": images}, "default")


def test_json_body_shape_errors() -> None:
    with pytest.raises(BadRequest):
        parse_json({"prompt": 5}, "default")
    with pytest.raises(BadRequest):
        parse_json({"prompt": "x", "params": [1]}, "default")
    with pytest.raises(BadRequest):
        parse_json({"prompt": "x", "params": {"a": {"nested": 1}}}, "default")
    with pytest.raises(BadRequest):
        parse_json({"prompt": "x", "seed": True}, "default")
    assert parse_json({"prompt": "x", "seed": "random"}, "default").random_seed


def test_request_params_are_read_only() -> None:
    req = GenerationRequest(prompt="x", params={"a": 1})
    with pytest.raises(TypeError):
        req.params["b"] = 2  # type: ignore[index]
    assert make_input_image(PNG).name.endswith(".png")
