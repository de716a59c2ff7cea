"""OpenAI-compatible images APIs: `POST {url}/images/generations`, and `/images/edits` (multipart) for an
input image and mask. Spoken by OpenAI itself, many hosted services, and another LinkPix's OpenAI front.

Sizes: OpenAI accepts a few `WxH` values per model; the request's own size is sent, and a provider that
refuses it answers 400 naming the sizes it takes, which reaches the client as it was said. The answer's
`b64_json` is used when present, else its `url` is downloaded.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from linkpix.errors import ExecutionFailed
from linkpix.providers.calls import Caller, api_key
from linkpix.providers.request import HostedRequest

# OpenAI's own models take these sizes only (its API reference); other services take what they take.
SIZES: dict[str, list[tuple[int, int]]] = {
    "gpt-image-1": [(1024, 1024), (1536, 1024), (1024, 1536)],
    "gpt-image-1-mini": [(1024, 1024), (1536, 1024), (1024, 1536)],
    "dall-e-3": [(1024, 1024), (1792, 1024), (1024, 1792)],
    "dall-e-2": [(256, 256), (512, 512), (1024, 1024)],
}


def run(caller: Caller, req: HostedRequest) -> bytes:
    """The picture's bytes."""
    spec = caller.spec
    key = api_key(spec)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    fields: dict[str, Any] = {"model": req.model, "prompt": _prompt(req), "n": 1, "size": size_for(req)}
    if not req.model.startswith("gpt-image"):  # gpt-image models refuse the field: they always send base64
        fields["response_format"] = "b64_json"
    if req.image is None:
        resp = caller.call("POST", f"{spec.url}/images/generations", json=fields, headers=headers)
    else:
        files = {"image": ("image.png", req.image, "image/png")}
        if req.mask is not None:
            files["mask"] = ("mask.png", req.mask, "image/png")
        form = {k: str(v) for k, v in fields.items()}
        resp = caller.call("POST", f"{spec.url}/images/edits", data=form, files=files, headers=headers)
    return _image(caller, resp.json())


def size_for(req: HostedRequest) -> str:
    """The request's size; for OpenAI's own models (which take a few sizes only) the one of the closest shape."""
    sizes = SIZES.get(req.model)
    if not sizes:
        return f"{req.width}x{req.height}"
    ratio = req.width / req.height
    best = min(sizes, key=lambda s: abs(s[0] / s[1] - ratio) + abs(s[0] * s[1] - req.width * req.height) / 1e7)
    return f"{best[0]}x{best[1]}"


def _prompt(req: HostedRequest) -> str:
    """OpenAI's images API has no negative prompt: say it in words rather than drop it silently."""
    return f"{req.prompt}\nAvoid: {req.negative}" if req.negative.strip() else req.prompt


def _image(caller: Caller, body: Any) -> bytes:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        raise ExecutionFailed(f"provider {caller.spec.name!r} answered without an image",
                              {"provider": caller.spec.name})
    item = data[0]
    if isinstance(item.get("b64_json"), str):
        try:
            return base64.b64decode(item["b64_json"], validate=True)
        except (binascii.Error, ValueError):
            raise ExecutionFailed(f"provider {caller.spec.name!r} sent an image that is not base64",
                                  {"provider": caller.spec.name}) from None
    return caller.download(str(item.get("url") or ""))
