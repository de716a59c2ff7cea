"""Webhooks for async jobs: where they may go, how they are signed, and delivery with retries.

A webhook URL comes from a client, and LinkPix will POST to it from inside the network it runs in, so the
URL is checked twice: when the job is accepted (a bad URL is a 400 at once) and before every attempt
(DNS may have changed). The check looks at every address the host *resolves* to, not at the text: a name
that points at 169.254.169.254 is refused like the address itself. Redirects are not followed, since a
redirect could lead anywhere.

Delivery runs on its own small thread pool, never on a job worker, with the retry schedule from the
settings (tenacity: exponential backoff), and every attempt is reported back so it can be recorded on the
job. The body is serialised once, so every attempt carries the same bytes and the same signature.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, stop_when_event_set
from tenacity.wait import wait_exponential

from ..errors import BadRequest

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-LinkPix-Signature"
# Cloud metadata services (AWS/GCP/Azure/OpenStack, AWS IPv6, Alibaba) are never a webhook target.
METADATA = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"))

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def sign(secret: str, body: bytes) -> str:
    """The value of the X-LinkPix-Signature header: `sha256=` + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does: recompute and compare in constant time."""
    return hmac.compare_digest(sign(secret, body), header or "")


def _forbidden(ip: IPAddress) -> str | None:
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    if ip in METADATA:
        return "a cloud metadata address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast or ip.is_unspecified:
        return "not a unicast address"
    return None


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise BadRequest(f"webhook host {host!r} cannot be resolved: {exc}",
                         {"parameter": "webhook_url"}) from None
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def _allowed_by_list(host: str, addresses: list[IPAddress], allow: list[str]) -> bool:
    for entry in allow:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            if fnmatch.fnmatch(host.lower(), entry.lower()):
                return True
            continue
        if addresses and all(a in network for a in addresses):
            return True
    return False


def check_url(url: Any, allow: list[str]) -> str:
    """Return `url` if LinkPix may POST to it, else BadRequest saying why (resolves the host)."""
    if not isinstance(url, str) or not url:
        raise BadRequest("webhook_url must be an http(s) URL", {"parameter": "webhook_url"})
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise BadRequest("webhook_url has an invalid port", {"parameter": "webhook_url"}) from None
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise BadRequest(f"webhook_url must be an http:// or https:// URL with a host (got {url!r})",
                         {"parameter": "webhook_url"})
    if parts.username or parts.password:
        raise BadRequest("webhook_url must not carry a user name or password; use webhook_secret",
                         {"parameter": "webhook_url"})
    addresses = _resolve(host, port)
    for address in addresses:
        reason = _forbidden(address)
        if reason:
            raise BadRequest(f"webhook_url {host!r} resolves to {address}, {reason}; webhooks may not go "
                             "there", {"parameter": "webhook_url"})
    if allow and not _allowed_by_list(host, addresses, allow):
        raise BadRequest(f"webhook_url host {host!r} is not in the webhook_allow list",
                         {"parameter": "webhook_url", "allowed": allow})
    return url


@dataclass(frozen=True)
class Schedule:
    """How hard to try: `attempts` tries, waiting `backoff`, 2x, 4x... seconds between them."""

    attempts: int
    backoff: float
    timeout: float
    allow: tuple[str, ...] = ()


class _Retryable(Exception):
    """A connection error or a 5xx answer: worth another try."""


AttemptCallback = Callable[[dict[str, Any]], None]
DoneCallback = Callable[[bool], None]


class WebhookSender:
    """Delivers signed JSON payloads in the background; `close()` stops retries at once."""

    def __init__(self, schedule: Callable[[], Schedule], workers: int = 4) -> None:
        self._schedule = schedule
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhook")
        self._stop = threading.Event()
        self._session = requests.Session()

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._session.close()

    def send(self, url: str, payload: dict[str, Any], secret: str | None,
             on_attempt: AttemptCallback, on_done: DoneCallback) -> None:
        """Queue one delivery; `on_attempt` gets a record per try, `on_done(delivered)` the outcome."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "LinkPix-Webhook/1",
                   "X-LinkPix-Job": str(payload.get("job_id")), "X-LinkPix-Event": str(payload.get("status"))}
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, body)
        self._pool.submit(self._deliver, url, body, headers, on_attempt, on_done)

    def _deliver(self, url: str, body: bytes, headers: dict[str, str], on_attempt: AttemptCallback,
                 on_done: DoneCallback) -> None:
        schedule = self._schedule()
        retrying = Retrying(
            stop=stop_after_attempt(schedule.attempts) | stop_when_event_set(self._stop),
            wait=wait_exponential(multiplier=schedule.backoff, min=0, max=max(schedule.backoff, 1) * 64),
            retry=retry_if_exception_type(_Retryable),
            sleep=self._stop.wait,
            reraise=False,
        )
        delivered = False
        try:
            for attempt in retrying:
                with attempt:
                    delivered = self._attempt(url, body, headers, schedule,
                                              attempt.retry_state.attempt_number, on_attempt)
        except RetryError:
            delivered = False
        except Exception:  # never let a callback bug kill the pool thread silently
            log.exception("webhook delivery to %s failed unexpectedly", url)
        if self._stop.is_set() and not delivered:
            return  # shutting down: the delivery stays pending and is resumed after a restart
        try:
            on_done(delivered)
        except Exception:
            log.exception("recording the webhook outcome failed")

    def _attempt(self, url: str, body: bytes, headers: dict[str, str], schedule: Schedule, number: int,
                 on_attempt: AttemptCallback) -> bool:
        record: dict[str, Any] = {"attempt": number, "at": time.time(), "status": None, "error": None}
        started = time.monotonic()
        retry = False
        try:
            check_url(url, list(schedule.allow))  # DNS may have changed since the job was accepted
            response = self._session.post(url, data=body, headers={**headers, "X-LinkPix-Attempt": str(number)},
                                          timeout=schedule.timeout, allow_redirects=False)
            record["status"] = response.status_code
            retry = response.status_code >= 500
            if not 200 <= response.status_code < 300:
                record["error"] = f"HTTP {response.status_code}"
        except BadRequest as exc:
            record["error"] = exc.message
        except requests.RequestException as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"[:300]
            retry = True
        record["ms"] = round((time.monotonic() - started) * 1000)
        on_attempt(record)
        if retry:
            raise _Retryable(record["error"])
        return record["error"] is None
