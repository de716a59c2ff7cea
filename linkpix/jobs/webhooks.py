"""Webhooks for async jobs: where they may go, how they are signed, and delivery with retries.

A webhook URL comes from a client, and LinkPix will POST to it from inside the network it runs in, so the
URL is checked (`targets.py`: never ComfyUI, never LinkPix, private addresses only when allowed) when
the job is accepted (a bad URL is a 400 at once) and again by every connection, on the address it
connects to. Redirects are not followed, since a redirect could lead anywhere.

Delivery runs on its own small thread pool, never on a job worker, with the retry schedule from the
settings (tenacity: exponential backoff), and every attempt is reported back so it can be recorded on the
job. The body is serialised once, so every attempt carries the same bytes and the same signature.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, stop_when_event_set
from tenacity.wait import wait_exponential

from ..errors import BadRequest
from .targets import PinnedAdapter, Targets, check_url

__all__ = ["SIGNATURE_HEADER", "Schedule", "Targets", "WebhookSender", "check_url", "sign", "verify"]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-LinkPix-Signature"


def sign(secret: str, body: bytes) -> str:
    """The value of the X-LinkPix-Signature header: `sha256=` + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does: recompute and compare in constant time."""
    return hmac.compare_digest(sign(secret, body), header or "")


@dataclass(frozen=True)
class Schedule:
    """How hard to try: `attempts` tries, waiting `backoff`, 2x, 4x... seconds between them."""

    attempts: int
    backoff: float
    timeout: float
    targets: Targets = field(default_factory=Targets)


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
        self._session.trust_env = False  # no proxy from the environment: the address checked is the one used
        adapter = PinnedAdapter(lambda: self._schedule().targets)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

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
            # The connection checks the rules again, on the address it connects to (DNS may have
            # changed since the job was accepted; a check made apart from the connection could be
            # answered differently from the connection's own lookup).
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
