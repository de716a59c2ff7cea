"""Job events' `preview` events carry a URL to the job's newest frame; the URL is the job owner's only."""

from __future__ import annotations

import io

from jobs_support import JobsServer
from PIL import Image


def test_preview_events_carry_a_url_to_the_newest_frame(project, simulator):
    simulator.faults.step_delay = 0.12
    server = JobsServer(project, simulator.url, network_access=True,
                        api_keys={"k-alice": "alice", "k-bob": "bob"})
    try:
        alice, bob = {"X-API-Key": "k-alice"}, {"X-API-Key": "k-bob"}
        r = server.post("/generate", json={"prompt": "watched job", "steps": 12}, headers=alice)
        assert r.status_code == 202
        job_id = r.json()["job_id"]
        frames = []
        with server.http.get(f"{server.url}/jobs/{job_id}/events", headers=alice, stream=True, timeout=60) as events:
            for line in events.iter_lines(decode_unicode=True):
                if line.startswith("data:") and '"url": "/jobs/' in line:
                    url = line.split('"url": "', 1)[1].split('"', 1)[0]
                    got = server.get(url, headers=alice)
                    assert got.status_code == 200 and got.headers["Content-Type"] == "image/jpeg"
                    frames.append(got.content)
                    assert server.get(url, headers=bob).status_code == 404  # not bob's job: nothing said of it
                    assert server.get(url).status_code == 401
                if line.startswith("event: succeeded"):
                    break
        assert len(frames) >= 2 and len(set(frames)) >= 2
        assert max(Image.open(io.BytesIO(frames[-1])).size) == 512
        unknown = server.get("/jobs/" + "0" * 32 + "/preview", headers=alice)
        assert unknown.status_code == 404
    finally:
        server.close()
