"""The edit flow on top of the one generation path: prepare the source, run it like any request, finish.

`POST /edit` and an edit job both come here. The request is parsed and resolved exactly like `/prompt`
(the downscaled source is its input image, bound to the workflow's LoadImage), the generator runs it with
single-flight and caches the model's output, and `finish.finish` turns that output into the result at
the source's resolution. The result is cached under its own key: the model run's key plus the source's
bytes, the method and the format, so the same edit asked again costs a decode and a lookup.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from linkpix.edit import finish, resize
from linkpix.errors import BadRequest
from linkpix.imaging import photo
from linkpix.imaging.budget import BUDGET, EDIT_BYTES_PER_PIXEL, check_pixels
from linkpix.model import GenerationRequest, InputImage, RenderedJob, png_input_image
from linkpix.pipeline.backends import EventCallback
from linkpix.pipeline.flight import Ticket
from linkpix.pipeline.generator import Generator, Outcome
from linkpix.pipeline.resolver import Resolver
from linkpix.storage.cache import CachedImage, ImageCache
from linkpix.storage.uploads import Uploads

log = logging.getLogger(__name__)


@dataclass
class EditOutcome:
    """What an edit produced: the stored result (or the `.cube` bytes), and how it was made."""

    job: RenderedJob
    method: str
    fit: dict[str, float] | None
    model_output: CachedImage
    image: CachedImage | None = None  # None for format=cube
    cube: bytes | None = None
    cache_hit: bool = False
    notes: tuple[str, ...] = ()  # how the result was made (auto's choice, direct's size)
    region_share: float | None = None
    mask: CachedImage | None = None  # region: the mask, when asked for


def _mask_key(key: str) -> str:
    """The cache key of a region edit's mask (hex, like every stored image's name)."""
    return hashlib.sha256(f"{key}\0mask".encode()).hexdigest()[:32]


class Editor:
    """Runs edits through a resolver and a generator; stores results in the image cache."""

    def __init__(self, resolver: Resolver, generator: Generator, cache: ImageCache, uploads: Uploads,
                 max_megapixels: Callable[[], float] = lambda: 40.0) -> None:
        """`max_megapixels()`: edit_max_megapixels (imaging/budget.py says why)."""
        self.resolver = resolver
        self.generator = generator
        self.cache = cache
        self._uploads = uploads
        self._max_megapixels = max_megapixels

    def admit(self, source: InputImage) -> int:
        """413 for a photo over edit_max_megapixels (from its header); else the bytes its edit needs."""
        size = photo.image_size(source.data)
        check_pixels(size, self._max_megapixels())
        return size[0] * size[1] * EDIT_BYTES_PER_PIXEL

    def prepare(self, req: GenerationRequest, source: InputImage) -> tuple[GenerationRequest, finish.Prepared]:
        """Decode and downscale the source for the request's workflow; the request now carries the small copy."""
        template = self.resolver.template(req.workflow or "")
        if not template.needs()["image"]:
            raise self.resolver.lacks_input(template.name, "image")
        prep = finish.prepare(source.data, resize.profile_for(template.graph),
                                req.mask.data if req.mask is not None else None)
        mask = png_input_image(prep.small_mask_png) if prep.small_mask_png is not None else None
        small = dataclasses.replace(req, input_images=(png_input_image(prep.small_png),), output_format="png",
                                    mask=mask)
        return small, prep

    def resolve(self, req: GenerationRequest, source: InputImage) -> tuple[RenderedJob, finish.Prepared]:
        """Prepare and resolve; a mask of another size than the photo is resized to it, and the job says so."""
        small, prep = self.prepare(req, source)
        job = self.resolver.resolve(small)
        if prep.mask_note:
            job = dataclasses.replace(job, notes=(*job.notes, prep.mask_note.replace("the image's", "the photo's")))
        return job, prep

    def key(self, job: RenderedJob, source: InputImage, method: str, fmt: str | None,
            mask: InputImage | None = None) -> str:
        h = hashlib.sha256(self.generator.key_for(job).encode())
        h.update(b"\0edit\0" + hashlib.sha256(source.data).digest())
        if mask is not None:  # the full-resolution mask decides which pixels of the photo change
            h.update(b"\0mask\0" + hashlib.sha256(mask.data).digest())
        h.update(f"\0{method}\0{fmt or ''}".encode())
        return h.hexdigest()[:32]

    def run(self, req: GenerationRequest, source: InputImage, method: str, fmt: str | None, *,
            on_event: EventCallback | None = None, ticket: Ticket | None = None,
            want_mask: bool = False) -> EditOutcome:
        """The whole edit: prepare, resolve, generate (single-flight, cached), finish, store; within the
        memory budget of full-resolution work (the decoded photo is held until the end)."""
        with BUDGET.hold(self.admit(source), "this edit"):
            job, prep = self.resolve(req, source)
            return self.complete(job, prep, source, method, fmt, req.user, on_event=on_event, ticket=ticket,
                                 mask=req.mask, want_mask=want_mask)

    def complete(self, job: RenderedJob, prep: finish.Prepared, source: InputImage, method: str,
                 fmt: str | None, user: str, *, on_event: EventCallback | None = None,
                 ticket: Ticket | None = None, outcome: Outcome | None = None,
                 mask: InputImage | None = None, want_mask: bool = False) -> EditOutcome:
        key = self.key(job, source, method, fmt, mask)
        if outcome is None:
            outcome = self.generator.generate(job, user, on_event, ticket=ticket)
        if fmt != finish.CUBE and not job.seed_is_random:
            stored = self.cache.get(user, key)
            mask_image = self.cache.get(user, _mask_key(key)) if stored and stored.meta.get("mask_key") else None
            usable = stored is not None and (mask_image is not None or not want_mask
                                             or "region_share" not in stored.meta)
            if stored is not None and usable:
                meta = stored.meta
                return EditOutcome(job, meta.get("edit_method", method), meta.get("edit_fit"), outcome.image,
                                   stored, cache_hit=True, notes=tuple(meta.get("edit_notes", ())),
                                   region_share=meta.get("region_share"), mask=mask_image)
        started = time.monotonic()
        result = finish.finish(prep, outcome.image.read(), method, fmt, want_mask)
        fit = result.fit.to_dict() if result.fit else None
        log.info("edit %s: %s at %dx%d, fit %s, region %s, %.0f ms", key[:12], result.method, result.width,
                 result.height, fit, result.region_share, (time.monotonic() - started) * 1000)
        if result.fmt == finish.CUBE:
            return EditOutcome(job, result.method, fit, outcome.image, None, result.data, notes=result.notes)
        meta = dict(outcome.image.meta, width=result.width, height=result.height, edit_method=result.method,
                    edit_fit=fit, model_output=outcome.image.url, edit_notes=list(result.notes))
        if result.region_share is not None:
            meta["region_share"] = result.region_share
        mask_image = None
        if result.mask_png is not None:
            mask_image = self.cache.put(user, _mask_key(key), "png", result.mask_png,
                                        {"width": result.width, "height": result.height, "edit_mask": True})
            meta["mask_key"] = True
        stored = self.cache.put(user, key, result.fmt, result.data, meta)
        return EditOutcome(job, result.method, fit, outcome.image, stored, notes=result.notes,
                           region_share=result.region_share, mask=mask_image)

    # -- jobs ----------------------------------------------------------------------------------------
    @staticmethod
    def job_spec(job: RenderedJob, source: InputImage, method: str, fmt: str | None,
                 mask: InputImage | None = None) -> RenderedJob:
        """A rendered job that the job manager finishes as an edit (the source and mask are kept as uploads)."""
        if fmt == finish.CUBE:
            raise BadRequest("format=cube is answered directly; ask for it without async or webhook_url",
                             {"parameter": "format"}, rule="direct_answer")
        edit = {"source": source.name, "method": method, "format": fmt}
        if mask is not None:
            edit["mask"] = mask.name
        return dataclasses.replace(job, edit=edit)

    def finish_job(self, spec: RenderedJob, outcome: Outcome, user: str) -> Outcome:
        """The job manager's hook: turn the model output of an edit job into the full-resolution result."""
        if not spec.edit:
            return outcome
        uploads = self._uploads
        source = uploads.get(spec.edit["source"], "image")
        mask = uploads.get(spec.edit["mask"], "mask") if spec.edit.get("mask") else None
        template = self.resolver.template(spec.workflow)
        with BUDGET.hold(self.admit(source), "this edit"):
            prep = finish.prepare(source.data, resize.profile_for(template.graph), mask.data if mask else None)
            done = self.complete(spec, prep, source, spec.edit["method"], spec.edit.get("format"), user,
                                 outcome=outcome, mask=mask)
        assert done.image is not None
        return Outcome(done.image, cache_hit=done.cache_hit and outcome.cache_hit, joined=outcome.joined)
