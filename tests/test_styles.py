"""Styles wrap the prompt: `pre prompt, post`, several in order, `none` always, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkpix.errors import BadRequest, ConfigError
from linkpix.render.styles import Style, apply_styles, combine_negative, load_styles, resolve_names

ROOT = Path(__file__).resolve().parent.parent
WANTED = ("kawaii", "photo", "anime", "cinematic", "watercolor", "pixel-art", "oil-painting", "comic", "fantasy",
          "cyberpunk", "line-art", "3d-render")


@pytest.fixture(scope="module")
def shipped() -> dict[str, Style]:
    return load_styles(json.loads((ROOT / "data" / "styles.json").read_text(encoding="utf-8")))


def test_shipped_styles(shipped: dict[str, Style]) -> None:
    for name in WANTED + ("none",):
        assert name in shipped
    for name in WANTED:
        assert shipped[name].pre or shipped[name].post
        assert shipped[name].description


def test_pre_prompt_post(shipped: dict[str, Style]) -> None:
    prompt, negative = apply_styles("a red fox", resolve_names(["kawaii"], shipped))
    assert prompt == f"{shipped['kawaii'].pre} a red fox, {shipped['kawaii'].post}"
    assert negative == shipped["kawaii"].negative


def test_several_styles_apply_in_order() -> None:
    styles = {"a": Style("a", "A1", "A2", "na"), "b": Style("b", "B1", "B2", "nb")}
    assert apply_styles("fox", resolve_names(["a", "b"], styles)) == ("A1 B1 fox, A2, B2", "na, nb")
    assert apply_styles("fox", resolve_names(["b", "a"], styles)) == ("B1 A1 fox, B2, A2", "nb, na")


def test_none_and_empty_parts_leave_the_prompt_alone() -> None:
    styles = load_styles({})
    assert "none" in styles
    assert apply_styles("  exactly, as typed ,", resolve_names(["none"], styles)) == ("  exactly, as typed ,", "")
    only_post = {"p": Style("p", post="shiny")}
    assert apply_styles("fox, ", resolve_names(["p"], only_post))[0] == "fox, shiny"
    only_pre = {"p": Style("p", pre="photo of")}
    assert apply_styles("fox", resolve_names(["p"], only_pre))[0] == "photo of fox"


def test_unknown_style_lists_the_available_ones(shipped: dict[str, Style]) -> None:
    with pytest.raises(BadRequest) as err:
        resolve_names(["kawaii", "nope"], shipped)
    assert "nope" in err.value.message and "kawaii" in err.value.message and "none" in err.value.message
    assert "cyberpunk" in err.value.details["allowed"]


def test_negative_combination() -> None:
    assert combine_negative("blurry", "") == "blurry"
    assert combine_negative("", "dark") == "dark"
    assert combine_negative("blurry, ", "dark") == "blurry, dark"


def test_bad_documents() -> None:
    with pytest.raises(ConfigError):
        load_styles([])
    with pytest.raises(ConfigError, match="pre"):
        load_styles({"x": {"pre": 3}})


part = st.sampled_from(["", " ", "x", " y ", "a, b", ", ", " ,z, "])


@given(pre=part, post=part, neg=part,
       prompt=st.text(st.characters(blacklist_characters=","), min_size=1).filter(lambda s: s.strip()))
def test_no_stray_commas_or_spaces(pre: str, post: str, neg: str, prompt: str) -> None:
    style = Style("s", pre, post, neg)
    text, negative = apply_styles(prompt, [style])
    if not pre.strip(" ,") and not post.strip(" ,"):  # the style adds nothing: prompt verbatim
        assert text == prompt
    else:
        assert text == text.strip() and not text.startswith(",") and not text.endswith(",")
        assert ", ," not in text and ",," not in text and prompt.strip() in text
    assert negative == negative.strip() and not negative.startswith(",") and not negative.endswith(",")
