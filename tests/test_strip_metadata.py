"""strip_metadata (issue 13 item 7): ComfyUI embeds the whole workflow in the PNGs it saves; with the
setting on (the default when LinkPix is open to the network) no generated image carries it, in any
format, and images cached before the setting changed are not served with it."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image
from support import ApiServer

from linkpix.imaging.encode import encode, strip_png_text

# What a writer may have put in: ComfyUI's text chunks, and the metadata blocks JPEG and WebP can carry.
# (Other keys of Pillow's `info` are format framing: JFIF density, WebP loop and timestamps.)
WRITTEN = ("prompt", "workflow", "exif", "xmp", "comment", "icc_profile")


def _metadata(data: bytes) -> dict:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return {k: v for k, v in img.info.items() if k in WRITTEN}


@pytest.mark.slow
def test_comfyui_pngs_carry_the_workflow_unless_stripped(project, simulator):
    server = ApiServer(project, simulator.url)
    try:
        kept = server.get("/prompt/visible%20fox?width=64&height=64").content
        assert "prompt" in _metadata(kept)  # loopback, setting unset: as ComfyUI saved it
    finally:
        server.close()
    server = ApiServer(project, simulator.url, strip_metadata=True)
    try:
        for fmt in ("png", "jpeg", "webp"):
            r = server.get(f"/prompt/visible%20fox?width=64&height=64&format={fmt}")
            assert r.status_code == 200 and r.headers["Content-Type"] == f"image/{fmt}"
            assert _metadata(r.content) == {}, fmt
            assert b"KSampler" not in r.content and b"visible fox" not in r.content
    finally:
        server.close()


def test_network_access_strips_by_default(project, simulator):
    server = ApiServer(project, simulator.url, network_access=True, api_keys={"k": "u"})
    try:
        assert server.services.config.settings.strips_metadata
        png = server.get("/prompt/open%20fox?width=64&height=64").content
        assert _metadata(png) == {} and b"open fox" not in png
    finally:
        server.close()


@pytest.mark.parametrize("chunk, body", [(b"tEXt", b"prompt\0{}"),
                                         (b"zTXt", b"prompt\0\0" + zlib.compress(b"{}")),
                                         (b"iTXt", b"workflow\0\0\0\0\0{}"),
                                         (b"tIME", struct.pack(">HBBBBB", 2025, 1, 2, 3, 4, 5))])
def test_png_text_chunks_are_removed_losslessly(chunk, body):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, "PNG")
    plain = buf.getvalue()
    extra = struct.pack(">I", len(body)) + chunk + body + struct.pack(">I", zlib.crc32(chunk + body))
    tagged = plain[:33] + extra + plain[33:]  # after the signature and IHDR
    assert strip_png_text(tagged) == plain
    assert encode(tagged, "png", strip=True) == plain and encode(tagged, "png") == tagged
