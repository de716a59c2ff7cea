"""Status cards for live links: a small JPEG saying "queued, 2nd" or "drawing, step 3 of 20".

A live link's first picture must come at once, before ComfyUI has sent anything, and must keep moving
when ComfyUI sends no previews; the card is drawn like the error pictures (web/errorimage.py), at the
size preview frames have (the link's aspect, longest side at most `CARD_SIDE`), so an `<img>` does not
jump between the card and the first frame.
"""

from __future__ import annotations

import io
import textwrap

from PIL import Image, ImageDraw

from linkpix.imaging.textdraw import draw_text, text_font

CARD_SIDE = 512  # ComfyUI's default preview size: previews fit in 512 x 512
_BG = (28, 32, 44)
_FG = (236, 240, 255)
_DIM = (150, 160, 190)
_BAR = (110, 170, 255)


FRAME_BUDGET = 48 * 1024  # bytes: a preview frame above it is re-encoded (ComfyUI sends quality 95)
FRAME_QUALITY = 80


def card_size(width: int, height: int, side: int = CARD_SIDE) -> tuple[int, int]:
    """`width` x `height` scaled so that the longest side is `side`, as ComfyUI scales its previews (a
    small link's previews are scaled up to it too)."""
    scale = side / max(width, height, 1)
    return max(64, round(width * scale)), max(64, round(height * scale))


def heavy_frame(data: bytes, budget: int = FRAME_BUDGET) -> bool:
    """Would `lighter_frame` re-encode this frame (a JPEG over `budget` bytes)?"""
    return len(data) > budget and data.startswith(b"\xff\xd8")


def lighter_frame(data: bytes, budget: int = FRAME_BUDGET) -> bytes:
    """A preview JPEG over `budget` bytes, re-encoded at quality 80 (a noisy 512 px preview: ~60 KB -> ~30 KB).
    Returns `data` unchanged when it is small or not a readable JPEG."""
    if not heavy_frame(data, budget):
        return data
    try:
        with Image.open(io.BytesIO(data)) as img:
            out = io.BytesIO()
            img.convert("RGB").save(out, "JPEG", quality=FRAME_QUALITY)
    except (OSError, ValueError):
        return data
    smaller = out.getvalue()
    return smaller if len(smaller) < len(data) else data


def render_card(headline: str, prompt: str, width: int, height: int, fraction: float | None = None) -> bytes:
    """A JPEG card: `headline` big, the prompt small below it, and a progress bar when `fraction` is known."""
    w, h = card_size(width, height)
    img = Image.new("RGB", (w, h), _BG)
    draw = ImageDraw.Draw(img)
    size = max(10, min(w, h * 2) // 24)
    big, small = text_font(int(size * 1.5)), text_font(size)
    margin = size
    draw_text(draw, (margin, margin), headline, big, _FG)
    chars = max(12, int((w - 2 * margin) / (size * 0.55)))
    room = max(1, (h - 6 * margin) // int(size * 1.3))
    y = margin * 3 + big.line_height // 2
    for line in textwrap.wrap(prompt, width=chars)[:room]:
        draw_text(draw, (margin, y), line, small, _DIM)
        y += int(size * 1.3)
    if fraction is not None:
        bar = max(4, size // 2)
        top = h - margin - bar
        draw.rectangle([margin, top, w - margin, top + bar], outline=_DIM)
        draw.rectangle([margin, top, margin + round((w - 2 * margin) * max(0.0, min(1.0, fraction))), top + bar],
                       fill=_BAR)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()
