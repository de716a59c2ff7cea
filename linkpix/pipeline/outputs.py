"""Every file a run made, stored: a workflow with two SaveImage nodes, or a batch of 2, has more than one.

LinkPix answers a link with one output (the first SaveImage's first image; a video or a sound when the run
saved no picture), so that one is stored under the run's cache key as always. The others are stored beside
it in the same user's cache, each under a key derived from the run's, and listed in the first one's metadata
(`outputs`: url, node, ComfyUI's file name, its kind), so a cache hit gives them back too and a job (the Comfy
API v2's `outputs`) can list them all. Pictures are encoded in the job's output format, other files (video,
audio...) kept as they came (`pipeline/media.py`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from linkpix.comfy import OutputImage
from linkpix.model import RenderedJob
from linkpix.pipeline.media import stored_form
from linkpix.storage.cache import CachedImage, ImageCache


def extra_key(key: str, index: int) -> str:
    """The cache key of a run's `index`-th further output (a hex key like the run's own)."""
    return hashlib.sha256(f"{key}/{index}".encode()).hexdigest()[:32]


def store_outputs(cache: ImageCache, user: str, key: str, job: RenderedJob, outputs: Sequence[OutputImage],
                  meta: Mapping[str, Any], strip: bool) -> CachedImage:
    """Store a run's outputs for `user` (the further ones first: once the first is there, a hit on it
    finds every other), and return the first, stored under `key`."""
    listed: list[dict[str, Any]] = []
    for index, output in enumerate(outputs[1:], 1):
        form = stored_form(output, job.output_format, strip, job.graph)
        stored = cache.put(user, extra_key(key, index), form.fmt, form.data, dict(meta, **form.meta))
        listed.append({"url": stored.url, "node_id": output.node_id, "name": output.filename,
                       "format": form.fmt, "media": form.meta["media"]})
    first = stored_form(outputs[0], job.output_format, strip, job.graph)
    return cache.put(user, key, first.fmt, first.data, dict(meta, **first.meta, outputs=listed))
