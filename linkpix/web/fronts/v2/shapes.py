"""LinkPix's jobs and records in the contract's shapes: Job, Output, Asset, a list item, Progress.

A v2 job is a LinkPix job, so its state is read from the jobs store each time (the poll is the truth, as
the contract wants) and translated: `cancelled` is spelled `canceled`, a job pruned by retention is
`expired`, each stored image is an Output whose id names the job and the image (`<job id>.<n>`), and
`outputs_reused` says the image came from LinkPix's cache instead of a new run - the proxy's field,
which there means ComfyUI's node cache. An output's `type` is what the stored file is (`pipeline/media.py`:
SaveVideo's MP4 is a `video` though ComfyUI lists it among `images`, SaveAudio's FLAC an `audio`), and its
`content_type` the one `/content` serves it with.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from linkpix.jobs.store import Job
from linkpix.storage.cache import CONTENT_TYPES
from linkpix.web.fronts.v2.records import AssetRecord, JobRecord

STATUS = {"cancelled": "canceled"}  # LinkPix state -> contract status; the others are spelled alike
FOREVER = 100 * 365 * 86400.0  # "never expires" still has to be a date in the contract
OUTPUT_CLASSES = ("SaveImage", "PreviewImage")


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def status_of(job: Job | None, canceling: bool = False) -> str:
    """The contract's status; `canceling`: cancelled, but ComfyUI has not yet stopped its prompt."""
    if job is not None and canceling and job.state == "cancelled":
        return "canceling"
    return "expired" if job is None else STATUS.get(job.state, job.state)


def expires(created: float, keep_days: float) -> float:
    return created + (keep_days * 86400 if keep_days > 0 else FOREVER)


def output_id(job_id: str, index: int) -> str:
    return f"{job_id}.{index}"


def split_output_id(asset_id: str) -> tuple[str, int] | None:
    job_id, dot, index = asset_id.partition(".")
    if not dot or not index.isdigit() or len(job_id) != 32:
        return None
    return job_id, int(index)


def output_node(graph: dict[str, Any]) -> str:
    """The node the image is reported under: the graph's saver (as the ComfyUI front reports it)."""
    for cls in OUTPUT_CLASSES:
        for node_id, node in graph.items():
            if isinstance(node, dict) and node.get("class_type") == cls:
                return str(node_id)
    return str(next(iter(graph), "0"))


def output_refs(job: Job) -> list[dict[str, Any]]:
    """Every output of a job, in order: each stored image, then the further images of its run (a second
    SaveImage node, a batch; `pipeline/outputs.py`). Output `<job id>.<n>` is the n-th of this list."""
    refs: list[dict[str, Any]] = []
    for image in job.images:
        fmt = image.get("format") or "png"
        refs.append({"url": str(image.get("url", "")), "node_id": image.get("node_id"), "format": fmt,
                     "media": image.get("media") or "image"})
        refs.extend({"url": str(more.get("url", "")), "node_id": more.get("node_id"),
                     "format": more.get("format") or fmt, "media": more.get("media") or "image"}
                    for more in image.get("outputs") or [] if isinstance(more, dict))
    return refs


def content_type(ref: dict[str, Any]) -> str:
    """The content type an output is served with (`application/octet-stream` for a kind LinkPix does not name)."""
    return CONTENT_TYPES.get(ref["format"], "application/octet-stream")


def output(base: str, job: Job, ref: dict[str, Any], index: int, size: int, keep_days: float) -> dict[str, Any]:
    aid = output_id(job.id, index)
    graph = job.spec[0].get("graph", {}) if job.spec else {}
    return {"node_id": str(ref["node_id"] or output_node(graph)), "name": ref["url"].rsplit("/", 1)[-1],
            "type": ref["media"], "content_type": content_type(ref),
            "size_bytes": size, "id": aid, "hash": None, "url": f"{base}/api/v2/assets/{aid}/content",
            "url_expires_at": iso(expires(job.finished or job.created, keep_days)), "job_id": job.id}


def progress(live: dict[str, Any] | None, job: Job) -> dict[str, Any] | None:
    """LinkPix's live progress (`step`, `total`, `node`) as the contract's snapshot."""
    if job.state in ("succeeded",):
        return {"value": 1.0, "nodes_done": 1, "nodes_total": 1, "message": "done"}
    if not live:
        return None
    return live_progress(live, job.spec[0].get("graph", {}) if job.spec else {})


def live_progress(live: dict[str, Any], graph: dict[str, Any]) -> dict[str, Any]:
    """One progress notice of LinkPix's (`step`, `total`, `node`) as the contract's snapshot; the node's
    class is read from the job's graph."""
    step, total = live.get("step") or 0, live.get("total")
    node = live.get("node")
    entry = graph.get(str(node)) if node is not None else None
    return {"value": max(0.0, min(1.0, step / total)) if total else 0.0, "nodes_done": 0, "nodes_total": 0,
            "current_node": str(node) if node is not None else None,
            "current_node_class": entry.get("class_type") if isinstance(entry, dict) else None,
            "step": int(step) if total else None, "steps": int(total) if total else None,
            "message": f"step {step}/{total}" if total else None}


def job_error(job: Job) -> dict[str, Any] | None:
    if job.error is None or job.state != "failed":
        return None
    details = job.error.get("details") if isinstance(job.error.get("details"), dict) else {}
    code = job.error.get("error")
    code = {"workflow_rejected": "invalid_workflow", "execution_failed": "node_execution_error"}.get(code, code)
    return {"code": code or "failed", "message": job.error.get("message") or "the job failed",
            "node_id": details.get("node_id"), "class_type": details.get("node_type"), "traceback": None}


def job_body(base: str, record: JobRecord, job: Job | None, described: dict[str, Any] | None,
             sizes: list[int], keep_days: float, canceling: bool = False) -> dict[str, Any]:
    """The contract's Job. `described` is the jobs manager's view (live progress, queue position)."""
    links = {"self": f"{base}/api/v2/jobs/{record.id}", "events": f"{base}/api/v2/jobs/{record.id}/events",
             "cancel": f"{base}/api/v2/jobs/{record.id}/cancel"}
    body: dict[str, Any] = {
        "id": record.id, "status": status_of(job, canceling), "created_at": iso(record.created),
        "started_at": iso(job.started) if job is not None and job.started else None,
        "completed_at": iso(job.finished) if job is not None and job.finished and not canceling else None,
        "expires_at": iso(expires(job.finished or record.created if job else record.created, keep_days)),
        "queue_position": (described or {}).get("queue_position") if job is not None and job.state == "queued"
        else None,
        "progress": progress((described or {}).get("progress"), job) if job is not None else None,
        "outputs": [output(base, job, ref, i, sizes[i] if i < len(sizes) else 0, keep_days)
                    for i, ref in enumerate(output_refs(job))] if job is not None else [],
        "error": job_error(job) if job is not None else None,
        "outputs_reused": bool(job and job.images and all(i.get("cache") == "hit" for i in job.images)),
        "metrics": _metrics(record, job),
        "metadata": record.metadata,
        "urls": links,
    }
    return body


def _metrics(record: JobRecord, job: Job | None) -> dict[str, int | None]:
    if job is None:
        return {"queue_ms": None, "execution_ms": None}
    started, finished = job.started, job.finished
    queue_ms = int(((started or finished or record.created) - record.created) * 1000) if (started or finished) else None
    run_ms = int((finished - started) * 1000) if started and finished else None
    return {"queue_ms": queue_ms, "execution_ms": run_ms}


def list_item(base: str, record: JobRecord, job: Job | None, canceling: bool = False) -> dict[str, Any]:
    updated = (job.finished or job.started or record.created) if job is not None else record.created
    return {"id": record.id, "status": status_of(job, canceling), "create_time": iso(record.created),
            "update_time": iso(updated), "created_at": iso(record.created), "metadata": record.metadata,
            "urls": {"self": f"{base}/api/v2/jobs/{record.id}"}}


def asset_body(base: str, record: AssetRecord, keep_days: float, created_new: bool | None = None
               ) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": record.id, "hash": record.hash, "size_bytes": record.size_bytes, "content_type": record.content_type,
        "file_path": record.file_path, "created_at": iso(record.created),
        "url": f"{base}/api/v2/assets/{record.id}/content",
        "url_expires_at": iso(expires(record.created, keep_days)), "expires_at": None, "job_id": None}
    if created_new is not None:
        body["created_new"] = created_new
    return body
