"""Output encoding: ComfyUI's SaveImage writes PNG; users may ask for JPEG or WebP instead.

ComfyUI's PNGs carry the whole workflow (the `prompt` and `workflow` text chunks): model names, LoRAs,
every setting. `strip=True` removes such metadata: from a PNG by dropping its text and EXIF chunks (the
pixels are not decoded or recompressed), from a re-encoded image by not carrying it over.
"""

from __future__ import annotations

import io
import struct

from PIL import Image

_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks that hold text or camera data, never pixels: what strip removes from a PNG.
_METADATA_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"})


def encode(data: bytes, fmt: str, quality: int = 90, *, strip: bool = False) -> bytes:
    """Re-encode image bytes to `fmt`; PNG input asked for as PNG is returned as it is (with `strip`,
    without its metadata chunks)."""
    with Image.open(io.BytesIO(data)) as img:
        if fmt == "png" and img.format == "PNG":
            return strip_png_text(data) if strip else data
        if strip:
            img.info.clear()  # JPEG would carry a "comment", WebP "exif"/"xmp" over from here
        if fmt == "jpeg" and img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        out = io.BytesIO()
        img.save(out, _PIL_FORMATS[fmt], quality=quality)
        return out.getvalue()


def strip_png_text(data: bytes) -> bytes:
    """The PNG without its text, EXIF and time chunks; anything that is not a well-formed PNG is
    returned unchanged (the caller stored it as it came)."""
    if not data.startswith(PNG_SIGNATURE):
        return data
    out = [PNG_SIGNATURE]
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        end = pos + 12 + length
        if end > len(data):
            return data
        if data[pos + 4:pos + 8] not in _METADATA_CHUNKS:
            out.append(data[pos:end])
        pos = end
    return b"".join(out)


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height of encoded image bytes (reads the header only)."""
    with Image.open(io.BytesIO(data)) as img:
        return img.size
