"""Outputs that are not pictures (issue 25): SaveVideo's MP4 and SaveAudio's FLAC stored byte for byte, listed by
the Comfy API v2 with their kind, served with Range, reused from the cache, kept per user; a link answers the
video itself, and the fronts that carry pictures only (OpenAI, A1111) refuse it by name. Over real sockets:
the simulator (with its audio nodes), LinkPix under waitress, the real `comfy-sdk` and `openai` clients."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import av
import openai
import pytest
import requests
from comfy_sdk import MissingAsset, NotFound
from fronts_support import FrontServer, add_video_workflow, video, wait_for
from jobs_support import JobsServer
from replica_support import S3_BUCKET, s3_server  # noqa: F401 - fixture
from support import ApiServer, running_simulator
from v2_support import client, txt2img

from linkpix.config import ConfigHolder
from linkpix.dashboard.context import DashboardContext
from linkpix.dashboard.generate import run
from linkpix.simulator import SimulatorServer
from linkpix.simulator.audio import flac_silence

pytestmark = pytest.mark.slow  # an API, a simulator and SDK runs: seconds each

KEYS = {"key-alice": "alice", "key-bob": "bob"}


def with_audio(graph: dict, seconds: float = 1.5) -> dict:
    """The graph plus EmptyAudio -> SaveAudio (listed under the node's `audio`)."""
    graph["80"] = {"class_type": "EmptyAudio", "inputs": {"duration": seconds, "sample_rate": 22050, "channels": 1}}
    graph["81"] = {"class_type": "SaveAudio", "inputs": {"audio": ["80", 0], "filename_prefix": "audio/lp"}}
    return graph


@pytest.fixture
def sim(tmp_path) -> Iterator[SimulatorServer]:
    """A simulator with ComfyUI's audio nodes (a stock install's; the captured one lacked them)."""
    with running_simulator(tmp_path / "comfyui", audio=True) as server:
        yield server


@pytest.fixture
def api(project, sim) -> Iterator[ApiServer]:
    server = ApiServer(project, sim.url, api_keys=KEYS)
    try:
        yield server
    finally:
        server.close()


def saved(sim: SimulatorServer, name: str, subfolder: str) -> bytes:
    """The file as ComfyUI wrote it (GET /view)."""
    r = requests.get(f"{sim.url}/view", params={"filename": name, "subfolder": subfolder, "type": "output"},
                     timeout=10)
    assert r.status_code == 200
    return r.content


def test_a_video_comes_back_byte_for_byte_with_ranges_and_again_from_the_cache(api, sim):
    alice = client(api, "key-alice")
    first = alice.run(alice.workflows.from_json(video(txt2img("a moving fox"))))
    [out] = first.outputs
    mp4 = saved(sim, "lp_00001_.mp4", "video")
    assert (out.type, out.content_type, out.node_id, out.size_bytes) == ("video", "video/mp4", "7", len(mp4))
    assert out.to_bytes() == mp4 and mp4[4:8] == b"ftyp"

    auth = {"Authorization": "Bearer key-alice"}
    part = requests.get(f"{api.url}/api/v2/assets/{out.id}/content", headers={**auth, "Range": "bytes=10-29"},
                        timeout=10)
    assert part.status_code == 206 and part.content == mp4[10:30] and part.headers["Content-Type"] == "video/mp4"
    assert part.headers["Content-Range"] == f"bytes 10-29/{len(mp4)}" and part.headers["Content-Length"] == "20"
    assert out.to_bytes(range=(len(mp4) - 8, len(mp4) - 1)) == mp4[-8:]  # the SDK's own ranged download
    outside = requests.get(f"{api.url}/api/v2/assets/{out.id}/content", headers={**auth, "Range": "bytes=999999-"},
                           timeout=10)
    assert outside.status_code == 416 and outside.headers["Content-Range"] == f"bytes */{len(mp4)}"

    url = requests.get(f"{api.url}/api/v2/jobs/{first.id}", headers=auth, timeout=10).json()["outputs"][0]["name"]
    public = requests.get(f"{api.url}/images/alice/{url}", headers={"Range": "bytes=0-7"}, timeout=10)
    assert public.status_code == 206 and public.headers["Content-Type"] == "video/mp4" and public.content == mp4[:8]
    whole = requests.get(f"{api.url}/images/alice/{url}", timeout=10)
    assert whole.content == mp4 and whole.headers["Accept-Ranges"] == "bytes"

    runs = len(requests.get(f"{sim.url}/history", timeout=10).json())
    again = alice.run(alice.workflows.from_json(video(txt2img("a moving fox"))))
    body = requests.get(f"{api.url}/api/v2/jobs/{again.id}", headers=auth, timeout=10).json()
    assert body["outputs_reused"] is True and len(requests.get(f"{sim.url}/history", timeout=10).json()) == runs
    [reused] = again.outputs
    assert (reused.name, reused.type, reused.to_bytes()) == (out.name, "video", mp4)


def test_a_sound_is_listed_as_audio_beside_the_picture(api, sim):
    alice = client(api, "key-alice")
    job = alice.run(alice.workflows.from_json(with_audio(txt2img("a singing fox"))))
    picture, sound = job.outputs
    assert (picture.type, picture.content_type, picture.node_id) == ("image", "image/png", "7")
    assert (sound.type, sound.content_type, sound.node_id) == ("audio", "audio/flac", "81")
    flac = saved(sim, "lp_00001_.flac", "audio")
    assert sound.to_bytes() == flac and sound.size_bytes == len(flac)
    decoded = av.open(io.BytesIO(sound.to_bytes()))
    assert sum(frame.samples for frame in decoded.decode(decoded.streams.audio[0])) == round(1.5 * 22050)

    again = alice.run(alice.workflows.from_json(with_audio(txt2img("a singing fox"))))
    assert [(o.type, o.to_bytes()) for o in again.outputs] == [("image", picture.to_bytes()), ("audio", flac)]


def test_another_key_sees_nothing_of_a_users_video(api):
    alice, bob = client(api, "key-alice"), client(api, "key-bob")
    job = alice.run(alice.workflows.from_json(video(txt2img("alice's secret film"))))
    [out] = job.outputs
    bob_h = {"Authorization": "Bearer key-bob"}
    for path in (f"/api/v2/assets/{out.id}/content", f"/api/v2/assets/{out.id}", f"/api/v2/jobs/{job.id}"):
        r = requests.get(api.url + path, headers=bob_h, timeout=10)
        assert r.status_code == 404 and "alice" not in r.text and out.name not in r.text
    assert list(bob.list_jobs()) == []
    with pytest.raises(NotFound):
        bob.jobs.get(job.id)


def test_a_link_whose_workflow_saves_a_video_answers_the_video(project, sim):
    add_video_workflow(project)
    server = ApiServer(project, sim.url)
    try:
        r = requests.get(server.url + "/prompt/a%20moving%20owl?workflow=video", timeout=60)
        assert r.status_code == 200 and r.headers["Content-Type"] == "video/mp4"
        assert r.content == saved(sim, "lp_00001_.mp4", "video") and r.headers["X-LinkPix-Cache"] == "miss"
        ranged = requests.get(server.url + "/prompt/a%20moving%20owl?workflow=video", headers={"Range": "bytes=4-7"},
                              timeout=60)
        assert ranged.status_code == 206 and ranged.content == b"ftyp" and ranged.headers["X-LinkPix-Cache"] == "hit"
        outside = requests.get(server.url + "/prompt/a%20moving%20owl?workflow=video",
                               headers={"Range": "bytes=99999999-"}, timeout=60)
        assert outside.status_code == 416 and outside.headers["Content-Range"] == f"bytes */{len(r.content)}"
        meta = requests.get(server.url + "/prompt/a%20moving%20owl?workflow=video&format=json", timeout=60).json()
        assert meta["format"] == "mp4" and meta["url"].endswith(".mp4") and meta["width"] is None
        picture = requests.get(server.url + "/prompt/a%20still%20owl", timeout=60)
        assert picture.status_code == 200 and picture.headers["Content-Type"] == "image/png"
        assert "Accept-Ranges" not in picture.headers  # pictures answer as they always did

        err = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=60)
        with pytest.raises(openai.UnprocessableEntityError) as refused:
            err.images.generate(prompt="a moving owl", model="video", response_format="b64_json")
        assert "node 7 (SaveVideo) saved 'lp_00001_.mp4' (video/mp4)" in str(refused.value)
        a1111 = requests.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a moving owl", "workflow": "video"},
                              timeout=60)  # `workflow`: LinkPix's own field, which webuiapi does not send
        assert a1111.status_code == 422 and "node 7 (SaveVideo) saved 'lp_0000" in a1111.json()["detail"]
        assert "(video/mp4); this API carries pictures only" in a1111.json()["detail"]
    finally:
        server.close()


def test_an_uploaded_sound_feeds_load_audio_for_its_owner_only(api, sim):
    """POST /api/v2/assets keeps audio as it came (recognised by its bytes), ComfyUI gets it by /upload/image
    (which stores any file) and LoadAudio reads it; another key can neither use nor read it."""
    alice, bob = client(api, "key-alice"), client(api, "key-bob")
    clip = flac_silence(round(0.75 * 16000), 16000, 2)
    asset = alice.assets.from_bytes(clip, filename="voice.flac")
    asset.commit()
    auth = {"Authorization": "Bearer key-alice"}
    described = requests.get(f"{api.url}/api/v2/assets/{asset.id}", headers=auth, timeout=10).json()
    assert described["content_type"] == "audio/flac" and described["size_bytes"] == len(clip)
    back = requests.get(f"{api.url}/api/v2/assets/{asset.id}/content", headers=auth, timeout=10)
    assert back.content == clip and back.headers["Content-Type"] == "audio/flac"

    graph = {"1": {"class_type": "LoadAudio", "inputs": {"audio": {"__type": "core/ASSET", "info": {"id": asset.id}}}},
             "2": {"class_type": "SaveAudio", "inputs": {"audio": ["1", 0], "filename_prefix": "audio/echo"}}}
    job = alice.run(alice.workflows.from_json(graph))
    [out] = job.outputs
    assert (out.type, out.content_type) == ("audio", "audio/flac")
    sent = [p for p in (sim.root / "input").iterdir() if p.suffix == ".flac"]
    assert [p.read_bytes() for p in sent] == [clip]  # ComfyUI got the bytes as they were uploaded
    decoded = av.open(io.BytesIO(out.to_bytes()))
    assert sum(f.samples for f in decoded.decode(decoded.streams.audio[0])) == round(0.75 * 16000)

    bob_h = {"Authorization": "Bearer key-bob"}
    with pytest.raises(MissingAsset):
        bob.submit(bob.workflows.from_json(graph))
    for path in (f"/api/v2/assets/{asset.id}", f"/api/v2/assets/{asset.id}/content"):
        assert requests.get(api.url + path, headers=bob_h, timeout=10).status_code == 404

    refused = requests.post(f"{api.url}/api/v2/assets", headers=auth, timeout=10,
                            files={"file": ("notes.txt", b"<html>not a sound</html>", "audio/flac")})
    assert refused.status_code == 422 and "audio (FLAC, MP3" in refused.json()["error"]["message"]


def test_a_jobs_sound_feeds_the_next_job_and_the_comfyui_front_lists_it_as_comfyui_does(project, sim, api):
    alice = client(api, "key-alice")
    [made] = alice.run(alice.workflows.from_json(with_audio({}, seconds=0.5))).outputs
    graph = {"1": {"class_type": "LoadAudio", "inputs": {"audio": {"__type": "core/ASSET", "info": {"id": made.id}}}},
             "2": {"class_type": "SaveAudio", "inputs": {"audio": ["1", 0], "filename_prefix": "audio/again"}}}
    [again] = alice.run(alice.workflows.from_json(graph)).outputs  # an output as an input: the SDK's chaining
    assert again.type == "audio" and again.to_bytes() == made.to_bytes()  # silence of the same length

    front = FrontServer(project, sim.url)  # ComfyUI's own dialect, as a ComfyUI script speaks it
    try:
        sent = requests.post(front.url + "/prompt", json={"prompt": with_audio({}, seconds=0.25)}, timeout=30)
        prompt_id = sent.json()["prompt_id"]
        entry = wait_for(lambda: requests.get(f"{front.url}/history/{prompt_id}", timeout=10).json(), timeout=30)
        outputs = entry[prompt_id]["outputs"]
        assert list(outputs) == ["81"] and list(outputs["81"]) == ["audio"]
        view = requests.get(front.url + "/view", params=outputs["81"]["audio"][0], timeout=10)
        assert view.status_code == 200 and view.headers["Content-Type"] == "audio/flac" and view.content[:4] == b"fLaC"
    finally:
        front.close()


def test_a_video_in_the_bucket_is_kept_and_served_like_a_picture(project, sim, s3_server):  # noqa: F811
    """With `storage: s3` the file goes to the bucket under its own extension and content type."""
    server = ApiServer(project, sim.url, **s3_server.settings("media/"))
    try:
        c = client(server)
        [out] = c.run(c.workflows.from_json(video(txt2img("a fox in a bucket")))).outputs
        mp4 = saved(sim, "lp_00001_.mp4", "video")
        assert (out.type, out.content_type, out.to_bytes()) == ("video", "video/mp4", mp4)
        obj = s3_server.client().get_object(Bucket=S3_BUCKET, Key=f"media/default/{out.name}")
        assert obj["ContentType"] == "video/mp4" and obj["Body"].read() == mp4
        assert not any((project / "cache").iterdir())  # nothing on the local disk
        part = requests.get(f"{server.url}/api/v2/assets/{out.id}/content", headers={"Range": "bytes=4-7"}, timeout=10)
        assert part.status_code == 206 and part.content == b"ftyp"
        public = requests.get(f"{server.url}/images/default/{out.name}", timeout=10)
        assert public.headers["Content-Type"] == "video/mp4" and public.content == mp4
    finally:
        server.close()


def test_openai_streaming_refuses_a_video_in_an_error_event_then_before_streaming(project, sim):
    add_video_workflow(project)
    server = FrontServer(project, sim.url)
    try:
        api = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=60)
        stream = api.images.generate(prompt="a streamed owl", model="video", size="64x64", stream=True,
                                     partial_images=1)
        with pytest.raises(openai.APIError, match=r"node 7 \(SaveVideo\) saved 'lp_00001_.mp4' \(video/mp4\)"):
            list(stream)  # a new run: the refusal is the stream's `error` event
        with pytest.raises(openai.UnprocessableEntityError, match="SaveVideo"):  # cached: refused before streaming
            api.images.generate(prompt="a streamed owl", model="video", size="64x64", stream=True, partial_images=1)
    finally:
        server.close()


def test_a_job_lists_its_video_and_a_link_with_a_picture_and_a_sound_answers_the_picture(project, sim):
    add_video_workflow(project)
    (project / "workflows" / "sung.json").write_text(json.dumps(with_audio(json.loads(
        (project / "workflows" / "demo.json").read_text()))))
    server = JobsServer(project, sim.url)
    try:
        job = server.wait_for(server.submit(prompt="a filmed heron", workflow="video"))
        [made] = job["images"]
        assert job["status"] == "succeeded" and made["format"] == "mp4" and made["media"] == "video"
        assert server.get(made["url"]).content == saved(sim, "lp_00001_.mp4", "video")

        link = server.get("/prompt/a%20singing%20heron?workflow=sung")
        assert link.status_code == 200 and link.headers["Content-Type"] == "image/png"  # the picture, as before
        meta = server.get("/prompt/a%20singing%20heron?workflow=sung&format=json").json()
        stored = json.loads((project / "cache" / "default" / meta["url"].rsplit("/", 1)[1]).with_suffix(".json")
                            .read_text())
        [sound] = stored["outputs"]  # the sound beside it, listed in its metadata
        assert sound["media"] == "audio" and sound["format"] == "flac" and sound["node_id"] == "81"
        assert server.get(sound["url"]).headers["Content-Type"] == "audio/flac"
    finally:
        server.close()


def test_the_dashboard_generates_a_video_without_failing_and_links_to_it(project, sim):
    add_video_workflow(project)
    server = ApiServer(project, sim.url)
    try:
        path = project / "config.json"
        config = json.loads(path.read_text())
        config.update(comfyui_url=sim.url, workflow_path="demo.json")
        path.write_text(json.dumps(config))
        ctx = DashboardContext(path, ConfigHolder(path, use_env=False), environ={"LINKPIX_API_URL": server.url})
        updates = list(run(ctx, [], "a filmed fox", ["none"], "video.json", "", []))
        final = updates[-1]
        assert "Done" in final[0] and final[2] and "workflow=video" in final[3]  # seed, and the link to open
        assert requests.get(final[3], timeout=30).headers["Content-Type"] == "video/mp4"
    finally:
        server.close()
