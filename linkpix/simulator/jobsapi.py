"""Today's jobs routes (`--profile current`): GET /api/jobs, GET /api/jobs/{id}, POST /api/jobs/{id}/cancel,
POST /api/jobs/cancel, built on the simulator's queue and history like ComfyUI's `comfy_execution/jobs.py`
builds them on its PromptQueue (see profiles.py for the sources).

A job is one prompt: `pending` while queued, `in_progress` while running, then `completed`, `failed` or
`cancelled` (an error after `execution_interrupted`) from its history entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from linkpix.simulator.profiles import valid_job_id

if TYPE_CHECKING:
    from linkpix.simulator.life import Life

STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")


def _prune(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _meta(extra: Any) -> tuple[Any, Any]:
    extra = extra if isinstance(extra, dict) else {}
    pnginfo = extra.get("extra_pnginfo") if isinstance(extra.get("extra_pnginfo"), dict) else {}
    workflow = pnginfo.get("workflow") if isinstance(pnginfo.get("workflow"), dict) else {}
    return extra.get("create_time"), workflow.get("id")


def queue_job(item: list[Any], status: str, detail: bool = False) -> dict[str, Any]:
    create_time, workflow_id = _meta(item[3])
    job = _prune({"id": item[1], "status": status, "priority": item[0], "create_time": create_time,
                  "outputs_count": 0, "previewable_outputs_count": 0, "workflow_id": workflow_id})
    if detail:
        job["workflow"] = {"prompt": item[2], "extra_data": item[3]}
    return job


def _outputs_summary(outputs: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    count, preview, fallback = 0, None, None
    for node_id, node_outputs in outputs.items():
        if not isinstance(node_outputs, dict):
            continue
        for media, items in node_outputs.items():
            if media == "animated" or not isinstance(items, list):
                continue
            for item in items:
                if not isinstance(item, dict):
                    continue
                count += 1
                if media in ("images", "video", "audio", "3d", "text"):
                    enriched = {**item, "nodeId": node_id, "mediaType": item.get("mediaType", media)}
                    if item.get("type") == "output" and preview is None:
                        preview = enriched
                    elif fallback is None:
                        fallback = enriched
    return count, preview or fallback


def history_job(prompt_id: str, entry: dict[str, Any], detail: bool = False) -> dict[str, Any]:
    prompt = entry["prompt"]
    create_time, workflow_id = _meta(prompt[3])
    status_info = entry.get("status") or {}
    start = end = error = None
    interrupted = False
    for message in status_info.get("messages", []):
        if isinstance(message, (list, tuple)) and len(message) >= 2 and isinstance(message[1], dict):
            name, data = message[0], message[1]
            if name == "execution_start":
                start = data.get("timestamp")
            elif name in ("execution_success", "execution_error", "execution_interrupted"):
                end = data.get("timestamp")
                error = data if name == "execution_error" else error
                interrupted = interrupted or name == "execution_interrupted"
    if status_info.get("status_str") == "error":
        status = "cancelled" if interrupted else "failed"
    else:
        status = "completed"
    outputs = entry.get("outputs") or {}
    count, preview = _outputs_summary(outputs)
    job = _prune({"id": prompt_id, "status": status, "priority": prompt[0], "create_time": create_time,
                  "execution_start_time": start, "execution_end_time": end, "execution_error": error,
                  "outputs_count": count, "previewable_outputs_count": count, "preview_output": preview,
                  "workflow_id": workflow_id})
    if detail:
        job.update(outputs=outputs, execution_status=status_info,
                   workflow={"prompt": prompt[2], "extra_data": prompt[3]})
    return job


def _error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


def add_routes(routes: web.RouteTableDef, life: Life) -> None:
    q = life.queue

    @routes.get("/api/jobs")
    async def get_jobs(request: web.Request) -> web.Response:
        query = request.rel_url.query
        wanted: tuple[str, ...] = STATUSES
        if query.get("status"):
            wanted = tuple(s.strip().lower() for s in query["status"].split(",") if s.strip())
            bad = [s for s in wanted if s not in STATUSES]
            if bad:
                return _error(f"Invalid status value(s): {', '.join(bad)}. Valid values: {', '.join(STATUSES)}")
        sort_by = query.get("sort_by", "created_at").lower()
        sort_order = query.get("sort_order", "desc").lower()
        if sort_by not in ("created_at", "execution_duration"):
            return _error("sort_by must be 'created_at' or 'execution_duration'")
        if sort_order not in ("asc", "desc"):
            return _error("sort_order must be 'asc' or 'desc'")
        limit = None
        if "limit" in query:
            try:
                limit = int(query["limit"])
            except ValueError:
                return _error("limit must be an integer")
            if limit <= 0:
                return _error("limit must be a positive integer")
        try:
            offset = max(0, int(query.get("offset", 0)))
        except ValueError:
            return _error("offset must be an integer")
        jobs = [queue_job(i, "in_progress") for i in q.running_items() if "in_progress" in wanted]
        jobs += [queue_job(i, "pending") for i in q.pending_items() if "pending" in wanted]
        jobs += [j for j in (history_job(k, v) for k, v in q.get_history().items()) if j["status"] in wanted]
        workflow_id = query.get("workflow_id")
        if workflow_id:
            jobs = [j for j in jobs if j.get("workflow_id") == workflow_id]

        def key(job: dict[str, Any]) -> Any:
            if sort_by == "execution_duration":
                start, end = job.get("execution_start_time", 0), job.get("execution_end_time", 0)
                return end - start if start and end else 0
            return job.get("create_time", 0)

        jobs.sort(key=key, reverse=sort_order == "desc")
        total = len(jobs)
        page = jobs[offset:]
        if limit is not None:
            page = page[:limit]
        return web.json_response({"jobs": page, "pagination": {"offset": offset, "limit": limit, "total": total,
                                                               "has_more": offset + len(page) < total}})

    @routes.get("/api/jobs/{job_id}")
    async def get_job(request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        history = q.get_history(prompt_id=job_id)
        if job_id in history:
            return web.json_response(history_job(job_id, history[job_id], detail=True))
        for item in q.running_items():
            if item[1] == job_id:
                return web.json_response(queue_job(item, "in_progress", detail=True))
        for item in q.pending_items():
            if item[1] == job_id:
                return web.json_response(queue_job(item, "pending", detail=True))
        return _error("Job not found", 404)

    def cancel(job_id: str) -> bool:
        if any(item[1] == job_id for item in q.running_items()):
            life.executor.interrupt()
            return True
        return q.delete_queue_item(lambda a: a[1] == job_id)

    @routes.post("/api/jobs/{job_id}/cancel")
    async def cancel_one(request: web.Request) -> web.Response:
        return web.json_response({"cancelled": cancel(request.match_info["job_id"])})

    @routes.post("/api/jobs/cancel")
    async def cancel_many(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error("Request body must be valid JSON")
        ids = body.get("job_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            return _error("job_ids must be a list")
        invalid = [i if isinstance(i, str) else repr(i) for i in ids if not valid_job_id(i)]
        if invalid:
            return web.json_response({"error": "job_ids contains invalid id(s)", "invalid_ids": invalid}, status=400)
        cancelled = False
        for job_id in ids:
            cancelled = cancel(job_id) or cancelled
        return web.json_response({"cancelled": cancelled})
