"""A rendered job run on a hosted provider instead of ComfyUI: the job's values become a `HostedRequest`,
the answer an `OutputImage` like the one a ComfyUI run gives, so storing and serving are the same."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from linkpix.comfy import Event, OutputImage
from linkpix.imaging.encode import image_size
from linkpix.model import RenderedJob
from linkpix.pipeline.flight import SUBMITTED
from linkpix.providers.hosted import Providers
from linkpix.providers.request import HostedRequest

log = logging.getLogger(__name__)

DEFAULT_SIDE = 1024


def fallback_route(job: RenderedJob, can_run: Callable[[dict[str, Any]], bool]) -> RenderedJob:
    """The hosted fallback takes a job no ComfyUI backend can run now (all down, or none has its models);
    decided before the cache key, so a hosted picture never stands in for ComfyUI's."""
    if job.provider is None and job.fallback is not None and not can_run(job.graph):
        log.info("no ComfyUI backend can run %s now; %s takes it", job.workflow, job.fallback)
        return replace(job, provider=job.fallback)
    return job


def hosted_request(job: RenderedJob, model: str) -> HostedRequest:
    """The values a provider takes, read from the job: the first upload is the image, an upload bound to
    the workflow's mask input the mask."""
    params = job.params
    uploads = list(job.uploads)
    mask = None
    if len(uploads) > 1 and params.get("mask") == uploads[-1].name:
        mask = uploads.pop().data
    return HostedRequest(model=model, prompt=job.prompt, negative=job.negative,
                         width=_side(params.get("width")), height=_side(params.get("height")), seed=job.seed,
                         output_format=job.output_format, image=uploads[0].data if uploads else None, mask=mask)


def run_hosted(providers: Providers, job: RenderedJob, user: str, started: float,
               emit: Callable[[Event], None]) -> tuple[OutputImage, dict[str, Any]]:
    """One provider run; announced like a ComfyUI submission (jobs record where it ran), and the
    metadata names the provider as the backend."""
    assert job.provider is not None
    _, _, model = job.provider.partition(":")
    run_id = f"hosted-{uuid.uuid4().hex[:16]}"
    emit(Event(SUBMITTED, run_id, {"prompt_id": run_id, "backend": job.provider}))
    data = providers.run(job.provider, hosted_request(job, model), user)
    output = OutputImage(data=data, filename=f"{run_id}.img", subfolder="", type="output", node_id="",
                         prompt_id=run_id, content_type="")
    width, height = image_size(data)  # a picture: Providers.run checked it
    meta = {"prompt": job.prompt, "negative": job.negative, "seed": job.seed, "seed_is_random": job.seed_is_random,
            "workflow": job.workflow, "params": job.params, "width": width, "height": height,
            "backend": job.provider, "prompt_id": run_id, "comfy_filename": None,
            "generation_ms": round((time.monotonic() - started) * 1000)}
    return output, meta


def _side(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else DEFAULT_SIDE
