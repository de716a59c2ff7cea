"""Webhooks in the Standard Webhooks format (issue 15 item 4), verified with the `standardwebhooks`
library as a receiver would: whsec_ and plain secrets, the same webhook-id on every retry with a fresh
timestamp and signature, the replay window, and the older X-LinkPix-Signature beside it (or not)."""

from __future__ import annotations

import base64
import json
import os
import time

import pytest
from jobs_support import JobsServer, Receiver, wait_until
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from linkpix.jobs.webhooks import SIGNATURE_HEADER, standard_signature, verify

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


def test_a_whsec_secret_signs_what_the_standard_library_verifies(jobs, receiver):
    job_id = jobs.submit(prompt="standard hook", webhook_url=receiver.url, webhook_secret=SECRET)
    assert receiver.got.wait(20)
    headers, body = receiver.calls[0]
    payload = Webhook(SECRET).verify(body, headers)
    assert payload["job_id"] == job_id and payload["status"] == "succeeded"
    assert payload["type"] == "job.succeeded" and payload["timestamp"].endswith("Z")
    assert headers["webhook-id"] == f"msg_{job_id}"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert headers["webhook-signature"].startswith("v1,")
    assert verify(SECRET, body, headers[SIGNATURE_HEADER])  # the older header too, by default
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(os.urandom(32)).decode()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):  # a changed body no longer verifies
        Webhook(SECRET).verify(body.replace(b"succeeded", b"failed!!!"), headers)


def test_a_plain_secret_is_its_bytes_and_the_legacy_header_can_be_turned_off(project, simulator, receiver):
    server = JobsServer(project, simulator.url, webhook_legacy_signature=False)
    try:
        server.submit(prompt="plain secret hook", webhook_url=receiver.url, webhook_secret="s3cret")
        assert receiver.got.wait(20)
        headers, body = receiver.calls[0]
        assert Webhook(b"s3cret").verify(body, headers)["status"] == "succeeded"
        assert SIGNATURE_HEADER not in headers
    finally:
        server.close()


def test_without_a_secret_id_and_timestamp_still_come(jobs, receiver):
    job_id = jobs.submit(prompt="unsigned hook", webhook_url=receiver.url)
    assert receiver.got.wait(20)
    headers, _ = receiver.calls[0]
    assert headers["webhook-id"] == f"msg_{job_id}" and headers["webhook-timestamp"].isdigit()
    assert "webhook-signature" not in headers and SIGNATURE_HEADER not in headers


def test_every_retry_keeps_the_id_and_is_signed_anew(project, simulator):
    flaky = Receiver(statuses=[503, 502])
    server = JobsServer(project, simulator.url, webhook_backoff=0.6)
    try:
        job_id = server.submit(prompt="retried standard hook", webhook_url=flaky.url, webhook_secret=SECRET)
        wait_until(lambda: len(flaky.calls) == 3, 20, "three attempts")
        ids = {headers["webhook-id"] for headers, _ in flaky.calls}
        assert ids == {f"msg_{job_id}"}  # one message: a receiver drops duplicates by this id
        for headers, body in flaky.calls:
            assert Webhook(SECRET).verify(body, headers)["job_id"] == job_id
        bodies = {body for _, body in flaky.calls}
        assert len(bodies) == 1  # the same bytes on every attempt
        stamps = [int(headers["webhook-timestamp"]) for headers, _ in flaky.calls]
        assert stamps == sorted(stamps) and stamps[-1] > stamps[0]  # each attempt its own time
    finally:
        server.close()
        flaky.close()


def test_the_replay_window_is_five_minutes(jobs, receiver):
    jobs.submit(prompt="replayed hook", webhook_url=receiver.url, webhook_secret=SECRET)
    assert receiver.got.wait(20)
    headers, body = receiver.calls[0]
    old = int(time.time()) - 6 * 60  # an attacker replaying a captured delivery, re-signed is impossible
    replayed = {**headers, "webhook-timestamp": str(old),
                "webhook-signature": standard_signature(SECRET, headers["webhook-id"], old, body)}
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(body, replayed)
    recent = int(time.time()) - 4 * 60
    fresh = {**headers, "webhook-timestamp": str(recent),
             "webhook-signature": standard_signature(SECRET, headers["webhook-id"], recent, body)}
    assert json.dumps(Webhook(SECRET).verify(body, fresh))


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not base64!", "whsec_" + base64.b64encode(b"short").decode()])
def test_a_malformed_whsec_secret_is_refused_at_once(jobs, secret):
    r = jobs.post("/generate", json={"prompt": "x", "webhook_url": "http://127.0.0.1:9/h", "webhook_secret": secret})
    assert r.status_code == 400 and r.json()["details"]["parameter"] == "webhook_secret"
    assert "24 to 64" in r.json()["message"]
