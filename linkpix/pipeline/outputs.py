"""Every image a run made, stored: a workflow with two SaveImage nodes, or a batch of 2, has more than one.

LinkPix answers a link with one picture (the first SaveImage's first image), so that one is stored under
the run's cache key as always. The others are stored beside it in the same user's cache, each under a key
derived from the run's, and listed in the first one's metadata (`outputs`: url, node, ComfyUI's file
name), so a cache hit gives them back too and a job (the Comfy API v2's `outputs`) can list them all.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Mapping, Sequence
from typing import Any

from linkpix.comfy import OutputImage
from linkpix.errors import UnsupportedOutput
from linkpix.imaging.encode import encode, image_size, picture_format
from linkpix.storage.cache import CachedImage, ImageCache


def extra_key(key: str, index: int) -> str:
    """The cache key of a run's `index`-th further output (a hex key like the run's own)."""
    return hashlib.sha256(f"{key}/{index}".encode()).hexdigest()[:32]


def require_picture(output: OutputImage, graph: Mapping[str, Any]) -> None:
    """Refuse, naming the node, an output that is not a picture (SaveVideo's MP4, SaveAudio's FLAC, SaveGLB's
    model: ComfyUI lists some of them among a node's `images`): LinkPix's cache holds pictures only, and
    without this the run failed in the decoder as "internal error: cannot identify image file"."""
    if picture_format(output.data) is not None:
        return
    node = graph.get(str(output.node_id)) if output.node_id is not None else None
    node_type = node.get("class_type") if isinstance(node, dict) else None
    kind = mimetypes.guess_type(output.filename)[0] or "not a picture"
    raise UnsupportedOutput(
        f"node {output.node_id} ({node_type or 'unknown'}) saved {output.filename!r} ({kind}); LinkPix stores and "
        "serves pictures only (PNG, JPEG, WebP: what SaveImage and PreviewImage write), so this workflow's "
        "output cannot be kept: save pictures with SaveImage, or run it on ComfyUI directly",
        output.node_id, node_type, output.filename)


def store_outputs(cache: ImageCache, user: str, key: str, fmt: str, outputs: Sequence[OutputImage],
                  meta: Mapping[str, Any], strip: bool) -> CachedImage:
    """Store a run's outputs for `user` (the further ones first: once the first is there, a hit on it
    finds every other), and return the first, stored under `key`."""
    listed: list[dict[str, Any]] = []
    for index, output in enumerate(outputs[1:], 1):
        width, height = image_size(output.data)  # a second SaveImage may save another size than the first
        stored = cache.put(user, extra_key(key, index), fmt, encode(output.data, fmt, strip=strip),
                           dict(meta, node_id=output.node_id, comfy_filename=output.filename, width=width,
                                height=height))
        listed.append({"url": stored.url, "node_id": output.node_id, "name": output.filename})
    first = outputs[0]
    return cache.put(user, key, fmt, encode(first.data, fmt, strip=strip),
                     dict(meta, node_id=first.node_id, outputs=listed))
