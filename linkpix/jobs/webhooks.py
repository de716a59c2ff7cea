"""Webhooks for async jobs: where they may go, how they are signed, and delivery with retries.

A webhook URL comes from a client, and LinkPix will POST to it from inside the network it runs in, so the
URL is checked (`targets.py`: never ComfyUI, never LinkPix, private addresses only when allowed) when
the job is accepted (a bad URL is a 400 at once) and again by every connection, on the address it
connects to. Redirects are not followed, since a redirect could lead anywhere.

Signatures follow Standard Webhooks (standardwebhooks.com), which receivers' frameworks and Svix's
libraries verify: `webhook-id` (the same on every retry of one delivery, so a receiver can drop
duplicates), `webhook-timestamp` (the attempt's time: receivers refuse one more than five minutes
away, which bounds replays) and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
A `whsec_` secret is base64, as the standard has it; any other secret is used as its UTF-8 bytes. The
older `X-LinkPix-Signature: sha256=<hex HMAC of the body>` is sent beside it (unless
`webhook_legacy_signature` is off), so receivers written before keep working.

Delivery runs on its own small thread pool, never on a job worker, with the retry schedule from the
settings (tenacity: exponential backoff), and every attempt is reported back so it can be recorded on the
job. The body is serialised once, so every attempt carries the same bytes; each attempt is signed anew,
with its own timestamp.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, stop_when_event_set
from tenacity.wait import wait_exponential

from linkpix.errors import BadRequest
from linkpix.jobs.store import Job
from linkpix.jobs.targets import PinnedAdapter, Targets, check_url

__all__ = ["SIGNATURE_HEADER", "Schedule", "Targets", "WebhookSender", "check_secret", "check_url", "iso_time",
           "job_payload", "sign", "standard_signature", "verify"]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-LinkPix-Signature"
SECRET_PREFIX = "whsec_"
# Standard Webhooks: "secrets should be between 24 bytes (192 bits) and 64 bytes (512 bits)".
SECRET_BYTES = (24, 64)


def sign(secret: str, body: bytes) -> str:
    """The value of the X-LinkPix-Signature header: `sha256=` + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does: recompute and compare in constant time."""
    return hmac.compare_digest(sign(secret, body), header or "")


def iso_time(ts: float | None) -> str | None:
    """A time as Standard Webhooks payloads write it (RFC 3339, UTC)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def job_payload(job: Job, image_base64: Callable[[str, str], str | None]) -> dict[str, Any]:
    """The body of a finished job's webhook: its state, images (with base64 when asked) and error.

    `type` and `timestamp` are the fields Standard Webhooks recommends; the rest is the job's own shape.
    """
    include = bool(job.webhook and job.webhook.get("include_base64"))
    images = []
    for image in job.images:
        item = {"url": image["url"], "href": job.base_url.rstrip("/") + image["url"],
                "seed": image["seed"], "width": image["width"], "height": image["height"]}
        if include:
            item["base64"] = image_base64(job.user, image["url"])
        images.append(item)
    return {"type": f"job.{job.state}", "timestamp": iso_time(job.finished),
            "status": job.state, "job_id": job.id, "prompt_id": job.prompt_ids[-1] if job.prompt_ids else None,
            "prompt_ids": job.prompt_ids, "images": images, "error": job.error}


def secret_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks signature: a `whsec_` secret's base64, else the text's bytes."""
    if secret.startswith(SECRET_PREFIX):
        return base64.b64decode(secret[len(SECRET_PREFIX):] + "==")
    return secret.encode()


def check_secret(secret: str) -> None:
    """A `whsec_` secret must be the base64 of 24 to 64 bytes, as the standard has it (400 otherwise)."""
    if not secret.startswith(SECRET_PREFIX):
        return
    text = secret[len(SECRET_PREFIX):].rstrip("=")
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    low, high = SECRET_BYTES
    if not low <= len(key) <= high:
        raise BadRequest(f"a webhook_secret starting with {SECRET_PREFIX} must be the base64 of {low} to {high} "
                         "random bytes (Standard Webhooks); make one with: python3 -c \"import base64, os; "
                         "print('whsec_' + base64.b64encode(os.urandom(32)).decode())\"",
                         {"parameter": "webhook_secret"})


def standard_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret_key(secret), signed, hashlib.sha256).digest()).decode()


@dataclass(frozen=True)
class Schedule:
    """How hard to try: `attempts` tries, waiting `backoff`, 2x, 4x... seconds between them."""

    attempts: int
    backoff: float
    timeout: float
    targets: Targets = field(default_factory=Targets)
    legacy_signature: bool = True  # also send X-LinkPix-Signature


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
        self.observe: Callable[[str], None] | None = None  # the metrics: "delivered", "failed", "attempt:5xx"

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._session.close()

    def send(self, url: str, payload: dict[str, Any], secret: str | None,
             on_attempt: AttemptCallback, on_done: DoneCallback, message_id: str | None = None) -> None:
        """Queue one delivery; `on_attempt` gets a record per try, `on_done(delivered)` the outcome.
        `message_id` (default: `msg_` + the job id) is the `webhook-id` of every attempt."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "LinkPix-Webhook/1",
                   "X-LinkPix-Job": str(payload.get("job_id")), "X-LinkPix-Event": str(payload.get("status")),
                   "webhook-id": message_id or f"msg_{payload.get('job_id')}"}
        self._pool.submit(self._deliver, url, body, headers, secret, on_attempt, on_done)

    def _signed(self, headers: dict[str, str], body: bytes, secret: str | None, schedule: Schedule,
                number: int) -> dict[str, str]:
        """One attempt's headers: its own timestamp, and the signatures over it."""
        timestamp = int(time.time())
        signed = {**headers, "webhook-timestamp": str(timestamp), "X-LinkPix-Attempt": str(number)}
        if secret:
            signed["webhook-signature"] = standard_signature(secret, headers["webhook-id"], timestamp, body)
            if schedule.legacy_signature:
                signed[SIGNATURE_HEADER] = sign(secret, body)
        return signed

    def _deliver(self, url: str, body: bytes, headers: dict[str, str], secret: str | None,
                 on_attempt: AttemptCallback, on_done: DoneCallback) -> None:
        try:
            schedule = self._schedule()
        except Exception:  # on a pool thread an exception would vanish: say it, the delivery stays pending
            log.exception("webhook delivery to %s could not start", url)
            return
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
                    number = attempt.retry_state.attempt_number
                    delivered = self._attempt(url, body, self._signed(headers, body, secret, schedule, number),
                                              schedule, number, on_attempt)
        except RetryError:
            delivered = False
        except Exception:  # never let a callback bug kill the pool thread silently
            log.exception("webhook delivery to %s failed unexpectedly", url)
        if self._stop.is_set() and not delivered:
            return  # shutting down: the delivery stays pending and is resumed after a restart
        self._observe("delivered" if delivered else "failed")
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
            response = self._session.post(url, data=body, headers=headers, timeout=schedule.timeout,
                                          allow_redirects=False)
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
        status = record["status"]
        self._observe("attempt:" + (f"{status // 100}xx" if status else "refused" if not retry else "error"))
        on_attempt(record)
        if retry:
            raise _Retryable(record["error"])
        return record["error"] is None

    def _observe(self, outcome: str) -> None:
        if self.observe is not None:
            try:
                self.observe(outcome)
            except Exception:
                log.exception("counting a webhook outcome failed")
