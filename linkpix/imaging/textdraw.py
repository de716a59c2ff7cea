"""Text on pictures (the simulator's cards, error images) in any script, without tofu.

Pillow's bitmap default font has ASCII only, so "café" came out as "caf▯". The text is drawn in DejaVu
Sans (Debian's `fonts-dejavu-core`, found by path or through fontconfig), else in Pillow's scalable
default font (Pillow >= 10.1). A character that font lacks (Japanese, say) is drawn in a font that has
it, found through fontconfig (`fc-list :charset=...`) among the fonts installed, so one line may mix
fonts. A character no installed font has is left to the main font's box: nothing better exists.

Whether a font has a glyph is read from what it draws: a missing glyph draws the font's ".notdef" box,
the same bitmap as a code point that can never be assigned (U+FFFF).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from PIL import ImageDraw, ImageFont

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
DEJAVU_PATHS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans.ttf",
                "/usr/share/fonts/TTF/DejaVuSans.ttf", "/usr/local/share/fonts/DejaVuSans.ttf",
                "/Library/Fonts/DejaVuSans.ttf")
NOT_A_CHARACTER = "\uffff"
FC_TIMEOUT = 5.0


@lru_cache(maxsize=1)
def main_font_file() -> str | None:
    """DejaVu Sans' file: a known path, else what fontconfig calls DejaVu Sans; None if neither."""
    for path in DEJAVU_PATHS:
        if Path(path).is_file():
            return path
    found = _fc(["fc-match", "-f", "%{file}", "DejaVu Sans:style=Book"])
    return found if found and "dejavu" in found.lower() and Path(found).is_file() else None


@lru_cache(maxsize=64)
def _load(path: str | None, size: int) -> Font:
    if path is None:
        return ImageFont.load_default(size=size)  # Pillow's scalable font (needs FreeType, Pillow >= 10.1)
    return ImageFont.truetype(path, size)


def _signature(font: Font, text: str) -> tuple[object, bytes]:
    mask = font.getmask(text)
    return mask.size, bytes(mask)


@lru_cache(maxsize=4096)
def _fallback_file(char: str) -> str | None:
    """An installed font file that has `char` (fontconfig's list, Sans faces first), or None."""
    listed = _fc(["fc-list", f":charset={ord(char):x}", "file"])
    files = sorted({line.split(":", 1)[0].strip() for line in (listed or "").splitlines() if line.strip()},
                   key=lambda f: ("sans" not in f.lower(), "bold" in f.lower(), f))
    return files[0] if files else None


def _fc(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=FC_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


@dataclass
class TextFont:
    """The main font at one size, plus fallbacks for the characters it lacks."""

    size: int
    main: Font = field(init=False)
    _tofu: tuple[object, bytes] = field(init=False)
    _chosen: dict[str, Font] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.main = _load(main_font_file(), self.size)
        self._tofu = _signature(self.main, NOT_A_CHARACTER)

    def has(self, font: Font, char: str) -> bool:
        """Does `font` draw `char` as itself rather than as its missing-glyph box?"""
        if char.isspace():
            return True
        tofu = self._tofu if font is self.main else _signature(font, NOT_A_CHARACTER)
        return _signature(font, char) != tofu

    def font_for(self, char: str) -> Font:
        """The font `char` is drawn in: the main one when it has it, else an installed one that does."""
        chosen = self._chosen.get(char)
        if chosen is not None:
            return chosen
        chosen = self.main
        if not self.has(self.main, char):
            for other in dict.fromkeys(self._chosen.values()):  # a fallback already in use covers it?
                if other is not self.main and self.has(other, char):
                    chosen = other
                    break
            else:
                path = _fallback_file(char)
                if path is not None:
                    candidate = _load(path, self.size)
                    if self.has(candidate, char):
                        chosen = candidate
        self._chosen[char] = chosen
        return chosen

    def runs(self, line: str) -> Iterator[tuple[Font, str]]:
        """`line` cut into pieces that each use one font."""
        start, current = 0, None
        for i, char in enumerate(line):
            font = self.font_for(char)
            if current is not None and font is not current:
                yield current, line[start:i]
                start = i
            current = font
        if current is not None:
            yield current, line[start:]

    def length(self, line: str) -> float:
        return sum(font.getlength(piece) for font, piece in self.runs(line))

    @property
    def line_height(self) -> int:
        ascent, descent = self.main.getmetrics() if hasattr(self.main, "getmetrics") else (self.size, 0)
        return int(ascent + descent)


@lru_cache(maxsize=32)
def text_font(size: int) -> TextFont:
    """The text font at `size` pixels (made once per size and process)."""
    return TextFont(max(6, int(size)))


def draw_text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font: TextFont,
              fill: tuple[int, int, int], spacing: int = 2) -> None:
    """Draw `text` (lines split at newlines) with its top-left corner at `xy`, each character in a font
    that has it; the pieces of a line share one baseline."""
    x0, y = xy
    ascent = font.main.getmetrics()[0] if hasattr(font.main, "getmetrics") else font.size
    for line in text.split("\n"):
        x = x0
        for piece_font, piece in font.runs(line):
            draw.text((x, y + ascent), piece, font=piece_font, fill=fill, anchor="ls")
            x += piece_font.getlength(piece)
        y += font.line_height + spacing
