"""One generation from the Generate tab: submit an async job to the API and follow its event stream.

`follow` turns the job's Server-Sent Events into `Update`s (a progress fraction with a sentence, a preview
picture, the final image with its seed, or the error) that the tab renders; it has no UI code, so the
mapping from events to progress is unit-tested on its own.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from linkpix.dashboard.apiclient import ApiClient, ApiError, Event
from linkpix.dashboard.links import reproduce_link

TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass
class Update:
    fraction: float  # 0..1
    text: str
    preview: bytes | None = None
    image: bytes | None = None
    seed: int | None = None
    link: str | None = None
    error: str | None = None
    done: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


def job_body(prompt: str, styles: list[str], workflow: str, seed: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The JSON of POST /generate. An empty seed means "derived from the request" (as in a link)."""
    body: dict[str, Any] = {"prompt": prompt, "workflow": workflow, "style": styles or ["none"],
                            "params": dict(params)}
    parsed = parse_seed_field(seed)
    if parsed is not None:
        body["seed"] = parsed
    return body


def parse_seed_field(value: Any) -> int | str | None:
    """The Seed box: empty -> None (derived), "random"/-1 -> "random", a whole number -> int;
    anything else is a ValueError with a sentence for the person typing."""
    text = str(value if value is not None else "").strip().lower()
    if text == "":
        return None
    if text in ("random", "-1"):
        return "random"
    if text.isdigit() and int(text) < 2**64:
        return int(text)
    raise ValueError(f"the seed must be empty, a whole number from 0 to {2**64 - 1}, or 'random' (got {value!r})")


def fraction_of(progress: dict[str, Any] | None) -> float:
    """0..1 across all images of the job, from a `progress` event's {image, images, step, total}."""
    if not progress:
        return 0.0
    images = max(int(progress.get("images") or 1), 1)
    index = min(max(int(progress.get("image") or 1), 1), images) - 1
    step, total = progress.get("step") or 0, progress.get("total")
    within = min(max(step / total, 0.0), 1.0) if total else 0.0
    return (index + within) / images


def describe_progress(progress: dict[str, Any]) -> str:
    parts = []
    if (progress.get("images") or 1) > 1:
        parts.append(f"image {progress.get('image')}/{progress.get('images')}")
    if progress.get("total"):
        parts.append(f"step {progress.get('step') or 0}/{progress['total']}")
    if progress.get("node") is not None:
        parts.append(f"node {progress['node']}")
    return "Running: " + ", ".join(parts) if parts else "Running"


def follow(client: ApiClient, body: dict[str, Any]) -> Iterator[Update]:
    """Submit the job and yield updates until it ends. Errors become a final Update with `error`."""
    try:
        accepted = client.submit(body)
    except ApiError as exc:
        yield Update(0.0, "Refused", error=exc.message, done=True)
        return
    yield Update(0.0, f"Queued (job {accepted['job_id'][:8]})", meta={"job_id": accepted["job_id"]})
    fraction, image_event = 0.0, None
    try:
        for event in client.events(accepted["events_url"]):
            update = _on_event(event, fraction)
            if update is None:
                if event.kind == "image":
                    image_event = event.data
                continue
            fraction = max(fraction, update.fraction)
            update.fraction = fraction
            if event.kind in TERMINAL:
                yield _final(client, body, event, image_event)
                return
            yield update
        job = client.job(accepted["job_id"])  # the stream ended without an end event: ask once
        yield _final(client, body, Event(job.get("status", "failed"), job), image_event)
    except ApiError as exc:
        yield Update(fraction, "Failed", error=exc.message, done=True)


def _on_event(event: Event, fraction: float) -> Update | None:
    data = event.data
    if event.kind == "queued":
        position = data.get("queue_position")
        return Update(fraction, "Queued" + (f" (position {position} in ComfyUI's queue)" if position else ""))
    if event.kind == "started":
        return Update(fraction, "Started")
    if event.kind == "progress":
        return Update(fraction_of(data), describe_progress(data))
    if event.kind == "preview" and data.get("jpeg_base64"):
        try:
            return Update(fraction, "Running", preview=base64.b64decode(data["jpeg_base64"]))
        except ValueError:
            return None
    if event.kind in TERMINAL:
        return Update(fraction, event.kind)
    return None


def _final(client: ApiClient, body: dict[str, Any], event: Event, image_event: dict[str, Any] | None) -> Update:
    job = event.data
    if event.kind != "succeeded":
        error = job.get("error") or {}
        message = error.get("message") if isinstance(error, dict) else None
        return Update(0.0, event.kind.capitalize(), error=message or f"the job {event.kind}", done=True)
    images = job.get("images") or ([image_event] if image_event else [])
    if not images:
        return Update(1.0, "Done", error="the job succeeded but reported no image", done=True)
    first = images[0]
    try:
        data = client.image_bytes(first["url"])
    except ApiError as exc:
        return Update(1.0, "Done", error=f"the image could not be fetched: {exc.message}", done=True)
    link = reproduce_link(client.base_url, body["prompt"], seed=int(first["seed"]), workflow=body["workflow"],
                          styles=list(body.get("style") or []), width=body["params"].get("width"),
                          height=body["params"].get("height"), params=body["params"])
    return Update(1.0, f"Done in {_seconds(job)}", image=data, seed=int(first["seed"]), link=link, done=True,
                  meta={"cache": first.get("cache"), "url": first.get("url"), "job_id": job.get("job_id")})


def _seconds(job: dict[str, Any]) -> str:
    try:
        return f"{job['finished'] - job['created']:.1f} s"
    except (KeyError, TypeError):
        return "?"
