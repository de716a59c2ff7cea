"""Rate limits (issue 15 item 3): per user and per client address, by class, answered with 429,
Retry-After and the RateLimit fields (draft-ietf-httpapi-ratelimit-headers-11), a picture for <img>
clients, recovery once the window moves on, and X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import io
import ipaddress
import json
from pathlib import Path

import pytest
import requests
from fronts_support import FrontServer
from jobs_support import JobsServer, wait_until
from PIL import Image

from linkpix.ops.ratelimit import address_key, client_address, parse_networks

# Slow (docs/testing.md): rate limits through running APIs, windows that must pass: seconds each.
pytestmark = pytest.mark.slow

IMG = {"Accept": "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"}


def png(seed: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (seed % 256, 40, 90)).save(out, "PNG")
    return out.getvalue()


def fields(r) -> tuple[str, str]:
    return r.headers.get("RateLimit-Policy", ""), r.headers.get("RateLimit", "")


@pytest.fixture
def limited(project, simulator):
    servers = []

    def start(**overrides) -> JobsServer:
        server = JobsServer(project, simulator.url, **overrides)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_new_pictures_per_address_answer_429_with_the_fields_and_cached_ones_pass(limited):
    server = limited(rate_limits_address={"links": "2/minute"})
    first = server.get("/prompt/limited%20one?width=64&height=64")
    assert first.status_code == 200
    assert fields(first) == ('"links-address";q=2;w=60', f'"links-address";r=1;t={fields(first)[1][-2:]}')
    assert server.get("/prompt/limited%20two?width=64&height=64").status_code == 200
    refused = server.get("/prompt/limited%20three?width=64&height=64")
    assert refused.status_code == 429
    body = refused.json()
    assert body["error"] == "rate_limited" and "2 per minute" in body["message"]
    assert "from this address" in body["message"] and body["details"]["class"] == "links"
    retry = int(refused.headers["Retry-After"])
    assert 1 <= retry <= 60 and body["details"]["retry_after"] == retry
    policy, current = fields(refused)
    assert policy == '"links-address";q=2;w=60' and current == f'"links-address";r=0;t={retry}'
    assert f"try again in {retry} s" in body["message"]
    # a picture already made is a hit, and hits are not limited by default
    again = server.get("/prompt/limited%20one?width=64&height=64")
    assert again.status_code == 200 and again.headers["X-LinkPix-Cache"] == "hit"
    # an <img> gets the same 429 as a picture that says when to retry, never a 200 placeholder
    shown = server.get("/prompt/limited%20four?width=64&height=64", headers=IMG)
    assert shown.status_code == 429 and shown.headers["Content-Type"] == "image/png"
    assert shown.headers["Retry-After"] and Image.open(io.BytesIO(shown.content)).format == "PNG"


def test_a_refused_request_costs_nothing_and_the_limit_recovers(limited):
    server = limited(rate_limits_address={"uploads": "1 per 3 seconds"})
    assert server.post("/uploads", data=png(1), headers={"Content-Type": "image/png"}).status_code == 201
    refused = server.post("/uploads", data=png(2), headers={"Content-Type": "image/png"})
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 3
    recovered = wait_until(lambda: (lambda r: r if r.status_code == 201 else None)(
        server.post("/uploads", data=png(3), headers={"Content-Type": "image/png"})), 10, "the window to move on")
    assert fields(recovered)[1] == '"uploads-address";r=0;t=3'


def test_jobs_are_limited_per_user_each_key_and_each_named_user_apart(limited):
    keys = {"k-alice": "alice", "k-bob": "bob"}
    server = limited(rate_limits_user={"jobs": "1/minute"}, api_keys=keys)
    alice, bob = {"X-API-Key": "k-alice"}, {"X-API-Key": "k-bob"}
    job = {"prompt": "a limited job", "width": 64, "height": 64}
    assert server.post("/generate", json=job, headers=alice).status_code == 202
    refused = server.post("/generate", json=job, headers=alice)
    assert refused.status_code == 429 and "for user 'alice'" in refused.json()["message"]
    assert fields(refused)[0] == '"jobs-user";q=1;w=60'
    assert server.post("/generate", json=job, headers=bob).status_code == 202
    # naming alice without her key counts apart from her key: nobody can use up her quota by name
    assert server.post("/generate", json={**job, "user": "alice"}).status_code == 202
    assert server.post("/generate", json={**job, "user": "alice"}).status_code == 429


def test_several_rates_of_one_class_are_all_kept(limited):
    server = limited(rate_limits_user={"uploads": "5/minute;1/hour"})
    assert server.post("/uploads", data=png(4), headers={"Content-Type": "image/png"}).status_code == 201
    refused = server.post("/uploads", data=png(5), headers={"Content-Type": "image/png"})
    assert refused.status_code == 429 and "1 per hour" in refused.json()["message"]
    policy, current = fields(refused)
    assert policy == '"uploads-user-60s";q=5;w=60, "uploads-user-3600s";q=1;w=3600'
    assert current.startswith('"uploads-user-60s";r=4;') and '"uploads-user-3600s";r=0;' in current
    assert refused.json()["details"]["policies"] == ["uploads-user-3600s"]


def test_hits_when_limited_skip_the_fast_path_and_count(limited):
    server = limited(rate_limits_address={"hits": "2/minute"})
    link = "/prompt/often%20seen?width=64&height=64"
    assert server.get(link).status_code == 200  # made: a new picture, not a hit
    assert [server.get(link).status_code for _ in range(3)] == [200, 200, 429]
    assert server.get("/images/default/" + "0" * 32 + ".png").status_code == 429  # stored images are hits too


def test_forwarded_for_counts_only_behind_a_trusted_proxy(limited):
    trusting = limited(rate_limits_address={"uploads": "1/minute"}, trusted_proxies=["127.0.0.1"])

    def upload(server: JobsServer, client: str, seed: int) -> int:
        headers = {"Content-Type": "image/png", "X-Forwarded-For": f"198.51.100.7, {client}"}
        return server.post("/uploads", data=png(seed), headers=headers).status_code

    assert upload(trusting, "203.0.113.5", 6) == 201
    assert upload(trusting, "203.0.113.5", 7) == 429
    assert upload(trusting, "203.0.113.6", 8) == 201  # another client behind the same proxy
    naive = limited(rate_limits_address={"uploads": "1/minute"})
    assert upload(naive, "203.0.113.5", 9) == 201
    assert upload(naive, "203.0.113.99", 10) == 429  # not trusted: a client cannot pick its own address


def test_client_address_rules():
    trusted = parse_networks(["10.0.0.0/8", "127.0.0.1"])
    env = {"REMOTE_ADDR": "10.1.2.3", "HTTP_X_FORWARDED_FOR": "1.2.3.4, 203.0.113.9, 10.9.9.9"}
    assert client_address(env, trusted) == "203.0.113.9"  # the right-most hop no trusted proxy wrote
    assert client_address(env, ()) == "10.1.2.3"
    assert client_address({**env, "REMOTE_ADDR": "192.0.2.1"}, trusted) == "192.0.2.1"
    assert client_address({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "nonsense"}, trusted) == "127.0.0.1"
    assert client_address({"REMOTE_ADDR": "127.0.0.1"}, trusted) == "127.0.0.1"
    # an IPv6 client counts by its /64; an IPv4-mapped address as the IPv4 one
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff:1") != address_key("2001:db8:0:1::1")
    assert address_key("::ffff:192.0.2.1") == address_key("192.0.2.1") == "addr:192.0.2.1"
    assert isinstance(trusted[0], ipaddress.IPv4Network)


def test_bad_rate_settings_stop_start_up_with_a_clear_message(project, simulator):
    from linkpix.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        JobsServer(project, simulator.url, rate_limits_user={"images": "3/minute"})
    assert "unknown class 'images'" in err.value.message and "links, jobs, uploads, hits" in err.value.message
    with pytest.raises(ConfigError) as err:
        JobsServer(project, simulator.url, rate_limits_address={"links": "lots"})
    assert "'lots' is not a rate" in err.value.message


def test_the_fronts_answer_a_limit_in_their_own_dialects(project, simulator):
    """A1111, OpenAI and ComfyUI clients get a 429 shaped as their tool expects, with Retry-After and the
    RateLimit fields; a batch is judged whole, before anything runs."""
    server = FrontServer(project, simulator.url, rate_limits_address={"links": "2/minute"})
    try:
        url = server.url
        big = requests.post(url + "/v1/images/generations", timeout=60,
                            json={"prompt": "a batch too big", "n": 3, "size": "64x64"})
        assert big.status_code == 429 and big.json()["error"]["type"] == "rate_limit_error"
        assert "3 new pictures at once" in big.json()["error"]["message"]
        assert simulator_runs(server) == 0  # nothing ran for a refused batch
        made = requests.post(url + "/sdapi/v1/txt2img", timeout=60,
                             json={"prompt": "two at once", "width": 64, "height": 64, "steps": 2, "batch_size": 2})
        assert made.status_code == 200 and len(made.json()["images"]) == 2
        assert fields(made)[1].startswith('"links-address";r=0;')
        a1111 = requests.post(url + "/sdapi/v1/txt2img", timeout=60,
                              json={"prompt": "one more", "width": 64, "height": 64, "steps": 2})
        assert a1111.status_code == 429 and a1111.json()["error"] == "HTTPException"
        assert int(a1111.headers["Retry-After"]) >= 1 and fields(a1111)[0] == '"links-address";q=2;w=60'
        openai_style = requests.post(url + "/v1/images/generations", timeout=60,
                                     json={"prompt": "and another", "size": "64x64"})
        assert openai_style.status_code == 429 and openai_style.json()["error"]["code"] == "rate_limit_exceeded"
        graph = json.loads((Path(__file__).resolve().parent.parent / "workflows" / "demo.json").read_text())
        graph["2"]["inputs"]["text"] = "a comfy client's picture"
        comfy = requests.post(url + "/comfy/prompt", json={"prompt": graph}, timeout=60)
        assert comfy.status_code == 429 and comfy.json()["error"]["type"] == "rate_limited"
        assert comfy.headers["Retry-After"] and "RateLimit" in comfy.headers
    finally:
        server.close()


def simulator_runs(server) -> int:
    return server.services.generator.runs_started
