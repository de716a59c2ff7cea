"""A run's output as the cache stores it: a still picture in the job's output format, any other file as it came.

A still PNG, JPEG or WebP is what `output_format` and `strip_metadata` apply to (encoded as before). Anything
else a run saves - SaveVideo's MP4, SaveAudio's FLAC, an animated WebP or GIF, a 3D model, a latent - is kept
byte for byte under its own extension (`storage/media.py`): re-encoding a video or a sound is not LinkPix's
to do, and an animated picture re-encoded by Pillow would keep one frame. Each stored output's metadata says
what it is (`media`: image, video, audio, latent or file: the Comfy API v2's output kinds), which node saved
it and under which key ComfyUI listed it (`comfy_kind`), so a front that carries pictures only can refuse a
video by name (`require_picture`).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, UnidentifiedImageError

from linkpix.comfy import OutputImage
from linkpix.errors import UnsupportedOutput
from linkpix.imaging.encode import encode
from linkpix.storage.cache import CONTENT_TYPES, CachedImage
from linkpix.storage.media import file_format, is_picture

_STILL = ("PNG", "JPEG", "WEBP")
_KINDS = {"audio": "audio", "gifs": "video", "latents": "latent"}  # ComfyUI's output key -> the kind it always is


@dataclass(frozen=True)
class StoredForm:
    """What the cache is given for one output: its format (extension), bytes, and what describes it."""

    fmt: str
    data: bytes
    meta: dict[str, Any] = field(default_factory=dict)


def _inspect(data: bytes) -> tuple[bool, int | None, int | None]:
    """(a still PNG, JPEG or WebP picture: the only output LinkPix re-encodes; width; height), from one read
    of the header."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.format in _STILL and not getattr(img, "is_animated", False), *img.size
    except (UnidentifiedImageError, OSError, ValueError):
        return False, None, None


def media_kind(fmt: str, comfy_kind: str) -> str:
    """The kind of a stored file, in the Comfy API v2's words (image, video, audio, latent, file): from the key
    ComfyUI listed it under when that says it (`audio`, VideoHelperSuite's `gifs`, `latents`), else from its
    content type (SaveVideo's MP4 is listed among `images`)."""
    if comfy_kind in _KINDS:
        return _KINDS[comfy_kind]
    major = CONTENT_TYPES.get(fmt, "").partition("/")[0]
    return {"image": "image", "video": "video", "audio": "audio"}.get(major, "file")


def node_class(graph: Mapping[str, Any], node_id: str | None) -> str | None:
    node = graph.get(str(node_id)) if node_id is not None else None
    kind = node.get("class_type") if isinstance(node, dict) else None
    return kind if isinstance(kind, str) else None


def stored_form(output: OutputImage, fmt: str, strip: bool, graph: Mapping[str, Any]) -> StoredForm:
    """The format, bytes and metadata one output is stored with (`fmt`: the job's output format)."""
    still, width, height = _inspect(output.data)
    described = {"node_id": output.node_id, "node_type": node_class(graph, output.node_id),
                 "comfy_filename": output.filename, "comfy_kind": output.kind, "width": width, "height": height}
    if still:
        return StoredForm(fmt, encode(output.data, fmt, strip=strip), dict(described, media="image"))
    own = file_format(output.filename)
    return StoredForm(own, output.data, dict(described, media=media_kind(own, output.kind)))


def require_picture(image: CachedImage) -> None:
    """Refuse, naming the node, a stored output a front can only carry as a picture (A1111's base64 `images`,
    OpenAI's `b64_json`): a video or a sound there would reach the client as a broken picture."""
    if is_picture(image.fmt):
        return
    meta = image.meta
    node_id, node_type = meta.get("node_id"), meta.get("node_type")
    name = str(meta.get("comfy_filename") or image.filename)
    raise UnsupportedOutput(
        f"node {node_id} ({node_type or 'unknown'}) saved {name!r} ({image.content_type}); this API carries "
        "pictures only (PNG, JPEG, WebP), so this workflow's output cannot be given here: fetch it from the "
        f"link or the Comfy API v2 (its file is stored at {image.url}), or save pictures with SaveImage",
        node_id, node_type, name)
