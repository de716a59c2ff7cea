"""Which ComfyUI the simulator plays: `0.3.64` (the captures in tests/comfyui_captures) or `current`.

What changed between them, on the points a client meets, as found in ComfyUI's own code (Comfy-Org/ComfyUI
as stored by the search index in 2026; the 0.3.64 side is tag v0.3.64, commit a125cd84):

- Versions. `comfyui_version.py` at commit 20ca544e reads `__version__ = "0.38.1"` (comfyanonymous/ComfyUI
  at 071ff3e2: "0.8.1"): the minor number passed 9, so "0.38" < "0.7" as floats but not as versions.
  /system_stats reports it as `system.comfyui_version`.
- prompt_id. `server.py` (commit 002c3fb9) `post_prompt`: an absent or null `prompt_id` is minted with
  `str(uuid.uuid4())`; any other value goes through `comfy_execution/jobs.py` `validate_job_id` (commit
  172be438): `str(uuid.UUID(value)) != value` is a ValueError, answered
  `400 {"error": {"type": "invalid_prompt_id", "message": "prompt_id must be a valid UUID", "details":
  "prompt_id must be a UUID string in canonical lowercase hyphenated form; omit it to let the server
  generate one", "extra_info": {}}, "node_errors": {}}`. 0.3.64 took `str(json_data.get("prompt_id",
  uuid.uuid4()))`: anything, even `null` (which became "None").
- Jobs API. The same server.py adds `GET /api/jobs` (status=pending,in_progress,completed,failed,cancelled;
  sort_by created_at|execution_duration; sort_order; limit > 0; offset; answers `{jobs, pagination:
  {offset, limit, total, has_more}}`), `GET /api/jobs/{id}` (404 `{"error": "Job not found"}`), `POST
  /api/jobs/{id}/cancel` (`{"cancelled": bool}`, idempotent: running is interrupted, pending dequeued,
  finished or unknown a no-op) and `POST /api/jobs/cancel` (`{"job_ids": [...]}`, 400 on a malformed id).
  A job is `{id, status, priority, create_time, outputs_count, ...}` (jobs.py `normalize_queue_item` /
  `normalize_history_item`); one job also has `outputs`, `execution_status` and `workflow`.
- create_time. `post_prompt` sets `extra_data["create_time"] = int(time.time() * 1000)` before queueing, so
  queue items (index 3) and history entries (`prompt[3]`) carry it; 0.3.64 has no such key.
- `executed`. `execution.py` (commit 04e2a914) sends `register_executed_outputs(...)`'s copy of the UI
  output: `comfy_execution/asset_enrichment.py` (commit 228da558) adds `id` (the asset) and `preview_id` to
  every file entry (`filename`, `type`, on disk) when assets are on, and `comfy/cli_args.py` (commit
  03294572) says "the assets system is on by default" (`--disable-assets` turns it off). History outputs are
  the same enriched copy. A cached node's `executed` replays it (ids stripped and registered again).
- /view. server.py (002c3fb9) and `folder_paths.py` (commit 1df2885e): a "dangerous" type (HTML, XHTML,
  JavaScript, CSS, SVG, any XML, message/rfc822) is served as `application/octet-stream` with
  `Content-Disposition: attachment; filename="..."`, plus `Vary: Sec-Fetch-Dest` and `Cache-Control:
  no-store`, except an SVG fetched by an `<img>` (`Sec-Fetch-Dest: image`); every file gets
  `X-Content-Type-Options: nosniff`. 0.3.64 forced only HTML, XHTML, JavaScript and CSS to
  `application/octet-stream`, with a plain `filename="..."` disposition, and served SVG inline.
- Previews per prompt. Comfy-Org/ComfyUI pull request 11261 (merged December 2025): `extra_data.preview_method`
  (none, auto, latent2rgb, taesd; "default" is not sent) overrides `--preview-method` for that prompt.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    version: str  # what /system_stats reports, before the simulator's suffix
    strict_prompt_id: bool
    jobs_api: bool
    create_time: bool
    output_assets: bool
    view_attachment: bool
    prompt_previews: bool = False  # extra_data.preview_method overrides --preview-method per prompt


PROFILES = {
    "0.3.64": Profile("0.3.64", "0.3.64", strict_prompt_id=False, jobs_api=False, create_time=False,
                      output_assets=False, view_attachment=False),
    "current": Profile("current", "0.38.1", strict_prompt_id=True, jobs_api=True, create_time=True,
                       output_assets=True, view_attachment=True, prompt_previews=True),
}
DEFAULT = "0.3.64"

INVALID_PROMPT_ID = {
    "type": "invalid_prompt_id", "message": "prompt_id must be a valid UUID",
    "details": "prompt_id must be a UUID string in canonical lowercase hyphenated form; omit it to let the "
               "server generate one",
    "extra_info": {}}
DANGEROUS_TYPES = frozenset({
    "text/html", "text/html-sandboxed", "application/xhtml+xml", "text/javascript", "application/javascript",
    "application/x-javascript", "application/ecmascript", "text/css", "image/svg+xml", "application/xml",
    "text/xml", "message/rfc822"})
OLD_FORCED_DOWNLOAD = frozenset({"text/html", "text/html-sandboxed", "application/xhtml+xml", "text/javascript",
                                 "text/css"})


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown simulator profile {name!r}; use one of: {', '.join(PROFILES)}") from None


def valid_job_id(value: object) -> bool:
    """comfy_execution/jobs.py validate_job_id: a string in canonical lowercase hyphenated UUID form."""
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def is_dangerous(content_type: str | None) -> bool:
    """folder_paths.is_dangerous_content_type (today's)."""
    if not content_type:
        return False
    normalized = content_type.split(";", 1)[0].strip().lower()
    return normalized in DANGEROUS_TYPES or normalized.endswith(("+xml", "/xml"))


def asset_id(kind: str, subfolder: str, filename: str) -> str:
    """A stable asset id per file (the same file is the same asset, as ComfyUI's database has it)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"comfyui-asset:{kind}/{subfolder}/{filename}"))


def with_assets(output: dict) -> dict:
    """The UI output with `id` and `preview_id` on every file entry (asset_enrichment._enrich_in_place;
    an image is its own preview)."""
    enriched: dict = {}
    for key, entries in output.items():
        if not isinstance(entries, list):
            enriched[key] = entries
            continue
        items = []
        for entry in entries:
            if isinstance(entry, dict) and "filename" in entry and "type" in entry:
                entry = dict(entry)
                entry["id"] = asset_id(str(entry["type"]), str(entry.get("subfolder") or ""), str(entry["filename"]))
                entry["preview_id"] = entry["id"]
            items.append(entry)
        enriched[key] = items
    return enriched
