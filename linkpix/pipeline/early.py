"""A run's image fetched and written while ComfyUI is still finishing the prompt, published once it is confirmed.

ComfyUI sends an output node's `executed` once its file is written, a moment before the prompt's end
(`execution_success`, its history entry, then `executing null`). Waiting for the end and only then reading
/history, downloading the image and writing it (with its sidecar) put those steps one after the
other: about 6 ms between ComfyUI's success and a stored image on the real ComfyUI (issue 24). Here the
download, the encoding and the writes under temporary names (`ImageCache.stage`) start at
`executed`, beside ComfyUI's finishing and the history read; once the history confirms the run and names
the same first image, only the renames are left (`commit`). Nothing is visible before that: a run that
fails after all, or whose history names another first image, discards the staged files and takes the
ordinary path (download after the history). The caller learns of the image only after the renames; the
files reach the disk just after (`storage/durable.py`). A first output that is not a still picture (a
video, a sound) is staged the same way, as it came (`pipeline/media.py`).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from linkpix.comfy import Event, OutputImage
from linkpix.comfy.events import ImageRef, executed_refs, output_refs, same_image
from linkpix.model import RenderedJob
from linkpix.pipeline.backends import Backend
from linkpix.pipeline.media import stored_form
from linkpix.pipeline.runreport import run_meta
from linkpix.storage.cache import ImageCache

log = logging.getLogger(__name__)

EARLY_WAIT = 60.0  # s the confirmed run waits for its early download before fetching the image itself
_FETCHERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="early-image")

First = tuple[OutputImage, dict[str, Any] | None, Any]  # the image, its metadata and staged entry (or None)


class EarlyImage:
    """One attempt's images: `see` each event of the run; after the history confirms it, `outputs(entry)` gives
    them (the first one from the early download, staged when it is the only one); `discard` drops what was
    not taken."""

    def __init__(self, backend: Backend, cache: ImageCache, job: RenderedJob, user: str, key: str,
                 started: float, strip: bool) -> None:
        self._backend = backend
        self._cache = cache
        self._job = job
        self._user, self._key = user, key
        self._started = started
        self._strip = strip
        self._lock = threading.Lock()
        self._ref: ImageRef | None = None
        self._future: Future[First] | None = None

    def see(self, event: Event) -> None:
        """On the run's first `executed` event naming a saved image, start fetching and staging it."""
        if self._ref is not None or event.prompt_id is None or event.type != "executed":
            return
        refs = executed_refs(event)
        if not refs:
            return
        with self._lock:
            if self._ref is not None:
                return
            self._ref = refs[0]
            self._future = _FETCHERS.submit(self._fetch, event.prompt_id, refs[0])

    def _fetch(self, prompt_id: str, ref: ImageRef) -> First:
        output = self._backend.fetch_image(prompt_id, ref)
        form = stored_form(output, self._job.output_format, self._strip, self._job.graph)  # a video: as it came
        # as `pipeline/outputs.py` stores a run's only output: what it is, its node, and no further outputs
        meta = dict(run_meta(self._job, output, self._backend.name, time.monotonic() - self._started),
                    **form.meta, outputs=[])
        staged = self._cache.stage(self._user, self._key, form.fmt, form.data, meta)
        return output, meta, staged

    def outputs(self, prompt_id: str, entry: dict[str, Any]) -> tuple[list[OutputImage], dict[str, Any] | None, Any]:
        """Every image the confirmed history entry names (none: an empty list), the first one from the early
        download when the event named that one; with its metadata and staged entry when it is the run's only
        image (several are stored together by `pipeline/outputs.py`: then the staged files are dropped). The
        caller commits or discards the staged entry it is given."""
        refs = output_refs(entry.get("outputs"))
        if not refs:
            return [], None, None
        rest = [self._backend.fetch_image(prompt_id, ref) for ref in refs[1:]]
        early = self._take(prompt_id, refs[0])
        if early is None:
            return [self._backend.fetch_image(prompt_id, refs[0]), *rest], None, None
        output, meta, staged = early
        if rest:
            staged.discard()
            return [output, *rest], None, None
        return [output], meta, staged

    def _take(self, prompt_id: str, ref: ImageRef) -> First | None:
        """The early download and staging, if it was of `ref` and succeeded (else it is dropped)."""
        with self._lock:
            future, seen = self._future, self._ref
            self._future = None
        if future is None:
            return None
        if seen is not None and same_image(seen, ref):
            try:
                return future.result(timeout=EARLY_WAIT)
            except Exception as exc:  # fetched again by the caller; its staged files (if any) are dropped
                log.info("the early download of prompt %s's image failed (%s); fetching it again", prompt_id, exc)
        _drop(future)
        return None

    def discard(self) -> None:
        """The attempt is over: whatever was staged and not taken is removed (once its writing ends)."""
        with self._lock:
            future, self._future = self._future, None
        if future is not None:
            _drop(future)


def _drop(future: Future[First]) -> None:
    def drop(done: Future[First]) -> None:
        if not done.cancelled() and done.exception() is None:
            done.result()[2].discard()

    future.add_done_callback(drop)
