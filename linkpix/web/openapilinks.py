"""The OpenAPI links of /openapi.json: which answer feeds which next request.

A job accepted by `POST /generate` is followed at `GET /jobs/{job_id}`, an upload's id goes into a link's
`image=` or an edit's `image`, a v2 job into `/api/v2/jobs/{job_id}`... Written down as links, a client
generator (and Schemathesis' stateful run, tests/test_schemathesis.py) can walk those paths: create, then
read, follow, cancel, delete. They live in one table here rather than in the views' docstrings, since a
link names two views.
"""

from __future__ import annotations

from typing import Any

# (method, path, status) of an answer -> {link name: (method, path, parameters, request body or None)}
Link = tuple[str, str, dict[str, str], dict[str, Any] | None]

_JOB = {"job_id": "$response.body#/job_id"}
_JOB_LINKS: dict[str, Link] = {
    "GetJob": ("get", "/jobs/{job_id}", _JOB, None),
    "FollowJob": ("get", "/jobs/{job_id}/events", _JOB, None),
    "JobPreview": ("get", "/jobs/{job_id}/preview", _JOB, None),
    "CancelJob": ("delete", "/jobs/{job_id}", _JOB, None),
}
_V2_JOB = {"job_id": "$response.body#/id"}
_ASSET = {"asset_id": "$response.body#/id"}
_ASSET_LINKS: dict[str, Link] = {
    "GetAsset": ("get", "/api/v2/assets/{asset_id}", _ASSET, None),
    "AssetContent": ("get", "/api/v2/assets/{asset_id}/content", _ASSET, None),
    "DeleteAsset": ("delete", "/api/v2/assets/{asset_id}", _ASSET, None),
}
_CHARACTER = {"name": "$response.body#/name"}
_CHARACTER_LINKS: dict[str, Link] = {
    "GetCharacter": ("get", "/api/characters/{name}", _CHARACTER, None),
    "DeleteCharacter": ("delete", "/api/characters/{name}", _CHARACTER, None),
}
LINKS: dict[tuple[str, str, str], dict[str, Link]] = {
    ("post", "/generate", "202"): _JOB_LINKS,
    ("post", "/edit", "202"): _JOB_LINKS,
    ("post", "/uploads", "201"): {
        "LinkWithUpload": ("get", "/prompt/{text}", {"image": "$response.body#/id"}, None),
        "EditUpload": ("post", "/edit", {}, {"image": "$response.body#/id", "prompt": "warmer light"}),
    },
    ("post", "/api/v2/jobs", "201"): {
        "GetV2Job": ("get", "/api/v2/jobs/{job_id}", _V2_JOB, None),
        "CancelV2Job": ("post", "/api/v2/jobs/{job_id}/cancel", _V2_JOB, None),
        "V2JobWorkflow": ("get", "/api/v2/jobs/{job_id}/workflow", _V2_JOB, None),
        "V2JobLogs": ("get", "/api/v2/jobs/{job_id}/logs", _V2_JOB, None),
    },
    ("post", "/api/v2/assets", "200"): _ASSET_LINKS,
    ("post", "/api/v2/assets", "201"): _ASSET_LINKS,
    ("post", "/api/v2/assets/from-hash", "200"): _ASSET_LINKS,
    ("post", "/prompt", "200"): {
        "PromptHistory": ("get", "/history/{prompt_id}", {"prompt_id": "$response.body#/prompt_id"}, None),
    },
    ("put", "/api/characters/{name}", "200"): _CHARACTER_LINKS,
    ("put", "/api/characters/{name}", "201"): _CHARACTER_LINKS,
    ("post", "/upload/image", "200"): {
        "ViewUpload": ("get", "/view", {"filename": "$response.body#/name", "type": "$response.body#/type",
                                        "subfolder": "$response.body#/subfolder"}, None),
    },
}


def operation_ref(method: str, path: str) -> str:
    """A JSON pointer to an operation of this document (`~1` for `/`, RFC 6901)."""
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def add_links(document: dict[str, Any]) -> None:
    """Put LINKS into the document's responses; a link whose ends are not both documented is left out."""
    paths = document.get("paths", {})
    for (method, path, status), links in LINKS.items():
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        for name, (to_method, to_path, parameters, body) in links.items():
            if to_method not in paths.get(to_path, {}):
                continue
            link: dict[str, Any] = {"operationRef": operation_ref(to_method, to_path)}
            if parameters:
                link["parameters"] = parameters
            if body is not None:
                link["requestBody"] = body
            response.setdefault("links", {})[name] = link
