"""Output encoding: ComfyUI's SaveImage writes PNG; users may ask for JPEG or WebP instead."""

from __future__ import annotations

import io

from PIL import Image

_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def encode(data: bytes, fmt: str, quality: int = 90) -> bytes:
    """Re-encode image bytes to `fmt`; PNG input asked for as PNG is returned untouched (keeps metadata)."""
    with Image.open(io.BytesIO(data)) as img:
        if fmt == "png" and img.format == "PNG":
            return data
        if fmt == "jpeg" and img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        out = io.BytesIO()
        img.save(out, _PIL_FORMATS[fmt], quality=quality)
        return out.getvalue()


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height of encoded image bytes (reads the header only)."""
    with Image.open(io.BytesIO(data)) as img:
        return img.size
