"""HTTP to one ComfyUI backend: one `requests.Session`, timeouts on every call, errors as values.

Retries are urllib3's `Retry` on the session's adapter rather than loops of our own: connection
failures are retried once (the request never left, so even POST is safe), idempotent GETs also on
502/503/504. Every network failure becomes `BackendUnavailable` naming the URL, so callers above never
see a `requests` exception.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from linkpix.errors import BackendUnavailable, ConfigError

log = logging.getLogger(__name__)


def normalise_base_url(base_url: str) -> str:
    """`http://host:port[/prefix]` without a trailing slash; ConfigError for anything else."""
    parts = urlsplit(str(base_url).strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"ComfyUI URL {base_url!r} is not an http:// or https:// URL with a host")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _reason(exc: BaseException) -> str:
    """The innermost OS-level reason ("Connection refused") of a requests/urllib3 error chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    best = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        best = current
        nested = [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        current = getattr(current, "reason", None) or (nested[0] if nested else None) \
            or current.__cause__ or current.__context__
    return type(best).__name__


class Transport:
    """Thread-safe HTTP calls to one ComfyUI; `requests.Session` pools the connections."""

    def __init__(self, base_url: str, connect_timeout: float, read_timeout: float) -> None:
        self.base_url = normalise_base_url(base_url)
        self.timeout = (connect_timeout, read_timeout)
        retry = Retry(total=3, connect=1, read=0, status=2, other=0, backoff_factor=0.1,
                      status_forcelist=(502, 503, 504), allowed_methods=frozenset({"GET", "HEAD"}),
                      raise_on_status=False, respect_retry_after_header=False)
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=32)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def request(self, method: str, path: str, *, timeout: tuple[float, float] | None = None,
                **kwargs: Any) -> requests.Response:
        """Send one request; BackendUnavailable if ComfyUI cannot be reached or does not answer."""
        url = self.base_url + path
        try:
            return self.session.request(method, url, timeout=timeout or self.timeout, **kwargs)
        except requests.ConnectionError as exc:  # includes ConnectTimeout
            raise BackendUnavailable(f"ComfyUI at {self.base_url} is not reachable: {_reason(exc)}",
                                     {"url": self.base_url}) from exc
        except requests.Timeout as exc:
            raise BackendUnavailable(
                f"ComfyUI at {self.base_url} did not answer {method} {path.split('?')[0]} "
                f"within {(timeout or self.timeout)[1]:g} s", {"url": self.base_url}) from exc
        except requests.RequestException as exc:
            raise BackendUnavailable(f"ComfyUI at {self.base_url} failed: {_reason(exc)}",
                                     {"url": self.base_url}) from exc

    def unexpected(self, response: requests.Response) -> BackendUnavailable:
        """The error for an answer we cannot use (5xx, unexpected 4xx, body that is not JSON)."""
        snippet = response.text[:200].strip().replace("\n", " ")
        path = urlsplit(response.url).path
        return BackendUnavailable(
            f"ComfyUI at {self.base_url} answered HTTP {response.status_code} to "
            f"{response.request.method} {path}" + (f": {snippet}" if snippet else ""),
            {"url": self.base_url, "status": response.status_code})

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """A call whose 200 answer is JSON; anything else is BackendUnavailable."""
        response = self.request(method, path, **kwargs)
        if response.status_code != 200:
            raise self.unexpected(response)
        try:
            return response.json()
        except ValueError as exc:
            raise self.unexpected(response) from exc

    def post_json(self, path: str, body: Any) -> requests.Response:
        """POST a JSON body (for endpoints that answer 200 with an empty body)."""
        return self.request("POST", path, data=json.dumps(body),
                            headers={"Content-Type": "application/json"})

    def close(self) -> None:
        self.session.close()
