"""Webhooks of async jobs, delivered over real sockets to a receiver on 127.0.0.1: payloads, signatures,
retries with backoff (receiver down then up, 5xx), no retry on 4xx, and where webhooks may go."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from jobs_support import JobsServer, Receiver, free_port, wait_until

from linkpix.errors import BadRequest
from linkpix.jobs.webhooks import SIGNATURE_HEADER, Targets, check_url, verify


def webhook_state(server: JobsServer, job_id: str, *states: str) -> dict:
    return wait_until(lambda: (lambda w: w if w and w["state"] in states else None)(server.job(job_id)["webhook"]),
                      20, f"webhook state {states}")


def test_success_payload_is_signed_and_carries_the_images(jobs, receiver):
    job_id = jobs.submit(prompt="hooked", seed=11, image_count=2, webhook_url=receiver.url,
                         webhook_secret="s3cret", webhook_include_base64=True)
    assert receiver.got.wait(20)
    headers, body = receiver.calls[0]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == expected and verify("s3cret", body, headers[SIGNATURE_HEADER])
    assert not verify("other", body, headers[SIGNATURE_HEADER])
    payload = receiver.payloads()[0]
    job = jobs.job(job_id)
    assert payload["status"] == "succeeded" and payload["job_id"] == job_id and payload["error"] is None
    assert payload["prompt_id"] == job["prompt_ids"][-1]
    assert [i["seed"] for i in payload["images"]] == [11, 12]
    for image in payload["images"]:
        assert base64.b64decode(image["base64"]) == jobs.get(image["url"]).content
        assert image["width"] == 64 and image["height"] == 64 and image["href"].endswith(image["url"])
    webhook = webhook_state(jobs, job_id, "delivered")
    assert [a["status"] for a in webhook["attempts"]] == [200] and webhook["signed"] is True
    assert "s3cret" not in str(job)


def test_failure_payload_names_the_node_and_is_unsigned_without_secret(jobs, receiver, simulator):
    simulator.faults.fail_class = "KSampler"
    job_id = jobs.submit(prompt="doomed hook", webhook_url=receiver.url)
    assert receiver.got.wait(20)
    headers, _ = receiver.calls[0]
    payload = receiver.payloads()[0]
    assert SIGNATURE_HEADER not in headers
    assert payload["status"] == "failed" and payload["job_id"] == job_id and payload["images"] == []
    assert payload["error"]["error"] == "execution_failed"
    assert payload["error"]["details"]["node_type"] == "KSampler" and payload["prompt_id"]


def test_receiver_down_then_up_is_delivered_after_retries(project, simulator):
    port = free_port()
    server = JobsServer(project, simulator.url, webhook_backoff=0.3, webhook_attempts=6)
    hook = None
    try:
        job_id = server.submit(prompt="patient hook", webhook_url=f"http://127.0.0.1:{port}/hook",
                               webhook_secret="k")
        wait_until(lambda: len((server.job(job_id)["webhook"] or {}).get("attempts", [])) >= 2, 20,
                   "two failed attempts")
        hook = Receiver(port)
        assert hook.got.wait(20)
        webhook = webhook_state(server, job_id, "delivered")
        attempts = webhook["attempts"]
        assert len(attempts) >= 3 and attempts[-1]["status"] == 200
        assert all(a["status"] is None and "Connection" in a["error"] for a in attempts[:-1])
        gaps = [b["at"] - a["at"] for a, b in zip(attempts, attempts[1:], strict=False)]
        assert gaps[1] > gaps[0] * 1.5  # exponential backoff
        headers, body = hook.calls[0]
        assert verify("k", body, headers[SIGNATURE_HEADER])
    finally:
        server.close()
        if hook is not None:
            hook.close()


def test_5xx_is_retried_4xx_is_not(project, simulator):
    flaky = Receiver(statuses=[503, 502])
    refusing = Receiver(statuses=[404])
    server = JobsServer(project, simulator.url, webhook_backoff=0.05)
    try:
        a = server.submit(prompt="flaky receiver", webhook_url=flaky.url)
        b = server.submit(prompt="refusing receiver", webhook_url=refusing.url)
        delivered = webhook_state(server, a, "delivered")
        assert [x["status"] for x in delivered["attempts"]] == [503, 502, 200]
        failed = webhook_state(server, b, "failed")
        assert [x["status"] for x in failed["attempts"]] == [404] and len(refusing.calls) == 1
    finally:
        server.close()
        flaky.close()
        refusing.close()


def test_gives_up_after_the_configured_attempts(project, simulator):
    port = free_port()
    server = JobsServer(project, simulator.url, webhook_backoff=0.05, webhook_attempts=3)
    try:
        job_id = server.submit(prompt="nobody listens", webhook_url=f"http://127.0.0.1:{port}/")
        webhook = webhook_state(server, job_id, "failed")
        assert len(webhook["attempts"]) == 3
        assert server.job(job_id)["status"] == "succeeded"  # the job itself is unaffected
    finally:
        server.close()


@pytest.mark.parametrize("url, reason", [
    ("http://169.254.169.254/latest/meta-data", "metadata"),
    ("http://169.254.10.1/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[::ffff:169.254.169.254]/", "metadata"),
    ("http://[fd00:ec2::254]/", "metadata"),
    ("http://0.0.0.0/", "unicast"),
    ("file:///etc/passwd", "http"),
    ("http://user:pw@127.0.0.1/", "password"),
    ("http://no-such-host.invalid/", "resolved"),
])
def test_forbidden_webhook_urls(url, reason):
    with pytest.raises(BadRequest) as err:
        check_url(url, Targets())
    assert reason in err.value.message


def test_allow_list_checks_the_resolved_address():
    with pytest.raises(BadRequest) as err:
        check_url("http://localhost:9/x", Targets())  # loopback: only when webhook_allow lists it
    assert "loopback" in err.value.message and "webhook_allow" in err.value.message
    with pytest.raises(BadRequest) as err:
        check_url("http://localhost:9/x", Targets(("10.0.0.0/8",)))  # "localhost" resolves outside it
    assert "webhook_allow" in err.value.message
    assert check_url("http://localhost:9/x", Targets(("127.0.0.0/8", "::1")))
    with pytest.raises(BadRequest):
        check_url("http://localhost:9/x", Targets(("local*",)))  # a name never opens private addresses
    with pytest.raises(BadRequest):
        check_url("http://169.254.169.254/", Targets(("169.254.0.0/16",)))  # never the metadata service


def test_delivery_pending_at_shutdown_resumes_after_restart(project, simulator):
    port = free_port()
    first = JobsServer(project, simulator.url, webhook_backoff=60)  # the retry would come in a minute
    try:
        job_id = first.submit(prompt="resumed hook", webhook_url=f"http://127.0.0.1:{port}/hook")
        wait_until(lambda: (first.job(job_id)["webhook"] or {}).get("attempts"), 20, "a failed attempt")
    finally:
        first.close()
    hook = Receiver(port)
    second = JobsServer(project, simulator.url)
    try:
        assert hook.got.wait(20)
        assert hook.payloads()[0]["job_id"] == job_id and hook.payloads()[0]["status"] == "succeeded"
        webhook = webhook_state(second, job_id, "delivered")
        assert webhook["attempts"][0]["status"] is None and webhook["attempts"][-1]["status"] == 200
    finally:
        second.close()
        hook.close()
