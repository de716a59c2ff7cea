"""The image cache on a real S3-compatible server (SeaweedFS): misses, hits streamed or redirected to a
presigned URL, the same names and metadata as on disk, and two replicas sharing one bucket."""

from __future__ import annotations

import io
import json
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from jobs_support import JobsServer as ApiServer
from PIL import Image
from replica_support import S3_BUCKET, S3Server, redis_server, s3_server

from linkpix.dashboard import cachefiles
from linkpix.dashboard.context import DashboardContext
from linkpix.dashboard.maintenance_tab import ALL, clear_summary
from linkpix.dashboard.monitor import cache_rows
from linkpix.simulator import SimulatorServer

# Slow (docs/testing.md): replicas, a real redis-server and SeaweedFS.
pytestmark = pytest.mark.slow

__all__ = ["redis_server", "s3_server"]

LINK = "/prompt/a%20fox%20in%20a%20bucket?width=64&height=64"


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}/"


@pytest.fixture
def s3_api(project: Path, simulator: SimulatorServer, s3_server: S3Server, prefix: str) -> Iterator[ApiServer]:
    server = ApiServer(project, simulator.url, **s3_server.settings(prefix))
    try:
        yield server
    finally:
        server.close()


def test_a_miss_is_stored_in_the_bucket_and_the_next_request_is_a_hit(s3_api, s3_server, prefix, project):
    first = s3_api.get(LINK)
    assert first.status_code == 200 and first.headers["X-LinkPix-Cache"] == "miss"
    second = s3_api.get(LINK)
    assert second.status_code == 200 and second.headers["X-LinkPix-Cache"] == "hit"
    assert second.content == first.content and second.headers["ETag"] == first.headers["ETag"]
    assert int(second.headers["Content-Length"]) == len(first.content)
    # The same names and sidecar as the disk cache: <user>/<key>.png and <user>/<key>.json.
    client = s3_server.client()
    names = sorted(o["Key"] for o in client.list_objects_v2(Bucket=S3_BUCKET, Prefix=prefix)["Contents"])
    key = first.headers["ETag"].strip('"')
    assert names == [f"{prefix}default/{key}.json", f"{prefix}default/{key}.png"]
    meta = json.loads(client.get_object(Bucket=S3_BUCKET, Key=f"{prefix}default/{key}.json")["Body"].read())
    assert meta["key"] == key and meta["format"] == "png" and meta["bytes"] == len(first.content)
    assert meta["prompt"] == "a fox in a bucket" and meta["user"] == "default"
    assert not any((project / "cache").iterdir())  # nothing on the local disk
    # The stored image by its URL, and a conditional request.
    url = s3_api.get(LINK + "&format=json").json()["url"]
    stored = s3_api.get(url)
    assert stored.status_code == 200 and stored.content == first.content
    assert s3_api.get(url, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    assert s3_api.get(f"/images/default/{'0' * 32}.png").status_code == 404
    cache = s3_api.get("/health").json()["cache"]
    assert cache["storage"] == f"s3://{S3_BUCKET}/{prefix}" and cache["hits"] >= 1


def test_a_hit_can_redirect_to_a_presigned_url(project, simulator, s3_server, prefix):
    server = ApiServer(project, simulator.url, s3_redirect=True, **s3_server.settings(prefix))
    try:
        made = server.get(LINK)  # a miss is answered with the picture itself
        assert made.status_code == 200
        hit = server.get(LINK, allow_redirects=False)
        assert hit.status_code == 302 and hit.headers["X-LinkPix-Cache"] == "hit"
        location = hit.headers["Location"]
        assert location.startswith(s3_server.endpoint) and "X-Amz-Signature=" in location
        fetched = requests.get(location, timeout=10)
        assert fetched.status_code == 200 and fetched.content == made.content
        assert fetched.headers["Content-Type"] == "image/png"
    finally:
        server.close()


def test_two_replicas_share_one_bucket_and_one_run(project, tmp_path, s3_server, prefix, redis_server):
    sim = SimulatorServer(port=0, root=tmp_path / "comfyui", step_delay=0.0, run_delay=1.0)
    sim.start()
    settings = {"redis_url": redis_server.url, **s3_server.settings(prefix)}
    a = ApiServer(project, sim.url, replica_name="a", **settings)
    b = ApiServer(project, sim.url, replica_name="b", **settings)
    try:
        # alice and bob, on both replicas at once: one run; bob gets the run's image copied for him.
        links = [LINK + ("&user=bob" if i % 3 == 0 else "&user=alice") for i in range(6)]
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda i: (a, b)[i % 2].get(links[i]), range(6)))
        assert [r.status_code for r in answers] == [200] * 6 and len({r.content for r in answers}) == 1
        assert sim.prompts_received == 1
        client = s3_server.client()
        users = {o["Key"].split("/")[1] for o in client.list_objects_v2(Bucket=S3_BUCKET, Prefix=prefix)["Contents"]}
        assert users == {"alice", "bob"}
    finally:
        a.close()
        b.close()
        sim.stop()


def _png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (96, 64), colour).save(out, "PNG")
    return out.getvalue()


def test_an_upload_to_one_replica_is_used_by_another_that_shares_no_folder(project, tmp_path, simulator, s3_server,
                                                                            prefix, redis_server):
    """Replicas on Redis and a bucket, each with its own data/: uploads travel through the bucket."""
    other = tmp_path / "other-project"
    shutil.copytree(project, other)
    settings = {"redis_url": redis_server.url, "jobs_keep_days": 1.0, **s3_server.settings(prefix)}
    a = ApiServer(project, simulator.url, replica_name="a", **settings)
    b = ApiServer(other, simulator.url, replica_name="b", **settings)
    try:
        upload = a.post("/uploads", data=_png((200, 40, 40)), headers={"Content-Type": "image/png"})
        assert upload.status_code == 201, upload.text
        image_id = upload.json()["id"]
        assert not list((project / "data").glob("uploads/linkpix_*"))  # nothing on the replica's disk
        client = s3_server.client()
        assert client.head_object(Bucket=S3_BUCKET, Key=f"{prefix}!uploads/{image_id}")["ContentLength"] > 0
        link = b.get(f"/prompt/a%20red%20card?workflow=sd15_img2img&width=64&height=64&image={image_id}")
        assert link.status_code == 200, link.text
        job = b.wait_for(b.submit(prompt="a red card", workflow="sd15_img2img", images=[image_id]))
        assert job["status"] == "succeeded", job
        missing = b.get("/prompt/x?workflow=sd15_img2img&image=linkpix_" + "0" * 16 + ".png")
        assert missing.status_code == 404 and "upload it first" in missing.json()["message"]
        # Clearing the image cache keeps the inputs.
        assert a.services.cache.clear() >= 1
        assert client.head_object(Bucket=S3_BUCKET, Key=f"{prefix}!uploads/{image_id}")
        # Retention: nothing is old yet; two days on, the job and the three inputs go: both uploads (one never
        # used) and the job's copy named by its bytes (issue 20: ids are the uploader's, runs name bytes).
        b.post("/uploads", data=_png((10, 10, 240)))
        pruner = a.services.jobs.pruner
        assert pruner.prune() == {"jobs": 0, "uploads": 0}
        assert pruner.prune(now=time.time() + 2 * 86400) == {"jobs": 1, "uploads": 3}
        assert "Contents" not in client.list_objects_v2(Bucket=S3_BUCKET, Prefix=f"{prefix}!uploads/")
    finally:
        a.close()
        b.close()


def test_the_dashboard_sees_and_clears_the_images_in_the_bucket(s3_api, s3_server, prefix, project):
    """The dashboard is another process: with storage s3 its cache figures and Clear work on the bucket."""
    assert s3_api.get(LINK).status_code == 200
    config = json.loads((project / "config.json").read_text())
    (project / "config.json").write_text(json.dumps({**config, **s3_server.settings(prefix)}))
    ctx = DashboardContext.open(project / "config.json")
    assert [row[:2] for row in cache_rows(ctx.image_cache())] == [["default", 1]]
    assert "**1 image**" in clear_summary(ctx, ALL)
    assert cachefiles.clear(ctx.image_cache(), "default") == 1
    left = s3_server.client().list_objects_v2(Bucket=S3_BUCKET, Prefix=prefix)
    assert "Contents" not in left
    assert s3_api.get(LINK).headers["X-LinkPix-Cache"] == "miss"  # the API sees it gone
