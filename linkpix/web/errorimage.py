"""A PNG that shows an error message, for clients that can only display images (an <img>, a chat)."""

from __future__ import annotations

import io
import textwrap

from PIL import Image, ImageDraw

from linkpix.imaging.textdraw import draw_text, text_font

_BG = (96, 20, 24)
_FG = (255, 236, 236)


def render_error_png(title: str, message: str, width: int = 512, height: int = 512) -> bytes:
    """Draw `title` and a wrapped `message` on a dark red card of the given size (clamped to sane bounds)."""
    width = max(256, min(width, 1536))
    height = max(128, min(height, 1536))
    img = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(img)
    size = max(12, width // 28)
    big, small = text_font(int(size * 1.4)), text_font(size)
    margin = size
    draw_text(draw, (margin, margin), f"LinkPix: {title}", big, _FG)
    chars = max(20, int((width - 2 * margin) / (size * 0.55)))
    lines = textwrap.wrap(message, width=chars)[: max(1, (height - 4 * margin) // int(size * 1.3))]
    y = margin * 3
    for line in lines:
        draw_text(draw, (margin, y), line, small, _FG)
        y += int(size * 1.3)
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()
