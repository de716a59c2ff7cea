"""The working size: the source scaled to what the edit model works at, on the model's size grid.

Instruction-edit models work at about one megapixel. FLUX.1 Kontext goes further: ComfyUI's
`FluxKontextImageScale` resizes its input to the preferred resolution nearest in aspect ratio, so the
source is sent at exactly that size (the model then gives back the same grid). Qwen-Image-Edit scales its
reference to one megapixel; the SD1.5 workflows want far less. A source smaller than the working size is
never enlarged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image

# comfy_extras/nodes_flux.py (ComfyUI 0.3.64), PREFERED_KONTEXT_RESOLUTIONS, as (width, height).
KONTEXT_SIZES: tuple[tuple[int, int], ...] = (
    (672, 1568), (688, 1504), (720, 1456), (752, 1392), (800, 1328), (832, 1248), (880, 1184), (944, 1104),
    (1024, 1024), (1104, 944), (1184, 880), (1248, 832), (1328, 800), (1392, 752), (1456, 720), (1504, 688),
    (1568, 672),
)


@dataclass(frozen=True)
class Profile:
    """How large the model's input should be: about `pixels`, sides a multiple of `multiple`, or one of
    `sizes` when the model has a fixed list."""

    name: str
    pixels: int
    multiple: int = 8
    sizes: tuple[tuple[int, int], ...] = ()


KONTEXT = Profile("flux-kontext", 1024 * 1024, 16, KONTEXT_SIZES)
QWEN = Profile("qwen-image-edit", 1024 * 1024, 8)
SD = Profile("sd", 768 * 768, 8)


def profile_for(graph: Mapping[str, Any]) -> Profile:
    """The profile of a workflow, recognised by the class types its graph uses."""
    classes = {node.get("class_type") for node in graph.values() if isinstance(node, Mapping)}
    if "FluxKontextImageScale" in classes or "ReferenceLatent" in classes:
        return KONTEXT
    if any(isinstance(c, str) and c.startswith("TextEncodeQwenImageEdit") for c in classes):
        return QWEN
    return SD


def working_size(width: int, height: int, profile: Profile) -> tuple[int, int]:
    """The size to send: aspect kept (or the nearest listed size), never larger than the source."""
    if profile.sizes:
        aspect = width / height
        return min(profile.sizes, key=lambda s: abs(aspect - s[0] / s[1]))
    scale = min(1.0, math.sqrt(profile.pixels / (width * height)))
    m = profile.multiple
    return (max(m, int(width * scale) // m * m), max(m, int(height * scale) // m * m))


def downscale(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Lanczos to `size`; a 24 MP source is first reduced by box filtering (Pillow's `reducing_gap`)."""
    if img.size == size:
        return img.copy()
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
