"""The contract's error envelope, `{"error": {code, message, details}}`, and its codes.

`V2Error` carries a contract code (`invalid_workflow`, `missing_asset`, `idempotency_key_reuse`, ...);
any other LinkPix error reaching a v2 route is given the contract's nearest code here, so one handler
answers every failure in the shape the SDK types its exceptions by.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from linkpix.errors import (
    BackendUnavailable,
    BadRequest,
    LinkPixError,
    NotFound,
    PayloadTooLarge,
    QueueFull,
    SharedUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    WorkflowRejected,
)


class V2Error(LinkPixError):
    """An answer with one of the contract's codes."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(message, details)
        self.status = status
        self.code = code
        self.retry_after = retry_after


def not_found(what: str) -> V2Error:
    """The 404 for anything missing *or another user's*: the two are deliberately the same answer."""
    return V2Error(404, "not_found", f"no {what}")


def translate(exc: LinkPixError) -> V2Error:
    """A LinkPix error in the contract's terms."""
    if isinstance(exc, V2Error):
        return exc
    details = exc.details if isinstance(exc.details, dict) else None
    if isinstance(exc, QueueFull):
        return V2Error(429, "queue_full", exc.message, details, retry_after=exc.retry_after)
    if isinstance(exc, WorkflowRejected):
        return V2Error(422, "invalid_workflow", exc.message, {"node_errors": exc.node_errors})
    if isinstance(exc, NotFound):
        return V2Error(404, "not_found", exc.message)
    if isinstance(exc, Unauthorized):
        return V2Error(401, "unauthorized", exc.message)
    if isinstance(exc, PayloadTooLarge):
        return V2Error(413, "payload_too_large", exc.message, details)
    if isinstance(exc, UnsupportedMediaType):
        return V2Error(415, "invalid_request", exc.message)
    if isinstance(exc, BadRequest):
        return V2Error(400, "invalid_request", exc.message, details)
    if isinstance(exc, SharedUnavailable | BackendUnavailable):
        return V2Error(503, "upstream_unreachable", exc.message, details, retry_after=5)
    return V2Error(exc.status, exc.code, exc.message, details)


def error_response(exc: LinkPixError) -> Response:
    err = translate(exc)
    resp = jsonify({"error": {"code": err.code, "message": err.message, "details": err.details}})
    resp.status_code = err.status
    if err.retry_after is not None:
        resp.headers["Retry-After"] = str(err.retry_after)
    return resp
