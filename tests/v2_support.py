"""Helpers for the Comfy API v2 tests (no tests here): graphs the simulator runs, a LinkPix server, and
the real `comfy-sdk` client pointed at it through COMFY_BASE_URL, as a user would."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image
from support import ApiServer

ROOT = Path(__file__).resolve().parent.parent


def txt2img(prompt: str = "a red fox", seed: int = 42, steps: int = 4) -> dict[str, Any]:
    """demo.json as a client sends it: a finished API-format graph (no placeholders)."""
    text = (ROOT / "workflows" / "demo.json").read_text()
    graph = json.loads(text.replace('"%prompt%"', json.dumps(prompt)).replace('"%negative_prompt%"', '"blurry"')
                       .replace('"%seed%"', str(seed)))
    graph["4"]["inputs"].update(width=64, height=48)
    graph["5"]["inputs"]["steps"] = steps
    return graph


def load_and_save(image: Any = "placeholder.png") -> dict[str, Any]:
    """LoadImage -> ImageInvert -> SaveImage: the picture read is the `image` input (an SDK asset handle)."""
    return {"10": {"class_type": "LoadImage", "inputs": {"image": image}},
            "11": {"class_type": "ImageInvert", "inputs": {"image": ["10", 0]}},
            "12": {"class_type": "SaveImage", "inputs": {"filename_prefix": "v2", "images": ["11", 0]}}}


def png(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (32, 24)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


@contextmanager
def base_url(url: str) -> Iterator[None]:
    """COMFY_BASE_URL for SDK clients built inside the block (the SDK reads it at construction)."""
    old = os.environ.get("COMFY_BASE_URL")
    os.environ["COMFY_BASE_URL"] = url
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("COMFY_BASE_URL", None)
        else:
            os.environ["COMFY_BASE_URL"] = old


def client(server: ApiServer, key: str | None = None) -> Any:
    """The SDK's own client aimed at `server` (optionally with an API key)."""
    from comfy_sdk import Comfy

    with base_url(server.url):
        return Comfy(api_key=key) if key else Comfy()
