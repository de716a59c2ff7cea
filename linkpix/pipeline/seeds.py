"""The seed policy: given -> used; `random`/-1 -> a fresh one (reported back); absent -> derived from the
values that land in the graph, so the same link always gives the same picture."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from typing import Any

from linkpix.model import SEED_MAX, GenerationRequest, InputImage

SEED_SPACE = 2**32  # derived and random seeds: valid for every sampler and custom node we know


def choose_seed(req: GenerationRequest, prompt: str, workflow: str, values: Mapping[str, Any],
                uploads: tuple[InputImage, ...]) -> tuple[int, bool]:
    """Given, fresh, or derived from the values that land in the graph, whatever their source: a
    default stated in the link (`steps=8` when 8 is the default) or set in a settings file gives the
    same seed, and so the same picture and cache entry, as leaving it out; a parameter the workflow
    ignores (`&frobnicate=1`) is not among the values, so it keeps the picture too. The output format
    is left out: png and webp of one link show one picture."""
    if req.seed is not None:
        return req.seed, False
    if req.random_seed:
        return secrets.randbelow(SEED_SPACE), True
    landed = {k: v for k, v in values.items() if k not in ("seed", "img_format")}
    basis = json.dumps({"prompt": prompt, "workflow": workflow, "values": landed,
                        "images": [u.name for u in uploads]},  # content-addressed names
                       sort_keys=True, ensure_ascii=False, default=str)
    return int.from_bytes(hashlib.sha256(basis.encode("utf-8")).digest()[:8], "big") % SEED_SPACE, False


def seed_of_image(first: int, index: int) -> int:
    """Image `index` of a request for several: the first image's seed + index, within ComfyUI's range."""
    return (first + index) % (SEED_MAX + 1)
