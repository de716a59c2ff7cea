"""The values simulated nodes pass along links (see nodes.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image


@dataclass
class Token:
    """A stand-in for a model, CLIP, VAE, conditioning, noise, guider, sigmas..."""

    type: str
    source: str
    attrs: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"<{self.type} from {self.source} (simulated)>"


@dataclass
class Latent:
    width: int
    height: int
    batch: int = 1
    seed: int | None = None
    text: str = ""
    denoise: float = 1.0
    image: list[Image.Image] | None = None
    edit: bool = False  # sampled with a reference image in the conditioning: an instruction edit
    mask: list[Image.Image] | None = None  # inpainting: only this area changes (white = change)

    def __repr__(self) -> str:
        return f"{{'samples': tensor(shape=[{self.batch}, 4, {self.height // 8}, {self.width // 8}])}}"


class Images(list):
    """A list of PIL images whose repr looks like ComfyUI's IMAGE tensor."""

    def __repr__(self) -> str:
        if not self:
            return "tensor(shape=[0])"
        w, h = self[0].size
        channels = 1 if self[0].mode == "L" else 3
        return f"tensor(shape=[{len(self)}, {h}, {w}{', ' + str(channels) if channels == 3 else ''}])"
