"""Text on pictures in any script: the simulator's cards and the error images draw "café ü 日本", not tofu."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageChops

from linkpix.imaging.textdraw import NOT_A_CHARACTER, main_font_file, text_font
from linkpix.simulator.images import render_picture
from linkpix.web.errorimage import render_error_png

LATIN = "café ü"
CJK = "日本"


def cjk_installed() -> bool:
    font = text_font(24)
    return all(font.has(font.font_for(c), c) for c in CJK)


def differs(a: Image.Image, b: Image.Image) -> bool:
    return ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getbbox() is not None


def test_the_main_font_is_dejavu_when_debian_ships_it():
    path = main_font_file()
    assert path is None or "DejaVu" in path
    font = text_font(20)
    assert font.has(font.main, "a") and not font.has(font.main, NOT_A_CHARACTER)


def test_accented_latin_is_drawn_by_the_main_font():
    font = text_font(24)
    for char in LATIN.replace(" ", ""):
        assert font.font_for(char) is font.main and font.has(font.main, char), char


@pytest.mark.parametrize("char", list(LATIN.replace(" ", "")) + list(CJK))
def test_a_card_shows_the_glyph_not_the_missing_glyph_box(char):
    if char in CJK and not cjk_installed():
        pytest.skip("no installed font has Japanese: apt-get install fonts-droid-fallback (CI does)")
    # Same seed, same length: the only difference can be the glyph. Tofu would draw the same box as U+FFFF.
    card = render_picture(256, 128, 5, f"x{char}x")
    tofu = render_picture(256, 128, 5, f"x{NOT_A_CHARACTER}x")
    assert differs(card, tofu)


def test_the_whole_card_for_cafe_u_japanese_has_no_tofu():
    font = text_font(16)
    text = f"{LATIN} {CJK}" if cjk_installed() else LATIN
    assert all(font.has(font.font_for(c), c) for c in text if not c.isspace())
    assert differs(render_picture(320, 160, 9, text), render_picture(320, 160, 9, ""))


def test_error_images_use_the_same_fonts():
    def png(message: str) -> Image.Image:
        return Image.open(io.BytesIO(render_error_png("bad request", message)))

    assert differs(png("é"), png(NOT_A_CHARACTER))
    if cjk_installed():
        assert differs(png("日"), png(NOT_A_CHARACTER))


def test_a_newline_in_the_prompt_starts_a_new_line_on_the_card():
    one_line = render_picture(256, 128, 3, "ab cd")
    two_lines = render_picture(256, 128, 3, "ab\ncd")
    assert differs(one_line, two_lines)
