"""The dashboard's only way to generate and to read the running API's view of the world.

The dashboard never renders or runs a workflow itself: it asks the HTTP API, so there is one generation
path and what the dashboard shows is what a link would get. Every call has a timeout and every failure
becomes an `ApiError` whose message a person can act on (the API's own JSON error message when there is
one, else which URL could not be reached).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

TIMEOUT = 10.0  # s, every plain call
STREAM_READ_TIMEOUT = 30.0  # s between two lines of an event stream (the API sends keep-alives)


class ApiError(Exception):
    """A call to the LinkPix API failed; `message` says why, `status` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.details = details


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event of a job's stream."""

    kind: str
    data: dict[str, Any]


class ApiClient:
    """Small, synchronous client for the routes the dashboard uses."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    # ------------------------------------------------------------------------------ plumbing
    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        headers = {**self._headers, **kwargs.pop("headers", {})}
        try:
            return requests.request(method, self.base_url + path, headers=headers, **kwargs)
        except requests.Timeout:
            raise ApiError(f"the LinkPix API at {self.base_url} did not answer within {kwargs['timeout']:g} s")\
                from None
        except requests.RequestException as exc:
            raise ApiError(f"the LinkPix API at {self.base_url} is not reachable ({type(exc).__name__}); "
                           "is it running? (python start_server.py)") from None

    def _json(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        resp = self._request(method, path, **kwargs)
        if resp.status_code not in ok:
            raise error_from(resp)
        try:
            return resp.json()
        except ValueError:
            raise ApiError(f"{path}: the API answered {resp.status_code} with something that is not JSON",
                           resp.status_code) from None

    # ------------------------------------------------------------------------------ reading
    def health(self) -> dict[str, Any]:
        """GET /health; a 503 (ComfyUI down) is an answer too, not an error."""
        return self._json("GET", "/health", ok=(200, 503))

    def styles(self) -> dict[str, dict[str, str]]:
        return self._json("GET", "/api/styles")

    def workflows(self) -> dict[str, Any]:
        return self._json("GET", "/api/workflows")

    def workflow(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/api/workflows/{quote(name, safe='')}")

    def models(self) -> dict[str, list[Any]]:
        return self._json("GET", "/api/models")

    def jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        return self._json("GET", "/jobs", params={"limit": limit}).get("jobs", [])

    def recent_requests(self, limit: int = 25) -> list[dict[str, Any]]:
        """The API's newest /prompt, /images and job requests with their outcome, newest first."""
        return self._json("GET", "/api/requests", params={"limit": limit})

    def usage(self) -> dict[str, Any]:
        """GET /api/usage: GPU-seconds per user and day (the dashboard's key is an admin's: everyone's)."""
        return self._json("GET", "/api/usage")

    def stats_history(self) -> dict[str, Any]:
        """GET /api/stats/history: the last hour, minute by minute (the Monitor's plots)."""
        return self._json("GET", "/api/stats/history")

    def job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/jobs/{quote(job_id, safe='')}")

    def image_bytes(self, url: str) -> bytes:
        """The bytes of an image the API serves (`/images/<user>/<file>`)."""
        resp = self._request("GET", url if url.startswith("/") else "/" + url)
        if resp.status_code != 200:
            raise error_from(resp)
        return resp.content

    def get_raw(self, path_and_query: str) -> requests.Response:
        """Any GET (used to check a link the dashboard shows)."""
        return self._request("GET", path_and_query)

    # ------------------------------------------------------------------------------ edits
    def edit(self, image: bytes, prompt: str, workflow: str | None, method: str, fmt: str = "json",
             timeout: float = 600.0) -> requests.Response:
        """POST /edit (multipart): `fmt` json gives the metadata, cube the `.cube` file. Edits run while the
        call waits, so it has a long timeout of its own."""
        data = {"prompt": prompt, "method": method, "format": fmt}
        if workflow:
            data["workflow"] = workflow
        resp = self._request("POST", "/edit", files={"image": ("photo", image, "application/octet-stream")},
                             data=data, timeout=timeout)
        if resp.status_code != 200:
            raise error_from(resp)
        return resp

    # ------------------------------------------------------------------------------ characters
    def characters(self) -> list[dict[str, Any]]:
        return self._json("GET", "/api/characters").get("characters", [])

    def put_character(self, name: str, body: dict[str, Any], shared: bool = False) -> dict[str, Any]:
        return self._json("PUT", f"/api/characters/{quote(name, safe='')}", ok=(200, 201), json=body,
                          params={"scope": "shared" if shared else "user"})

    def delete_character(self, name: str, shared: bool = False) -> None:
        resp = self._request("DELETE", f"/api/characters/{quote(name, safe='')}",
                             params={"scope": "shared" if shared else "user"})
        if resp.status_code != 204:
            raise error_from(resp)

    def upload(self, data: bytes) -> str:
        """POST /uploads -> the upload id."""
        return self._json("POST", "/uploads", ok=(201,), files={"image": ("image", data, "application/octet-stream")})[
            "id"]

    # ------------------------------------------------------------------------------ jobs
    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /generate -> {job_id, status_url, events_url, ...}."""
        return self._json("POST", "/generate", ok=(202,), json=body)

    def events(self, events_url: str) -> Iterator[Event]:
        """The job's event stream, parsed, until the server ends it."""
        try:
            resp = requests.get(self.base_url + events_url, headers={**self._headers, "Accept": "text/event-stream"},
                                stream=True, timeout=(self.timeout, STREAM_READ_TIMEOUT))
        except requests.RequestException as exc:
            raise ApiError(f"could not follow the job at {self.base_url}{events_url} ({type(exc).__name__})") \
                from None
        with resp:
            if resp.status_code != 200:
                raise error_from(resp)
            try:
                yield from parse_sse(resp.iter_lines(decode_unicode=True))
            except requests.RequestException as exc:
                raise ApiError(f"the job's event stream broke off ({type(exc).__name__})") from None


def error_from(resp: requests.Response) -> ApiError:
    """The API's JSON error message (one shape for every route), or the status line."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return ApiError(str(body["message"]), resp.status_code, body.get("details"))
    return ApiError(f"the API answered {resp.status_code} {resp.reason or ''}".strip(), resp.status_code)


def parse_sse(lines: Iterator[str | None]) -> Iterator[Event]:
    """Server-Sent Events from text lines: `event:` and `data:` fields, a blank line ends an event,
    comments (keep-alives) are skipped. Data that is not a JSON object arrives as {"text": ...}."""
    kind, data = "message", []
    for line in lines:
        if line is None:
            continue
        if line == "":
            if data:
                text = "\n".join(data)
                try:
                    value = json.loads(text)
                except ValueError:
                    value = {"text": text}
                yield Event(kind, value if isinstance(value, dict) else {"value": value})
            kind, data = "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            kind = value
        elif field == "data":
            data.append(value)
