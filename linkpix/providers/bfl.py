"""BFL's FLUX API: `POST {url}/{model}` with the `x-key` header answers `{id, polling_url}`; polling that URL
answers `{status, result}` until `Ready` (then `result.sample` is a signed URL of the picture), or a final
`Error`, `Failed`, `Request Moderated`, `Content Moderated` or `Task not found`.

Parameters by model family (BFL's API reference): Kontext (`flux-kontext-*`) takes `aspect_ratio` and an
optional `input_image` (base64); fill (`flux-pro-1.0-fill`) takes `image` and `mask`; the others take `width`
and `height` in multiples of 32. Every family takes `prompt`, `seed` and `output_format` (jpeg or png).
"""

from __future__ import annotations

import base64
import math
import time
from typing import Any

from linkpix.errors import BackendUnavailable, ExecutionFailed
from linkpix.providers.calls import Caller, ContentRefused, api_key
from linkpix.providers.request import HostedRequest

POLL_SECONDS = 0.5
MODERATED = ("Request Moderated", "Content Moderated")
FAILED = ("Error", "Failed", "Task not found")


def run(caller: Caller, req: HostedRequest, poll: float = POLL_SECONDS) -> bytes:
    """Submit, poll until Ready, download the sample."""
    spec = caller.spec
    headers = {"x-key": api_key(spec), "accept": "application/json"}
    submitted = caller.call("POST", f"{spec.url}/{req.model}", json=body_for(req), headers=headers).json()
    polling_url = submitted.get("polling_url") if isinstance(submitted, dict) else None
    if not isinstance(polling_url, str) or not polling_url.startswith(("http://", "https://")):
        raise ExecutionFailed(f"provider {spec.name!r} accepted the request but gave no polling_url",
                              {"provider": spec.name})
    while True:
        caller.remaining()  # raises once the run's time is up
        answer = caller.call("GET", polling_url, headers=headers).json()
        status = str(answer.get("status", "")) if isinstance(answer, dict) else ""
        if status == "Ready":
            sample = (answer.get("result") or {}).get("sample")
            return caller.download(str(sample or ""))
        if status in MODERATED:
            raise ContentRefused(f"provider {spec.name!r}: {status.lower()}", {"provider": spec.name})
        if status in FAILED:
            raise ExecutionFailed(f"provider {spec.name!r} says the task failed ({status})",
                                  {"provider": spec.name, "status": status})
        if status not in ("Pending", "Queued", "Processing", ""):
            raise BackendUnavailable(f"provider {spec.name!r} answered an unknown status {status!r}",
                                     {"provider": spec.name})
        time.sleep(poll)


def body_for(req: HostedRequest) -> dict[str, Any]:
    """The JSON body for the model's family."""
    fmt = "png" if req.output_format == "png" else "jpeg"
    body: dict[str, Any] = {"prompt": req.prompt, "seed": req.seed, "output_format": fmt}
    if "fill" in req.model:
        body.update(image=_b64(req.image), mask=_b64(req.mask))
    elif "kontext" in req.model:
        body["aspect_ratio"] = aspect_ratio(req.width, req.height)
        if req.image is not None:
            body["input_image"] = _b64(req.image)
    else:
        body.update(width=_multiple_of_32(req.width), height=_multiple_of_32(req.height))
        if req.image is not None:
            body["image_prompt"] = _b64(req.image)
    return body


def aspect_ratio(width: int, height: int) -> str:
    """`W:H` in lowest terms (Kontext takes ratios between 3:7 and 7:3)."""
    g = math.gcd(width, height) or 1
    return f"{width // g}:{height // g}"


def _multiple_of_32(value: int) -> int:
    return max(256, min(1440, round(value / 32) * 32))


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode("ascii") if data is not None else None
