"""What the generator tells others about a run: the metrics (`on_run`), the GPU-seconds book (`on_gpu`),
the metadata stored beside its image, and a waiter's timeout error. A listener's failure is logged, never
the run's failure."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from linkpix.comfy import OutputImage
from linkpix.errors import GenerationTimeout
from linkpix.model import RenderedJob

log = logging.getLogger("linkpix.pipeline.generator")

RunObserver = Callable[[str, str, float, str], None]  # workflow, backend, seconds, outcome
GpuObserver = Callable[[str, float], None]  # user, GPU-seconds of one successful run


def report_run(on_run: RunObserver | None, workflow: str, backend: Any, seconds: float,
               error: BaseException | None) -> None:
    """Tell `on_run` how a run ended: workflow, backend, seconds, and `ok` or the error's code."""
    if on_run is None:
        return
    name = str(getattr(backend, "name", None) or getattr(backend, "base_url", None) or "none")
    try:
        on_run(workflow, name, seconds, "ok" if error is None else getattr(error, "code", "error"))
    except Exception:
        log.exception("reporting a run to the metrics failed")


def count_gpu(on_gpu: GpuObserver | None, user: str, seconds: float) -> None:
    """Tell `on_gpu` a run's time in ComfyUI, for the user it counts for (once per run)."""
    if on_gpu is None:
        return
    try:
        on_gpu(user, seconds)
    except Exception:  # the usage book's trouble must not fail the run others wait on
        log.exception("counting a run's GPU-seconds failed")


def run_meta(job: RenderedJob, output: OutputImage, backend: str, seconds: float) -> dict[str, Any]:
    """The metadata stored beside a run's output (its size and kind are `pipeline/media.stored_form`'s)."""
    return {"prompt": job.prompt, "negative": job.negative, "seed": job.seed,
            "seed_is_random": job.seed_is_random, "workflow": job.workflow, "params": job.params,
            "backend": backend, "prompt_id": output.prompt_id, "comfy_filename": output.filename,
            "generation_ms": round(seconds * 1000)}


def overdue(flight: Any, timeout: float) -> GenerationTimeout:
    """The error of a waiter whose run did not answer within `timeout` (the run itself goes on stopping)."""
    with flight.lock:
        prompt_id, backend = flight.prompt_id, flight.backend
    where = f"prompt {prompt_id} on ComfyUI {backend.name}" if prompt_id and backend else "the run"
    return GenerationTimeout(f"no result for {where} after {timeout:.0f} s; the run goes on being stopped "
                             "in the background", {"prompt_id": prompt_id})
