"""Every image a run made, stored: a workflow with two SaveImage nodes, or a batch of 2, has more than one.

LinkPix answers a link with one picture (the first SaveImage's first image), so that one is stored under
the run's cache key as always. The others are stored beside it in the same user's cache, each under a key
derived from the run's, and listed in the first one's metadata (`outputs`: url, node, ComfyUI's file
name), so a cache hit gives them back too and a job (the Comfy API v2's `outputs`) can list them all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from linkpix.comfy import OutputImage
from linkpix.imaging.encode import encode, image_size
from linkpix.storage.cache import CachedImage, ImageCache


def extra_key(key: str, index: int) -> str:
    """The cache key of a run's `index`-th further output (a hex key like the run's own)."""
    return hashlib.sha256(f"{key}/{index}".encode()).hexdigest()[:32]


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
