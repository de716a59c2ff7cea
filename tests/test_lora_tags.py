"""`<lora:name:weight>` in prompt text (A1111's syntax): what is taken out, what stays, what is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkpix.errors import BadRequest
from linkpix.render.loras import LoraUse, match_lora, merge_loras, take_lora_tags


@pytest.mark.parametrize("text, rest, loras", [
    ("a castle, <lora:ink:0.6>, at dusk", "a castle, at dusk", [LoraUse("ink", 0.6)]),
    ("<lora:ink> a castle", "a castle", [LoraUse("ink", 1.0)]),
    ("a castle <LORA:ink:0.5:1.5>", "a castle", [LoraUse("ink", 1.5, 0.5)]),  # <lora:name:te:unet>
    ("a <lora:a:1>, <lora:b:-0.5>, castle", "a, castle", [LoraUse("a", 1.0), LoraUse("b", -0.5)]),
    ("a castle <lora:sub/ink.safetensors:.3>", "a castle", [LoraUse("sub/ink.safetensors", 0.3)]),
])
def test_tags_are_taken_out(text: str, rest: str, loras: list[LoraUse]) -> None:
    assert take_lora_tags(text) == (rest, loras)


@given(st.text().filter(lambda t: "<lora:" not in t.lower()))
def test_text_without_a_tag_is_unchanged(text: str) -> None:
    assert take_lora_tags(text) == (text, [])


@pytest.mark.parametrize("text, words", [
    ("<lora:ink:abc>", "must be a number"),
    ("<lora:ink:11>", "between -10 and 10"),
    ("<lora:../../etc/passwd:1>", "invalid LoRA name"),
])
def test_bad_tags_are_400s(text: str, words: str) -> None:
    with pytest.raises(BadRequest) as caught:
        take_lora_tags(text)
    assert words in caught.value.message


def test_names_match_with_or_without_extension_and_folder() -> None:
    have = ["add_detail.safetensors", "styles/ink.safetensors", "a/face.pt", "b/face.safetensors"]
    assert match_lora("add_detail", have) == "add_detail.safetensors"
    assert match_lora("ADD_DETAIL.safetensors", have) == "add_detail.safetensors"
    assert match_lora("ink", have) == "styles/ink.safetensors"
    assert match_lora("a/face", have) == "a/face.pt"
    with pytest.raises(BadRequest, match="ambiguous"):
        match_lora("face", have)
    with pytest.raises(BadRequest, match="add_detail.safetensors, styles/ink.safetensors"):
        match_lora("nope", have)
    assert match_lora("nope", None) == "nope.safetensors"  # no backend answers: ComfyUI will judge


def test_a_later_group_wins() -> None:
    assert merge_loras([LoraUse("a", 0.5), LoraUse("b")], [LoraUse("a", 0.9)]) == [LoraUse("b"), LoraUse("a", 0.9)]
