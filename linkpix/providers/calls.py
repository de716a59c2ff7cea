"""HTTP to a hosted API: one session per provider, a deadline on every call, a retry budget, and the
translation of what providers answer into LinkPix errors a person can act on.

Retries (tenacity) only for reasons that pass: a connection error, a 5xx, a 429 whose Retry-After fits in
the run's remaining time. A 401/403 (the key), a 400/422 (the request) or a content refusal is final: trying
again costs money and gives the same answer. The API key goes into a header and nowhere else: messages name
the environment variable, never its value.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import requests
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from linkpix.errors import BackendUnavailable, BadRequest, ExecutionFailed, LinkPixError, QueueFull
from linkpix.providers.spec import ProviderSpec

log = logging.getLogger(__name__)


class ProviderKeyRefused(LinkPixError):
    """The provider refused LinkPix's key (401/403): the operator's to fix, not the client's."""

    status = 502
    code = "provider_key_refused"


class ContentRefused(LinkPixError):
    """The provider's moderation refused the prompt or the picture."""

    status = 422
    code = "content_refused"


class ProviderRateLimited(QueueFull):
    """The provider says to slow down (429): the client retries after the provider's Retry-After."""

    code = "provider_rate_limited"


class Passing(Exception):
    """A failure worth one more try (connection error, 5xx, short 429)."""

    def __init__(self, error: LinkPixError) -> None:
        super().__init__(error.message)
        self.error = error


def api_key(spec: ProviderSpec) -> str:
    """The key from the environment; a clear 502 when it is missing."""
    if not spec.api_key_env:
        return ""
    key = os.environ.get(spec.api_key_env, "")
    if not key:
        raise ProviderKeyRefused(f"provider {spec.name!r} needs an API key in the environment variable "
                                 f"{spec.api_key_env}, which is not set", {"provider": spec.name})
    return key


def retry_after(resp: requests.Response, default: int = 10) -> int:
    """Seconds from a Retry-After header (seconds form), bounded to something a client can wait."""
    try:
        return max(1, min(3600, int(float(resp.headers.get("Retry-After", default)))))
    except ValueError:
        return default


def error_text(resp: requests.Response) -> str:
    """The provider's own message (OpenAI's error.message, BFL's detail), short and printable."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200].strip()
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return str(err.get("message") or err.get("code") or "")[:300]
        detail = body.get("detail") or err or body.get("message")
        return str(detail)[:300] if detail else ""
    return ""


def translate(spec: ProviderSpec, resp: requests.Response, deadline: float) -> LinkPixError | Passing:
    """What a non-2xx answer means for the client."""
    said = error_text(resp)
    where = f"provider {spec.name!r} answered HTTP {resp.status_code}"
    details = {"provider": spec.name, "status": resp.status_code}
    if resp.status_code in (401, 403):
        env = f" (check {spec.api_key_env})" if spec.api_key_env else ""
        return ProviderKeyRefused(f"{where}: it refused LinkPix's API key{env}", details)
    if resp.status_code == 429 or resp.status_code == 402:
        wait = retry_after(resp)
        error = ProviderRateLimited(f"{where}: {said or 'too many requests'}; retry in {wait} s",
                                    retry_after=wait, details=details)
        return Passing(error) if resp.status_code == 429 and time.monotonic() + wait < deadline else error
    if refusal(said):
        return ContentRefused(f"{where}: the content was refused ({said})", details)
    if resp.status_code >= 500:
        return Passing(BackendUnavailable(f"{where}: {said or 'server error'}", details))
    return BadRequest(f"{where}: {said or 'the request was refused'}", details)


def refusal(text: str) -> bool:
    """OpenAI's moderation codes and wording (content_policy_violation, moderation_blocked, safety system)."""
    lowered = text.lower()
    return any(w in lowered for w in ("content_policy", "moderation", "safety system", "content policy"))


class Caller:
    """Calls for one provider run: the session, the key, the deadline and the retry budget."""

    def __init__(self, spec: ProviderSpec, session: requests.Session, deadline: float) -> None:
        self.spec = spec
        self._session = session
        self._deadline = deadline

    def remaining(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise BackendUnavailable(f"provider {self.spec.name!r} gave no result within {self.spec.timeout:.0f} s",
                                     {"provider": self.spec.name})
        return left

    def call(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One HTTP call with retries for passing failures; raises the LinkPix error otherwise."""
        retrying = Retrying(stop=stop_after_attempt(self.spec.retries + 1),
                            wait=wait_exponential(multiplier=0.5, max=8),
                            retry=retry_if_exception(lambda e: isinstance(e, Passing)), reraise=False)
        try:
            for attempt in retrying:
                with attempt:
                    return self._once(method, url, **kwargs)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise (last.error if isinstance(last, Passing) else last) from None  # type: ignore[misc]
        raise AssertionError("unreachable")

    def _once(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        try:
            resp = self._session.request(method, url, headers=headers, timeout=min(60.0, self.remaining()),
                                         **kwargs)
        except requests.RequestException as exc:
            raise Passing(BackendUnavailable(f"provider {self.spec.name!r} did not answer: "
                                             f"{type(exc).__name__}", {"provider": self.spec.name})) from None
        if resp.ok:
            return resp
        error = translate(self.spec, resp, self._deadline)
        if isinstance(error, Passing):
            wait = error.error.retry_after if isinstance(error.error, QueueFull) else 0
            if wait:
                time.sleep(min(wait, max(0.0, self.remaining() - 1)))
            raise error
        raise error

    def download(self, url: str) -> bytes:
        """The finished picture from the URL a provider gave (no key sent: these are signed URLs)."""
        if not url.startswith(("http://", "https://")):
            raise ExecutionFailed(f"provider {self.spec.name!r} gave no usable image URL",
                                  {"provider": self.spec.name})
        return self.call("GET", url).content
