"""Errors as values: each carries the HTTP status and a message a person can act on.

Every stage raises a `LinkPixError` subclass where the problem is known; one handler in the API turns
it into the single JSON error shape `{"error": code, "message": ..., "details": ...}`. Keeping the status
on the exception means no layer below the API needs to know about HTTP, yet nothing is mapped twice.
"""

from __future__ import annotations

from typing import Any

# Rules a request can break that /openapi.json cannot state, since they tie fields together or depend on this
# instance's backends and workflows (docs/api.md#rules-no-schema-states). A 400 that enforces one names it in
# `details.rule` (and in each front's own error shape); any other refusal of a schema-valid request is a bug.
RULES: dict[str, str] = {
    "max_pixels": "width x height at most max_pixels (each side alone is within the documented bounds)",
    "image_input": "an input image or mask only with a workflow that takes one, one for a workflow that needs it, "
                   "and a mask only beside an image",
    "backend_names": "models, LoRAs, VAEs and other file names must be ones the ComfyUI backends have",
    "workflow_parameter": "a workflow parameter's type, range and choices are the chosen workflow's own",
    "webhook_host": "a webhook host must resolve, and only to addresses webhooks may go to",
    "image_count": "batch_size x n_iter at most max_image_count",
    "unique_names": "a list names each thing once, whichever form names it (a LoRA as text or as an object)",
    "character": "a character named must be one of yours or a shared one (each user has their own)",
    "direct_answer": "an edit's format=cube or mask is answered at once, not as a job (async or webhook_url)",
}


class LinkPixError(Exception):
    """Base class. `code` is a stable machine-readable name; `message` is for people."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, details: Any = None, rule: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.rule: str | None = None
        if rule is not None:
            self.broke(rule)

    def broke(self, rule: str) -> LinkPixError:
        """Name the rule (one of RULES) this refusal enforces, as `details.rule`: a client, and the fuzzing
        run, can tell a request that broke a rule no schema states from one the document should have refused."""
        assert rule in RULES, rule
        self.rule = rule
        self.details = {**(self.details if isinstance(self.details, dict) else {}), "rule": rule}
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, "details": self.details}


class BadRequest(LinkPixError):
    """The request itself is wrong: a parameter, a name, a size."""

    status = 400
    code = "bad_request"


class Unauthorized(LinkPixError):
    status = 401
    code = "unauthorized"


class Forbidden(LinkPixError):
    """A valid key that may not do this (a shared character needs an admin key)."""

    status = 403
    code = "forbidden"


class NotFound(LinkPixError):
    status = 404
    code = "not_found"


class PayloadTooLarge(LinkPixError):
    """The request body is over the configured limit; it is refused before being read."""

    status = 413
    code = "payload_too_large"


class HeadersTooLarge(LinkPixError):
    """The request's header block is over the server's limit (answered by the WSGI server itself)."""

    status = 431
    code = "headers_too_large"


class UnsupportedMediaType(LinkPixError):
    status = 415
    code = "unsupported_media_type"


class QueueFull(LinkPixError):
    """Too much work is waiting; the client should retry after `retry_after` seconds."""

    status = 429
    code = "queue_full"

    def __init__(self, message: str, retry_after: int = 5, details: Any = None) -> None:
        super().__init__(message, details)
        self.retry_after = retry_after


class ConfigError(LinkPixError):
    """A configuration or shared data file is invalid; raised at start-up or on reload."""

    status = 500
    code = "config_error"


class WorkflowRejected(LinkPixError):
    """ComfyUI refused the rendered workflow at validation time (POST /prompt answered 400)."""

    status = 422
    code = "workflow_rejected"

    def __init__(self, message: str, node_errors: dict[str, Any] | None = None, error: Any = None) -> None:
        super().__init__(message, {"node_errors": node_errors or {}, "comfyui_error": error})
        self.node_errors = node_errors or {}
        self.error = error


class ExecutionFailed(LinkPixError):
    """A node raised while ComfyUI ran the workflow."""

    status = 502
    code = "execution_failed"

    def __init__(self, message: str, node_id: str | None = None, node_type: str | None = None,
                 exception_type: str | None = None) -> None:
        super().__init__(message, {"node_id": node_id, "node_type": node_type,
                                   "exception_type": exception_type})
        self.node_id = node_id
        self.node_type = node_type
        self.exception_type = exception_type


class UnsupportedOutput(LinkPixError):
    """ComfyUI saved something that is not a picture (a video, audio, a 3D model, a latent): LinkPix
    stores and serves pictures only, so the run fails naming the node rather than in the decoder."""

    status = 422
    code = "unsupported_output"

    def __init__(self, message: str, node_id: str | None, node_type: str | None, filename: str) -> None:
        super().__init__(message, {"node_id": node_id, "node_type": node_type, "filename": filename})


class Interrupted(LinkPixError):
    """The run was interrupted in ComfyUI (by us, a user, or another client)."""

    status = 502
    code = "interrupted"


class BackendUnavailable(LinkPixError):
    """ComfyUI cannot be reached or lost the prompt (for example it restarted)."""

    status = 503
    code = "backend_unavailable"


class GenerationTimeout(LinkPixError):
    """The run took longer than the configured timeout; it was interrupted or dequeued."""

    status = 504
    code = "timeout"


class ImageTooLarge(LinkPixError):
    """An input image over `max_upload_mb`, or one whose pixels would not fit in memory (a
    decompression bomb): nothing of it is stored."""

    status = 413
    code = "image_too_large"


class SharedUnavailable(LinkPixError):
    """Redis, which several replicas share their work through, does not answer: new work is refused
    (cached pictures are still served, they need no Redis)."""

    status = 503
    code = "redis_unavailable"


class StorageUnavailable(LinkPixError):
    """The shared image storage (an S3-compatible server) does not answer."""

    status = 503
    code = "storage_unavailable"


class StorageFull(LinkPixError):
    """The disk that holds the cache (or uploads) has no room: not the request's fault, nor a bug."""

    status = 507
    code = "storage_full"
