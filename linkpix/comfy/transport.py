"""HTTP to one ComfyUI backend: one `requests.Session`, timeouts on every call, errors as values.

Two timeouts: *control* calls (submit, queue, interrupt, history, system stats, the keeper's probe) must
answer within `control_timeout` (1.5 s), because a caller waits on them; *data* calls (object_info, /view,
uploads) may take `read_timeout`. Every outcome is reported to the backend's `Health`, and while the
backend is known to be frozen every call but a probe fails at once instead of waiting for its timeout.

Idempotent GETs are retried on 502/503/504 by urllib3's `Retry`; connection failures are not retried
there (urllib3 would log a warning per retry, and the caller or the keeper tries again anyway). Every
network failure becomes `BackendUnavailable` naming the URL, so callers above never see a `requests`
exception.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

from linkpix.comfy.health import FROZEN, REFUSED, Health
from linkpix.errors import BackendUnavailable, ConfigError

log = logging.getLogger(__name__)

CONTROL_TIMEOUT = 1.5  # s a control call may take: a link's 503 must come within 2 s


class BackendNotAnswering(BackendUnavailable):
    """ComfyUI accepted the connection but did not answer in time (frozen), or is known to be frozen."""


def display_url(base_url: str) -> str:
    """The URL without user and password, for logs, errors and /health."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return f"{parts.scheme}://{netloc}{parts.path}"


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


def _chain_has(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """Whether a requests/urllib3 error chain holds one of `kinds` (they nest it in `reason` or args)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, kinds):
            return True
        nested = [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        current = getattr(current, "reason", None) or (nested[0] if nested else None) \
            or current.__cause__ or current.__context__
    return False


def never_sent(exc: BaseException) -> bool:
    """Whether a failed request certainly never reached ComfyUI (no connection was made)."""
    return _chain_has(exc, (NewConnectionError, ConnectTimeoutError, requests.ConnectTimeout))


def settle_environment(session: requests.Session, base_url: str) -> None:
    """Read once what `requests` would read from the environment on every call (a proxy for this URL,
    `NO_PROXY`, a CA bundle, ~/.netrc) and stop it looking again: that lookup was 0.2 ms of every call to
    ComfyUI, several of which stand between a job and its answer. The environment is the service's start-up
    environment either way; a proxy that applies to the backend is still used."""
    proxies = requests.utils.get_environ_proxies(base_url)
    if proxies:
        session.proxies.update(proxies)
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    auth = requests.utils.get_netrc_auth(base_url)
    if auth:
        session.auth = auth
    session.trust_env = False


class Transport:
    """Thread-safe HTTP calls to one ComfyUI; `requests.Session` pools the connections."""

    def __init__(self, base_url: str, connect_timeout: float, read_timeout: float,
                 control_timeout: float = CONTROL_TIMEOUT, health: Health | None = None) -> None:
        self.base_url = normalise_base_url(base_url)
        self.shown_url = display_url(self.base_url)
        self.timeout = (connect_timeout, read_timeout)
        self.control_timeout = (min(connect_timeout, control_timeout), control_timeout)
        self.health = health or Health(f"at {self.shown_url}")
        retry = Retry(total=2, connect=0, read=0, status=2, other=0, backoff_factor=0.1,
                      status_forcelist=(502, 503, 504), allowed_methods=frozenset({"GET", "HEAD"}),
                      raise_on_status=False, respect_retry_after_header=False)
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=32)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        settle_environment(self.session, self.base_url)

    def request(self, method: str, path: str, *, control: bool = False, probe: bool = False,
                **kwargs: Any) -> requests.Response:
        """Send one request; BackendUnavailable if ComfyUI cannot be reached or does not answer.

        `control`: the short timeout. `probe`: go through even while the backend is known to be frozen
        (only the keeper's probes do: they are how a frozen backend is found to be back).
        """
        if not probe:
            self.check_usable()
        timeout = self.control_timeout if control else self.timeout
        url = self.base_url + path
        where = f"{method} {path.split('?')[0]}"
        try:
            response = self.session.request(method, url, timeout=timeout, **kwargs)
        except requests.ConnectTimeout as exc:  # nothing accepted the connection in time: as good as frozen
            message = f"no connection within {timeout[0]:g} s"
            self.health.failed(FROZEN, message)
            raise BackendNotAnswering(f"ComfyUI at {self.shown_url} is not reachable: {message}",
                                      {"url": self.shown_url}) from exc
        except requests.ConnectionError as exc:
            if _chain_has(exc, (ReadTimeoutError, TimeoutError)):  # a GET's read timeout, via urllib3's Retry
                message = f"did not answer {where} within {timeout[1]:g} s"
                self.health.failed(FROZEN, message)
                raise BackendNotAnswering(f"ComfyUI at {self.shown_url} {message}",
                                          {"url": self.shown_url}) from exc
            reason = _reason(exc)
            self.health.failed(REFUSED, reason)
            raise BackendUnavailable(f"ComfyUI at {self.shown_url} is not reachable: {reason}",
                                     {"url": self.shown_url}) from exc
        except requests.Timeout as exc:
            message = f"did not answer {where} within {timeout[1]:g} s"
            self.health.failed(FROZEN, message)
            raise BackendNotAnswering(f"ComfyUI at {self.shown_url} {message}", {"url": self.shown_url}) from exc
        except requests.RequestException as exc:
            reason = _reason(exc)
            self.health.failed(REFUSED, reason)
            raise BackendUnavailable(f"ComfyUI at {self.shown_url} failed: {reason}",
                                     {"url": self.shown_url}) from exc
        self.health.answered()
        return response

    def check_usable(self) -> None:
        """Raise at once while the backend is known to be frozen (rather than wait for a timeout)."""
        if self.health.state == FROZEN:
            raise BackendNotAnswering(self.health.describe(), {"url": self.shown_url})

    def unexpected(self, response: requests.Response) -> BackendUnavailable:
        """The error for an answer we cannot use (5xx, unexpected 4xx, body that is not JSON)."""
        snippet = response.text[:200].strip().replace("\n", " ")
        path = urlsplit(response.url).path
        return BackendUnavailable(
            f"ComfyUI at {self.shown_url} answered HTTP {response.status_code} to "
            f"{response.request.method} {path}" + (f": {snippet}" if snippet else ""),
            {"url": self.shown_url, "status": response.status_code})

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """A call whose 200 answer is JSON; anything else is BackendUnavailable."""
        return self.answer_json(self.request(method, path, **kwargs))

    def expect_ok(self, response: requests.Response) -> requests.Response:
        """The response if it is a 200, else BackendUnavailable (`unexpected`)."""
        if response.status_code != 200:
            raise self.unexpected(response)
        return response

    def answer_json(self, response: requests.Response) -> Any:
        """A 200's JSON body; another status, or a body that is not JSON, is BackendUnavailable."""
        self.expect_ok(response)
        try:
            return response.json()
        except ValueError as exc:
            raise self.unexpected(response) from exc

    def post_json(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        """POST a JSON body (for endpoints that answer 200 with an empty body)."""
        return self.request("POST", path, data=json.dumps(body),
                            headers={"Content-Type": "application/json"}, **kwargs)

    def close(self) -> None:
        self.session.close()
