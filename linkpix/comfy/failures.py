"""Turn ComfyUI's failure reports into `linkpix.errors` values with messages a person can act on.

ComfyUI reports problems in two shapes: a 400 from POST /prompt with `node_errors` (reference §3.2-3.4)
and an `execution_error` / `execution_interrupted` message at run time, repeated in the history entry
(§5, §8.4). Both are summarised here so that every caller shows the same sentence for the same problem.
"""

from __future__ import annotations

from typing import Any

from linkpix.errors import ExecutionFailed, Interrupted, WorkflowRejected

MAX_DETAIL = 300  # characters of one error's details kept in the human message


def _clip(text: str) -> str:
    return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL - 1] + "…"


def _describe_error(error: Any) -> str:
    """`"Value not in list: sampler_name: 'foo' not in (...)"` from one node error entry."""
    if not isinstance(error, dict):
        return _clip(str(error))
    message = str(error.get("message") or error.get("type") or "invalid")
    details = error.get("details")
    return _clip(f"{message}: {details}" if details not in (None, "") else message)


def summarise_node_errors(node_errors: dict[str, Any]) -> str:
    """One line per failing node: `node 3 (KSampler): Value not in list: ...`, joined by "; "."""
    parts = []
    for node_id, entry in node_errors.items():
        entry = entry if isinstance(entry, dict) else {}
        class_type = entry.get("class_type") or "unknown class"
        errors = entry.get("errors") or []
        described = "; ".join(_describe_error(e) for e in errors) or "invalid"
        parts.append(f"node {node_id} ({class_type}): {described}")
    return "; ".join(parts)


def workflow_rejected(body: Any, status: int) -> WorkflowRejected:
    """The WorkflowRejected for a refused POST /prompt, keeping ComfyUI's `node_errors` and `error`."""
    if not isinstance(body, dict):
        text = str(body).strip() or f"HTTP {status}"
        return WorkflowRejected(f"ComfyUI refused the workflow: {_clip(text)}")
    node_errors = body.get("node_errors") if isinstance(body.get("node_errors"), dict) else {}
    error = body.get("error")
    if node_errors:
        summary = summarise_node_errors(node_errors)
    elif isinstance(error, dict):
        message = str(error.get("message") or error.get("type") or "invalid workflow")
        details = str(error.get("details") or "")
        summary = _clip(f"{message} ({details})" if details and details != message else message)
    else:
        summary = _clip(str(error or f"HTTP {status}"))
    return WorkflowRejected(f"ComfyUI refused the workflow: {summary}", node_errors, error)


def execution_failed(data: dict[str, Any], prompt_id: str) -> ExecutionFailed:
    """The ExecutionFailed for an `execution_error` payload (from the socket or from history)."""
    node_id = data.get("node_id")
    node_type = data.get("node_type")
    exception_type = data.get("exception_type")
    reason = str(data.get("exception_message") or exception_type or "unknown error").rstrip()
    where = f"node {node_id} ({node_type})" if node_id is not None else "an unknown node"
    return ExecutionFailed(f"ComfyUI failed to run prompt {prompt_id} at {where}: {_clip(reason)}",
                           node_id=None if node_id is None else str(node_id), node_type=node_type,
                           exception_type=exception_type)


def interrupted(data: dict[str, Any], prompt_id: str) -> Interrupted:
    """The Interrupted for an `execution_interrupted` payload."""
    node_id = data.get("node_id")
    where = f" at node {node_id} ({data.get('node_type')})" if node_id is not None else ""
    return Interrupted(f"ComfyUI interrupted prompt {prompt_id}{where}",
                       {"node_id": node_id, "node_type": data.get("node_type")})


def raise_for_history(entry: dict[str, Any], prompt_id: str) -> None:
    """Raise the error a finished history entry records; return quietly if it succeeded.

    The entry's `status.messages` ends with the terminal message (§5); an entry without a status
    (very old servers) counts as a success.
    """
    status = entry.get("status")
    if not isinstance(status, dict) or status.get("status_str", "success") == "success":
        return
    for message in reversed(status.get("messages") or []):
        if not (isinstance(message, (list, tuple)) and len(message) >= 2 and isinstance(message[1], dict)):
            continue
        if message[0] == "execution_error":
            raise execution_failed(message[1], prompt_id)
        if message[0] == "execution_interrupted":
            raise interrupted(message[1], prompt_id)
    raise ExecutionFailed(f"ComfyUI reports prompt {prompt_id} as {status.get('status_str')!r} "
                          "without saying why")
