"""What a hosted API is asked: the values the workflow was resolved with, not a graph."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HostedRequest:
    """One picture to make (or edit) on a provider."""

    model: str
    prompt: str
    negative: str
    width: int
    height: int
    seed: int
    output_format: str  # png, jpeg or webp: what the link asked for
    image: bytes | None = None  # img2img / edit source
    mask: bytes | None = None  # inpainting: white (or transparent, for OpenAI) where to change

    @property
    def feature(self) -> str:
        """txt2img, img2img or inpainting: what a provider must support to take this request."""
        if self.mask is not None:
            return "inpainting"
        return "img2img" if self.image is not None else "txt2img"

    def __repr__(self) -> str:  # never dump megabytes into a log line
        return (f"HostedRequest(model={self.model!r}, {self.width}x{self.height}, {self.feature}, "
                f"seed={self.seed})")
