"""Who may see and change what (issue 13 items 3 and 7): keys on every route, each key scoped to its own
user's jobs and requests, an admin key that sees all, /health keeping users and the ComfyUI URL for key
holders, and stray URLs answered in JSON."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from jobs_support import JobsServer, wait_until
from support import ApiServer

# Slow (docs/testing.md): each test starts the API and waits on runs: seconds on two cores.
pytestmark = pytest.mark.slow

KEYS = {"k-alice": "alice", "k-bob": "bob", "k-root": "root"}
ALICE, BOB, ROOT = ({"X-API-Key": k} for k in KEYS)


@pytest.fixture
def open_server(project, simulator) -> Iterator[JobsServer]:
    """LinkPix with network_access on, three keys, one of them an admin key."""
    server = JobsServer(project, simulator.url, network_access=True, api_keys=KEYS, admin_keys=["k-root"])
    try:
        yield server
    finally:
        server.close()


def _submit(server: JobsServer, headers: dict[str, str], prompt: str) -> str:
    r = server.post("/generate", json={"prompt": prompt, "width": 64, "height": 64}, headers=headers)
    assert r.status_code == 202, r.text
    return r.json()["job_id"]


def test_a_job_is_read_followed_and_cancelled_with_its_own_key_only(open_server):
    job_id = _submit(open_server, ALICE, "alice's secret fox")
    wait_until(lambda: open_server.get(f"/jobs/{job_id}", headers=ALICE).json()["status"] == "succeeded",
               30, "alice's job")
    assert open_server.get(f"/jobs/{job_id}").status_code == 401
    for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/events"):
        r = open_server.get(path, headers=BOB)
        assert r.status_code == 404 and r.json()["error"] == "not_found", path
    assert open_server.delete(f"/jobs/{job_id}", headers=BOB).status_code == 404
    assert open_server.get(f"/jobs/{job_id}", headers=ROOT).json()["user"] == "alice"
    with requests.get(f"{open_server.url}/jobs/{job_id}/events", headers=ALICE, stream=True, timeout=10) as r:
        assert r.status_code == 200 and "succeeded" in r.text


def test_a_key_lists_its_own_jobs_and_requests_and_an_admin_key_all(open_server):
    alice_job = _submit(open_server, ALICE, "alice's secret fox")
    bob_job = _submit(open_server, BOB, "bob's owl")
    assert [j["job_id"] for j in open_server.get("/jobs?user=alice", headers=BOB).json()["jobs"]] == [bob_job]
    listed = open_server.get("/jobs", headers=ROOT).json()["jobs"]
    assert {j["job_id"] for j in listed} == {alice_job, bob_job}
    only_alice = open_server.get("/jobs?user=alice", headers=ROOT).json()["jobs"]
    assert [j["job_id"] for j in only_alice] == [alice_job]

    def log(headers: dict[str, str]) -> list[dict]:
        return open_server.get("/api/requests", headers=headers).json()

    wait_until(lambda: len(log(ROOT)) >= 2, 10, "both submissions in the request log")
    assert {e["user"] for e in log(ROOT)} == {"alice", "bob"}
    assert [e["user"] for e in log(BOB)] == ["bob"]
    assert [e["user"] for e in log(ALICE)] == ["alice"]
    assert open_server.get("/api/requests").status_code == 401


def test_the_401_on_listing_jobs_says_what_needs_the_key(open_server):
    r = open_server.get("/jobs")
    assert r.status_code == 401
    assert r.json()["message"].startswith("listing jobs needs an API key")
    assert "changes state" not in r.json()["message"]


def test_a_wrong_key_on_a_link_is_a_401_even_for_a_cached_image(api):
    url = "/prompt/keyed%20fox?width=64&height=64"
    assert api.get(url).status_code == 200
    assert api.get(url).headers["X-LinkPix-Cache"] == "hit"  # now answered by the memoised hit path
    r = api.get(url, headers={"X-API-Key": "not-a-key"})
    assert r.status_code == 401 and r.json()["error"] == "unauthorized", r.text
    assert api.get(url, headers={"Authorization": "Bearer not-a-key"}).status_code == 401


def test_keys_on_loopback_are_scoped_too(project, simulator):
    server = JobsServer(project, simulator.url, api_keys=KEYS)
    try:
        mine = _submit(server, ALICE, "alice's fox")
        _submit(server, BOB, "bob's owl")
        assert [j["job_id"] for j in server.get("/jobs", headers=ALICE).json()["jobs"]] == [mine]
        assert len(server.get("/jobs").json()["jobs"]) == 2  # no key on loopback: this machine's owner
        assert server.get(f"/jobs/{mine}", headers=BOB).status_code == 404
    finally:
        server.close()


def test_health_keeps_users_and_the_comfyui_url_for_key_holders(open_server, simulator):
    assert open_server.get("/prompt/fox?width=64&height=64&user=carol").status_code == 200
    anonymous = open_server.get("/health").json()
    assert "comfyui_url" not in anonymous and "users" not in anonymous["cache"]
    assert anonymous["status"] == "ok" and anonymous["cache"]["images"] == 1
    keyed = open_server.get("/health", headers=BOB).json()
    assert keyed["comfyui_url"] == simulator.url and "carol" in keyed["cache"]["users"]


def test_health_on_loopback_shows_everything(api, simulator):
    body = api.get("/health").json()
    assert body["comfyui_url"] == simulator.url and "users" in body["cache"]


@pytest.mark.parametrize("path", ["/images//etc/passwd", "/images/default//x.png", "/api//styles"])
def test_doubled_slashes_are_a_json_404_not_a_redirect(api, path):
    r = api.get(path, allow_redirects=False)
    assert r.status_code == 404, (r.status_code, r.headers.get("Location"))
    assert r.headers["Content-Type"] == "application/json" and r.json()["error"] == "not_found"


def test_admin_keys_must_be_api_keys(project, simulator):
    from linkpix.errors import ConfigError

    with pytest.raises(ConfigError, match="admin_keys"):
        ApiServer(project, simulator.url, api_keys={"k": "x"}, admin_keys=["other"])
